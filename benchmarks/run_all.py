"""Run the benchmarks and record their figures in benchmarks/results.json (the book's results page reads it).

    python benchmarks/run_all.py [--quick] [--only augment,train,mnist,distributed]

Each suite's records replace that suite's earlier records for the same device (any CPU; a GPU by its name), so a
CPU run and runs on several GPUs (made on other machines) live side by side in one file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results.json"


def suites():
    import bench_augment
    import bench_distributed
    import bench_mnist
    import bench_train

    return {"augment": bench_augment.run, "train": bench_train.run, "mnist": bench_mnist.run,
            "distributed": bench_distributed.run}


def machine() -> dict:
    cuda = torch.cuda.is_available()
    return {"device_type": "cuda" if cuda else "cpu",
            "device": torch.cuda.get_device_name(0) if cuda else f"{platform.processor() or platform.machine()}",
            "cpu_cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (figures are noisier)")
    parser.add_argument("--only", default="", help="comma-separated suites: augment, train, mnist, distributed")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    available = suites()
    chosen = [s for s in args.only.split(",") if s] or list(available)
    unknown = set(chosen) - set(available)
    if unknown:
        parser.error(f"unknown suite(s) {sorted(unknown)}; choose from {sorted(available)}")
    for name in chosen:
        print(f"== {name} {'(quick)' if args.quick else ''}", flush=True)
        save(name, available[name](quick=args.quick), args.quick, args.output)
    print(f"wrote {args.output}")
    return 0


def save(suite: str, records: list[dict], quick: bool = False, output: Path = RESULTS) -> None:
    """Print ``records`` and merge them into ``output``, replacing that suite's earlier run on this device (a CPU:
    any CPU; a GPU: one of the same name, so that a T4's figures and an A100's both stay)."""
    for r in records:
        print(f"  {r['name']:60s} {r['value']:>12,.2f} {r['unit']:10s} {r['device']}")
    run = {"suite": suite, "quick": quick, **machine(), "records": records}
    # Read the file again just before writing: another run may have added its suites meanwhile.
    results = json.loads(output.read_text()) if output.exists() else {"runs": []}
    def same_device(r):
        return r["device_type"] == run["device_type"] and (run["device_type"] == "cpu" or r["device"] == run["device"])

    results["runs"] = [r for r in results["runs"] if not (r["suite"] == suite and same_device(r))] + [run]
    output.write_text(json.dumps(results, indent=1) + "\n")  # after every suite: nothing is lost


if __name__ == "__main__":
    sys.exit(main())
