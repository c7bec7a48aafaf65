"""The supervised baseline of linear evaluation: the same network, trained from scratch on the same labels.

    index = label_subset(train.labels, 0.1, seed=0)              # 10% of the labels, class-balanced
    model = train_supervised(build_encoder("mnist"), train.images[index], train.labels[index],
                             epochs=5, batch_size=128, lr=1e-3, augment=mnist_augment())
    accuracy(model, test.images, test.labels)                   # test accuracy in [0, 1]

SimCLR's question (Chen et al. 2020, §4 and Table 7) is whether pretraining on unlabelled images helps
when labels are few: this is what the pretrained features are compared with. Plain cross-entropy,
AdamW with a cosine schedule, optional augmentation of every batch; no pretraining of any kind.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config
from .augment import to_float


def label_subset(labels, fraction: float, seed: int = 0) -> torch.Tensor:
    """Sorted indices (int64) of a class-balanced random ``fraction`` of ``labels`` (N int labels).

    Every class keeps round(fraction × its count) examples, at least 2 (so that a regularisation strength
    can still be chosen by cross-validation on the labelled examples). ``fraction=1.0``: all indices.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], e.g. 0.01 for 1% of the labels; got {fraction}")
    labels = torch.as_tensor(np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)).long()
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in labels.unique():
        members = (labels == c).nonzero().flatten()
        keep = min(len(members), max(2, round(fraction * len(members))))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:keep]])
    return torch.cat(chosen).sort().values


def train_supervised(encoder: nn.Module, images, labels, *, epochs: int, batch_size: int, lr: float,
                     augment=None, seed: int = 0, device=None, n_classes: int | None = None,
                     weight_decay: float = 5e-4, progress: bool = True) -> nn.Module:
    """Train ``encoder`` plus a linear head end to end with cross-entropy; return ``nn.Sequential(encoder, head)``.

    images  N×C×H×W, uint8 or float in [0, 1].  labels  int64, N.
    The head is ``nn.Linear(encoder.feature_dim, n_classes)`` (``n_classes`` defaults to labels.max() + 1).
    Each epoch visits a random permutation in batches of ``batch_size`` (capped at N; a last batch of a
    single image is skipped, since batch norm cannot train on one image). ``augment`` (batch -> batch in
    [0, 1]) is applied to every batch when given. AdamW, cosine decay of ``lr`` to 0 over all steps.
    The model is returned in eval mode; its output is N×n_classes logits.
    """
    images = getattr(images, "images", images)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise TypeError(f"images must be an N×C×H×W tensor, got {type(images).__name__}")
    labels = torch.as_tensor(labels).long()
    if len(images) != len(labels) or len(images) < 2:
        raise ValueError(f"need at least 2 images with one label each; got {len(images)} images and "
                         f"{len(labels)} labels")
    if epochs < 1 or batch_size < 2 or lr <= 0:
        raise ValueError(f"epochs must be ≥ 1, batch_size ≥ 2 and lr > 0; got {epochs}, {batch_size}, {lr}")
    feature_dim = getattr(encoder, "feature_dim", None)
    if feature_dim is None:
        raise TypeError("the encoder has no .feature_dim attribute (SmallCNN and resnet18_cifar have one)")
    if device is None:
        first = next(encoder.parameters(), None)
        device = first.device if first is not None else config.get_device()
    device = torch.device(device)
    n_classes = n_classes or int(labels.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(feature_dim, n_classes)
    model = nn.Sequential(encoder, head).to(device)
    images, labels = images.to(device), labels.to(device)
    batch_size = min(batch_size, len(images))
    steps_per_epoch = math.ceil(len(images) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    generator = torch.Generator(device=device).manual_seed(seed)
    model.train()
    for epoch in range(1, epochs + 1):
        total, seen = 0.0, 0
        perm = torch.randperm(len(images), generator=generator, device=device)
        for start in range(0, len(images), batch_size):
            index = perm[start:start + batch_size]
            if len(index) < 2:
                continue
            x = to_float(images[index])
            if augment is not None:
                try:
                    x = augment(x, generator=generator)
                except TypeError:
                    x = augment(x)
            loss = F.cross_entropy(model(x), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total, seen = total + loss.item() * len(index), seen + len(index)
        if progress:
            print(f"supervised epoch {epoch}/{epochs}: loss {total / max(seen, 1):.4f}")
    # After a few dozen steps the batch-norm running averages still remember the first, untrained
    # batches, and eval mode then predicts one class for everything: measure them on the data instead.
    recalibrate_batchnorm(model, images, batch_size)
    return model.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images, batch_size: int = 256) -> nn.Module:
    """Set every batch norm's running mean and variance to their average over ``images`` (N×C×H×W).

    Training updates them as exponential moving averages (momentum 0.1), which lag far behind the
    weights in a short run; one pass in train mode with ``momentum=None`` (a plain cumulative average)
    gives the statistics of the final network. The weights are not changed.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    device = next(model.parameters()).device
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        if len(x) > 1:  # batch norm cannot train on a single image
            model(to_float(x.to(device)))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.train(was_training)


@torch.no_grad()
def predict(model: nn.Module, images, batch_size: int = 512) -> torch.Tensor:
    """Predicted class (int64, N, on the CPU) of a classifier returning N×K logits, in eval mode."""
    from .evaluate import extract_features

    return extract_features(model, images, batch_size=batch_size).argmax(1)


def accuracy(model: nn.Module, images, labels, batch_size: int = 512) -> float:
    """Fraction of ``images`` that ``model`` classifies as ``labels`` (in [0, 1])."""
    return (predict(model, images, batch_size) == torch.as_tensor(labels).cpu().long()).float().mean().item()
