"""Numbers in the book's prose, computed by the cells that precede it (myst-nb's ``glue``).

    glue("ch2_probe10_simclr", result.accuracy)   # the prose then writes {glue:text}`ch2_probe10_simclr:.1%`
    glue("ch5_cifar_verdict", compare(simclr, random_init))   # "ahead of", "behind" or "level with"

The book never types a measured figure: a cell computes it and glues it under a name, and the text pastes
it, so a rebuild on other data or another device can never leave the prose saying what the outputs
contradict. Outside a book build (Colab, Kaggle, plain Jupyter: no myst-nb) nothing can paste a value into
Markdown, so ``glue`` also keeps every value in ``GLUED``, this run's record, and the student copies
(``course_utils.instructor.labs``) put a ``show_glued(...)`` cell under each paragraph that quotes numbers: it prints
them, from the student's own run, in the formats the paragraph asks for.
"""

from __future__ import annotations

import re

#: Every value glued in this Python process, by name: what ``show_glued`` prints.
GLUED: dict[str, object] = {}

NOT_COMPUTED = "not computed yet: run the cells above"


def glue(name: str, value, display: bool = False):
    """Store ``value`` under ``name`` for the book's ``{glue}`` roles and for ``show_glued``; return ``value``.

    ``display=True`` also shows it in the notebook. Numbers are glued as plain Python numbers (a NumPy or
    PyTorch scalar becomes a float or an int, whose text the book can format), and the prose chooses the
    format (``{glue:text}`name:.1%``` for a fraction shown as a percentage).
    """
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()  # np.float64(0.5) would be glued as the text "np.float64(0.5)"
    GLUED[name] = value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # no book build here (e.g. Colab): show the value if asked, and carry on
        if display:
            from IPython.display import display as show

            show(value)
        return value
    myst_glue(name, value, display=display)
    return value


def format_glued(value, spec: str = "") -> str:
    """``value`` as the book's ``{glue:text}`name:spec``` role shows it (myst-nb's rules: the last character of
    ``spec`` picks the type, so ``.1%`` formats a float and ``,d`` an int; no spec: ``str(value)``)."""
    if not spec:
        return str(value)
    kind = spec[-1]
    try:
        if kind in "bcdoxX":
            value = int(value)
        elif kind in "eEfFgGn%":
            value = float(value)
        elif kind == "s":
            value = str(value)
        return format(value, spec)
    except (TypeError, ValueError):
        return f"{value!r} (cannot be formatted as {spec!r})"


def glued_label(name: str) -> str:
    """The name a student copy shows for a glued value: without the chapter prefix (``ch2_lab_best`` -> ``lab_best``)."""
    return re.sub(r"^ch\d+_", "", name)


def show_glued(*specs: str) -> None:
    """Print the glued values that the Markdown above quotes, from this run.

    specs  the roles' contents, ``"name"`` or ``"name:format"``, e.g. ``show_glued("ch2_lab_best", "ch2_lab_both:.1%")``.
    A value not glued yet (its cell did not run) is reported as such instead of raising.
    """
    rows = []
    for spec in specs:
        name, _, fmt = spec.partition(":")
        text = format_glued(GLUED[name], fmt) if name in GLUED else NOT_COMPUTED
        rows.append((glued_label(name), text))
    width = max((len(label) for label, _ in rows), default=0)
    print("The numbers in the text above, from your run:")
    for label, text in rows:
        print(f"  {label:<{width}} = {text}")


def compare(a: float, b: float, *, tolerance: float = 0.005, better: str = "ahead of", worse: str = "behind",
            level: str = "level with") -> str:
    """How ``a`` stands against ``b`` in words: ``better`` when a > b + tolerance, ``worse`` when a < b − tolerance,
    else ``level``. For prose that must not claim what the numbers do not show."""
    if a > b + tolerance:
        return better
    if a < b - tolerance:
        return worse
    return level
