"""Numbers in the book's prose, computed by the cells that precede it (myst-nb's ``glue``).

    glue("ch2_probe10_simclr", result.accuracy)   # the prose then writes {glue:text}`ch2_probe10_simclr:.1%`
    glue("ch5_cifar_verdict", compare(simclr, random_init))   # "ahead of", "behind" or "level with"

The book never types a measured figure: a cell computes it and glues it under a name, and the text pastes
it, so a rebuild on other data or another device can never leave the prose saying what the outputs
contradict. Outside a book build (Colab, plain Jupyter: no myst-nb) ``glue`` falls back to displaying
the value when asked to, and otherwise does nothing.
"""

from __future__ import annotations


def glue(name: str, value, display: bool = False):
    """Store ``value`` under ``name`` for the book's ``{glue}`` roles; return ``value``.

    ``display=True`` also shows it in the notebook. Numbers are glued as plain Python numbers (a NumPy or
    PyTorch scalar becomes a float or an int, whose text the book can format), and the prose chooses the
    format (``{glue:text}`name:.1%``` for a fraction shown as a percentage).
    """
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()  # np.float64(0.5) would be glued as the text "np.float64(0.5)"
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # no book build here (e.g. Colab): show the value if asked, and carry on
        if display:
            from IPython.display import display as show

            show(value)
        return value
    myst_glue(name, value, display=display)
    return value


def compare(a: float, b: float, *, tolerance: float = 0.005, better: str = "ahead of", worse: str = "behind",
            level: str = "level with") -> str:
    """How ``a`` stands against ``b`` in words: ``better`` when a > b + tolerance, ``worse`` when a < b − tolerance,
    else ``level``. For prose that must not claim what the numbers do not show."""
    if a > b + tolerance:
        return better
    if a < b - tolerance:
        return worse
    return level
