"""Tests of course_utils.baselines: pixels, PCA, k-means/GMM and the clustering table."""

import numpy as np
import pandas as pd
import pytest
import torch

from course_utils.baselines import cluster, clustering_table, flatten_pixels, pca_features


def blobs(n_per_class=40, n_classes=10, dim=50, spread=0.2, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    return features.astype(np.float32), labels


def test_flatten_pixels_scales_uint8_and_keeps_floats():
    images = torch.tensor([0, 255, 51, 102], dtype=torch.uint8).reshape(1, 1, 2, 2).repeat(3, 1, 1, 1)
    flat = flatten_pixels(images)
    assert flat.shape == (3, 4) and flat.dtype == np.float32
    np.testing.assert_allclose(flat[0], [0, 1, 0.2, 0.4], atol=1e-6)
    floats = torch.rand(5, 3, 4, 4)
    np.testing.assert_allclose(flatten_pixels(floats), floats.reshape(5, -1).numpy())
    assert flatten_pixels(np.zeros((2, 1, 3, 3), np.uint8)).shape == (2, 9)
    with pytest.raises(ValueError, match="batch dimension"):
        flatten_pixels(np.zeros(5))


def test_pca_features_shape_and_projection_of_new_data():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(60, 1, 6, 6), dtype=np.uint8))
    pca = pca_features(images, n_components=5)
    assert pca.shape == (60, 5) and pca.dtype == np.float32
    np.testing.assert_allclose(pca.mean(0), 0, atol=1e-4)  # centred on the data it was fitted on
    assert np.all(np.diff(pca.var(0)) <= 1e-6)  # components in decreasing order of variance
    projected = pca_features(images[:10], n_components=5, fit_on=images)
    np.testing.assert_allclose(projected, pca[:10], atol=1e-4)
    assert pca_features(images[:4], n_components=50).shape == (4, 4)  # capped by the number of rows
    white = pca_features(images, n_components=5, whiten=True)
    np.testing.assert_allclose(white.std(0, ddof=1), 1, rtol=1e-3)  # every kept direction counts equally
    np.testing.assert_allclose(white * pca.std(0, ddof=1), pca, rtol=1e-3, atol=1e-3)  # same axes, rescaled


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_cluster_recovers_well_separated_blobs(method):
    from course_utils.evaluate import cluster_accuracy

    x, y = blobs(seed=1)
    predicted = cluster(x, n_clusters=10, method=method, seed=0)
    assert predicted.shape == (400,) and predicted.dtype == np.int64
    assert cluster_accuracy(y, predicted) > 0.95


def test_cluster_is_reproducible_and_validates_arguments():
    x, _ = blobs(n_per_class=20, spread=1.0, seed=2)
    np.testing.assert_array_equal(cluster(x, seed=3), cluster(x, seed=3))
    with pytest.raises(ValueError, match="method"):
        cluster(x, method="dbscan")
    with pytest.raises(ValueError, match="normalize"):
        cluster(x, normalize="minmax")
    with pytest.raises(ValueError, match="clusters"):
        cluster(x[:5], n_clusters=10)


def test_clustering_table_one_row_per_representation_and_method():
    x, y = blobs(n_per_class=30, seed=3)
    noise = np.random.default_rng(0).normal(size=x.shape).astype(np.float32)
    table = clustering_table({"blobs": x, "noise": torch.from_numpy(noise)}, torch.from_numpy(y),
                             dataset="toy (stand-in)")
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["dataset", "representation", "method", "acc", "nmi", "ari", "seconds"]
    assert len(table) == 4
    assert set(zip(table.representation, table.method)) == {(r, m) for r in ("blobs", "noise")
                                                            for m in ("kmeans", "gmm")}
    assert (table.dataset == "toy (stand-in)").all()
    scores = table.set_index(["representation", "method"])
    assert scores.loc[("blobs", "kmeans"), "acc"] > 0.95
    assert scores.loc[("noise", "kmeans"), "acc"] < 0.3  # no structure, nothing to find
    assert table[["acc", "nmi"]].apply(lambda c: c.between(0, 1).all()).all()
    assert (table.seconds >= 0).all()


def test_clustering_table_accepts_images_and_checks_lengths():
    images = torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8)
    labels = np.arange(30) % 3
    table = clustering_table({"pixels": images}, labels, methods=("kmeans",), n_clusters=3)
    assert len(table) == 1
    with pytest.raises(ValueError, match="rows"):
        clustering_table({"pixels": images[:10]}, labels)
