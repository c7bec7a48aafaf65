"""One SimCLR pretraining loop for every encoder, with checkpoint/resume, mixed precision and a
progress display; plus the optimizer recipes (LARS or Adam, linear warm-up then cosine).

Each step takes a batch of images, makes two augmented views, sends BOTH views through the
model in one forward pass (one batch norm over all 2N views, the single-GPU equivalent of the
paper's global batch norm), and minimises NT-Xent between the two sets of projections.

The step never waits for the GPU: the loss is summed on the device and read (one synchronisation)
only every ``sync_every`` steps, for the progress display and the divergence check; nothing in the step builds
a tensor from Python data or reads one back (tests/test_sync_free.py watches it on the CPU, and
benchmarks/sync_check.py under CUDA's sync debug mode). (With fp16 the GradScaler itself reads one flag per
step; bf16 and fp32 need no scaler.)

The same loop runs on many GPUs under ``torchrun`` (chapter 7, ``course_utils.distributed``): inside a
process group of W processes, ``batch_size`` is the GLOBAL batch, every rank takes its 1/W slice of it,
draws its own augmentations, gathers the negatives of all ranks with gradients (``nt_xent_global``), and
DistributedDataParallel averages the gradients; rank 0 writes the checkpoints, every rank resumes from them.

References: Chen et al. 2020 (SimCLR); You et al. 2017 (LARS); da Costa et al. 2022, JMLR
(solo-learn: the CIFAR-10 ResNet-18 recipe used by ``simclr_optimizer(recipe="lars")``).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from course_utils import distributed
from course_utils.augment import call_augment
from course_utils.config import amp_dtype, live_progress

CHECKPOINT_FORMAT = "course_utils.train/1"


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (LARS, You et al. 2017), as in solo-learn.

    For each weight tensor w with gradient g the step is scaled by
    ``min(eta * ||w|| / (||g|| + wd * ||w||) / lr, 1)`` (``clip=True``), so no layer moves by
    more than a fraction ``eta`` of its own norm. Groups with ``lars=False`` (biases and
    batch-norm parameters, see ``simclr_optimizer``) get plain SGD with momentum.

    ``foreach=True`` (the default) makes the same update with PyTorch's multi-tensor ``torch._foreach_*``
    operations: a few fused kernels for all the tensors of a group instead of about fifteen small ones per
    tensor (a ResNet-18 has 62), which on a GPU leaves the CPU free to queue the next step. ``foreach=False``
    runs ``_update_one_by_one``, the same arithmetic written tensor by tensor: the readable reference (the
    tests check that the two agree).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.02, clip: bool = True, eps: float = 1e-8, foreach: bool = True):  # fmt: skip
        if lr <= 0 or weight_decay < 0 or eta <= 0:
            raise ValueError(f"LARS needs lr > 0, eta > 0, weight_decay >= 0; got {lr}, {eta}, {weight_decay}.")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip=clip, eps=eps, lars=True,
                        foreach=foreach)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group.get("foreach", True):
                for same_kind in _by_device_and_dtype(params):  # foreach kernels need one device and dtype
                    self._update_foreach(group, same_kind)
            else:
                self._update_one_by_one(group, params)
        return loss

    def _update_one_by_one(self, group: dict, params: list) -> None:
        """The update, one tensor at a time: the definition."""
        lr, wd = group["lr"], group["weight_decay"]
        for p in params:
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

    def _update_foreach(self, group: dict, params: list) -> None:
        """The same update for all ``params`` (one device, one dtype) at once; the trust ratios of all tensors
        are computed as one vector, on the device (no value is read back)."""
        lr, wd = group["lr"], group["weight_decay"]
        grads = [p.grad for p in params]
        if group["lars"]:
            w_norm = torch.stack(torch._foreach_norm(params))
            g_norm = torch.stack(torch._foreach_norm(grads))
            d_ps = torch._foreach_add(grads, params, alpha=wd)
            trust = group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"])
            if group["clip"]:
                trust = torch.clamp(trust / lr, max=1.0)
            trust = torch.where((w_norm > 0) & (g_norm > 0), trust, torch.ones_like(trust))
            torch._foreach_mul_(d_ps, trust.unbind(0))
        else:
            d_ps = grads
        fresh = [i for i, p in enumerate(params) if "momentum_buffer" not in self.state[p]]
        kept = [i for i, p in enumerate(params) if "momentum_buffer" in self.state[p]]
        for i in fresh:  # the first step: the buffer starts as the step itself
            self.state[params[i]]["momentum_buffer"] = d_ps[i].clone()
        if kept:
            bufs = [self.state[params[i]]["momentum_buffer"] for i in kept]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, [d_ps[i] for i in kept])
        torch._foreach_add_(params, [self.state[p]["momentum_buffer"] for p in params], alpha=-lr)


def _by_device_and_dtype(params: list) -> list[list]:
    """``params`` split into lists of one device and one dtype each (a model on one GPU: one list)."""
    kinds: dict = {}
    for p in params:
        kinds.setdefault((p.device, p.dtype), []).append(p)
    return list(kinds.values())


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


def mixed_precision(device: torch.device | str, amp="auto") -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """(autocast dtype or None, GradScaler) for training on ``device``.

    amp  "auto" (or True): ``config.amp_dtype(device)``: bf16 at compute capability ≥ 8.0, fp16 below it,
         fp32 (None) on a CPU; False or None: fp32; or a dtype (torch.bfloat16 / torch.float16), which also
         works on a CPU (CPU autocast supports both; the course's tests use it to run the GPU paths).
    The scaler is enabled exactly when the dtype is fp16, whose 5-bit exponent lets small gradients
    underflow to zero unless the loss is scaled up first.
    """
    device = torch.device(device)
    dtype = amp_dtype(device) if amp in ("auto", True) else (amp or None)
    if dtype not in (None, torch.float16, torch.bfloat16):
        raise ValueError(f"amp must be 'auto', False, torch.bfloat16 or torch.float16, got {amp!r}")
    return dtype, torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


@contextlib.contextmanager
def cudnn_autotune(device: torch.device | str):
    """Inside: on a CUDA device, cuDNN times its convolution algorithms for each new input shape and keeps the
    fastest (``torch.backends.cudnn.benchmark``). A training loop has one shape (whole batches only), so the
    timing is paid once, in the first step. The previous setting comes back on exit; on a CPU nothing changes."""
    if torch.device(device).type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


# Where channels_last (N×H×W×C) is the default layout of a training step: tensor-core convolutions want it, and on the
# CPU oneDNN's convolutions run faster in it too (a SimCLR step of the cpu profile took 0.70-0.80 of the time of
# the default layout, small CNN and quarter-width ResNet-18, 1 or 2 threads, on a 2-core AMD EPYC; 2026-12-07).
CHANNELS_LAST_DEVICES = ("cuda", "cpu")


def make_step(model: nn.Module, augment: Callable, optimizer: torch.optim.Optimizer, scheduler=None, *,
              temperature: float, amp="auto", channels_last="auto", compile_model: bool = False,
              loss_fn: Callable | None = None, distributed_step: bool | None = None, sync_bn: bool = True):
    """The SimCLR training step as a function ``step(x, generator) -> loss`` (a 0-d tensor on the device,
    not synchronised), and the GradScaler it uses. ``pretrain`` runs it; ``measure`` times it.

    x: a batch of N images (uint8 or float, on the model's device). Two views of each, one forward pass
    over the 2N views, NT-Xent on the projections z (in fp32), a (scaled) backward pass, an optimiser
    step, a scheduler step. See ``pretrain`` for the arguments.
    distributed_step  None: True inside a process group of several processes. Then the batch norms become
    nn.SyncBatchNorm where the device allows it (``sync_bn``; ``distributed.sync_batchnorm``), the model runs
    inside DistributedDataParallel (which averages the gradients of the ranks), and the default loss is
    ``distributed.nt_xent_global``. ``step.note`` says what happened to batch norm.
    """
    device = next(model.parameters()).device
    dtype, scaler = mixed_precision(device, amp)
    use_cl = channels_last is True or (channels_last == "auto" and device.type in CHANNELS_LAST_DEVICES)
    memory_format = torch.channels_last if use_cl else torch.contiguous_format
    if distributed_step is None:
        distributed_step = distributed.is_distributed()
    note = "one process"
    if distributed_step and sync_bn:
        model, note = distributed.sync_batchnorm(model, device)  # the same parameters: the optimiser still fits
    elif distributed_step:
        note = "batch norm per rank (sync_bn=False)"
    model.to(memory_format=memory_format)
    forward = model
    if distributed_step:  # after the layout change: DDP's gradient buckets follow the parameters' strides
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    forward = torch.compile(forward) if compile_model else forward
    if loss_fn is None:
        from course_utils.losses import nt_xent

        # checked every sync_every steps instead of every step: no synchronisation
        loss_fn = partial(distributed.nt_xent_global if distributed_step else nt_xent, check_finite=False)

    def step(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        views = torch.cat([call_augment(augment, x, generator), call_augment(augment, x, generator)])
        views = views.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            _, z = forward(views)  # one forward pass, one batch norm over both views
        z1, z2 = z.float().chunk(2)  # row i of z1 and row i of z2: the two views of image i
        loss = loss_fn(z1, z2, temperature)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        step.last_lr = optimizer.param_groups[0]["lr"]  # the rate this step used
        if scheduler is not None:
            scheduler.step()
        return loss.detach()

    step.scaler, step.dtype, step.memory_format, step.note = scaler, dtype, memory_format, note
    return step


# --- Checkpoints ------------------------------------------------------------------------------------

def _rng_state(generator: torch.Generator) -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "generator": generator.get_state(),
            "generator_device": generator.device.type, "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}  # fmt: skip


def _set_rng_state(state: dict, generator: torch.Generator, fallback_seed: int) -> bool:
    """Restore the random state of a checkpoint; False when its generator came from another kind of
    device (a CUDA generator's state does not fit a CPU one, and vice versa): the generator is then
    seeded afresh from ``fallback_seed`` and the run continues with other, equally random, views."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    saved = state["generator"]
    same_kind = state.get("generator_device", "cpu") == generator.device.type
    if same_kind and saved.numel() == generator.get_state().numel():
        generator.set_state(saved)
        return True
    generator.manual_seed(fallback_seed)
    return False


def save_checkpoint(path, model, optimizer=None, scheduler=None, *, scaler=None, generator=None,
                    history=(), epoch=0, config=None, rank_generators=None) -> None:  # fmt: skip
    """Write a checkpoint atomically (temp file, then os.replace): a kill mid-write never leaves
    a half-written file under ``path``. ``rank_generators``: the augmentation generators' states of every
    rank of a distributed run (a list indexed by rank), so that each rank resumes with its own views."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "history": list(history), "config": dict(config or {}),
             "model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "scheduler": scheduler.state_dict() if scheduler else None,
             "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
             "rng": _rng_state(generator or torch.Generator())}  # fmt: skip
    if rank_generators is not None:
        state["rng"]["ranks"] = [s.cpu() for s in rank_generators]
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


class RecipeMismatchError(RuntimeError):
    """A checkpoint made with another batch size or step budget than the run that would resume it."""


def read_checkpoint(path) -> dict:
    """The checkpoint dict at ``path`` (keys: epoch, history, config, model, optimizer, scaler, rng, ...), its
    tensors on the CPU; nothing is loaded into a model. A damaged file gives an error that names it and the fix."""
    fix = f"Delete it to start over: os.remove({str(path)!r})."
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"Could not read the checkpoint {path}: it is truncated or corrupted ({err}). {fix}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} is not a checkpoint written by course_utils.train. {fix}")
    return ckpt


def load_checkpoint(path, model, optimizer=None, scheduler=None, *, ckpt: dict | None = None) -> dict:
    """Restore ``model`` (and optimizer, scheduler when given) from ``path``; return the checkpoint
    dict (keys: epoch, history, config, scaler, rng, ...). Tensors are loaded onto the CPU first, so a
    checkpoint written on a GPU loads on a CPU and the other way round. ``ckpt``: the dict, if already read."""
    fix = f"Delete it to start over: os.remove({str(path)!r})."
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    try:
        model.load_state_dict(ckpt["model"])
        if optimizer is not None and ckpt["optimizer"] is not None:
            optimizer.load_state_dict(ckpt["optimizer"])  # moves the state to the parameters' device
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise RuntimeError(f"The checkpoint {path} does not fit this model/optimizer ({err}). "
                           f"Use another checkpoint_path, or: {fix}") from err  # fmt: skip
    return ckpt


def _refuse_another_recipe(saved: dict, config: dict, checkpoint_path) -> None:
    """Raise ``RecipeMismatchError`` when the checkpoint's run had another batch size, or another budget of steps
    (when this run states one). Neither can change midway: the learning rate follows the batch, the schedule the
    budget, and steps_per_epoch both; a resumed run would be a third recipe that nobody chose."""
    differs = [(what, saved.get(key), config[key]) for key, what in (("batch_size", "batch size"),
                                                                     ("total_steps", "budget of steps"))
               if (key == "batch_size" or config[key] is not None) and saved.get(key) != config[key]]
    if differs:
        made = ", ".join(f"{what} {was}" for what, was, _ in differs)
        now = ", ".join(f"{what} {new}" for what, _, new in differs)
        raise RecipeMismatchError(
            f"{checkpoint_path} was made by a run with {made}; this run has {now}. A run cannot change its batch "
            f"size or its budget of steps midway (the learning rate and its schedule follow them). Either run "
            f"again with the checkpoint's settings, or give this run a checkpoint of its own (another "
            f"checkpoint_path; pretrain_ddp: --checkpoint), or delete the file to start over "
            f"(rm '{checkpoint_path}').")


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


def _resume(checkpoint_path, model, optimizer, scheduler, scaler, generator, config: dict, epochs: int,
            aug_generator=None, rank: int = 0, say=print):
    """Load a checkpoint into the run; return (history, first epoch to train). Says what changed.

    ``aug_generator``: in a distributed run, this rank's augmentation generator (restored from the
    checkpoint's ``ranks`` states); ``say``: print on the main rank, nothing on the others."""
    ckpt = read_checkpoint(checkpoint_path)
    _refuse_another_recipe(ckpt["config"], config, checkpoint_path)  # before anything is loaded
    load_checkpoint(checkpoint_path, model, optimizer, scheduler, ckpt=ckpt)
    history, start = ckpt["history"], ckpt["epoch"]
    if ckpt["scaler"] and scaler.is_enabled():
        scaler.load_state_dict(ckpt["scaler"])
    saved = ckpt["config"]
    if aug_generator is not None and aug_generator is not generator:
        ranks = ckpt["rng"].get("ranks") or []
        world = config.get("world_size", 1)
        same_kind = ckpt["rng"].get("generator_device", "cpu") == aug_generator.device.type
        if len(ranks) == world and same_kind and ranks[rank].numel() == aug_generator.get_state().numel():
            aug_generator.set_state(ranks[rank])
        else:
            aug_generator.manual_seed(distributed.rank_seed(config["seed"], rank) + start)
            say(f"note: {checkpoint_path} holds no augmentation state for {world} processes on "
                f"{aug_generator.device.type} (it was written by {len(ranks) or 1} on "
                f"{ckpt['rng'].get('generator_device', 'cpu')}): every rank continues with a freshly seeded "
                "generator (other random views; the model, optimiser and schedule are restored).")
    if not _set_rng_state(ckpt["rng"], generator, fallback_seed=config["seed"] * 1_000_003 + start):
        say(f"note: {checkpoint_path} was written on {ckpt['rng'].get('generator_device', 'cpu')}, and this run is "
              f"on {generator.device.type}: its random generator cannot move across, so training continues with a "
              "freshly seeded one (other random views and batches; the model, optimiser and schedule are restored).")
    elif saved.get("device") not in (None, config["device"]) or saved.get("precision") not in (None, config["precision"]):
        say(f"note: {checkpoint_path} was written on {saved.get('device')} ({saved.get('precision')}); "
              f"continuing on {config['device']} ({config['precision']}).")
    changed = [k for k in ("seed", "n_images") if saved.get(k) != config[k]]
    if changed:
        warnings.warn(f"Resuming {checkpoint_path} with a different {', '.join(changed)} than it was started with.")
    return history, start


# --- The loop ---------------------------------------------------------------------------------------

def _progress_mode(progress: bool) -> str:
    """"bar" (a live tqdm bar: Jupyter, Colab, a terminal), "lines" (a line per epoch or so: the book build,
    CI logs, TQDM_DISABLE=1) or "off". $COURSE_PROGRESS=bar|lines|off decides when set."""
    if not progress:
        return "off"
    chosen = os.environ.get("COURSE_PROGRESS", "").strip().lower()
    if chosen in ("bar", "lines", "off"):
        return chosen
    quiet = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
    return "bar" if live_progress() and not quiet else "lines"


def pretrain(model: nn.Module, images: torch.Tensor, augment: Callable, *, epochs: int, batch_size: int,
             optimizer: torch.optim.Optimizer, scheduler=None, temperature: float = 0.5,
             checkpoint_path: str | Path | None = None, monitor: Callable | None = None, monitor_every: int = 1,
             amp="auto", channels_last="auto", compile_model: bool = False, seed: int = 0, progress: bool = True,
             loss_fn: Callable | None = None, sync_every: int = 10, sync_bn: bool = True,
             total_steps: int | None = None) -> list[dict]:  # fmt: skip
    """Pretrain ``model`` (a ``SimCLRModel``: x -> (h, z)) with NT-Xent; return the history.

    images   uint8 tensor N×C×H×W (moved to the model's device if needed); each epoch visits a
             random permutation in batches of ``batch_size`` (the last partial batch is dropped).
    augment  callable, batch -> augmented float batch in [0, 1]; called twice per batch, with
             ``generator=`` when it accepts it, so a resumed run draws the same views.
    amp      "auto": bf16 autocast at compute capability ≥ 8.0, fp16 + GradScaler on older GPUs, fp32 on
             a CPU; False for fp32, or a torch dtype (see ``mixed_precision``).
    channels_last  "auto" (on a GPU and a CPU: ``CHANNELS_LAST_DEVICES``), True or False: the memory layout
             tensor-core convolutions want, and in which the CPU's (oneDNN) convolutions run faster too.
    compile_model  run the model through ``torch.compile`` (minutes of compiling, then faster steps).
    checkpoint_path  saved after every epoch; if it exists, training resumes from it (a finished
             run returns its history at once). On a CPU a resumed run ends bit-identical to an
             uninterrupted one with the same seed. A checkpoint from another device type resumes too.
             A checkpoint made with another ``batch_size`` (or ``total_steps``) is refused
             (``RecipeMismatchError``, which says what to do): a run cannot change them midway.
    total_steps  the whole run's budget of optimiser steps, when this call may stop short of it (``epochs``
             fewer than the schedule's, as chapter 4's first session or pretrain_ddp's --until-epoch): kept
             in the checkpoint, and a checkpoint made for another budget is refused. None: not checked.
    monitor  ``monitor(model) -> accuracy``, called every ``monitor_every`` epochs and at the end.
    loss_fn  ``loss_fn(z1, z2, temperature)``; default ``losses.nt_xent`` (in a process group of several
             processes ``distributed.nt_xent_global``).
    sync_every  read the loss from the device (for the progress display and the divergence check) every
             this many steps, and at the end of every epoch; the steps in between never wait for the GPU.
    History: one dict per epoch: epoch, loss (mean over steps), lr (of the last step),
             images_per_s, seconds (training time, without the monitor), knn_acc (monitor epochs).
    ``images_per_s`` counts source images; each is seen twice (two views) per epoch.

    Under ``torchrun`` (an initialised process group of W > 1 processes; ``distributed.setup()``), every rank
    calls ``pretrain`` with the same arguments and the whole ``images``:
    batch_size  is the GLOBAL batch (a multiple of W): every rank draws the same permutation (from ``seed``)
             and trains on its slice of each global batch (``distributed.local_slice``), so the schedule, the
             steps per epoch and the learning rate (build the optimiser with the global batch) do not depend
             on W. Each rank draws its views from its own generator (``distributed.rank_seed(seed, rank)``).
    the step  runs the model in DistributedDataParallel, with nn.SyncBatchNorm on GPUs (``sync_bn``), and
             the default loss ``distributed.nt_xent_global`` (negatives from every rank, with gradients).
             (PyTorch's SyncBatchNorm itself reads a count from the GPU in every layer: that is its only wait.)
    checkpoints  rank 0 writes them (with every rank's generator state), then all ranks wait for it; every
             rank resumes from the same file, which must be on a file system that all of them see.
    history  the same on every rank: the loss is the global batch's (averaged over the ranks when it is read).
             Only rank 0 prints and shows progress; ``monitor`` runs on every rank.
    """
    device = next(model.parameters()).device
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.ndim == 4):
        raise TypeError("images must be a uint8 tensor N×C×H×W (e.g. load_mnist().images).")
    n = len(images)
    if not 1 < batch_size <= n:
        raise ValueError(f"batch_size must be between 2 and the number of images ({n}), got {batch_size}.")
    if epochs < 1 or monitor_every < 1 or sync_every < 1:
        raise ValueError(f"epochs, monitor_every and sync_every must be ≥ 1, got {epochs}, {monitor_every}, {sync_every}.")
    rank, world = distributed.rank_and_world()
    local = distributed.local_slice(batch_size, rank, world)  # this rank's rows of every global batch
    if local.stop - local.start < 2:
        raise ValueError(f"each of the {world} processes needs at least 2 images of every batch (NT-Xent needs 2 "
                         f"pairs), got a global batch of {batch_size}: use a batch of at least {2 * world}.")
    say = print if rank == 0 else (lambda *args, **kwargs: None)
    images = images.to(device)
    step = make_step(model, augment, optimizer, scheduler, temperature=temperature, amp=amp,
                     channels_last=channels_last, compile_model=compile_model, loss_fn=loss_fn,
                     distributed_step=world > 1, sync_bn=sync_bn)
    generator = torch.Generator(device=device).manual_seed(seed)  # the permutations: the same on every rank
    # The views: one process draws them from the same generator; each rank of many from its own.
    aug_generator = generator if world == 1 else torch.Generator(device=device).manual_seed(
        distributed.rank_seed(seed, rank))
    steps = n // batch_size
    precision = str(step.dtype or torch.float32).replace("torch.", "")
    config = {"epochs": epochs, "batch_size": batch_size, "temperature": temperature, "seed": seed, "n_images": n,
              "device": device.type, "precision": precision, "world_size": world, "total_steps": total_steps}
    if world > 1 and progress:
        say(f"{world} processes, {local.stop - local.start} images each of a global batch of {batch_size}; {step.note}")
    history, start = [], 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        history, start = _resume(checkpoint_path, model, optimizer, scheduler, step.scaler, generator, config, epochs,
                                 aug_generator=aug_generator, rank=rank, say=say)
        if start >= epochs:
            say(f"{checkpoint_path} is complete ({start}/{epochs} epochs): returning its history, no training")
            return history
        _warn_if_schedule_changed(scheduler, checkpoint_path)  # only matters when training goes on
        say(f"resumed from {checkpoint_path} at epoch {start}/{epochs}" + (f" (on all {world} ranks)" if world > 1 else ""))
    mode = _progress_mode(progress) if rank == 0 else "off"
    bar = tqdm(total=(epochs - start) * steps, unit="step", disable=mode != "bar", dynamic_ncols=True)
    print_every = max(1, (epochs - start) // 20)  # "lines": at most about 20 lines for the whole run
    # One batch shape throughout: cuDNN may time its algorithms once and keep the fastest (on a GPU).
    with cudnn_autotune(device), contextlib.closing(bar):
        for epoch in range(start + 1, epochs + 1):
            model.train()
            t0, total = time.perf_counter(), torch.zeros((), device=device)
            perm = torch.randperm(n, generator=generator, device=device)
            for i in range(steps):
                batch = perm[i * batch_size:(i + 1) * batch_size]
                total += step(images[batch[local]], aug_generator)
                if (i + 1) % sync_every == 0 or i == steps - 1:
                    summed = total
                    if world > 1:  # the global batch's loss: the mean of the ranks' losses (same on every rank)
                        summed = total.clone()
                        torch.distributed.all_reduce(summed)
                        summed = summed / world
                    mean_loss = summed.item() / (i + 1)  # the only place the loop waits for the device
                    if not math.isfinite(mean_loss):
                        raise FloatingPointError(
                            f"The loss became {mean_loss} in epoch {epoch} (by step {i + 1}): training has "
                            f"diverged. Lower the learning rate (now {optimizer.param_groups[0]['lr']:.3g}) or "
                            f"raise the temperature (now {temperature}); with float16, use a GradScaler.")
                    bar.update(i + 1 - bar.n + (epoch - start - 1) * steps)
                    bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{mean_loss:.4f}",
                                    img_per_s=f"{(i + 1) * batch_size / (time.perf_counter() - t0):.0f}")
            seconds = time.perf_counter() - t0
            row = {"epoch": epoch, "loss": mean_loss, "lr": step.last_lr,
                   "images_per_s": steps * batch_size / seconds, "seconds": seconds}  # fmt: skip
            if monitor is not None and (epoch % monitor_every == 0 or epoch == epochs):
                model.eval()
                with torch.no_grad():
                    row["knn_acc"] = float(monitor(model))
                model.train()
            history.append(row)
            if mode == "lines" and ((epoch - start) % print_every == 0 or epoch == epochs):
                print(f"epoch {epoch}/{epochs}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"), flush=True)
            if checkpoint_path is not None:
                # Every rank's view generator, so that each resumes with its own views; then rank 0 writes.
                ranks = distributed.gather_objects(aug_generator.get_state()) if world > 1 else None
                if rank == 0:
                    save_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler=step.scaler,
                                    generator=generator, history=history, epoch=epoch, config=config,
                                    rank_generators=ranks)  # fmt: skip
                distributed.barrier()  # no rank goes on before the epoch's checkpoint is on disk
    return history
