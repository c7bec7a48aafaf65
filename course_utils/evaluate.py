"""Evaluating frozen representations: features, linear probe, kNN monitor, clustering metrics.

    feats = extract_features(model.encoder, data.images)        # N×D float32 on the CPU
    result = linear_probe(train_feats, train_labels, test_feats, test_labels)
    result.accuracy, result.weight_decay                       # test accuracy, L2 chosen on training data
    linear_probe_with_views(encoder, train_images, train_labels, test_images, test_labels, augment=mild_digit_augment())
    knn_accuracy(train_feats, train_labels, test_feats, test_labels, k=200, temperature=0.1)
    cluster_accuracy(y_true, kmeans_ids)                        # Hungarian matching of clusters to labels

The linear probe follows the linear evaluation protocol of SimCLR (Chen et al. 2020, §B.6 / Kolesnikov
et al. 2019): a softmax regression on frozen features, its L2 strength chosen on a validation split of the
*training* data, then refit on all training data. The test set is used once, at the very end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import config
from .augment import call_augment, to_float
from .data import as_numpy

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
MIN_VAL_PER_CLASS = 20  # fewer hold-out examples of a class than this: use k-fold cross-validation


def _as_tensor(x, dtype=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t if dtype is None else t.to(dtype)


# --- Features ------------------------------------------------------------------------------------

@torch.no_grad()  # not inference_mode: its tensors could not be used to train a probe afterwards
def extract_features(encoder: torch.nn.Module, images, *, batch_size: int | None = None, device=None, amp=False,
                     to_cpu: bool = True) -> torch.Tensor:
    """Run a frozen ``encoder`` over ``images`` (N×C×H×W, uint8 or float in [0, 1]) in batches of ``batch_size``
    (None: 512 on a GPU; 128 on a CPU, where batches of 512 outgrow the caches and ran at half the speed).

    Returns an N×D float32 tensor, on the CPU (``to_cpu=False``: left on ``device``, e.g. for a kNN monitor that
    scores on the GPU and reads back one number). The encoder runs in eval mode (batch norm uses its running
    statistics) and is put back in the mode it was in. ``device`` defaults to the encoder's device; each
    batch is moved there just before it is used, so the data set may stay on the CPU.
    amp  False: float32; "auto": the training precision of ``device`` (``config.amp_dtype``: bf16 or fp16 autocast
         on a GPU, float32 on a CPU), several times faster on tensor cores; or a dtype. Features come back float32.
    Pass the backbone f (e.g. ``model.encoder``), not the projection head g: SimCLR evaluates h = f(x).
    """
    images = getattr(images, "images", images)  # also accept an ImageData
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise TypeError(f"images must be an N×C×H×W tensor, got {type(images).__name__} "
                        f"{tuple(getattr(images, 'shape', ()))}")
    if device is None:
        first = next(encoder.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    batch_size = batch_size or (512 if device.type == "cuda" else 128)
    dtype = config.amp_dtype(device) if amp in ("auto", True) else (amp or None)
    was_training = encoder.training
    encoder.eval()
    try:
        chunks = []
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device, non_blocking=True)
            x = to_float(x)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                h = encoder(x)
            if isinstance(h, (tuple, list)):
                raise TypeError("the encoder returned a tuple; pass the backbone alone (e.g. model.encoder)")
            h = h.reshape(len(x), -1).float()
            chunks.append(h.cpu() if to_cpu else h)
        if not chunks:
            return torch.empty(0, 0)
        return torch.cat(chunks)
    finally:
        encoder.train(was_training)


# --- Linear probe --------------------------------------------------------------------------------

@dataclass
class ProbeResult:
    accuracy: float  # on the test set
    val_accuracy: float  # of the chosen weight decay, on held-out training data (NaN when not selected)
    weight_decay: float  # the chosen L2 strength
    predictions: np.ndarray  # test predictions, int64, N_test
    per_class_accuracy: np.ndarray  # test accuracy of each class (NaN for a class absent from the test set)
    val_scores: dict = field(default_factory=dict)  # weight decay -> mean validation accuracy
    selection: str = ""  # how the weight decay was chosen, e.g. "5-fold CV" or "hold-out 20%"

    def __repr__(self) -> str:
        return (f"ProbeResult(accuracy={self.accuracy:.4f}, val_accuracy={self.val_accuracy:.4f}, "
                f"weight_decay={self.weight_decay:g}, selection={self.selection!r})")


def _fit_softmax(x, y, n_classes, weight_decay, iters, init=None):
    """Full-batch L-BFGS on mean cross-entropy + weight_decay/2·||W||² (bias not decayed).

    Convex, so the start only changes the speed: zeros, or ``init=(w, b)`` from a stronger weight decay
    (a warm start along the regularisation path, which saves most of the iterations).
    """
    if init is None:
        init = (torch.zeros(n_classes, x.shape[1], device=x.device), torch.zeros(n_classes, device=x.device))
    w, b = (t.clone().requires_grad_(True) for t in init)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _predict(x, w, b):
    return (x @ w.T + b).argmax(1)


def _splits(y: np.ndarray, val_fraction: float, seed: int, groups: np.ndarray | None = None):
    """Stratified hold-out split, or stratified k-fold when the hold-out would hold too few of a class.
    With ``groups`` (one id per row, e.g. an image and its augmented views), the groups are split, so that all
    rows of a group fall on the same side (each group must hold one class)."""
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    if groups is not None:
        _, first, member = np.unique(groups, return_index=True, return_inverse=True)
        if len(np.unique(np.stack([member, y]), axis=1)[0]) != len(first):
            raise ValueError("a group holds more than one class: the rows of one group must share a label")
        splits, selection = _splits(y[first], val_fraction, seed)
        order = np.argsort(member, kind="stable")  # the rows of group 0, then of group 1, ...
        sizes = np.bincount(member)
        ends = np.cumsum(sizes)
        starts = ends - sizes

        def rows_of(ids):  # the rows of these groups, in the order the split gives the groups
            return np.concatenate([order[starts[g]:ends[g]] for g in ids])

        return [(rows_of(fit), rows_of(val)) for fit, val in splits], f"{selection}, by groups"

    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest * val_fraction >= MIN_VAL_PER_CLASS:
        split = StratifiedShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        return list(split.split(np.zeros(len(y)), y)), f"hold-out {val_fraction:.0%}"
    if smallest < 2:
        raise ValueError(f"a class has only {smallest} training example: choosing the weight decay needs at "
                         "least 2 per class. Give more labels, or fix it with weight_decays=(value,).")
    folds = min(5, smallest)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(split.split(np.zeros(len(y)), y)), f"{folds}-fold CV"


def linear_probe(train_features, train_labels, test_features, test_labels, *, val_fraction: float = 0.2,
                 weight_decays=DEFAULT_WEIGHT_DECAYS, max_iter: int = 100, seed: int = 0,
                 groups=None, device=None) -> ProbeResult:
    """Linear evaluation: softmax regression on standardised frozen features (N×D arrays or tensors).

    1. Standardise every feature with the mean/std of the training features only.
    2. For each L2 strength in ``weight_decays``, fit on part of the training data and score the rest:
       a stratified hold-out of ``val_fraction``, or stratified k-fold (k = min(5, smallest class)) when
       the hold-out would hold fewer than 20 examples of a class (small label budgets, e.g. 10 per class).
       Ties go to the stronger regularisation.
    3. Refit on all training data with the best strength; predict the test set once.
    ``max_iter`` is the number of full-batch L-BFGS iterations (each one pass over the data). ``seed``
    fixes the splits; the fit itself is deterministic (a convex problem started at zero). ``groups`` (one id
    per training row) keeps rows that belong together, e.g. an image and its views, on one side of the splits.
    """
    device = torch.device(device) if device is not None else config.get_device()
    x_train = _as_tensor(train_features, torch.float32).to(device).reshape(len(train_features), -1)
    x_test = _as_tensor(test_features, torch.float32).to(device).reshape(len(test_features), -1)
    y_train_np = as_numpy(train_labels).astype(np.int64).ravel()
    y_test_np = as_numpy(test_labels).astype(np.int64).ravel()
    if len(x_train) != len(y_train_np) or len(x_test) != len(y_test_np):
        raise ValueError(f"features and labels differ in length: train {len(x_train)} vs {len(y_train_np)}, "
                         f"test {len(x_test)} vs {len(y_test_np)}")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"train features have {x_train.shape[1]} dimensions, test features {x_test.shape[1]}")
    if groups is not None:
        groups = as_numpy(groups).ravel()
        if len(groups) != len(y_train_np):
            raise ValueError(f"groups has {len(groups)} ids for {len(y_train_np)} training rows: give one per row")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    weight_decays = sorted((float(wd) for wd in weight_decays), reverse=True)  # strongest first
    if not weight_decays:
        raise ValueError("weight_decays is empty: give at least one L2 strength, e.g. (1e-4,)")

    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)  # training split only
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = torch.as_tensor(y_train_np, device=device)
    n_classes = int(max(y_train_np.max(), y_test_np.max(initial=0))) + 1

    # On a CPU, small problems spend more time synchronising threads than computing: use one thread.
    threads = torch.get_num_threads()
    if device.type == "cpu" and x_train.numel() < 2_000_000:
        torch.set_num_threads(1)
    try:
        return _select_and_fit(x_train, y_train, x_test, y_test_np, n_classes, weight_decays, val_fraction,
                               max_iter, seed, groups)
    finally:
        torch.set_num_threads(threads)


def _select_and_fit(x_train, y_train, x_test, y_test_np, n_classes, weight_decays, val_fraction, max_iter, seed,
                    groups=None):
    y_train_np = y_train.cpu().numpy()
    val_scores, selection = {}, "not selected (one weight decay given)"
    if len(weight_decays) > 1:
        splits, selection = _splits(y_train_np, val_fraction, seed, groups)
        device = x_train.device
        starts = [None] * len(splits)  # per split: the solution for the previous (stronger) weight decay
        for wd in weight_decays:
            accs = []
            for k, (fit_idx, val_idx) in enumerate(splits):
                fit_idx, val_idx = torch.as_tensor(fit_idx, device=device), torch.as_tensor(val_idx, device=device)
                w, b = starts[k] = _fit_softmax(x_train[fit_idx], y_train[fit_idx], n_classes, wd, max_iter, starts[k])
                accs.append((_predict(x_train[val_idx], w, b) == y_train[val_idx]).float().mean().item())
            val_scores[wd] = float(np.mean(accs))
    chosen = max(weight_decays, key=lambda wd: val_scores.get(wd, 0.0))  # max() keeps the first (strongest) tie

    w, b = _fit_softmax(x_train, y_train, n_classes, chosen, max_iter)
    predictions = _predict(x_test, w, b).cpu().numpy()
    correct = predictions == y_test_np
    per_class = np.array([correct[y_test_np == c].mean() if (y_test_np == c).any() else np.nan
                          for c in range(n_classes)])
    return ProbeResult(accuracy=float(correct.mean()), val_accuracy=val_scores.get(chosen, float("nan")),
                       weight_decay=chosen, predictions=predictions, per_class_accuracy=per_class,
                       val_scores=val_scores, selection=selection)


def linear_probe_with_views(encoder: torch.nn.Module, train_images, train_labels, test_images, test_labels, *,
                            augment, copies: int = 4, seed: int = 0, device=None) -> ProbeResult:
    """The linear probe fitted on the labelled images AND ``copies`` augmented views of each: more examples
    for the same labels, as SimCLR's own linear evaluation trains on augmented views (random crops and flips,
    Chen et al. 2020, §B.6). ``augment`` maps N×C×H×W images to views (e.g. ``augment.mild_digit_augment()``);
    the test images are not augmented. The L2 strength is chosen as ``linear_probe`` chooses it, with each
    image and its views kept on the same side of the validation split (``groups``): a view of a held-out image
    in the fitting rows would leak it into the choice. ``seed`` fixes the views and the split.
    """
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
        raise ValueError(f"copies is the number of augmented views per labelled image, an integer >= 0, got {copies!r}")
    train_images = getattr(train_images, "images", train_images)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    views = [train_images] + [call_augment(augment, train_images.cpu(), generator) for _ in range(copies)]
    features = torch.cat([extract_features(encoder, v, device=device) for v in views])
    test_features = extract_features(encoder, getattr(test_images, "images", test_images), device=device)
    labels = np.tile(as_numpy(train_labels).ravel(), copies + 1)
    groups = np.tile(np.arange(len(train_images)), copies + 1)
    return linear_probe(features, labels, test_features, test_labels, seed=seed, groups=groups, device=device)


# --- Weighted kNN (Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination")

@torch.no_grad()
def knn_predict(train_features, train_labels, test_features, *, k: int = 200, temperature: float = 0.1,
                batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels (int64, N_test, on the features' device) of the weighted cosine kNN classifier.

    Each test row takes its k most cosine-similar training rows; neighbour j votes for its class with
    weight exp(s_j / temperature); the class with the largest summed vote wins. Batched over test rows.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k is the number of neighbours that vote and must be an integer >= 1, got {k!r}")
    bank = F.normalize(_as_tensor(train_features).float(), dim=1)
    queries = F.normalize(_as_tensor(test_features).float().to(bank.device), dim=1)
    labels = _as_tensor(train_labels).long().to(bank.device)
    n_classes = int(labels.max()) + 1
    k = min(k, len(bank))
    predictions = []
    for start in range(0, len(queries), batch_size):
        sim = queries[start:start + batch_size] @ bank.T  # B×N_train cosine similarities
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(sim), n_classes, device=bank.device)
        votes.scatter_add_(1, labels[top_idx], (top_sim / temperature).exp())
        predictions.append(votes.argmax(1))
    return torch.cat(predictions)


def knn_accuracy(train_features, train_labels, test_features, test_labels, *, k: int = 200,
                 temperature: float = 0.1, batch_size: int = 1024) -> float:
    """Accuracy in [0, 1] of :func:`knn_predict` (the kNN monitor of solo-learn and lightly)."""
    predictions = knn_predict(train_features, train_labels, test_features, k=k, temperature=temperature,
                              batch_size=batch_size)
    truth = _as_tensor(test_labels).long().to(predictions.device)
    return (predictions == truth).float().mean().item()


# --- Clustering metrics --------------------------------------------------------------------------

def cluster_accuracy(y_true, y_pred) -> float:
    """Accuracy after the best one-to-one matching of cluster ids to labels (Hungarian algorithm).

    Works with any integer ids and with different numbers of clusters and classes (extra clusters
    match nothing and count as errors).
    """
    from scipy.optimize import linear_sum_assignment

    y_true, y_pred = as_numpy(y_true).ravel(), as_numpy(y_pred).ravel()
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} entries but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cluster_accuracy needs at least one example")
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    size = max(t.max(), p.max()) + 1
    counts = np.zeros((size, size), dtype=np.int64)  # counts[cluster, label]
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def clustering_scores(y_true, y_pred) -> dict:
    """{"acc": Hungarian accuracy, "nmi": normalised mutual information, "ari": adjusted Rand index}."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    y_true, y_pred = as_numpy(y_true).ravel(), as_numpy(y_pred).ravel()
    return {"acc": cluster_accuracy(y_true, y_pred),
            "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
            "ari": float(adjusted_rand_score(y_true, y_pred))}
