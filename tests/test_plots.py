"""Tests of course_utils.plots: every function returns a Figure with the expected axes and title."""

import ast
import importlib.util
import sys
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # headless tests; the module itself never picks a backend

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from course_utils import plots

NAME = "toy digits (stand-in)"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def titles(fig):
    """Every title on the figure: the suptitle and each axes' title."""
    found = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    return found + [ax.get_title() for ax in fig.axes]


def has_name(fig, name=NAME):
    return any(name in t for t in titles(fig))


def test_data_title_says_stand_in():
    class Data:
        name, is_standin = "shapes", True

    assert plots.data_title(Data(), "Views") == "Views: shapes (stand-in)"
    Data.name = "sklearn digits (MNIST stand-in)"
    assert plots.data_title(Data()) == "sklearn digits (MNIST stand-in)"  # not said twice
    Data.name, Data.is_standin = "MNIST", False
    assert plots.data_title(Data(), "Views") == "Views: MNIST"


@pytest.mark.parametrize("channels", [1, 3])
def test_show_views_grid_and_restored_random_state(channels):
    images = torch.randint(0, 256, (10, channels, 8, 8), dtype=torch.uint8)
    calls = []

    def augment(batch):  # random brightness per sample, like a real augmentation
        calls.append(batch.shape)
        return (batch.float() / 255 * torch.rand(len(batch), 1, 1, 1)).clamp(0, 1)

    state = torch.random.get_rng_state()
    fig = plots.show_views(images, augment, n=4, title=NAME)
    assert torch.equal(torch.random.get_rng_state(), state)  # no hidden change of the global RNG
    assert isinstance(fig, Figure) and len(fig.axes) == 12 and has_name(fig)
    assert calls == [(4, channels, 8, 8)] * 2  # two views of the same 4 images
    shown = fig.axes[4].images[0].get_array()  # first image of the "view 1" row
    assert shown.shape == ((8, 8) if channels == 1 else (8, 8, 3))


def test_show_images_grid_with_class_names():
    images = torch.rand(10, 3, 8, 8)
    fig = plots.show_images(images, labels=torch.arange(10) % 2, classes=["cat", "dog"], n=10, ncols=5,
                            title=NAME)
    assert len(fig.axes) == 10 and has_name(fig)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["cat", "dog"]
    assert len(plots.show_images(images, n=7, ncols=4).axes) == 7  # unused cells removed


def test_training_curves_panels():
    history = [{"epoch": e, "loss": 5 - e, "lr": 0.1, "images_per_s": 100.0 + e, "seconds": 1.0}
               for e in range(1, 5)]
    assert len(plots.training_curves(history, title=NAME).axes) == 1
    history[1]["knn_acc"], history[3]["knn_acc"] = 0.3, 0.6  # kNN monitor every other epoch
    fig = plots.training_curves(history, title=NAME, throughput=True)
    assert len(fig.axes) == 3 and has_name(fig)
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_xdata(), [2, 4])
    with pytest.raises(ValueError, match="empty"):
        plots.training_curves([])


def clustered_points(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), 20)
    return rng.normal(size=(60, 8)) + 4 * np.eye(8)[labels], labels


class FakeUMAP:
    """Stands in for umap.UMAP: records its options and returns two columns of the input. A real UMAP's first call
    in a process spends about half a minute compiling numba code (the smoke profile draws PCA; the book build runs
    the real one); test_umap_accepts_the_options_we_pass checks the real class takes what we give it."""
    made = []

    def __init__(self, **options):
        self.options = options
        FakeUMAP.made.append(self)

    def fit_transform(self, x):
        return np.asarray(x)[:, :2]


def test_umap_scatter_with_legend(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    FakeUMAP.made.clear()
    features, labels = clustered_points()
    fig = plots.umap_scatter(features, labels, classes=["a", "b", "c"], title=NAME, n_neighbors=10, seed=3)
    assert [u.options for u in FakeUMAP.made] == [{"n_neighbors": 10, "random_state": 3}]
    small = plots.umap_scatter(features[:5], labels[:5], n_neighbors=10)  # fewer points than neighbours asked
    assert FakeUMAP.made[-1].options["n_neighbors"] == 4 and small.axes[0].get_xlabel() == "UMAP 1"
    assert len(fig.axes) == 1 and has_name(fig)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c"]
    assert len(fig.axes[0].collections) == 3  # one scatter per class
    assert fig.axes[0].get_xlabel() == "UMAP 1"


def test_umap_accepts_the_options_we_pass():
    """Read from umap-learn's source, not imported: on a fresh machine the import alone compiles numba code for
    about 25 s, and the smoke profile never runs UMAP (the book build does)."""
    spec = importlib.util.find_spec("umap")
    if spec is None:
        pytest.skip("umap-learn is not installed")
    package = Path(spec.origin).parent
    assert "from .umap_ import UMAP" in (package / "__init__.py").read_text()
    tree = ast.parse((package / "umap_.py").read_text())
    umap_class = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "UMAP")
    methods = {node.name: node for node in umap_class.body if isinstance(node, ast.FunctionDef)}
    init = methods["__init__"].args
    assert {"n_neighbors", "random_state"} <= {a.arg for a in init.args + init.kwonlyargs}
    assert "fit_transform" in methods


def test_embedding_panels_falls_back_to_pca_without_umap(monkeypatch, capsys):
    features, labels = clustered_points()
    monkeypatch.setitem(sys.modules, "umap", None)  # "import umap" now raises ImportError
    noise = np.random.default_rng(1).normal(size=(60, 4))
    fig = plots.embedding_panels({"pixels": features, "noise": noise}, labels, title=NAME)
    assert len(fig.axes) == 2 and has_name(fig)
    assert [ax.get_title() for ax in fig.axes] == ["pixels", "noise"]
    assert fig.axes[0].get_xlabel() == "PCA 1"
    assert "umap-learn is not installed" in capsys.readouterr().out
    assert plots.umap_scatter(features, labels, method="pca").axes[0].get_xlabel() == "PCA 1"
    with pytest.raises(ValueError, match="method"):
        plots.umap_scatter(features, labels, method="tsne")


def test_confusion_matrix_plot_rows_sum_to_one():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    fig = plots.confusion_matrix_plot(y_true, y_pred, ["zero", "one", "two"], title=NAME)
    assert len(fig.axes) == 2 and has_name(fig)  # the matrix and its colour bar
    matrix = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(matrix.sum(1), 1)
    np.testing.assert_allclose(matrix[0], [0.5, 0.5, 0])
    counts = plots.confusion_matrix_plot(y_true, y_pred, ["zero", "one", "two"], normalize=False)
    assert counts.axes[0].images[0].get_array().sum() == 6


def test_comparison_bars_one_bar_per_row():
    table = pd.DataFrame({"representation": ["pixels", "pixels", "SimCLR", "SimCLR"],
                          "method": ["kmeans", "gmm"] * 2, "acc": [0.5, 0.45, 0.9, 0.88]})
    fig = plots.comparison_bars(table, title=NAME)
    assert len(fig.axes) == 1 and has_name(fig)
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    np.testing.assert_allclose(heights, sorted(table.acc))


def test_similarity_heatmap_marks_positives():
    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))  # the masked self-similarities of NT-Xent
    positives = [(i, (i + 3) % 6) for i in range(6)]
    fig = plots.similarity_heatmap(sim, positives=positives, title=NAME)
    assert len(fig.axes) == 2 and has_name(fig)
    assert len(fig.axes[0].patches) == 6
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[0, 3] = mask[3, 0] = True
    assert len(plots.similarity_heatmap(sim, positives=mask).axes[0].patches) == 2
    with pytest.raises(ValueError, match="square"):
        plots.similarity_heatmap(torch.zeros(3, 4))
