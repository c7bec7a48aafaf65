"""One SimCLR pretraining loop for every encoder, with checkpoint/resume, mixed precision and a
progress bar; plus the optimizer recipes (LARS or Adam, linear warm-up then cosine).

Each step takes a batch of images, makes two augmented views, sends BOTH views through the
model in one forward pass (one batch norm over all 2N views, the single-GPU equivalent of the
paper's global batch norm), and minimises NT-Xent between the two sets of projections.

References: Chen et al. 2020 (SimCLR); You et al. 2017 (LARS); da Costa et al. 2022, JMLR
(solo-learn: the CIFAR-10 ResNet-18 recipe used by ``simclr_optimizer(recipe="lars")``).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from course_utils.config import amp_dtype

CHECKPOINT_FORMAT = "course_utils.train/1"


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (LARS, You et al. 2017), as in solo-learn.

    For each weight tensor w with gradient g the step is scaled by
    ``min(eta * ||w|| / (||g|| + wd * ||w||) / lr, 1)`` (``clip=True``), so no layer moves by
    more than a fraction ``eta`` of its own norm. Groups with ``lars=False`` (biases and
    batch-norm parameters, see ``simclr_optimizer``) get plain SGD with momentum.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.02, clip: bool = True, eps: float = 1e-8):  # fmt: skip
        if lr <= 0 or weight_decay < 0 or eta <= 0:
            raise ValueError(f"LARS needs lr > 0, eta > 0, weight_decay >= 0; got {lr}, {eta}, {weight_decay}.")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip=clip, eps=eps, lars=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if group["lars"]:
                    d_p = d_p.add(p, alpha=wd)
                    w_norm, g_norm = p.norm(), p.grad.norm()
                    trust = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
                    if group["clip"]:
                        trust = torch.clamp(trust / lr, max=1.0)
                    # A zero weight or gradient norm (fresh zero-init layer) gives a plain step.
                    d_p = d_p * torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = d_p.clone()
                else:
                    buf.mul_(group["momentum"]).add_(d_p)
                p.add_(buf, alpha=-lr)
        return loss


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """The LR factor at ``step``: linear warm-up from 1/warmup_steps to 1, then cosine to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def simclr_optimizer(model: torch.nn.Module, *, batch_size: int, epochs: int, steps_per_epoch: int,
                     warmup_epochs: int, recipe: str = "lars", lr: float | None = None,
                     weight_decay: float | None = None):  # fmt: skip
    """(optimizer, per-step LambdaLR scheduler) for SimCLR pretraining.

    "lars": solo-learn's CIFAR-10 ResNet-18 recipe: LARS, momentum 0.9, lr 0.4 × batch/256,
            eta 0.02, weight decay 1e-4, trust-ratio clipping; biases and BN parameters excluded
            from weight decay and from the trust ratio (as in SimCLR and solo-learn).
    "adam": AdamW, lr 1e-3, weight decay 1e-4 (biases/BN excluded): a forgiving default for the
            small MNIST CNN on a CPU.
    Both: linear warm-up for ``warmup_epochs``, then cosine decay to 0, stepped every batch.
    """
    if recipe not in ("lars", "adam"):
        raise ValueError(f"recipe must be 'lars' or 'adam', got {recipe!r}.")
    if min(batch_size, epochs, steps_per_epoch) < 1 or warmup_epochs < 0:
        raise ValueError("batch_size, epochs and steps_per_epoch must be ≥ 1 and warmup_epochs ≥ 0.")
    if lr is None:
        lr = 0.4 * batch_size / 256 if recipe == "lars" else 1e-3
    wd = weight_decay if weight_decay is not None else 1e-4
    # Biases and batch-norm weights are 1-D: no weight decay, no trust ratio for them.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": wd},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lars": False}]  # fmt: skip
    if recipe == "lars":
        optimizer = LARS(groups, lr=lr, momentum=0.9, eta=0.02, clip=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr)
    total, warm = epochs * steps_per_epoch, min(warmup_epochs * steps_per_epoch, epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, warm, total))
    return optimizer, scheduler


def _rng_state(generator: torch.Generator) -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "generator": generator.get_state(), "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}  # fmt: skip


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, model, optimizer=None, scheduler=None, *, scaler=None, generator=None,
                    history=(), epoch=0, config=None) -> None:  # fmt: skip
    """Write a checkpoint atomically (temp file, then os.replace): a kill mid-write never leaves
    a half-written file under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "history": list(history), "config": dict(config or {}),
             "model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "scheduler": scheduler.state_dict() if scheduler else None,
             "scaler": scaler.state_dict() if scaler else None,
             "rng": _rng_state(generator or torch.Generator())}  # fmt: skip
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model, optimizer=None, scheduler=None) -> dict:
    """Restore ``model`` (and optimizer, scheduler when given) from ``path``; return the checkpoint
    dict (keys: epoch, history, config, scaler, rng, ...)."""
    fix = f"Delete it to start over: os.remove({str(path)!r})."
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"Could not read the checkpoint {path}: it is truncated or corrupted ({err}). {fix}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} is not a checkpoint written by course_utils.train. {fix}")
    try:
        model.load_state_dict(ckpt["model"])
        if optimizer is not None and ckpt["optimizer"] is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise RuntimeError(f"The checkpoint {path} does not fit this model/optimizer ({err}). "
                           f"Use another checkpoint_path, or: {fix}") from err  # fmt: skip
    return ckpt


def _warn_if_schedule_changed(scheduler, checkpoint_path) -> None:
    """Warn when a resumed LambdaLR no longer gives the rate the checkpoint's run had reached.

    A scheduler's state holds its step count, not its formula: a schedule rebuilt for a different
    length (say 100 epochs instead of 50) silently jumps to another point of another curve.
    """
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas or not getattr(scheduler, "_last_lr", None):
        return
    step = scheduler.last_epoch
    now = [base * fn(step) for base, fn in zip(scheduler.base_lrs, lambdas)]
    if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for a, b in zip(now, scheduler._last_lr)):
        warnings.warn(f"The learning-rate schedule differs from the one {checkpoint_path} was trained with: at step "
                      f"{step} it gives {now[0]:.3g}, the checkpoint's run was at {scheduler._last_lr[0]:.3g}, so the "
                      f"rate jumps (was the optimiser built for a different number of epochs?). Keep the schedule, or "
                      f"delete the checkpoint (os.remove({str(checkpoint_path)!r})) and start again.")
    # Continue on this call's schedule, as the warning says: the optimiser's restored rates are the old curve's.
    for group, lr in zip(scheduler.optimizer.param_groups, now):
        group["lr"] = lr
    scheduler._last_lr = now


def _call_augment(augment, x, generator):
    try:
        return augment(x, generator=generator)
    except TypeError as err:  # an augmentation without a generator= keyword: uses the global RNG
        if "generator" not in str(err):
            raise
        return augment(x)


def pretrain(model, images, augment, *, epochs, batch_size, optimizer, scheduler=None, temperature=0.5,
             checkpoint_path=None, monitor=None, monitor_every=1, amp="auto", channels_last="auto",
             compile=False, seed=0, progress=True, loss_fn=None) -> list[dict]:  # fmt: skip
    """Pretrain ``model`` (a ``SimCLRModel``: x -> (h, z)) with NT-Xent; return the history.

    images   uint8 tensor N×C×H×W (moved to the model's device if needed); each epoch visits a
             random permutation in batches of ``batch_size`` (the last partial batch is dropped).
    augment  callable, batch -> augmented float batch in [0, 1]; called twice per batch, with
             ``generator=`` when it accepts it, so a resumed run draws the same views.
    amp      "auto": bf16 autocast where supported, fp16 + GradScaler on older GPUs, fp32 on CPU;
             False for fp32, or a torch dtype.
    checkpoint_path  saved after every epoch; if it exists, training resumes from it (a finished
             run returns its history at once). On a CPU a resumed run ends bit-identical to an
             uninterrupted one with the same seed.
    monitor  ``monitor(model) -> accuracy``, called every ``monitor_every`` epochs and at the end.
    History: one dict per epoch: epoch, loss (mean over steps), lr (of the last step),
             images_per_s, seconds (training time, without the monitor), knn_acc (monitor epochs).
    ``images_per_s`` counts source images; each is seen twice (two views) per epoch.
    """
    device = next(model.parameters()).device
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4):
        raise TypeError("images must be a uint8 tensor N×C×H×W (e.g. load_mnist().images).")
    n = len(images)
    if not 1 < batch_size <= n:
        raise ValueError(f"batch_size must be between 2 and the number of images ({n}), got {batch_size}.")
    if loss_fn is None:
        from course_utils.losses import nt_xent as loss_fn
    images = images.to(device)
    dtype = amp_dtype(device) if amp in ("auto", True) else (amp or None)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    memory_format = torch.channels_last if channels_last is True or (channels_last == "auto" and device.type == "cuda") \
        else torch.contiguous_format  # fmt: skip
    model.to(memory_format=memory_format)
    forward = torch.compile(model) if compile else model
    generator = torch.Generator(device=device).manual_seed(seed)
    steps = n // batch_size
    config = {"epochs": epochs, "batch_size": batch_size, "temperature": temperature, "seed": seed, "n_images": n}
    history, start = [], 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(checkpoint_path, model, optimizer, scheduler)
        history, start = ckpt["history"], ckpt["epoch"]
        if ckpt["scaler"]:
            scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"], generator)
        changed = [k for k in ("batch_size", "seed", "n_images") if ckpt["config"].get(k) != config[k]]
        if changed:
            warnings.warn(f"Resuming {checkpoint_path} with a different {', '.join(changed)} than it was started with.")
        if start >= epochs:
            print(f"{checkpoint_path} is complete ({start}/{epochs} epochs): returning its history, no training")
            return history
        _warn_if_schedule_changed(scheduler, checkpoint_path)  # only matters when training goes on
        print(f"resumed from {checkpoint_path} at epoch {start}/{epochs}")
    quiet_env = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
    for epoch in range(start + 1, epochs + 1):
        model.train()
        t0, total = time.perf_counter(), torch.zeros((), device=device)
        perm = torch.randperm(n, generator=generator, device=device)
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{epochs}", disable=not progress or quiet_env, leave=True)
        for step in bar:
            x = images[perm[step * batch_size:(step + 1) * batch_size]]
            views = torch.cat([_call_augment(augment, x, generator), _call_augment(augment, x, generator)])
            views = views.contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                _, z = forward(views)  # one forward pass, one batch norm over both views
            z1, z2 = z.float().chunk(2)  # row i of z1 and row i of z2: the two views of image i
            loss = loss_fn(z1, z2, temperature)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            if scheduler is not None:
                scheduler.step()
            total += loss.detach()
            if step % 10 == 0 or step == steps - 1:  # .item() waits for the GPU: not every step
                done = (step + 1) * batch_size / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{total.item() / (step + 1):.4f}", img_per_s=f"{done:.0f}")
        seconds = time.perf_counter() - t0
        mean_loss = total.item() / steps
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"The loss became {mean_loss} in epoch {epoch}: lower the learning rate "
                                     f"or raise the temperature (now {temperature}).")  # fmt: skip
        row = {"epoch": epoch, "loss": mean_loss, "lr": lr,
               "images_per_s": steps * batch_size / seconds, "seconds": seconds}  # fmt: skip
        if monitor is not None and (epoch % monitor_every == 0 or epoch == epochs):
            model.eval()
            with torch.no_grad():
                row["knn_acc"] = float(monitor(model))
            model.train()
        history.append(row)
        if progress and quiet_env:  # no bar: one line per epoch, so long cells are not silent
            print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler=scaler, generator=generator,
                            history=history, epoch=epoch, config=config)  # fmt: skip
    return history


def peak_memory_mb(device) -> float:
    """Peak memory of this run in MiB: allocated by PyTorch on a GPU, the process's peak RSS on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # Unix only

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (waits for the GPU before reading the clock)."""

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
