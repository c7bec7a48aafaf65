"""How long each chapter takes to run, for its header and the instructors' guide: measured, or estimated and said so.

    times = chapter_times("04_resnet18_cifar10")
    times["cpu"]   # "14 minutes, measured in the book build of 2026-12-10 on 2 CPU cores"  (or "not measured yet")
    times["gpu"]   # "about 111 minutes, estimated for a free Colab T4"
    glue_all()     # the book: ch1_time_cpu, ch1_time_gpu, ..., ch7_time_gpu (book/instructors.md runs it)
    python -m course_utils.chapter_times record [--cache _build/.jupyter_cache]   # after a cpu book build

Where they show: each chapter prints its own two figures in the cell after its setup (for whoever runs it:
Colab, Jupyter); the book's chapter headers and the instructors' guide paste them from the guide's page,
which computes them with ``glue_all`` (``{glue:text}`../book/instructors.md::ch4_time_cpu:s```: a paste from
another page needs its format, ``:s``). Executing that page takes seconds, so ``record`` drops it from the
book's execution cache, and the next build (with ``--all``, so that Sphinx rewrites the chapters' pages too;
``make chapter-times`` runs both) shows the new figures without executing any chapter again.

``cpu``: the execution time of the whole chapter (labs included) in the last ``cpu`` book build, which
jupyter-cache records for every notebook it executes; ``record`` copies it into ``chapter_times.json`` (shipped
with the package, so a Colab student sees it too), with the build's date and machine. It takes a chapter only
when the cached run is of the notebook as it is now and printed the ``cpu`` profile's banner without
COURSE_OVERRIDES (the cache keys on the code, not on the profile: a smoke build must never pass for a cpu one).
``gpu``: the budget of ``course_utils.budget`` for a free Colab T4 in the ``gpu`` profile, at the sustained rate
``make gpu-check`` measured on a T4 when it has (benchmarks/results.json, in a clone), else at the sourced
estimate; an estimate either way, since no GPU has run the full chapters, and labelled as one.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

TIMES = Path(__file__).with_name("chapter_times.json")
NOT_MEASURED = "not measured yet"  # no cpu book build has recorded it
SHOWN_ON = "book/instructors.md"  # the page that glues every chapter's figures for the book (``glue_all``)
_BANNER = re.compile(r"profile: (?P<profile>\w+) \(.*?\| device: (?P<device>\w+) \((?P<detail>[^)]*)\)")


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    minutes = seconds / 60
    if minutes >= 120:  # a free Colab session: minutes up to it, hours beyond
        return f"{minutes / 60:.1f} hours"
    return f"{round(minutes)} minute" + ("s" if round(minutes) != 1 else "")


def read_times(path: str | Path = TIMES) -> dict:
    """The recorded measurements ({"cpu": {"date", "machine", "chapters": {name: seconds}}}); empty if absent."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def chapter_times(chapter: str, *, path: str | Path = TIMES, results=None) -> dict[str, str]:
    """{"cpu": ..., "gpu": ...}: how long ``chapter`` (a notebook's name, e.g. "02_simclr_mnist") runs in each
    profile, as one phrase each, saying how it was obtained. Never fails for a missing measurement."""
    from .budget import CHAPTERS, chapter_budget

    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}: one of {', '.join(CHAPTERS)}")
    cpu = read_times(path).get("cpu", {})
    seconds = cpu.get("chapters", {}).get(chapter)
    measured = (f"{_minutes(seconds)}, measured in the book build of {cpu.get('date', '?')} on "
                f"{cpu.get('machine', 'a CPU')}") if isinstance(seconds, (int, float)) else NOT_MEASURED
    plan = chapter_budget("T4", results=results)
    how = (f"estimated for a free Colab T4 at the rate make gpu-check measured on one ({plan.rate.tflops:.1f} TFLOP/s)"
           if plan.measured else "estimated for a free Colab T4")
    return {"cpu": measured, "gpu": f"about {_minutes(60 * plan.minutes()[chapter])}, {how}"}


def glue_all(**kwargs) -> dict[str, str]:
    """Glue ``ch<N>_time_cpu`` and ``ch<N>_time_gpu`` of every chapter (N = 1..7) for the book; return them."""
    from .budget import CHAPTERS
    from .report import glue

    glued = {}
    for n, chapter in enumerate(CHAPTERS, start=1):
        for profile, text in chapter_times(chapter, **kwargs).items():
            glued[f"ch{n}_time_{profile}"] = glue(f"ch{n}_time_{profile}", text)
    return glued


# --- Recording a book build's times ------------------------------------------------------------------

def _banner(nb) -> dict | None:
    """The profile, device and detail of the banner the chapter's setup cell printed; None if none."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            match = _BANNER.search(text if isinstance(text, str) else "".join(text))
            if match:
                return {**match.groupdict(), "overridden": "sizes changed by" in text}
    return None


def _profile_cache(cache_dir: Path) -> Path:
    """The newest ``cpu-*`` folder of ``cache_dir``, where ``make book`` keeps the cpu profile's executions (one
    folder per profile and sizes: course_utils.instructor.book_config); else ``cache_dir`` itself if it is a cache."""
    builds = sorted(cache_dir.glob("cpu-*/global.db"), key=lambda db: db.stat().st_mtime)
    if builds:
        return builds[-1].parent
    if (cache_dir / "global.db").exists():
        return cache_dir
    raise FileNotFoundError(f"no cpu book build's cache in {cache_dir}: run `COURSE_PROFILE=cpu make book` first")


def record(cache_dir: str | Path = "_build/.jupyter_cache", notebooks: str | Path = "notebooks",
           out: str | Path = TIMES) -> dict:
    """Copy the execution times of the ``cpu`` book build from jupyter-cache into ``out``; return what was written.
    ``cache_dir``: the build's cache (its newest ``cpu-*`` folder when it holds one per profile, as ``make book``'s).

    A chapter is taken when the cache holds a run of the notebook as it is now whose banner says profile cpu on a
    cpu device without COURSE_OVERRIDES; the others keep their earlier entry and are reported as skipped.
    """
    import nbformat
    from jupyter_cache import get_cache

    from .budget import CHAPTERS

    cache = get_cache(str(_profile_cache(Path(cache_dir))))
    times = read_times(out)
    cpu = times.setdefault("cpu", {})
    chapters = cpu.setdefault("chapters", {})
    taken, skipped, dates, machines = [], [], [], set()
    for chapter in CHAPTERS:
        nb = nbformat.read(Path(notebooks) / f"{chapter}.ipynb", as_version=4)
        try:
            found = cache.match_cache_notebook(nb)
        except KeyError:
            skipped.append(f"{chapter}: not in the cache as it is now (build the book first)")
            continue
        banner = _banner(cache.get_cache_bundle(found.pk).nb)
        if not banner or banner["profile"] != "cpu" or banner["device"] != "cpu" or banner["overridden"]:
            skipped.append(f"{chapter}: the cached run is not the cpu profile's on a CPU ({banner})")
            continue
        seconds = found.data.get("execution_seconds")
        if not isinstance(seconds, (int, float)):
            skipped.append(f"{chapter}: jupyter-cache has no execution time for it")
            continue
        chapters[chapter] = round(float(seconds), 1)
        dates.append(found.created.date())
        cores = re.match(r"(\d+) cores", banner["detail"])
        machines.add(f"{cores.group(1)} CPU cores" if cores else banner["detail"])
        taken.append(chapter)
    if taken:
        cpu["date"] = max(dates).isoformat()
        cpu["machine"] = " / ".join(sorted(machines))
        times["about"] = ("Execution seconds of each chapter (labs included) in the last cpu book build, copied from "
                          "jupyter-cache by `python -m course_utils.chapter_times record` on "
                          f"{datetime.date.today().isoformat()}; read by course_utils.chapter_times.")
        Path(out).write_text(json.dumps(times, indent=1) + "\n")
        for found in cache.list_cache_records():  # the page that glues the figures executes again, in seconds
            if Path(found.uri).as_posix().endswith(SHOWN_ON):
                cache.remove_cache(found.pk)
    return {"taken": taken, "skipped": skipped, "times": times}


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_utils.chapter_times",
                                     description="Record the chapters' run times of the last cpu book build.")
    parser.add_argument("command", choices=["record", "show"])
    parser.add_argument("--cache", default="_build/.jupyter_cache", help="the book build's jupyter-cache")
    parser.add_argument("--notebooks", default="notebooks")
    parser.add_argument("--out", default=str(TIMES))
    args = parser.parse_args(argv)
    if args.command == "record":
        done = record(args.cache, args.notebooks, args.out)
        for line in done["skipped"]:
            print("skipped", line)
        print(f"recorded {len(done['taken'])} of 7 chapters in {args.out}")
        if not done["taken"]:
            return 1
        print(f"now rebuild the book's pages (make chapter-times does): only {SHOWN_ON} executes again")
    from .budget import CHAPTERS

    for chapter in CHAPTERS:
        times = chapter_times(chapter, path=args.out)
        print(f"{chapter:22s} cpu: {times['cpu']}\n{'':22s} gpu: {times['gpu']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
