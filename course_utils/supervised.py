"""The supervised baseline of linear evaluation: the same network, trained from scratch on the same labels.

    index = subset_index(train.labels, fraction=0.1, seed=0, min_per_class=2)   # 10% of the labels
    model = train_supervised(build_encoder("mnist"), train.images[index], train.labels[index],
                             steps=300, batch_size=128, lr=1e-3, augment=mnist_augment())
    accuracy(model, test.images, test.labels)                   # test accuracy in [0, 1]

SimCLR's question (Chen et al. 2020, §4 and Table 7) is whether pretraining on unlabelled images helps
when labels are few: this is what the pretrained features are compared with. Plain cross-entropy,
AdamW with a cosine schedule, optional augmentation of every batch, mixed precision on a GPU (as
``train.pretrain``); no pretraining of any kind. The budget is in optimiser steps, like every training
in the course, so 1% of the labels is not also 1% of the compute.

With ``checkpoint_path`` the training is resumable, like ``train.pretrain``: a checkpoint (the network, the
optimiser, the schedule, the scaler and the random generator) is written at the start of a pass over the data
once ``checkpoint_seconds`` have gone by since the last one (a minute: about one SimCLR epoch of chapter 4 on
a T4), and at the end. Run the same call again and it continues from there (bit for bit on a CPU), or, when
the run is complete, returns its network at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config
from .augment import call_augment, to_float
from .train import CHANNELS_LAST_DEVICES, _set_rng_state, load_checkpoint, mixed_precision, save_checkpoint


def train_supervised(encoder: nn.Module, images: torch.Tensor, labels, *, steps: int, batch_size: int, lr: float,
                     augment=None, seed: int = 0, device=None, n_classes: int | None = None,
                     weight_decay: float = 5e-4, amp="auto", progress: bool = True,
                     checkpoint_path: str | Path | None = None, checkpoint_seconds: float = 60.0) -> nn.Module:
    """Train ``encoder`` plus a linear head end to end with cross-entropy; return ``nn.Sequential(encoder, head)``.

    images  N×C×H×W, uint8 or float in [0, 1].  labels  int64, N.
    The head is ``nn.Linear(encoder.feature_dim, n_classes)`` (``n_classes`` defaults to labels.max() + 1).
    ``steps`` optimiser steps on batches of ``batch_size`` (capped at N) drawn from a fresh random permutation
    each pass over the data. ``augment`` (batch -> batch in [0, 1]) is applied to every batch when given.
    AdamW, cosine decay of ``lr`` to 0 over the steps; ``amp`` as in ``train.mixed_precision``.
    With ``progress``, prints the expected time after the first steps, measured, and the loss a few times.
    ``checkpoint_path``: resumable (see the module's docstring); a file of another run (other steps, batch, data
    size, learning rate or seed) is not resumed: training starts over and replaces it, and says so.
    The model is returned in eval mode; its output is N×n_classes logits.
    """
    images = getattr(images, "images", images)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise TypeError(f"images must be an N×C×H×W tensor, got {type(images).__name__}")
    labels = torch.as_tensor(labels).long()
    if len(images) != len(labels) or len(images) < 2:
        raise ValueError(f"need at least 2 images with one label each; got {len(images)} images and "
                         f"{len(labels)} labels")
    if steps < 1 or batch_size < 2 or lr <= 0:
        raise ValueError(f"steps must be ≥ 1, batch_size ≥ 2 and lr > 0; got {steps}, {batch_size}, {lr}")
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
    if device.type in CHANNELS_LAST_DEVICES:  # train.pretrain's layout: faster convolutions on GPUs and CPUs
        model = model.to(memory_format=torch.channels_last)
    images, labels = images.to(device), labels.to(device)
    batch_size = min(batch_size, len(images))
    dtype, scaler = mixed_precision(device, amp)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator(device=device).manual_seed(seed)
    run = {"steps": steps, "batch_size": batch_size, "n_images": len(images), "lr": lr, "seed": seed,
           "n_classes": n_classes, "weight_decay": weight_decay}
    step = _resume(checkpoint_path, model, optimizer, scheduler, scaler, generator, run) if checkpoint_path else 0
    report_every, total, since, t0 = max(1, steps // 5), torch.zeros((), device=device), 0, time.perf_counter()
    saved_at, first = time.perf_counter(), step
    model.train()
    while step < steps:  # one pass over the data per round, a fresh permutation each time
        if checkpoint_path is not None and step > first and time.perf_counter() - saved_at >= checkpoint_seconds:
            _save(checkpoint_path, model, optimizer, scheduler, scaler, generator, run, step)
            saved_at = time.perf_counter()
        perm = torch.randperm(len(images), generator=generator, device=device)
        for begin in range(0, len(images), batch_size):
            if len(images) - begin < 2 or step == steps:
                continue  # batch norm cannot train on a single image
            index = perm[begin:begin + batch_size]
            x = to_float(images[index])
            if augment is not None:
                x = call_augment(augment, x, generator)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels[index])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            total, since = total + loss.detach(), since + 1
            if progress and step - first == min(3, steps - first):
                per_step = (time.perf_counter() - t0) / (step - first) if device.type == "cpu" else \
                    _synced_time(t0) / (step - first)
                precision = str(dtype or torch.float32)[6:]
                print(f"supervised: {steps} steps of batch {batch_size}, expected {(steps - first) * per_step:.0f} s "
                      f"({per_step:.3g} s/step measured on the first {step - first}, {precision})")
            if progress and (step % report_every == 0 or step == steps):
                print(f"supervised step {step}/{steps}: mean loss {total.item() / since:.4f}")
                total, since = torch.zeros((), device=device), 0
    if checkpoint_path is not None and step > first:  # complete: the network alone, for a rerun to return at once
        _save(checkpoint_path, model, None, None, None, generator, run, step)
    # After a few dozen steps the batch-norm running averages still remember the first, untrained
    # batches, and eval mode then predicts one class for everything: measure them on the data instead.
    recalibrate_batchnorm(model, images, batch_size)
    return model.eval()


def _save(path, model, optimizer, scheduler, scaler, generator, run: dict, step: int) -> None:
    save_checkpoint(path, model, optimizer, scheduler, scaler=scaler, generator=generator, epoch=step, config=run)


def _resume(path, model, optimizer, scheduler, scaler, generator, run: dict) -> int:
    """Load ``path`` into the run when it is this run's checkpoint; return the step to continue from (0: none)."""
    if not Path(path).exists():
        return 0
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True).get("config")
    except Exception as error:
        raise RuntimeError(f"Could not read the checkpoint {path} ({error}). Delete it to start over: "
                           f"os.remove({str(path)!r}).") from error
    if saved != run:
        print(f"note: {path} is the checkpoint of another run ({saved}), not of this one ({run}): training from "
              f"the start, and replacing it.")
        return 0
    ckpt = load_checkpoint(path, model, optimizer, scheduler)
    step = ckpt["epoch"]
    if ckpt["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(ckpt["scaler"])
    _set_rng_state(ckpt["rng"], generator, fallback_seed=run["seed"] * 1_000_003 + step)
    if step < run["steps"]:
        print(f"resumed from {path} at step {step}/{run['steps']}")
    else:
        print(f"{path} is complete ({step}/{run['steps']} steps): returning its network, no training")
    return step


def _synced_time(t0: float) -> float:
    torch.cuda.synchronize()
    return time.perf_counter() - t0


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
