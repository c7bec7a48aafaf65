"""One command for a machine with a CUDA GPU: chapter 4 in the gpu profile cut to a few epochs, then the
training and augmentation benchmarks, all merged into benchmarks/results.json.

    make gpu-check                       # or: python benchmarks/gpu_check.py [--epochs 3] [--quick]

1. Executes notebooks/04_resnet18_cifar10.ipynb in a fresh kernel with COURSE_PROFILE=gpu and
   COURSE_OVERRIDES cutting the Colab schedule to ``--epochs`` epochs of CIFAR-10 (the offline stand-in when
   CIFAR-10 cannot be downloaded), in a temporary COURSE_HOME; records its wall time, the expected time it
   printed, and the kNN monitor before and after (read from the values the chapter glued).
2. Runs benchmarks/run_all.py's "augment" and "train" suites: AMP on and off, channels_last on and off,
   torch.compile on and off, the augmentation's share of a step, peak memory, an epoch against its compute
   bound.
Without a CUDA GPU it says so and exits with status 2: on a CPU, `make test` runs the same code paths
(bf16, fp16 with a GradScaler, channels_last, torch.compile) in its tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHAPTER = ROOT / "notebooks" / "04_resnet18_cifar10.ipynb"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))


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


def run_chapter4(epochs: int, timeout: int) -> list[dict]:
    import nbformat
    from nbclient import NotebookClient

    from course_utils.config import PROFILES

    steps = epochs * (50_000 // PROFILES["gpu"].cifar_batch_size)  # CIFAR-10 has 50,000 training images
    nb = nbformat.read(CHAPTER, as_version=4)
    with tempfile.TemporaryDirectory() as home:
        env = {"COURSE_PROFILE": "gpu", "COURSE_OVERRIDES": f"cifar_colab_steps={steps},knn_evals=2",
               "COURSE_HOME": os.environ.get("COURSE_HOME", home), "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
        os.environ.update(env)
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(CHAPTER.parent)}}).execute()
        seconds = time.perf_counter() - start
    label = f"cuda ({torch.cuda.get_device_name(0)})"
    notes = f"COURSE_PROFILE=gpu, {steps:,} steps (about {epochs} CIFAR-10 epochs at batch 512)"
    records = [{"name": "chapter 4 executed end to end", "value": round(seconds, 1), "unit": "s", "device": label,
                "notes": notes}]
    for key, name, unit, scale in [("ch4_expected_minutes", "chapter 4: expected training time it printed", "min", 1),
                                   ("ch4_train_minutes", "chapter 4: measured training time", "min", 1),
                                   ("ch4_knn_start", "chapter 4: kNN accuracy before training", "%", 100),
                                   ("ch4_knn_end", "chapter 4: kNN accuracy after training", "%", 100)]:
        value = glued(nb, key)
        if isinstance(value, (int, float)):
            records.append({"name": name, "value": round(scale * value, 3), "unit": unit, "device": label,
                            "notes": notes})
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="CIFAR-10 epochs of chapter 4's schedule (default 3)")
    parser.add_argument("--quick", action="store_true", help="shorter benchmark runs")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per notebook cell")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here (torch.cuda.is_available() is False). `make gpu-check` measures the GPU path and "
              "needs one. On a CPU, `make test` runs the same code paths (bf16, fp16 with a GradScaler, "
              "channels_last, torch.compile) in its tests.", file=sys.stderr)
        return 2
    import run_all

    print(f"== chapter 4 on {torch.cuda.get_device_name(0)}, gpu profile, {args.epochs} epochs", flush=True)
    run_all.save("gpu-check", run_chapter4(args.epochs, args.timeout), args.quick)
    return run_all.main(["--only", "augment,train"] + (["--quick"] if args.quick else []))


if __name__ == "__main__":
    sys.exit(main())
