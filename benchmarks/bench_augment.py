"""Throughput of the SimCLR augmentations: batched tensor pipeline vs per-image PIL pipeline.

    python benchmarks/bench_augment.py          # full run (a minute or two on 2 cores)
    python benchmarks/bench_augment.py --quick  # a few seconds

Data: random uint8 images of CIFAR-10's shape (3×32×32); the cost of these pipelines does not
depend on the pixel values. Both pipelines use torch's default number of threads; each result is
the median of several timed repeats after a warm-up. The per-image PIL pipeline is also run through
a DataLoader with num_workers = os.cpu_count(), which is how it is normally used.
The target (COURSE.md §7): batched >= 10× per-image on the same CPU cores.

Measure on a quiet machine. On an oversubscribed one (load average above the core count, printed in
the notes), torch's OpenMP threads spin-wait for each other and the multi-threaded batched run
loses most of its speed while the single-threaded PIL pipeline does not: look at the threads=1 rows,
or run with OMP_WAIT_POLICY=PASSIVE (measured at load 10 on 2 cores: 18× instead of 3×).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_utils.augment import apply_pil, cifar10_augment, pil_pipeline  # noqa: E402


def _median_rate(fn, n_images: int, repeats: int, sync=lambda: None) -> float:
    return _interleaved_rates({"x": (fn, n_images)}, repeats, sync)["x"][0]


def _interleaved_rates(fns: dict, repeats: int, sync=lambda: None) -> dict:
    """{name: (fn, n_images)} -> {name: [median images/s, list of images/s per repeat]}.

    The pipelines take turns inside each repeat, so that a slow spell of a shared machine hits
    all of them alike; the ratio of two pipelines is taken repeat by repeat.
    """
    rates = {name: [] for name in fns}
    for name, (fn, _) in fns.items():
        fn()  # warm-up (allocations, lazy initialisation, CUDA kernels)
    sync()
    for _ in range(repeats):
        for name, (fn, n) in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            rates[name].append(n / (time.perf_counter() - start))
    return {name: [statistics.median(r), r] for name, r in rates.items()}


class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, images, pipeline):
        self.images, self.pipeline = images, pipeline

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return apply_pil(self.pipeline, self.images[i : i + 1])[0]


def _dataloader_rate(images, pipeline, batch_size, repeats) -> float:
    workers = os.cpu_count() or 1
    loader = torch.utils.data.DataLoader(_PILDataset(images, pipeline), batch_size=batch_size,
                                         num_workers=workers, persistent_workers=True)

    def epoch():
        for _ in loader:
            pass

    rate = _median_rate(epoch, len(images), repeats)  # the warm-up epoch starts the workers
    del loader
    return rate


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return f"{os.cpu_count()} cores"
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def run(quick: bool = False) -> list[dict]:
    """Measure images/s; return records {"name", "value", "unit", "device", "notes"}."""
    g = torch.Generator().manual_seed(0)
    n_pil = 256 if quick else 2048
    n_batch = 512 if quick else 4096
    batch_size = 512
    repeats = 3 if quick else 5
    images = torch.randint(0, 256, (n_batch, 3, 32, 32), dtype=torch.uint8, generator=g)
    aug, pipe = cifar10_augment(), pil_pipeline("cifar10")
    default_threads = torch.get_num_threads()
    records = []

    def add(name, value, device, notes, unit="images/s"):
        records.append({"name": name, "value": round(value, 1), "unit": unit, "device": device,
                        "notes": notes})

    def batched_cpu():
        for i in range(0, n_batch, batch_size):
            aug(images[i : i + batch_size])

    # The default thread count is the comparison asked for; one thread as well, because on a shared
    # or busy machine torch's parallel ops wait for a descheduled thread and the default run suffers.
    for threads in [default_threads] + ([1] if default_threads > 1 and not quick else []):
        torch.set_num_threads(threads)
        try:
            r = _interleaved_rates({"pil": (lambda: apply_pil(pipe, images[:n_pil]), n_pil),
                                    "batched": (batched_cpu, n_batch)}, repeats)
        finally:
            torch.set_num_threads(default_threads)
        common = f"CIFAR-shaped uint8 3x32x32, torch threads={threads}, {_load()}"
        add("per-image PIL pipeline", r["pil"][0], "cpu",
            f"one process, {n_pil} images, median of {repeats}; {common}")
        add("batched tensor pipeline", r["batched"][0], "cpu",
            f"{n_batch} images in batches of {batch_size}, median of {repeats}; {common}")
        ratios = [b / p for b, p in zip(r["batched"][1], r["pil"][1])]
        add("speed-up batched / per-image", statistics.median(ratios), "cpu",
            f"median of per-repeat ratios (min {min(ratios):.1f}), target >= 10x; {common}", unit="x")
        if threads == default_threads:
            pil_rate = r["pil"][0]

    common = f"CIFAR-shaped uint8 3x32x32, torch threads={default_threads}, {_load()}"
    if not quick:
        dl = _dataloader_rate(images[:n_pil], pipe, batch_size=256, repeats=3)
        add("per-image PIL pipeline, DataLoader", dl, "cpu",
            f"num_workers={os.cpu_count()}, {n_pil} images per epoch, median of 3; {common}")

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        big = images.to(dev)
        gpu = _median_rate(lambda: aug(big), n_batch, repeats, torch.cuda.synchronize)
        add("batched tensor pipeline", gpu, f"cuda ({torch.cuda.get_device_name(dev)})",
            f"one batch of {n_batch} on the GPU, median of {repeats}; {common}")
        add("speed-up GPU batched / CPU per-image", gpu / pil_rate, "cuda", "", unit="x")
    return records


def _table(records: list[dict]) -> str:
    lines = [f"{'name':40s} {'value':>12s} {'unit':9s} {'device':10s} notes"]
    lines += [f"{r['name']:40s} {r['value']:12,.1f} {r['unit']:9s} {r['device'][:10]:10s} {r['notes']}"
              for r in records]
    return "\n".join(lines)


if __name__ == "__main__":
    print(_table(run(quick="--quick" in sys.argv)))
