"""Grade a class's submitted chapter notebooks with one command: a gradebook as CSV (and HTML).

    python -m course_utils.instructor.grade SUBMISSIONS/ --out grades.csv [--html grades.html] [--jobs N]
                    [--resume] [--timeout 600] [--cell-timeout S] [--reference notebooks/]
                    [--memory 4G] [--max-processes 256] [--max-file-size 1G]
                    [--max-folder-size 256M] [--container IMAGE [--runtime docker|podman]]

SUBMISSIONS/ may mix the layouts of the usual LMS exports and plain folders (submissions.py, ``LAYOUTS``); a
notebook whose chapter or student cannot be told from its name is SKIPPED: listed in the report and in the
exit message, while everything else is graded.

Exit codes: 0 every notebook was graded (whatever the grades), 1 something was skipped, 2 the grader could not
run (no such folder, no notebooks at all, no reference chapters, a bad option, an earlier run's results that
--resume was not asked to keep); 130 interrupted (Ctrl-C).

What is graded, and why the notebook's own output is never trusted: grade_one.py. In short, each notebook runs
in a fresh, isolated kernel, then the grader runs the reference chapter's checks itself, in the same kernel,
on the student's functions, and flags a check whose answer the submission used instead of writing it.

Class-sized runs (this module): --jobs N notebooks at once (default: the number of cores), each in its own
worker process. Each result is appended to a journal beside the CSV (grades.csv -> grades.jsonl, one JSON line
per submission, flushed to disk) as soon as it is known; the CSV and HTML are written from it at the end
(gradebook.py). After an interruption, --resume grades only the notebooks that have no result yet (or changed
since).

The default isolation (sandbox.py) stops accidents and the easy tricks: runaway memory, processes, files and
loops, daemons, secrets in the environment, links out of a folder, shadowing modules. It does not stop a
notebook written to attack the grading machine from reading or changing the instructor's files, using the
network or disturbing the other kernels while it runs: it runs as the instructor. ``--container IMAGE``
(docker or podman; examples/grader.Dockerfile) does. The instructors' guide has the table.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from course_utils.instructor import sandbox
from course_utils.instructor.grade_one import (CHECKS_TIMEOUT, KERNEL_START_TIMEOUT, PACKAGE_ROOT, Options, first_line,
                                               grade_notebook, read_notebook)
from course_utils.instructor.gradebook import STOPPED, Journal, Result, gradebook, write_csv, write_html
from course_utils.instructor.submissions import (LAYOUTS, Skipped, Submission, find_submissions, reference_chapters,
                                                 require_jupyter)


@dataclass
class Report:
    """What ``grade`` gives: the gradebook, what was skipped, and what tampered with the grading."""
    columns: list[str]
    rows: list[dict]
    skipped: list[Skipped] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    graded: int = 0   # notebooks graded by this run
    kept: int = 0     # results kept from an earlier run (resume)


def default_jobs() -> int:
    """The number of cores this process may use (at least 1)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _course_data_dir() -> str | None:
    """The course's data folder as the grader's own environment resolves it (course_utils.config.data_dir):
    the kernels share it, so that the stand-in data sets are made once, not once per notebook."""
    if os.environ.get("COURSE_DATA"):
        return str(Path(os.environ["COURSE_DATA"]).expanduser().resolve())
    run = subprocess.run([sys.executable, "-c", "from course_utils.config import data_dir; print(data_dir())"],
                         cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=300)
    lines = run.stdout.strip().splitlines()
    return str(Path(lines[-1]).resolve()) if run.returncode == 0 and lines else None


def _grade_job(job: tuple[Submission, Options]) -> Result:
    """What a worker process runs (sandbox.run_in_workers): one notebook, and everything below it killed after."""
    submission, options = job
    try:
        return grade_notebook(submission, options, sweep=True)
    except Exception as error:  # a bug of the grader's, not the notebook's: say so, and grade the others
        return Result(STOPPED, notes=[f"the grader failed: {type(error).__name__}: {first_line(error)}"])


def _record(kind: str, submission: Submission, root: Path, digest: str, result: Result | None = None) -> dict:
    return {"type": kind, "time": datetime.datetime.now().isoformat(timespec="seconds"),
            "student": submission.student, "chapter": submission.chapter.name,
            "notebook": str(submission.path.relative_to(root)), "sha256": digest,
            **(result.record() if result else {})}


def grade(submissions: str | Path, reference: str | Path, timeout: float = 600, cell_timeout: float | None = None,
          *, jobs: int | None = None, limits: sandbox.Limits | None = None, container: str | None = None,
          runtime: str | None = None, journal: str | Path | None = None, resume: bool = False,
          verbose: bool = True) -> Report:
    """Grade every notebook in ``submissions`` against the chapters in ``reference``, ``jobs`` at a time.

    ``journal``: the JSON-lines file where each result is appended as soon as it is known. With ``resume``, the
    results already there (for notebooks unchanged since: same SHA-256) are kept and only the others graded;
    without it, a journal that holds results is an error, so that no result is lost by accident.
    """
    jobs = default_jobs() if jobs is None else jobs
    if not timeout > 0 or (cell_timeout is not None and not cell_timeout > 0):
        raise ValueError(f"timeouts must be positive seconds; got {timeout} and {cell_timeout}.")
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1; got {jobs}.")
    require_jupyter()
    chapters = reference_chapters(reference)
    root = Path(submissions).resolve()
    found, skipped = find_submissions(root, chapters)
    book = Journal(journal) if journal is not None else None
    earlier = [r for r in book.records() if r.get("type") == "result"] if book else []
    if earlier and not resume:
        raise FileExistsError(f"{book.path} holds {len(earlier)} results of an earlier run: pass --resume to keep "
                              "them and grade only what is missing, or delete it to grade everything again.")
    runtime = sandbox.find_runtime(runtime) if container else None

    digests = {s: hashlib.sha256(s.path.read_bytes()).hexdigest() for s in found}
    latest = {(r.get("student"), r.get("chapter")): r for r in earlier}
    results, todo = {}, []
    for s in found:
        record = latest.get((s.student, s.chapter.name))
        if record and record.get("sha256") == digests[s]:
            results[s.student, s.chapter.name] = Result.from_record(record)
        else:
            todo.append(s)
    if verbose and book and resume:
        starts = {(r.get("student"), r.get("chapter")) for r in book.records() if r.get("type") == "start"}
        stopped = sorted(starts - set(latest))
        print(f"Resuming: {len(results)} results kept from {book.path.name}, {len(todo)} notebooks to grade"
              + (f"; these were being graded when a run stopped: {', '.join(f'{s} {c}' for s, c in stopped)}"
                 if stopped else ""), flush=True)

    incidents, in_flight, suspects = [], [], set()
    readable = [s for s in todo if read_notebook(s.path)[0] is not None]
    options = Options(timeout, cell_timeout, limits or sandbox.Limits(),
                      max(1, default_jobs() // min(jobs, max(1, len(readable)))), container, runtime,
                      _course_data_dir() if readable else None)

    def watch() -> None:  # has anything else written to the journal since the grader last did?
        if book is not None and book.verify():
            names = ", ".join(f"{s.student} {s.chapter.name}" for s in in_flight) or "no notebook"
            incidents.append(f"{book.path.name} was changed by something other than the grader while these were "
                             f"being graded: {names}. The grader wrote back what it had written.")
            suspects.update(in_flight)

    def log(record: dict) -> None:
        watch()
        if book is not None:
            book.append(record)

    def started(job) -> None:
        in_flight.append(job[0])
        log(_record("start", job[0], root, digests[job[0]]))

    def finished(job, result: Result) -> None:
        s = job[0]
        watch()
        if s in suspects:
            result.notes.append("the journal was changed while this notebook was being graded (restored)")
        log(_record("result", s, root, digests[s], result))
        in_flight.remove(s)
        results[s.student, s.chapter.name] = result
        if verbose:
            verdicts = ", ".join(f"{check} {verdict}" for check, (verdict, _) in result.checks.items())
            print(f"[{len(results)}/{len(found)}] {s.student} {s.chapter.name}: {result.status}, "
                  f"{result.seconds:.1f} s; {verdicts}", flush=True)

    def failed(job, why: str, seconds: float) -> None:
        finished(job, Result(STOPPED, seconds, {c.check: ("not run", "") for c in job[0].chapter.checks},
                             [f"{why}: the notebook and everything it started were stopped"]))

    if book is not None:
        log({"type": "run", "time": datetime.datetime.now().isoformat(timespec="seconds"), "jobs": jobs,
             "timeout": timeout, "cell_timeout": cell_timeout, "limits": asdict(options.limits),
             "container": container, "to_grade": len(todo), "kept": len(results)})
    for s in [s for s in todo if s not in readable]:  # no kernel needed to say so
        started((s, None))
        finished((s, None), grade_notebook(s))
    if readable:
        sandbox.become_subreaper(True)
        sandbox.set_dumpable(False)
        options = replace(options, scratch=tempfile.mkdtemp(prefix="grading-"))
        try:
            sandbox.run_in_workers([(s, options) for s in readable], "course_utils.instructor.grade:_grade_job", jobs,
                                   limit=timeout + CHECKS_TIMEOUT + KERNEL_START_TIMEOUT + 120,
                                   started=started, finished=finished, failed=failed)
        finally:
            sandbox.become_subreaper(False)
            sandbox.set_dumpable(True)
            shutil.rmtree(options.scratch, ignore_errors=True)  # a killed worker's kernel folder (its key, the copy)
    if book is not None:  # and a last look: did anything write to the journal after the last result?
        log({"type": "end", "time": datetime.datetime.now().isoformat(timespec="seconds")})
    graded = sorted({s.chapter for s in found}, key=lambda c: c.number)
    columns, rows = gradebook(results, graded)
    return Report(columns, rows, skipped, incidents, graded=len(todo), kept=len(found) - len(todo))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.instructor.grade", description=__doc__.split("\n")[0],
                                     epilog=LAYOUTS.format(chapters="see --reference"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="the folder of submitted notebooks")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"),
                        help="the CSV gradebook (grades.csv); the journal of results goes beside it (grades.jsonl)")
    parser.add_argument("--html", type=Path, help="also write an HTML summary here")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help=f"notebooks graded at once (default: the number of cores, here {default_jobs()})")
    parser.add_argument("--resume", action="store_true",
                        help="keep the results already in the journal; grade only what is missing or changed")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each notebook's cells (600)")
    parser.add_argument("--cell-timeout", type=float, help="seconds for any one cell (default: --timeout)")
    parser.add_argument("--reference", type=Path, help="the chapters (default: notebooks/ of this repository)")
    limits = sandbox.Limits()
    parser.add_argument("--memory", default="4G", help="memory of each kernel process (4G)")
    parser.add_argument("--max-processes", type=int, default=limits.processes,
                        help=f"processes and threads a kernel may start ({limits.processes})")
    parser.add_argument("--max-file-size", default="1G", help="the largest file a kernel may write (1G)")
    parser.add_argument("--max-folder-size", default="256M", help="the most of a student's folder copied (256M)")
    parser.add_argument("--container", metavar="IMAGE",
                        help="run each kernel in this docker/podman image, with no network (see the guide)")
    parser.add_argument("--runtime", help="the container runtime: docker, podman or a path (default: the first found)")
    args = parser.parse_args(argv)

    try:
        reference = args.reference
        if reference is None:
            candidates = [Path.cwd() / "notebooks", Path(PACKAGE_ROOT) / "notebooks"]
            reference = next((c for c in candidates if c.is_dir()), None)
            if reference is None:
                raise FileNotFoundError("No notebooks/ folder here or next to course_utils: pass the course's "
                                        "chapters with --reference PATH/notebooks.")
        journal = args.out.with_suffix(".jsonl")
        if journal == args.out:
            raise ValueError(f"--out {args.out} would overwrite the journal of results: name a .csv file.")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        limits = replace(limits, memory=sandbox.parse_size(args.memory), processes=args.max_processes,
                         file_size=sandbox.parse_size(args.max_file_size),
                         folder_size=sandbox.parse_size(args.max_folder_size))
        report = grade(args.submissions, reference, args.timeout, args.cell_timeout, jobs=args.jobs, limits=limits,
                       container=args.container, runtime=args.runtime, journal=journal, resume=args.resume)
    except KeyboardInterrupt:
        print(f"\nInterrupted: every finished result is in {args.out.with_suffix('.jsonl')}; run the same "
              "command again with --resume to grade the rest.", file=sys.stderr)
        return 130
    except (ImportError, ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_csv(args.out, report.columns, report.rows)
    print(f"Gradebook of {len(report.rows)} students: {args.out} ({report.graded} notebooks graded now"
          + (f", {report.kept} kept from the journal" if report.kept else "") + ")")
    if args.html:
        write_html(args.html, report.columns, report.rows, title=f"Gradebook: {args.submissions.resolve().name}",
                   skipped=report.skipped, incidents=report.incidents)
        print(f"HTML summary: {args.html}")
    for incident in report.incidents:
        print(f"warning: {incident}", file=sys.stderr)
    if report.skipped:
        lines = "\n  ".join(f"{s.path}: {s.reason}" for s in report.skipped)
        print(f"Skipped {len(report.skipped)} (not graded):\n  {lines}\n"
              f"{LAYOUTS.format(chapters='see --reference')}\n"
              "Fix or remove them, then run the same command with --resume to grade only those.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # The module's own copy, not __main__'s: the worker processes find what they are given by its module's name
    # (course_utils.instructor.grade:_grade_job), and so must anything they unpickle.
    from course_utils.instructor import grade as _module

    sys.exit(_module.main())
