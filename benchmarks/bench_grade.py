"""Grading a class: the wall time of ``python -m course_utils.instructor.grade`` on 200 generated submissions,
of one chapter, with --jobs 1 and then --jobs 2, back to back, on the same machine.

    python benchmarks/bench_grade.py                    # 200 submissions of chapter 1 (about an hour on 2 cores)
    python benchmarks/bench_grade.py --count 10         # a check that it works (a few minutes)
    python benchmarks/bench_grade.py --chapter 03 --jobs 1 2 4

The submissions are the chapter's student version (course_utils.instructor.labs), whole, as a student hands it in,
in four kinds taken in turn: correct (each exercise stub replaced by the reference's solution), wrong (each
exercise returns None), stub (untouched) and crashing (the solutions, and a cell that raises right after
the setup cell, so the later cells run into missing names as well). They are graded in the smoke profile,
the grader's default, with the default isolation and limits. Before the timed runs, one submission is graded
once so that the shared data folder holds the stand-in data sets (made once per machine, not per run).

Records (benchmarks/results.json, suite "grade", through run_all.save): the wall time of each run, the time
per 100 students, and the mean time of one notebook as the gradebook's seconds column reports it (from the
start of its kernel to the end of its checks, in its worker). Chapter 1 is the default: it is the quickest
chapter to run in full, so the figures show the grader's own cost (a kernel, torch imported, the checks) as
much as the chapter's. Measure on a quiet machine: every other process on it takes cores from the kernels.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from course_utils.instructor import labs  # noqa: E402

KINDS = ("correct", "wrong", "stub", "crashing")


def _defined(source: str) -> str | None:
    found = re.search(r"^(?:def|class) (\w+)\b", source, re.MULTILINE)
    return found.group(1) if found else None


def make_submissions(chapter: Path, count: int, folder: Path) -> Counter:
    """Write ``count`` submissions of ``chapter`` into ``folder`` (the flat layout); return how many of each kind."""
    reference = nbformat.read(chapter, as_version=4)
    solutions = {_defined(c.source): c.source for c in reference.cells
                 if c.cell_type == "code" and "solution" in labs.tags(c) and _defined(c.source)}
    student, _ = labs.student_version(nbformat.read(chapter, as_version=4), chapter)
    setup = next(i for i, c in enumerate(student.cells) if "setup" in labs.tags(c))
    folder.mkdir(parents=True, exist_ok=True)
    kinds = Counter()
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        nb = copy.deepcopy(student)
        for cell in nb.cells:
            if "exercise-stub" in labs.tags(cell):
                name = _defined(cell.source)
                if kind in ("correct", "crashing"):
                    cell.source = solutions[name]
                elif kind == "wrong":
                    cell.source = f"def {name}(*args, **kwargs):\n    return None"
        if kind == "crashing":
            nb.cells.insert(setup + 1, nbformat.v4.new_code_cell('raise RuntimeError("a bug in my experiment")'))
        nbformat.write(nb, folder / f"student{i:03d}_{chapter.name}")
        kinds[kind] += 1
    return kinds


def grade_folder(submissions: Path, out: Path, jobs: int, reference: Path) -> tuple[float, list[dict]]:
    """Grade ``submissions`` with the command line; return (wall seconds, the gradebook's rows)."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course_utils.instructor.grade", str(submissions),
                    "--out", str(out / "grades.csv"), "--jobs", str(jobs), "--reference", str(reference)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        return seconds, list(csv.DictReader(f))


def run(count: int = 200, chapter: str = "01", jobs=(1, 2), keep: Path | None = None) -> list[dict]:
    reference = ROOT / "notebooks"
    path = next(reference.glob(f"{chapter}_*.ipynb"))
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="bench-grade-"))
    try:
        kinds = make_submissions(path, count, work / "submissions")
        warm = work / "warm-up"
        warm.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "submissions" / f"student000_{path.name}", warm)
        grade_folder(warm, work / "warm-up-out", 1, reference)  # the stand-in data sets, made once
        mix = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        records = []
        for n in jobs:
            seconds, rows = grade_folder(work / "submissions", work / f"jobs{n}", n, reference)
            statuses = Counter(row[f"{path.stem}/status"].split(" (")[0] for row in rows)
            per_notebook = sum(float(row[f"{path.stem}/seconds"]) for row in rows) / len(rows)
            notes = (f"{count} submissions of {path.stem} ({mix}), smoke profile, default isolation; gradebook: "
                     + ", ".join(f"{v} {k}" for k, v in statuses.items()) + f"; {os.cpu_count()} CPU cores")
            print(f"--jobs {n}: {seconds:.0f} s for {count} notebooks", flush=True)
            records += [
                {"name": f"grading {count} submissions, --jobs {n}", "value": round(seconds, 1), "unit": "s",
                 "device": "cpu", "notes": notes},
                {"name": f"grading time per 100 students, --jobs {n}", "value": round(seconds / count * 100 / 60, 2),
                 "unit": "min", "device": "cpu", "notes": f"{path.stem}; the wall time above, scaled"},
                {"name": f"time of one notebook, --jobs {n}", "value": round(per_notebook, 2), "unit": "s",
                 "device": "cpu", "notes": "mean of the gradebook's seconds: kernel start to the end of its checks"},
            ]
        return records
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    import run_all

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200, help="submissions to generate (200)")
    parser.add_argument("--chapter", default="01", help="the chapter's number (01)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="the --jobs values, in order (1 2)")
    parser.add_argument("--keep", type=Path, help="keep the submissions and gradebooks in this folder")
    parser.add_argument("--output", type=Path, default=run_all.RESULTS)
    args = parser.parse_args(argv)
    if args.count < 1 or min(args.jobs) < 1:
        parser.error("--count and --jobs must be at least 1")
    records = run(args.count, args.chapter, tuple(args.jobs), args.keep)
    run_all.save("grade", records, quick=args.count < 200, output=args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
