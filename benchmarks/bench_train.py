"""Pretraining throughput of the course's training loop, and the compute bound of a CIFAR-10 epoch.

    python benchmarks/bench_train.py [--quick]

Runs ``course_utils.train.pretrain`` itself (augmentation on the device, both views in one forward
pass, NT-Xent, optimizer step) on random uint8 images of MNIST's and CIFAR-10's shapes: throughput does
not depend on pixel values. Records images/s (source images; each is seen as two views), the share of a
step spent in augmentation, peak memory, and on CUDA the effect of mixed precision, channels_last and
torch.compile. The FLOP count of the CIFAR ResNet-18 comes from torch's FlopCounterMode.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_utils import config, encoders, measure, models, train  # noqa: E402
from course_utils.measure import Timer, forward_flops, peak_memory_mb  # noqa: E402

CIFAR_EPOCH_IMAGES = 50_000


def measured_peak_flops(device: torch.device, dtype=torch.float32, n: int = 2048) -> float:
    """Measured matrix-multiply throughput (FLOP/s): the practical peak of this device."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(5):
        with Timer() as t:
            a @ b
        best = max(best, 2 * n**3 / t.seconds)
    return best


def device_peak(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        name, tflops = torch.cuda.get_device_name(device), measure.peak_tflops(device)
        if tflops is not None:
            return tflops * 1e12, f"{name}: data-sheet dense fp16/bf16 peak"
        return measured_peak_flops(device, torch.bfloat16), f"{name}: measured bf16 matmul peak"
    return measured_peak_flops(device), "measured fp32 matmul peak of this CPU"


def pretrain_rate(kind: str, device, *, n_images, batch_size, amp="auto", channels_last="auto", compile_model=False,
                  profile: str = "gpu"):
    """Images/s of the last of two epochs of pretrain(), the augmentation's images/s, peak memory.

    kind: "smallcnn" or "resnet18_cifar": the course's recipe (encoder, head, views) of MNIST or CIFAR-10;
    profile: whose network ("gpu": ResNet-18 at full width; "cpu": the quarter-width one chapter 4 trains on CPUs)."""
    dataset, shape = ("mnist", (1, 28, 28)) if kind == "smallcnn" else ("cifar10", (3, 32, 32))
    model = encoders.build_model(dataset, seed=0, profile=config.PROFILES[profile]).to(device)
    aug = encoders.RECIPES[dataset].build_augment()
    images = torch.randint(0, 256, (n_images, *shape), dtype=torch.uint8, device=device)
    optimizer, scheduler = train.simclr_optimizer(model, batch_size=batch_size, epochs=2, warmup_epochs=0,
                                                  steps_per_epoch=n_images // batch_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    history = train.pretrain(model, images, aug, epochs=2, batch_size=batch_size, optimizer=optimizer,
                             scheduler=scheduler, amp=amp, channels_last=channels_last,
                             compile_model=compile_model,
                             progress=False)
    batch = images[:batch_size]
    aug(batch)
    with Timer() as t:
        for _ in range(5):
            aug(batch), aug(batch)  # two views, as in a training step
    aug_rate = 5 * batch_size / t.seconds
    return history[-1]["images_per_s"], aug_rate, peak_memory_mb(device)


def run(quick: bool = False) -> list[dict]:
    records = []

    def add(name, value, unit, device, notes=""):
        records.append({"name": name, "value": round(float(value), 3), "unit": unit, "device": device,
                        "notes": notes})

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    flops = forward_flops(models.resnet18_cifar(), (3, 32, 32))
    add("ResNet-18 (CIFAR stem) forward FLOPs per 32x32 image", flops / 1e9, "GFLOP", "any",
        "FlopCounterMode; forward + backward is about 3x")
    for device in devices:
        label = "cpu" if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})"
        cpu = device.type == "cpu"
        configs = [("smallcnn", 1024 if quick else 4096, 256), ("resnet18_cifar", 256 if quick else 512, 128)] \
            if cpu else [("smallcnn", 16384, 512), ("resnet18_cifar", 8192 if quick else 16384, 512)]
        for kind, n, bs in configs:
            ips, aug_ips, mem = pretrain_rate(kind, device, n_images=n, batch_size=bs)
            add(f"pretraining {kind}", ips, "images/s", label, f"batch {bs}, two views, default settings")
            add(f"augmentation share of a {kind} step", 100 * ips / aug_ips, "%", label,
                f"augmentation alone: {aug_ips:,.0f} images/s (two views)")
            add(f"peak memory, {kind} batch {bs}", mem, "MiB", label,
                "process peak RSS" if cpu else "torch.cuda.max_memory_allocated")
            if kind == "resnet18_cifar":
                peak, how = device_peak(device)
                bound = 3 * flops * 2 * CIFAR_EPOCH_IMAGES / peak
                add("CIFAR-10 epoch, compute lower bound", bound, "s", label,
                    f"3 x {flops / 1e9:.2f} GFLOP x 2 views x 50,000 images / {peak / 1e12:.1f} TFLOP/s ({how})")
                add("CIFAR-10 epoch, measured (extrapolated)", CIFAR_EPOCH_IMAGES / ips, "s", label,
                    f"50,000 / measured images/s; ratio to the bound {CIFAR_EPOCH_IMAGES / ips / bound:.1f}x")
        if cpu:  # what chapter 4 trains in the cpu profile instead: the same layers at a quarter of the width
            width = config.PROFILES["cpu"].cifar_width
            ips, _, mem = pretrain_rate("resnet18_cifar", device, n_images=512 if quick else 2048, batch_size=128,
                                        profile="cpu")
            add(f"pretraining resnet18_cifar at width {width} (the cpu profile's)", ips, "images/s", label,
                f"batch 128, two views; peak {mem:,.0f} MiB; compare with full width above (1/16 of the FLOPs)")
        if not cpu:
            for name, kw in [("fp32, no channels_last", dict(amp=False, channels_last=False)),
                             ("mixed precision, no channels_last", dict(channels_last=False)),
                             ("fp32, channels_last", dict(amp=False, channels_last=True)),
                             ("mixed precision + channels_last", dict()),
                             ("mixed precision + channels_last + torch.compile", dict(compile_model=True))]:
                ips, _, mem = pretrain_rate("resnet18_cifar", device, n_images=16384, batch_size=512, **kw)
                add(f"pretraining resnet18_cifar, {name}", ips, "images/s", label, f"batch 512; peak {mem:,.0f} MiB")
    return records


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['name']:60s} {r['value']:>12,.3f} {r['unit']:9s} {r['device']:12s} {r['notes']}")
