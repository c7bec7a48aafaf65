"""Baselines that need no contrastive learning: raw pixels, PCA, k-means and Gaussian mixtures.

    table = clustering_table({"pixels": flatten_pixels(data.images), "PCA-50": pca_features(data.images),
                              "SimCLR": simclr_feats}, data.labels, dataset=data.name)

Preprocessing, the same for every representation so that the comparison is fair: each row is
L2-normalised before clustering (``normalize="l2"``). SimCLR is trained on cosine similarity, so only
the direction of a feature vector carries meaning, and k-means on unit vectors is spherical k-means,
i.e. clustering by cosine similarity. For pixels it is a mild contrast normalisation. Per-feature
standardisation (``normalize="standard"``) is offered but is a poor default for pixels: MNIST's border
pixels are almost always 0, and dividing them by their tiny std turns rare specks into huge values.

Gaussian mixtures use *diagonal* covariances by default: a full covariance has D(D+1)/2 parameters per
component (131,328 for D = 512), which a few thousand points cannot estimate (the matrices are singular
without heavy regularisation) and costs O(D³) per component per EM step; diagonal covariances have
2D parameters per component, are fast and stable, and still give each cluster its own shape along every
axis. For a full covariance, first reduce to a few dozen dimensions (``pca_features``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .augment import to_float
from .data import as_numpy
from .evaluate import clustering_scores

METHODS = ("kmeans", "gmm")


def flatten_pixels(images) -> np.ndarray:
    """N×C×H×W images (uint8, or float in [0, 1]; tensor, array or ImageData) -> N×(C·H·W) float32 in [0, 1]."""
    x = torch.as_tensor(as_numpy(images))
    return as_numpy(to_float(x).reshape(len(x), -1))


def _as_matrix(features) -> np.ndarray:
    x = as_numpy(features)
    return flatten_pixels(x) if x.ndim > 2 else x.astype(np.float32)


def pca_features(x, n_components: int = 50, *, seed: int = 0, fit_on=None, whiten: bool = False) -> np.ndarray:
    """Project ``x`` (images N×C×H×W, or features N×D) onto its first ``n_components`` principal components.

    The PCA is fitted on ``fit_on`` when given (e.g. the training images, to project the test images
    with the same axes), else on ``x`` itself. ``whiten=True`` divides each component by its standard
    deviation, so that every kept direction counts equally in a distance (a few high-variance directions
    no longer dominate k-means). Returns N×n_components float32.
    """
    from sklearn.decomposition import PCA

    x = _as_matrix(x)
    reference = x if fit_on is None else _as_matrix(fit_on)
    n_components = min(n_components, *reference.shape)
    pca = PCA(n_components=n_components, whiten=whiten, random_state=seed).fit(reference)
    return pca.transform(x).astype(np.float32)


def _normalize(x: np.ndarray, how: str | None) -> np.ndarray:
    if how == "l2":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if how == "standard":
        return (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    if how is None:
        return x
    raise ValueError(f"normalize must be 'l2', 'standard' or None, got {how!r}")


def cluster(features, n_clusters: int = 10, method: str = "kmeans", seed: int = 0, *, normalize: str | None = "l2",
            covariance_type: str = "diag", n_init: int | None = None) -> np.ndarray:
    """Cluster N×D ``features`` (or N×C×H×W images) and return the cluster id of each row (int64, N).

    method: "kmeans" (scikit-learn KMeans, k-means++, n_init=10 restarts) or "gmm" (GaussianMixture
    fitted by EM, initialised by k-means, n_init=3, ``covariance_type`` "diag" by default: see the
    module docstring). ``normalize`` is applied first ("l2" by default). ``seed`` is the random_state.
    """
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    x = _normalize(_as_matrix(features), normalize)
    if len(x) < n_clusters:
        raise ValueError(f"cannot make {n_clusters} clusters from {len(x)} points")
    if method == "kmeans":
        model = KMeans(n_clusters=n_clusters, n_init=n_init or 10, random_state=seed)
    elif method == "gmm":
        model = GaussianMixture(n_components=n_clusters, covariance_type=covariance_type, n_init=n_init or 3,
                                reg_covar=1e-4, max_iter=200, random_state=seed)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return model.fit_predict(x).astype(np.int64)


def clustering_table(representations: dict, labels, *, methods=METHODS, n_clusters: int = 10, seed: int = 0,
                     dataset: str | None = None, normalize: str | None = "l2"):
    """Cluster every representation with every method and score it against ``labels``.

    representations: {name: N×D features or N×C×H×W images}, all with the same N as ``labels``.
    Returns a tidy pandas DataFrame, one row per (dataset, representation, method), with columns
    dataset, representation, method, acc (Hungarian), nmi, ari and seconds (time to cluster).
    """
    import pandas as pd

    y = as_numpy(labels).ravel()
    rows = []
    for name, features in representations.items():
        if len(features) != len(y):
            raise ValueError(f"representation {name!r} has {len(features)} rows but there are {len(y)} labels")
        for method in methods:
            start = time.perf_counter()
            predicted = cluster(features, n_clusters, method, seed, normalize=normalize)
            seconds = time.perf_counter() - start
            rows.append({"dataset": dataset or "", "representation": name, "method": method,
                         **clustering_scores(y, predicted), "seconds": seconds})
    return pd.DataFrame(rows, columns=["dataset", "representation", "method", "acc", "nmi", "ari", "seconds"])
