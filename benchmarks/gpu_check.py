"""One command for a machine with a CUDA GPU: every chapter in the gpu profile cut short, the sustained rate
that the budget needs, the training and augmentation benchmarks, all merged into benchmarks/results.json.

    make gpu-check                       # or: python benchmarks/gpu_check.py [--epochs 1] [--quick]

1. Says up front how long it will take on an A100-class GPU, by the course's own budget (under 20 minutes).
2. Measures what the budget estimates (``course_utils.budget``): the sustained TFLOP/s of the course's SimCLR
   step of the CIFAR ResNet-18 (batch 512, the course's precision) and the seconds of a step of the small
   MNIST CNN (the per-step floor), with the images/s and the peak memory of each; and that the training step
   never waits for the GPU (benchmarks/sync_check.py: a few steps under torch.cuda.set_sync_debug_mode("error")).
3. Executes all seven chapters in order, each in a fresh kernel, in the gpu profile with every long loop cut by
   COURSE_OVERRIDES (``CUT``: pretraining, labs and their seeds, supervised baselines, probes; chapter 4 trains
   ``--epochs`` epochs of CIFAR-10), in a fresh checkpoint folder (chapters 5 and 6 load what 2 and 4 saved),
   with the data from the usual data folder (or the offline stand-ins); records each one's wall time, and
   chapter 4's expected and measured training time and kNN accuracy (the values it glued).
4. Prints the budget of the full gpu profile at the measured rate, per chapter, and records it.
5. Runs benchmarks/run_all.py's "augment" and "train" suites (AMP, channels_last, torch.compile, memory, an
   epoch against its compute bound).
Without a usable CUDA GPU it says why and exits with status 2: no GPU at all, or a GPU that the installed torch
cannot drive (its CUDA build is newer than the driver, or it is a CPU-only build).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from course_utils import budget, config  # noqa: E402

A100_LIMIT_MINUTES = 20  # what the whole check may take on an A100-class GPU, by its own estimate
KERNEL_START_S = 30  # per chapter here: a fresh kernel, imports, the data from disk (no install, no download)
BENCH_MINUTES = {False: 6.0, True: 3.0}  # the augment and train suites (torch.compile compiles for a minute or two)

# Every long loop of the chapters, cut: what the gpu profile's chapters run, a few minutes in all.
CUT = {
    "mnist_steps": 200,  # chapter 2: one epoch of MNIST
    "knn_evals": 1,
    "label_draws": 1,
    "probe_iterations": 20,
    "supervised_steps": 30,  # chapter 5's baselines
    "cluster_size": 2000,  # chapters 1 and 6 (k-means, GMM on the CPU)
    "embedding_method": "pca",  # the 2-D maps: UMAP runs on the CPU, 4 minutes of the check for nothing GPU
    "lab_train_size": 4000,
    "lab_steps": 40,  # the MNIST labs of chapters 2, 3 and 5
    "lab_cifar_steps": 16,  # chapter 4's lab
    "lab_cifar_train_size": 2048,
    "ddp_steps": 16,  # chapter 7's demonstration run
    "lab_seeds": (0,),
}


def overrides(epochs: int = 1) -> str:
    """The COURSE_OVERRIDES of the cut chapters: ``CUT`` and chapter 4's schedule of ``epochs`` epochs of CIFAR-10
    (which also caps chapter 7's CPU processes at as many steps). Tuples' elements are joined by ";"."""
    sizes = {**CUT, "cifar_colab_steps": max(1, epochs) * (50_000 // config.PROFILES["gpu"].cifar_batch_size)}
    return ",".join(f"{k}={';'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in sizes.items())


def cut_profile(epochs: int = 1) -> config.Profile:
    """The gpu profile as the chapters will see it, read back from ``overrides`` the way get_profile reads it."""
    gpu = config.PROFILES["gpu"]
    return config.with_overrides(gpu, **config._parse_overrides(overrides(epochs), gpu))


def expected_minutes(device: str = "A100", epochs: int = 1, quick: bool = False) -> float:
    """This check's own duration on ``device``, by the budget: the cut chapters, the rate measurement and the
    benchmarks."""
    chapters = budget.chapter_budget(device, cut_profile(epochs), setup_s=KERNEL_START_S, results="/nonexistent")
    return sum(chapters.minutes().values()) + 1.0 + BENCH_MINUTES[quick]  # 1 min: measuring the rates


# --- Is there a GPU torch can use? ------------------------------------------------------------------

def nvidia_smi() -> list[str]:
    """``name, driver version`` of every GPU that nvidia-smi lists ([] without nvidia-smi or a GPU)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def why_no_gpu() -> str:
    """Why torch sees no GPU: none here, or one that this torch cannot drive."""
    gpus = nvidia_smi()
    if not gpus:
        return ("No CUDA GPU here (torch.cuda.is_available() is False and nvidia-smi lists none). `make gpu-check` "
                "measures the GPU path and needs one. On a CPU, `make test` runs the same code paths (bf16, fp16 with "
                "a GradScaler, channels_last, torch.compile) in its tests.")
    built = torch.version.cuda or "none: a CPU-only build"
    return (f"nvidia-smi sees {len(gpus)} GPU(s) ({'; '.join(gpus)}: name, driver version), but the installed torch "
            f"{torch.__version__} cannot use them: it was built for CUDA {built}, which this driver does not support "
            f"(a CUDA 12.x build needs a driver of at least 525, 13.x at least 580). Install a torch build for this "
            f"driver (https://pytorch.org/get-started/locally/, e.g. pip install torch --index-url "
            f"https://download.pytorch.org/whl/cu121 for an older driver), or update the driver.")


# --- 2. The rates the budget needs -------------------------------------------------------------------

def measure_rates(label: str, device="cuda") -> list[dict]:
    """The sustained TFLOP/s of the SimCLR step of the gpu profile's CIFAR ResNet-18 at its batch, and the seconds of
    a step of the MNIST recipe (the floor), timed with ``measure.estimate_pretraining`` on random images."""
    from course_utils import measure
    from course_utils.encoders import RECIPES, build_model

    gpu, device, records = config.PROFILES["gpu"], torch.device(device), []
    for dataset, shape, batch in (("cifar10", (3, 32, 32), gpu.cifar_batch_size),
                                  ("mnist", (1, 28, 28), gpu.mnist_batch_size)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model = build_model(dataset, seed=0, profile=gpu).to(device)
        images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, device=device)
        est = measure.estimate_pretraining(model, images, RECIPES[dataset].build_augment(), steps=1, batch_size=batch,
                                   temperature=RECIPES[dataset].temperature, warmup=5, timed=15)
        notes = f"course_utils.measure.estimate_pretraining, batch {batch}, {est.precision}, median of 15 steps"
        if dataset == "cifar10":
            tflops = est.flops_per_step / est.seconds_per_step / 1e12
            records.append({"name": budget.TFLOPS_RECORD, "value": round(tflops, 3), "unit": "TFLOP/s",
                            "device": label, "notes": notes})
        else:
            records.append({"name": budget.FLOOR_RECORD, "value": round(est.seconds_per_step, 5), "unit": "s",
                            "device": label, "notes": notes})
        records.append({"name": f"SimCLR step of the {dataset} recipe, images/s", "unit": "images/s", "device": label,
                        "value": round(batch / est.seconds_per_step, 1), "notes": notes})
        records.append({"name": f"SimCLR step of the {dataset} recipe, peak memory", "unit": "MiB", "device": label,
                        "value": round(measure.peak_memory_mb(device), 1), "notes": "torch.cuda.max_memory_allocated"})
    # The step that never waits: a few steps of each recipe under torch.cuda.set_sync_debug_mode("error") and the
    # host round-trip probe (benchmarks/sync_check.py); 0 synchronisations is the promise of train.make_step kept.
    import sync_check

    return records + [{**record, "device": label} for record in sync_check.check_recipes(device=device)]


# --- 3. The chapters, cut short -----------------------------------------------------------------------

def glued(nb, name: str):
    """The value a notebook glued under ``name`` (myst-nb stores it as a display output with its name)."""
    import ast

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook", {})
            if record.get("name") == name:  # with display=False the mime types carry papermill's prefix
                text = out["data"].get(record.get("mime_prefix", "") + "text/plain", out["data"].get("text/plain", ""))
                try:
                    return ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    return text
    return None


def chapter_env(checkpoints: str, epochs: int) -> dict:
    """The environment of the chapters' kernels: the gpu profile, cut; fresh checkpoints; the usual data folder."""
    return {"COURSE_PROFILE": "gpu", "COURSE_OVERRIDES": overrides(epochs), "COURSE_CHECKPOINTS": checkpoints,
            "COURSE_DATA": str(config.data_dir()), "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}


def run_chapters(epochs: int, timeout: int, label: str) -> tuple[list[dict], list[str]]:
    """Execute every chapter in order, in the environment of ``chapter_env``; return (records, failures)."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as checkpoints:
        os.environ.update(chapter_env(checkpoints, epochs))  # the kernels inherit it
        try:
            return _execute_all(epochs, timeout, label)
        finally:
            os.environ.clear()
            os.environ.update(saved)  # the benchmarks after it run as they would alone


def _execute_all(epochs: int, timeout: int, label: str) -> tuple[list[dict], list[str]]:
    import nbformat
    from nbclient import NotebookClient

    records, failures = [], []
    estimate = budget.chapter_budget("A100", cut_profile(epochs), setup_s=KERNEL_START_S, results="/nonexistent")
    notes = f"COURSE_PROFILE=gpu, COURSE_OVERRIDES={overrides(epochs)}"
    for chapter in budget.CHAPTERS:
        path = NOTEBOOKS / f"{chapter}.ipynb"
        nb = nbformat.read(path, as_version=4)
        print(f"== {chapter} (cut: about {estimate.minutes()[chapter]:.1f} min on an A100 by the budget)", flush=True)
        start = time.perf_counter()
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except Exception as error:  # one broken chapter must not hide the others' figures
            failures.append(f"{chapter}: {type(error).__name__}: {str(error).strip().splitlines()[-1][:300]}")
            print(f"   FAILED: {failures[-1]}", flush=True)
            continue
        seconds = time.perf_counter() - start
        print(f"   {seconds:.0f} s", flush=True)
        records.append({"name": f"{chapter} executed, cut short", "value": round(seconds, 1), "unit": "s",
                        "device": label, "notes": notes})
        if chapter == "04_resnet18_cifar10":
            records += chapter4_figures(nb, label, notes)
    return records, failures


def chapter4_figures(nb, label: str, notes: str) -> list[dict]:
    records = []
    for key, name, unit, scale in [("ch4_expected_minutes", "chapter 4: expected training time it printed", "min", 1),
                                   ("ch4_train_minutes", "chapter 4: measured training time", "min", 1),
                                   ("ch4_images_per_s", "chapter 4: training images/s", "images/s", 1),
                                   ("ch4_knn_start", "chapter 4: kNN accuracy before training", "%", 100),
                                   ("ch4_knn_end", "chapter 4: kNN accuracy after training", "%", 100)]:
        value = glued(nb, key)
        if isinstance(value, (int, float)):
            records.append({"name": name, "value": round(scale * value, 3), "unit": unit, "device": label,
                            "notes": notes})
    return records


# --- 4. The budget at the measured rate --------------------------------------------------------------

def budget_at_measured_rate(name: str, records: list[dict], results: Path,
                            precision: str | None = None) -> tuple[budget.Budget, list[dict]]:
    """The full gpu profile's budget on this GPU: read back from ``results`` for a T4, L4 or A100, else built from
    the rate just measured (in ``precision``, default this GPU's); and its records (minutes per chapter)."""
    key = budget.device_key(name)
    if key is not None:
        plan = budget.chapter_budget(key, config.PROFILES["gpu"], results=results)
    else:
        value = {r["name"]: r["value"] for r in records}
        precision = precision or str(config.amp_dtype("cuda")).replace("torch.", "")
        rate = budget.Rate(name, value[budget.TFLOPS_RECORD], precision, value[budget.FLOOR_RECORD],
                           f"measured by make gpu-check on a {name}", measured=True)
        plan = budget.chapter_budget(name, config.PROFILES["gpu"], rate=rate)
    label = f"cuda ({name})"
    return plan, [{"name": f"budget of {chapter}, gpu profile, at the measured rate", "value": round(minutes, 1),
                   "unit": "min", "device": label, "notes": f"{plan.rate.tflops:g} TFLOP/s sustained, "
                   f"{plan.rate.step_floor_s * 1e3:.1f} ms/step floor (course_utils.budget)"}
                  for chapter, minutes in plan.minutes().items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="CIFAR-10 epochs of chapter 4's schedule (default 1)")
    parser.add_argument("--quick", action="store_true", help="shorter benchmark runs")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per notebook cell")
    args = parser.parse_args(argv)
    print(f"gpu-check: about {expected_minutes('A100', args.epochs, args.quick):.0f} min on an A100-class GPU by the "
          f"course's budget (the 7 chapters cut short, the rates, the benchmarks); slower GPUs take longer", flush=True)
    if not torch.cuda.is_available():
        print(why_no_gpu(), file=sys.stderr)
        return 2
    import run_all

    name = torch.cuda.get_device_name(0)
    label = f"cuda ({name})"
    print(f"== the rates of the budget on {name}", flush=True)
    rates = measure_rates(label)
    run_all.save("gpu-check", rates, args.quick)  # saved at once: the budget reads them from results.json
    chapters, failures = run_chapters(args.epochs, args.timeout, label)
    plan, planned = budget_at_measured_rate(name, rates, run_all.RESULTS)
    run_all.save("gpu-check", rates + chapters + planned, args.quick)
    print(plan.table(), flush=True)
    status = run_all.main(["--only", "augment,train"] + (["--quick"] if args.quick else []))
    if failures:
        print("gpu-check: these chapters failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
