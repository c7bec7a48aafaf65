"""The course's figures: view grids, image grids, training curves, UMAP, confusion matrices, bars, heat maps.

Every function returns its matplotlib Figure (in Jupyter, end the line with ``;`` or assign the result,
or the figure is drawn twice). Titles should name the data set; ``data_title(data, "...")`` adds
"(stand-in)" when the data is an offline stand-in. Figures are sized for a book page (8 inches wide).
"""

from __future__ import annotations

import matplotlib.pyplot as plt  # no matplotlib.use(): the caller (or MPLBACKEND) picks the backend
import numpy as np
import torch

from .augment import to_float
from .data import as_numpy

WIDTH = 8.0  # inches: the width of the book's text column


def data_title(data, what: str = "") -> str:
    """``"what: <data name>"``, with " (stand-in)" appended when ``data.is_standin`` and the name lacks it."""
    name = data.name
    if getattr(data, "is_standin", False) and "stand-in" not in name.lower():
        name += " (stand-in)"
    return f"{what}: {name}" if what else name


def _image(x) -> np.ndarray:
    """One C×H×W image (uint8 or float in [0, 1]) -> H×W or H×W×3 float array for imshow."""
    x = to_float(torch.as_tensor(as_numpy(x))[None])[0].clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def _show(ax, image) -> None:
    img = _image(image)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def show_views(images, augment, n: int = 8, title: str | None = None, seed: int = 0):
    """Three rows: n originals, their first augmented view and their second (N×C×H×W, 1 or 3 channels).

    ``augment`` maps a batch to an augmented float batch in [0, 1]. The images shown and the views are
    fixed by ``seed`` (the global random state is restored afterwards).
    """
    images = getattr(images, "images", images)
    n = min(n, len(images))
    generator = torch.Generator().manual_seed(seed)
    batch = images[torch.randperm(len(images), generator=generator)[:n].to(images.device)]
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        views = [augment(batch), augment(batch)]
    fig, axes = plt.subplots(3, n, figsize=(WIDTH, WIDTH * 3 / n + 0.4), squeeze=False)
    for row, (name, rows) in enumerate(zip(("original", "view 1", "view 2"), (batch, *views))):
        for col in range(n):
            _show(axes[row, col], rows[col])
        axes[row, 0].set_ylabel(name)
    fig.suptitle(title or "Two augmented views of each image")
    fig.tight_layout()
    return fig


def show_images(images, labels=None, classes=None, n: int = 32, title: str | None = None, ncols: int = 8):
    """A grid of the first ``n`` images (N×C×H×W), each captioned with its class when labels are given."""
    images = getattr(images, "images", images)
    n = min(n, len(images))
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    row_height = WIDTH / ncols * (1.2 if labels is not None else 1.0)  # room for the captions
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, row_height * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.remove()
            continue
        _show(ax, images[i])
        if labels is not None:
            label = int(labels[i])
            ax.set_title(classes[label] if classes is not None else str(label), fontsize=8)
    fig.suptitle(title or "Images")
    fig.tight_layout()
    return fig


def training_curves(history: list[dict], title: str | None = None, throughput: bool = False):
    """Loss per epoch; kNN accuracy in a second panel when the history has "knn_acc"; images/s if asked."""
    if not history:
        raise ValueError("history is empty: train for at least one epoch first")
    epochs = [h["epoch"] for h in history]
    knn = [(h["epoch"], h["knn_acc"]) for h in history if h.get("knn_acc") is not None]
    panels = ["loss"] + (["knn"] if knn else []) + (["speed"] if throughput else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "loss":
            ax.plot(epochs, [h["loss"] for h in history], marker="o", ms=3)
            ax.set_ylabel("training loss")
        elif panel == "knn":
            ax.plot(*zip(*knn), marker="o", ms=3, color="C1")
            ax.set_ylabel("kNN accuracy (test)")
            ax.set_ylim(0, 1)
        else:
            ax.plot(epochs, [h["images_per_s"] for h in history], marker="o", ms=3, color="C2")
            ax.set_ylabel("images / s")
            ax.set_ylim(bottom=0)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Training curves")
    fig.tight_layout()
    return fig


def _embed_2d(features, seed: int, n_neighbors: int, method: str = "umap"):
    """N×D -> N×2 by UMAP (its first call in a process compiles numba code: tens of seconds), or PCA."""
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    x = as_numpy(features).reshape(len(features), -1)
    if method == "umap":
        try:
            import umap
        except ImportError:
            print("note: umap-learn is not installed; showing the first two principal components instead "
                  "(pip install umap-learn)")
        else:
            import warnings
            with warnings.catch_warnings():  # "n_jobs overridden by random_state": we want reproducibility
                warnings.simplefilter("ignore")
                reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), random_state=seed)
                return reducer.fit_transform(x), "UMAP"
    from sklearn.decomposition import PCA
    return PCA(n_components=2, random_state=seed).fit_transform(x), "PCA"


def _scatter(ax, xy, labels, classes, method):
    labels = as_numpy(labels).astype(int).ravel()
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    for c in np.unique(labels):
        mask = labels == c
        ax.scatter(xy[mask, 0], xy[mask, 1], s=4, color=cmap(c % cmap.N),
                   label=classes[c] if classes is not None else str(c))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")


def umap_scatter(features, labels, *, classes=None, title: str | None = None, ax=None, seed: int = 0,
                 n_neighbors: int = 15, method: str = "umap"):
    """2-D UMAP (McInnes et al. 2018) of N×D features, coloured by class, with a legend.

    ``method="pca"`` draws the first two principal components instead (also the fallback, with a
    printed note, when umap-learn is missing).
    """
    xy, method = _embed_2d(features, seed, n_neighbors, method)
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH * 0.75, WIDTH * 0.6))
    _scatter(ax, xy, labels, classes, method)
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    ax.set_title(title or f"{method} of the features")
    ax.figure.tight_layout()
    return ax.figure


def embedding_panels(embeddings: dict, labels, *, classes=None, title: str | None = None, seed: int = 0,
                     n_neighbors: int = 15, method: str = "umap"):
    """One UMAP (or PCA) panel per entry of ``{name: N×D features}``, side by side, one shared legend."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(WIDTH, WIDTH / len(embeddings) + 0.9), squeeze=False)
    for ax, (name, features) in zip(axes[0], embeddings.items()):
        xy, used = _embed_2d(features, seed, n_neighbors, method)
        _scatter(ax, xy, labels, classes, used)
        ax.set_title(name)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 10), markerscale=3, fontsize=8,
               frameon=False)
    fig.suptitle(title or "Embeddings")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def confusion_matrix_plot(y_true, y_pred, classes, title: str | None = None, normalize: bool = True, ax=None):
    """Confusion matrix (rows: true class, columns: predicted), each row normalised to sum to 1 by default."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(as_numpy(y_true).ravel(), as_numpy(y_pred).ravel(), labels=np.arange(len(classes)))
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH * 0.75, WIDTH * 0.65))
    im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    if len(classes) <= 12:
        for (i, j), value in np.ndenumerate(matrix):
            if value == 0:
                continue  # empty cells stay blank, so the mistakes stand out
            text = f"{value:.2f}" if normalize else str(value)
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 * matrix.max() else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title or "Confusion matrix")
    ax.figure.tight_layout()
    return ax.figure


def comparison_bars(table, x: str = "representation", y: str = "acc", hue: str | None = "method",
                    title: str | None = None, ax=None):
    """Grouped bars of ``table[y]`` (a tidy DataFrame) per ``x``, one colour per ``hue``, values written on top."""
    wide = table.pivot_table(index=x, columns=hue, values=y, sort=False) if hue else table.set_index(x)[[y]]
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH, 3.5))
    wide.plot.bar(ax=ax, rot=0, width=0.8)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f", fontsize=7)
    ax.set_ylabel(y)
    ax.set_xlabel(x)
    if table[y].between(0, 1).all():
        ax.set_ylim(0, 1.08)
    if hue:
        ax.legend(title=hue, fontsize=8, frameon=False)
    else:
        ax.get_legend().remove()
    ax.set_title(title or f"{y} by {x}")
    ax.figure.tight_layout()
    return ax.figure


def similarity_heatmap(sim, positives=None, title: str | None = None, ax=None):
    """Heat map of an N×N similarity matrix (e.g. NT-Xent's 2N×2N cosine similarities).

    ``positives``: an N×N boolean mask or a list of (row, column) index pairs, outlined in black. Entries that
    are not finite (a masked diagonal set to -inf or NaN) are drawn dark grey.
    """
    sim = as_numpy(sim).astype(float)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be a square N×N matrix, got shape {sim.shape}")
    sim = np.where(np.isfinite(sim), sim, np.nan)
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH * 0.7, WIDTH * 0.6))
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="dimgray")
    bound = max(1.0, np.nanmax(np.abs(sim))) if np.isfinite(sim).any() else 1.0
    im = ax.imshow(sim, cmap=cmap, vmin=-bound, vmax=bound)
    if positives is not None:
        positives = positives.cpu().numpy() if isinstance(positives, torch.Tensor) else np.asarray(positives)
        pairs = np.argwhere(positives) if positives.dtype == bool else positives.reshape(-1, 2)
        for i, j in pairs:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.5))
    ax.set_xlabel("column j")
    ax.set_ylabel("row i")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="similarity")
    ax.set_title(title or "Similarity matrix (positives outlined)")
    ax.figure.tight_layout()
    return ax.figure
