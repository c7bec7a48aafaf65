"""How long each page of a book build took to execute: the figures of the README's `make book` line.

    python benchmarks/book_times.py CLONE                 # the last build in CLONE, per page, in minutes
    python benchmarks/book_times.py OLD_CLONE NEW_CLONE   # two builds side by side, and the new/old ratio

``make book`` executes every chapter once and keeps the result in its jupyter-cache
(``_build/.jupyter_cache/<profile>-<sizes>/``, see ``course_utils.book_config``), which records how long each
notebook took (``execution_seconds``). This script reads those records; it runs nothing. Measure from a fresh
clone with a fresh ``COURSE_HOME`` (e.g. ``COURSE_HOME=$PWD/_build/home make book``): with the default home, a
second build finds the first one's checkpoints and saved lab runs and trains nothing, and its times mean nothing.
A build over several cache folders (profiles) reports the newest folder unless ``--cache`` names one; a build
from before the folders per profile (its cache is ``_build/.jupyter_cache`` itself) is read too.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path


def page_seconds(root: str | Path, cache: str | None = None) -> tuple[str, dict[str, float]]:
    """(cache folder name, {page path relative to ``root``: seconds}) of the newest (or the named) cache folder."""
    root = Path(root).resolve()
    folder = root / "_build" / ".jupyter_cache"
    # a folder per profile since #27; one cache at the root before (a build of 75c1c52, the baseline of #29)
    caches = sorted([*folder.glob("*/global.db"), *folder.glob("global.db")], key=lambda p: p.stat().st_mtime)
    if cache:
        caches = [p for p in caches if p.parent.name == cache]
    if not caches:
        raise SystemExit(f"no executed book in {root}/_build/.jupyter_cache{f'/{cache}' if cache else ''}: run "
                         "`make book` there first.")
    db = caches[-1]
    seconds = {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        for uri, data in con.execute("SELECT uri, data FROM nbcache ORDER BY created"):
            took = json.loads(data or "{}").get("execution_seconds")
            if took is not None:  # the newest record of a page wins
                path = Path(uri)
                seconds[str(path.relative_to(root)) if path.is_relative_to(root) else path.name] = took
    return db.parent.name, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clones", nargs="+", help="one build, or two (old and new) to compare")
    parser.add_argument("--cache", help="the cache folder to read, e.g. cpu-1a2b3c4d5e6f (default: the newest)")
    args = parser.parse_args(argv)
    if len(args.clones) > 2:
        parser.error("give one clone, or two to compare")
    builds = [page_seconds(clone, args.cache) for clone in args.clones]
    pages = sorted({page for _, seconds in builds for page in seconds})
    print("| page | " + " | ".join(f"{clone} ({cache}), min" for clone, (cache, _) in zip(args.clones, builds)) + " |")
    print("|---|" + "---:|" * len(builds))
    for page in pages:
        cells = [f"{seconds[page] / 60:.1f}" if page in seconds else "—" for _, seconds in builds]
        print(f"| {page} | " + " | ".join(cells) + " |")
    totals = [sum(seconds.values()) / 60 for _, seconds in builds]
    print("| **all pages** | " + " | ".join(f"**{t:.1f}**" for t in totals) + " |")
    if len(totals) == 2 and totals[0]:
        print(f"\nnew / old: {totals[1] / totals[0]:.2f}; the longest page of the new build: "
              f"{max(builds[1][1].values()) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
