"""Throughput of SimCLR pretraining in 1 process against W processes, through the real launcher.

    python benchmarks/bench_distributed.py [--quick]

Each configuration is one ``torchrun --standalone --nproc_per_node=W -m course_utils.pretrain_ddp`` run of
the course's recipes (chapter 4's ResNet-18 and chapter 2's small CNN) on offline stand-in data, with no
checkpoint and no kNN monitor; the figure is the images/s of its last epoch (the first one warms up).

On the CPU the processes share the same cores, so this is STRONG scaling: the same global batch split over
1 or 2 gloo processes of one thread each, and, for comparison, 1 process using all the threads. The scaling
efficiency is images/s(W processes) / (W × images/s(1 process, 1 thread)): 100% when W processes do W times
the work of one. It measures the cost of the all_gather, the gradient all-reduce and the per-process
overhead, not a speed-up a CPU could give (2 cores are 2 cores, however they are split).

On a machine with at least 2 GPUs it also runs WEAK scaling with NCCL: a fixed batch per GPU, 1 GPU against
all of them (global batch = W × per-GPU batch), the usual way to scale SimCLR out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def launch(nproc: int, *, dataset: str, batch_size: int, train_size: int, steps: int, device: str,
           threads: int | None = None) -> dict:  # fmt: skip
    """One run of the launcher under torchrun; returns its JSON summary (with the history)."""
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.json"
        env = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_PROGRESS": "off", "PYTHONPATH": str(ROOT),
               "COURSE_HOME": os.environ.get("COURSE_HOME", str(Path(tmp) / "home"))}
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "course_utils.pretrain_ddp", "--dataset", dataset, "--batch-size", str(batch_size),
                   "--train-size", str(train_size), "--steps", str(steps), "--device", device, "--no-monitor",
                   "--checkpoint", "none", "--results", str(results)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return json.loads(results.read_text())


def run(quick: bool = False) -> list[dict]:
    records = []

    def add(name, value, unit, device, notes=""):
        records.append({"name": name, "value": round(float(value), 3), "unit": unit, "device": device,
                        "notes": notes})

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu_label = f"cpu ({cores} cores, gloo)"
    workloads = [("cifar10", "ResNet-18 (chapter 4)", 32, 64 if quick else 128),
                 ("mnist", "small CNN (chapter 2)", 128, 512 if quick else 1024)]
    configs = ((1, 1), (1, min(2, cores)), (2, 1))  # (processes, threads per process)
    for dataset, model, batch, n in workloads:
        steps = 2 * (n // batch)  # two epochs: the second one is measured
        rate = dict.fromkeys(configs, 0.0)
        for _ in range(1 if quick else 2):  # interleaved repeats, best kept: other load on the machine only slows
            for nproc, threads in configs:
                summary = launch(nproc, dataset=dataset, batch_size=batch, train_size=n, steps=steps, device="cpu",
                                 threads=threads)
                rate[nproc, threads] = max(rate[nproc, threads], summary["history"][-1]["images_per_s"])
        for (nproc, threads), value in rate.items():
            add(f"ddp {model}: {nproc} process(es) x {threads} thread(s)", value, "images/s", cpu_label,
                f"global batch {batch}, {n} stand-in images, last of 2 epochs, best of {1 if quick else 2} runs; "
                f"load average {load:.1f} at the start; no GPU was available for the CPU runs")
        add(f"ddp {model}: scaling efficiency, 2 processes", 100 * rate[2, 1] / (2 * rate[1, 1]), "%", cpu_label,
            "images/s of 2 processes x 1 thread / (2 x images/s of 1 process x 1 thread), the same global batch")
        add(f"ddp {model}: 2 processes against 1 process on the same cores", rate[2, 1] / rate[1, min(2, cores)], "x",
            cpu_label, f"2 processes x 1 thread / 1 process x {min(2, cores)} threads")

    gpus = torch.cuda.device_count()
    if gpus >= 2:
        label = f"cuda ({gpus} x {torch.cuda.get_device_name(0)}, nccl)"
        per_gpu, n = 256, 8192 if quick else 16384
        rate = {}
        for nproc in (1, gpus):
            summary = launch(nproc, dataset="cifar10", batch_size=per_gpu * nproc, train_size=n,
                             steps=2 * (n // (per_gpu * nproc)), device="cuda")
            rate[nproc] = summary["history"][-1]["images_per_s"]
            add(f"ddp ResNet-18 (chapter 4): {nproc} GPU(s), {per_gpu} images per GPU", rate[nproc], "images/s", label,
                f"global batch {per_gpu * nproc}, batch norm {summary['batch_norm']}, last of 2 epochs")
        add(f"ddp ResNet-18 (chapter 4): scaling efficiency, {gpus} GPUs", 100 * rate[gpus] / (gpus * rate[1]), "%",
            label, "weak scaling: images/s of all GPUs / (GPUs x images/s of one)")
    return records


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['name']:60s} {r['value']:>10,.2f} {r['unit']:9s} {r['device']:22s} {r['notes']}")
