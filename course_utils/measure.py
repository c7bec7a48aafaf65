"""Measuring a run before and while it trains: time, memory, FLOPs, and the compute bound.

    with Timer() as t: ...                    # t.seconds, waiting for the GPU before reading the clock
    peak_memory_mb(device)                    # GPU memory allocated by PyTorch, or the process's peak RSS
    forward_flops(model.encoder, (3, 32, 32)) # FLOPs of one forward pass of one image (a multiply-add = 2)
    estimate = estimate_pretraining(model, images, augment, steps=9700, batch_size=512, temperature=0.2)
    print(estimate)                           # measured seconds per step, the expected time, the bound

A long run should say up front how long it will take, from a measurement on the machine it runs on, not
from a guess: ``estimate_pretraining`` times a few real training steps on a copy of the model (the model,
its optimiser and every random generator are left untouched) and scales up.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

# Dense (no sparsity) tensor-core peaks in TFLOP/s, from NVIDIA's data sheets, for the precision the course
# uses on each GPU (fp16 below compute capability 8.0, bf16 from 8.0). Matched against the device name.
PEAK_TFLOPS = {"T4": 65.0, "V100": 125.0, "P100": 18.7, "L4": 121.0, "A10G": 70.0, "A10": 125.0,
               "A100": 312.0, "L40S": 362.0, "H100": 989.0, "H200": 989.0}  # fmt: skip


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


def peak_memory_mb(device) -> float:
    """Peak memory of this run in MiB: allocated by PyTorch on a GPU, the process's peak RSS on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # Unix only

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def forward_flops(net: nn.Module, image_shape: tuple[int, int, int]) -> float:
    """FLOPs of one forward pass of ``net`` on one image of ``image_shape`` (C, H, W), counted by PyTorch's
    FlopCounterMode (a multiply-add counts as 2). Forward plus backward costs about 3 times this."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *image_shape, device=device))
    net.train(was_training)
    return float(counter.get_total_flops())


def peak_tflops(device) -> float | None:
    """The dense tensor-core peak of a known GPU (TFLOP/s, see ``PEAK_TFLOPS``); None on a CPU or an unknown GPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).upper()
    matches = [key for key in PEAK_TFLOPS if key in name.replace("-", " ").split() or f" {key}" in f" {name}"]
    return PEAK_TFLOPS[max(matches, key=len)] if matches else None


def time_per_step(step: Callable[[], object], *, warmup: int = 2, timed: int = 3) -> float:
    """Seconds per call of ``step()``, the median of ``timed`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(timed):
        with Timer() as t:
            step()
        seconds.append(t.seconds)
    return sorted(seconds)[len(seconds) // 2]


@dataclass
class Estimate:
    """How long a pretraining will take, measured on this machine (see ``estimate_pretraining``)."""

    steps: int
    batch_size: int
    seconds_per_step: float
    device: str
    precision: str
    flops_per_step: float  # forward + backward of both views of a batch
    peak_tflops: float | None  # the GPU's dense tensor-core peak; None on a CPU or an unknown GPU

    @property
    def seconds(self) -> float:
        return self.steps * self.seconds_per_step

    @property
    def bound_seconds(self) -> float | None:
        """The time at the GPU's peak: no run can be faster."""
        return None if self.peak_tflops is None else self.steps * self.flops_per_step / (self.peak_tflops * 1e12)

    def __str__(self) -> str:
        line = (f"expected: {self.steps:,} steps of batch {self.batch_size} × {self.seconds_per_step:.3g} s/step "
                f"(measured on {self.device}, {self.precision}) ≈ {_duration(self.seconds)}")
        achieved = self.flops_per_step / self.seconds_per_step / 1e12
        line += f"; {achieved:.2f} TFLOP/s achieved"
        if self.peak_tflops is not None:
            line += (f", {achieved / self.peak_tflops:.0%} of this GPU's {self.peak_tflops:g} TFLOP/s peak (at the "
                     f"peak the run would take {_duration(self.bound_seconds)})")
        return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_pretraining(model: nn.Module, images: torch.Tensor, augment: Callable, *, steps: int, batch_size: int,
                         temperature: float = 0.2, amp="auto", channels_last="auto", warmup: int = 2,
                         timed: int = 3) -> Estimate:
    """Time ``timed`` SimCLR steps (after ``warmup``) of a COPY of ``model`` on ``images[:batch_size]`` with the
    same step as ``train.pretrain`` (augmentation, one forward pass of 2N views, NT-Xent, backward, an SGD
    step), and scale to ``steps``. Nothing of ``model`` or of the random state changes.

    images: uint8 N×C×H×W on any device (moved to the model's). The FLOPs come from ``forward_flops`` of the
    model's encoder and head (×3 for the backward pass, ×2 views). torch.compile is not timed.
    """
    from course_utils.train import make_step

    device = next(model.parameters()).device
    batch = images[:batch_size].to(device)
    twin = copy.deepcopy(model)
    optimizer = torch.optim.SGD(twin.parameters(), lr=1e-6)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        step = make_step(twin, augment, optimizer, temperature=temperature, amp=amp, channels_last=channels_last)
        seconds = time_per_step(lambda: step(batch).item(), warmup=warmup, timed=timed)
    flops = 3 * 2 * len(batch) * forward_flops(twin, tuple(batch.shape[1:]))
    precision = str(step.dtype or torch.float32).replace("torch.", "")
    return Estimate(steps, len(batch), seconds, _device_name(device), precision, flops, peak_tflops(device))


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def chapter_budget(device: str = "T4", profile=None, **kwargs):
    """Every chapter's estimated minutes on ``device`` in ``profile``: see ``course_utils.budget.chapter_budget``."""
    from course_utils.budget import chapter_budget as budget

    return budget(device, profile, **kwargs)


if __name__ == "__main__":  # python -m course_utils.measure budget --device T4 --profile gpu [--json]
    if sys.argv[1:2] != ["budget"]:
        sys.exit("usage: python -m course_utils.measure budget [--device T4|L4|A100] [--profile gpu] [--json]")
    from course_utils.budget import main

    sys.exit(main(sys.argv[2:]))
