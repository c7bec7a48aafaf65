"""Grade a folder of submitted chapter notebooks with one command: a gradebook as CSV (and HTML).

    python -m course_utils.grade SUBMISSIONS/ --out grades.csv [--html grades.html]
                                 [--timeout 600] [--cell-timeout S] [--reference notebooks/]

SUBMISSIONS/ may use either layout, or both at once:

    SUBMISSIONS/alice/03_nt_xent.ipynb     one folder per student; the file name contains the chapter's
                                           "NN_" prefix ("Copy of 03_nt_xent.ipynb" is fine)
    SUBMISSIONS/alice_03_nt_xent.ipynb     flat: <student>_<NN>_<anything>.ipynb

Hidden files and folders (".ipynb_checkpoints", ".DS_Store", "__MACOSX") and files that are not notebooks are
ignored. The chapter number NN must be one of the reference chapters (``notebooks/NN_*.ipynb``).

What is graded, and why the notebook's own output is never trusted:

1. The REFERENCE chapter says what to expect: each of its cells tagged "self-check" calls a check on a
   student's function, e.g. ``check_nt_xent(my_nt_xent)``.
2. Each submission runs in a fresh kernel of this Python, in a temporary copy of its folder (the notebook
   alone for the flat layout), with $COURSE_PROFILE (``smoke`` when unset: the checks use their own small
   cases, so the profile only sizes the chapter's experiments, and smoke runs a chapter in well under a
   minute on a CPU) and a checkpoint folder of its own. A cell that raises does not stop the notebook: the
   next cells run as well. Each cell has a time limit (--cell-timeout, default --timeout), the notebook as a
   whole has one (--timeout); a cell over its limit is interrupted.
3. Then the grader runs its own cell in the same kernel: it imports course_utils afresh from this
   installation (a monkeypatched check, or a course_utils/ folder next to the notebook, does not count) and
   calls every expected check on the student's function. It has its own limit (CHECKS_TIMEOUT).
4. A self-check cell that the student deleted or edited is reported in the notes; it changes nothing in the
   grade, since the grader's checks run anyway.

Results per check: PASS, FAIL, "not implemented" (the stub still raises NotImplementedError), "missing" (the
notebook defines no such function), "not run" (the kernel died, the checks timed out, or nothing was
submitted). Status per notebook: "ok", "crashed (cell I, ExceptionName)", "timed out (cell I)",
"kernel died (cell I)", "unreadable" or "not submitted". Cell numbers I count every cell from 0 (markdown too).
The messages column holds the first line of each check's message that is not a PASS (with its hint).

A notebook is code: grading runs it with the grader's rights. The checks above stop a student who deletes a
check or prints "PASS"; they do not stop one who sets out to attack the grading machine. Grade untrusted
submissions in a container or a throw-away VM.
"""

from __future__ import annotations

import argparse
import ast
import csv
import html
import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PROFILE = "smoke"
CHECKS_TIMEOUT = 120  # seconds for the grader's own cell: importing torch and running a few small checks
RESULTS = ("PASS", "FAIL", "not implemented", "missing", "not run")
MIME = "application/vnd.simclr-course.grade+json"  # how the grader's cell reports; printed text is ignored
_TIMED_OUT = "GraderTimeLimit"  # the error nbclient reports for a cell it interrupted
INSTALL_HINT = "pip install 'simclr-course-utils[instructor]'"
LAYOUTS = """Accepted layouts of the submissions folder:
  SUBMISSIONS/<student>/<...NN_...>.ipynb   one folder per student, e.g. SUBMISSIONS/alice/03_nt_xent.ipynb
  SUBMISSIONS/<student>_<NN>_<...>.ipynb    flat, e.g. SUBMISSIONS/alice_03_nt_xent.ipynb
NN is the number of a reference chapter ({chapters})."""

_CHAPTER = re.compile(r"(?<!\d)(\d{2})_")  # the "NN_" in "03_nt_xent.ipynb" or "alice_03_nt_xent.ipynb"
_LOG = logging.getLogger(__name__ + ".nbclient")  # nbclient's own messages: the gradebook says it better
_LOG.addHandler(logging.NullHandler())
_LOG.propagate = False


def _jupyter():
    """Import nbformat and nbclient (the instructor extra); a clear message when they are missing."""
    try:
        import ipykernel  # noqa: F401  (the kernel that runs the notebooks)
        import nbclient
        import nbformat
    except ImportError as error:
        raise ImportError(f"Grading needs nbformat, nbclient and ipykernel ({error.name} is missing): "
                          f"{INSTALL_HINT}") from error
    return nbformat, nbclient


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


# --- The reference chapters: what to expect --------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One expected exercise: ``check`` (a name in course_utils.checks) called on the student's ``function``."""
    check: str
    function: str
    cell: str  # the source of the reference's self-check cell that calls it


@dataclass(frozen=True)
class Chapter:
    """A reference chapter and the checks its self-check cells call."""
    number: str          # "03"
    name: str            # "03_nt_xent", the reference file's stem and the gradebook's column prefix
    checks: tuple[Check, ...]


def reference_checks(path: str | Path) -> tuple[Check, ...]:
    """The checks that the "self-check" cells of the reference notebook at ``path`` call, in order.

    Every call ``check_x(my_fn)`` in such a cell counts; its argument must be a plain name.
    """
    nbformat, _ = _jupyter()
    path = Path(path)
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if "self-check" not in _tags(cell):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as error:
            raise ValueError(f"{path.name}, cell {index}: the self-check cell is not valid Python ({error.msg}).")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_"):
                if len(node.args) != 1 or node.keywords or not isinstance(node.args[0], ast.Name):
                    raise ValueError(f"{path.name}, cell {index}: the grader understands self-checks of the form "
                                     f"{node.func.id}(my_function); rewrite the call that way.")
                found.append(Check(node.func.id, node.args[0].id, cell.source))
    return tuple(found)


def reference_chapters(folder: str | Path) -> dict[str, Chapter]:
    """The chapters in ``folder`` (``NN_*.ipynb``), keyed by their number "NN"."""
    folder = Path(folder)
    paths = sorted(p for p in folder.glob("*.ipynb") if _CHAPTER.match(p.name))
    if not paths:
        raise FileNotFoundError(f"No reference chapters (NN_name.ipynb) in {folder}: pass the course's "
                                "notebooks/ folder with --reference.")
    return {p.name[:2]: Chapter(p.name[:2], p.stem, reference_checks(p)) for p in paths}


# --- The submissions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submission:
    student: str
    chapter: Chapter
    path: Path            # the notebook
    folder: Path | None   # the student's folder, copied for the run (None for the flat layout)


def find_submissions(folder: str | Path, chapters: dict[str, Chapter]) -> list[Submission]:
    """Every submitted notebook in ``folder`` (either layout, see the module docstring), sorted by student.

    Raises FileNotFoundError for a missing folder or one without notebooks, and ValueError that lists every
    notebook whose chapter or student cannot be told from its name, or that a student submitted twice.
    """
    folder = Path(folder)
    layouts = LAYOUTS.format(chapters=", ".join(c.name for c in chapters.values()))
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder. {layouts}")

    def hidden(p: Path) -> bool:
        return p.name.startswith((".", "__"))

    candidates = []  # (student or None, notebook, student folder or None)
    for entry in sorted(p for p in folder.iterdir() if not hidden(p)):
        if entry.is_dir():
            candidates += [(entry.name, nb, entry) for nb in sorted(entry.glob("*.ipynb")) if not hidden(nb)]
        elif entry.suffix == ".ipynb":
            candidates.append((None, entry, None))
    if not candidates:
        raise FileNotFoundError(f"No notebooks in {folder}. {layouts}")

    found, seen, problems = [], {}, []
    for student, path, student_folder in candidates:
        shown = path.relative_to(folder)
        match = next((m for m in _CHAPTER.finditer(path.name) if m.group(1) in chapters), None)
        if match is None:
            problems.append(f"{shown}: no chapter number of a reference chapter (NN_) in the file name")
            continue
        if student is None:
            student = path.name[: match.start()].rstrip("_- ")
            if not student:
                problems.append(f"{shown}: whose is it? Rename it <student>_{path.name} or move it into a "
                                "folder named after the student")
                continue
        chapter = chapters[match.group(1)]
        if (student, chapter.number) in seen:
            problems.append(f"{shown}: {student} submitted chapter {chapter.number} twice (also "
                            f"{seen[student, chapter.number]}); keep one")
            continue
        seen[student, chapter.number] = shown
        found.append(Submission(student, chapter, path, student_folder))
    if problems:
        raise ValueError("Cannot grade these notebooks:\n  " + "\n  ".join(problems) + f"\n{layouts}")
    return sorted(found, key=lambda s: (s.student.lower(), s.chapter.number))


# --- Running one notebook -----------------------------------------------------------------------------

@dataclass
class Result:
    """What grading one notebook gave: a status, the seconds it took, a result and a message per check."""
    status: str
    seconds: float = 0.0
    checks: dict[str, tuple[str, str]] = field(default_factory=dict)  # check -> (result, message)
    notes: list[str] = field(default_factory=list)


_GRADER_CELL = '''\
# Added by course_utils.grade: the reference checks, run on this notebook's functions.
def _course_grade(expected, token, package_root, checks_file):
    import contextlib, importlib, io, os, sys
    from IPython.display import display

    # course_utils afresh from the grader's installation: a monkeypatched check or reference loss, or a
    # course_utils/ folder next to the notebook, plays no part.
    for name in [m for m in sys.modules if m == "course_utils" or m.startswith("course_utils.")]:
        del sys.modules[name]
    sys.path.insert(0, package_root)
    try:
        checks = importlib.import_module("course_utils.checks")
    finally:
        sys.path.remove(package_root)
    if os.path.realpath(checks.__file__) != checks_file:
        raise ImportError(f"course_utils.checks came from {checks.__file__}, not from {checks_file}")
    for check, function in expected:
        fn = globals().get(function)
        if not callable(fn):
            result, message = "missing", f"the notebook defines no function {function}"
        else:
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    passed = getattr(checks, check)(fn)
            except (Exception, SystemExit) as error:  # checks never raise; this is the student's SystemExit
                passed = None
                print(f"FAIL: the check was stopped by {type(error).__name__}: {error}", file=printed)
            # The check prints its verdict last; anything the student's function printed comes before it.
            lines = [l for l in printed.getvalue().splitlines() if l.startswith(("PASS", "FAIL", "not impl"))]
            message = lines[-1] if lines else ""
            result = ("PASS" if passed is True else
                      "not implemented" if message.startswith("not implemented") else "FAIL")
        display({MIME: dict(token=token, check=check, result=result, message=message)}, raw=True)


_course_grade(EXPECTED, TOKEN, PACKAGE_ROOT, CHECKS_FILE)
del _course_grade
'''


def _grader_cell(checks: tuple[Check, ...], token: str) -> str:
    """The source of the grader's own cell: runs ``checks`` and displays one MIME bundle per check."""
    package = Path(__file__).resolve().parent
    source = _GRADER_CELL.replace("MIME", repr(MIME))
    for name, value in (("EXPECTED", [(c.check, c.function) for c in checks]), ("TOKEN", token),
                        ("PACKAGE_ROOT", str(package.parent)), ("CHECKS_FILE", str(package / "checks.py"))):
        source = source.replace(name, repr(value))
    return source


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines() if line.strip())


def _self_check_notes(nb, checks: tuple[Check, ...]) -> list[str]:
    """Notes on the reference self-check cells that are not in ``nb`` unchanged (deleted or edited)."""
    sources = [_normalised(c.source) for c in nb.cells if c.cell_type == "code"]
    notes = []
    for check in checks:
        if _normalised(check.cell) in sources:
            continue
        if any(re.search(rf"\b{check.check}\s*\(", s) for s in sources):
            notes.append(f"the self-check cell of {check.check} was edited")
        else:
            notes.append(f"the self-check cell of {check.check} was deleted or replaced")
    return notes


def _first_line(text: str, limit: int = 200) -> str:
    line = (str(text).strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _kernel_manager():
    """A kernel manager that starts this Python's ipykernel, whatever the notebook's metadata names."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="grader", language="python")

    # Async, as nbclient expects: with a blocking client its "is the kernel alive?" watchdog never runs
    # while it waits for output, and a kernel that dies mid-cell hangs the grader.
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())


def _kernel_env(scratch: Path) -> dict:
    env = dict(os.environ)
    env.setdefault("COURSE_PROFILE", DEFAULT_PROFILE)
    env.setdefault("MPLBACKEND", "Agg")
    env["COURSE_CHECKPOINTS"] = str(scratch / "checkpoints")  # never resume from another student's run
    return env


def _execute(client, cell, index: int, seconds: float) -> tuple[str, object]:
    """Run one cell in the kernel of ``client``, interrupting it after ``seconds``.

    Returns ("ok", None), ("error", the cell's error output), ("timed out", None) or ("kernel died", None).
    """
    from nbclient.exceptions import DeadKernelError

    replies = []
    client.on_cell_executed = lambda execute_reply, **_: replies.append(execute_reply)
    client.timeout = max(1, math.ceil(seconds))
    try:
        client.execute_cell(cell, index)
    except DeadKernelError:
        return "kernel died", None
    if replies and (replies[-1] or {}).get("content", {}).get("ename") == _TIMED_OUT:
        return "timed out", None
    error = next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)
    return ("error", error) if error is not None else ("ok", None)


def _run_cells(client, nb, deadline: float, cell_timeout: float, result: Result) -> bool:
    """Execute the code cells of ``nb`` in order, recording problems in ``result``; False if the kernel died.

    A cell that raises, or runs over its limit (and is interrupted), does not stop the cells after it;
    reaching ``deadline`` (time.monotonic()) does.
    """
    def problem(status: str) -> None:
        if result.status == "ok":  # the status names the first problem; the notes list them all
            result.status = status

    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            result.notes.append(f"cells {index} and later not run: the notebook's time limit was reached")
            problem(f"timed out (cell {index})")
            return True
        outcome, error = _execute(client, cell, index, min(cell_timeout, left))
        if outcome == "timed out":
            result.notes.append(f"cell {index}: interrupted after {client.timeout} s")
            problem(f"timed out (cell {index})")
        elif outcome == "kernel died":
            result.notes.append(f"cell {index}: the kernel died (os._exit, a segfault, or out of memory?)")
            problem(f"kernel died (cell {index})")
            return False
        elif outcome == "error" and "raises-exception" not in _tags(cell):
            result.notes.append(f"cell {index}: {error.ename}: {_first_line(error.evalue)}")
            problem(f"crashed (cell {index}, {error.ename})")
    return True


def _run_checks(client, nb, checks: tuple[Check, ...], result: Result) -> None:
    """Run the grader's cell in the kernel of ``client``; fill ``result.checks`` from what it displays."""
    nbformat, _ = _jupyter()
    token = secrets.token_hex(16)  # unknown to the student's code, so it cannot display a fake result
    nb.cells.append(nbformat.v4.new_code_cell(_grader_cell(checks, token)))
    cell, index = nb.cells[-1], len(nb.cells) - 1
    outcome, error = _execute(client, cell, index, CHECKS_TIMEOUT)
    if outcome == "timed out":
        result.notes.append(f"the grader's checks were interrupted after {CHECKS_TIMEOUT} s: the kernel was still "
                            "busy with a cell that ignored the interrupt, or a checked function never returns")
    elif outcome == "kernel died":
        result.notes.append("the kernel died while the grader's checks ran")
        if result.status == "ok":
            result.status = "kernel died (grader's cell)"
    elif outcome == "error":
        result.notes.append(f"the grader's cell failed: {error.ename}: {_first_line(error.evalue)}")
    for output in cell.get("outputs", []):  # the checks that finished, even if a later one did not
        report = output.get("data", {}).get(MIME) if output.output_type == "display_data" else None
        if isinstance(report, dict) and report.get("token") == token and report.get("result") in RESULTS:
            result.checks[report["check"]] = (report["result"], _first_line(report.get("message", ""), 500))


def grade_notebook(submission: Submission, timeout: float = 600, cell_timeout: float | None = None) -> Result:
    """Execute one submitted notebook in a fresh kernel and run its chapter's checks on it.

    ``timeout``: seconds for all the notebook's cells; ``cell_timeout``: seconds per cell (default
    ``timeout``). Returns a Result; never raises for anything the notebook does.
    """
    from jupyter_core.utils import run_sync
    nbformat, nbclient = _jupyter()
    checks = submission.chapter.checks
    result = Result("ok", checks={c.check: ("not run", "") for c in checks})
    start = time.monotonic()
    try:
        nb = nbformat.read(submission.path, as_version=4)
    except Exception as error:  # not JSON, not a notebook, truncated upload...
        result.status = "unreadable"
        result.notes.append(f"{type(error).__name__}: {_first_line(error)}")
        return result
    result.notes += _self_check_notes(nb, checks)

    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        work = Path(scratch) / "work"
        if submission.folder is not None:  # the student's other files (data, modules) come along
            shutil.copytree(submission.folder, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            work.mkdir()
        km = _kernel_manager()
        # On a timeout nbclient interrupts the kernel and reports the cell as failed with _TIMED_OUT.
        client = nbclient.NotebookClient(nb, km=km, allow_errors=True, shutdown_kernel="immediate", log=_LOG,
                                         interrupt_on_timeout=True,
                                         error_on_timeout=dict(ename=_TIMED_OUT, evalue="", traceback=[]))
        try:
            # The kernel's own stdout/stderr (warnings, C-level prints) would only clutter the grader's output.
            with client.setup_kernel(env=_kernel_env(Path(scratch)), cwd=str(work), cleanup_kc=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
                alive = _run_cells(client, nb, time.monotonic() + timeout, cell_timeout or timeout, result)
                if alive:
                    _run_checks(client, nb, checks, result)
        except Exception as error:  # the kernel would not start, or died between cells
            result.notes.append(f"grading stopped: {type(error).__name__}: {_first_line(error)}")
            if result.status == "ok":
                result.status = "kernel died"
        finally:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
    result.seconds = round(time.monotonic() - start, 1)
    return result


# --- The gradebook ----------------------------------------------------------------------------------

def gradebook(results: dict[tuple[str, str], Result], chapters: list[Chapter]) -> tuple[list[str], list[dict]]:
    """``(columns, rows)``: one row per student, for ``results`` keyed by (student, chapter name).

    Per chapter: "<chapter>/status", "/seconds", one column per check, "/notes", "/messages".
    """
    columns = ["student"]
    for chapter in chapters:
        columns += [f"{chapter.name}/status", f"{chapter.name}/seconds"]
        columns += [f"{chapter.name}/{c.check}" for c in chapter.checks]
        columns += [f"{chapter.name}/notes", f"{chapter.name}/messages"]
    rows = []
    for student in sorted({s for s, _ in results}, key=str.lower):
        row = {"student": student}
        for chapter in chapters:
            result = results.get((student, chapter.name))
            if result is None:
                result = Result("not submitted", checks={c.check: ("not run", "") for c in chapter.checks})
            row[f"{chapter.name}/status"] = result.status
            row[f"{chapter.name}/seconds"] = result.seconds if result.status != "not submitted" else ""
            for check in chapter.checks:
                row[f"{chapter.name}/{check.check}"] = result.checks.get(check.check, ("not run", ""))[0]
            row[f"{chapter.name}/notes"] = "; ".join(result.notes)
            row[f"{chapter.name}/messages"] = " | ".join(
                f"{check}: {message}" for check, (verdict, message) in result.checks.items()
                if verdict != "PASS" and message)
        rows.append(row)
    return columns, rows


def write_csv(path: str | Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


_COLOURS = {"PASS": "#c8e6c9", "ok": "#c8e6c9", "FAIL": "#ffcdd2", "crashed": "#ffcdd2",
            "not implemented": "#fff9c4", "missing": "#ffe0b2", "timed out": "#ffe0b2",
            "kernel died": "#e1bee7", "unreadable": "#e1bee7", "not run": "#eeeeee", "not submitted": "#eeeeee"}


def write_html(path: str | Path, columns: list[str], rows: list[dict], title: str = "Gradebook") -> None:
    """A self-contained HTML table: a colour per result and status, each check's message on hover."""
    def cell(row: dict, column: str) -> str:
        value = str(row.get(column, ""))
        colour = next((c for key, c in _COLOURS.items() if value.startswith(key)), None)
        style = f' style="background:{colour}"' if colour else ""
        chapter, _, name = column.partition("/")
        message = next((m.split(": ", 1)[1] for m in str(row.get(f"{chapter}/messages", "")).split(" | ")
                        if m.startswith(f"{name}: ")), "")
        hover = f' title="{html.escape(message)}"' if message else ""
        klass = ' class="text"' if name in ("notes", "messages") else ""
        return f"<td{style}{hover}{klass}>{html.escape(value)}</td>"

    head = "".join(f"<th>{html.escape(c).replace('/', '/<br>')}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(cell(r, c) for c in columns) + "</tr>" for r in rows)
    legend = " ".join(f'<span style="background:{c};padding:2px 6px">{html.escape(k)}</span>'
                      for k, c in _COLOURS.items())
    Path(path).write_text(f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #bbb; padding: 4px 6px; vertical-align: top; }}
th {{ background: #f5f5f5; position: sticky; top: 0; }}
td.text {{ max-width: 32em; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{legend}</p>
<p>Hover over a result to see the check's message; the messages column holds the hints.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table></body></html>
""", encoding="utf-8")


# --- command line ---------------------------------------------------------------------------------

def grade(submissions: str | Path, reference: str | Path, timeout: float = 600, cell_timeout: float | None = None,
          verbose: bool = True) -> tuple[list[str], list[dict]]:
    """Grade every notebook in ``submissions`` against the chapters in ``reference``; return the gradebook."""
    if not timeout > 0 or (cell_timeout is not None and not cell_timeout > 0):
        raise ValueError(f"timeouts must be positive seconds; got {timeout} and {cell_timeout}.")
    _jupyter()
    chapters = reference_chapters(reference)
    found = find_submissions(submissions, chapters)
    results = {}
    for n, submission in enumerate(found, 1):
        result = grade_notebook(submission, timeout, cell_timeout)
        results[submission.student, submission.chapter.name] = result
        if verbose:
            verdicts = ", ".join(f"{check} {verdict}" for check, (verdict, _) in result.checks.items())
            print(f"[{n}/{len(found)}] {submission.student} {submission.chapter.name}: {result.status}, "
                  f"{result.seconds:.1f} s; {verdicts}", flush=True)
    graded = sorted({s.chapter for s in found}, key=lambda c: c.number)
    return gradebook(results, graded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.grade", description=__doc__.split("\n")[0],
                                     epilog=LAYOUTS.format(chapters="see --reference"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="the folder of submitted notebooks")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV gradebook (grades.csv)")
    parser.add_argument("--html", type=Path, help="also write an HTML summary here")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for each notebook's cells (600)")
    parser.add_argument("--cell-timeout", type=float, help="seconds for any one cell (default: --timeout)")
    parser.add_argument("--reference", type=Path, help="the chapters (default: notebooks/ of this repository)")
    args = parser.parse_args(argv)

    try:
        reference = args.reference
        if reference is None:
            candidates = [Path.cwd() / "notebooks", Path(__file__).resolve().parents[1] / "notebooks"]
            reference = next((c for c in candidates if c.is_dir()), None)
            if reference is None:
                raise FileNotFoundError("No notebooks/ folder here or next to course_utils: pass the course's "
                                        "chapters with --reference PATH/notebooks.")
        columns, rows = grade(args.submissions, reference, args.timeout, args.cell_timeout)
    except (ImportError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_csv(args.out, columns, rows)
    print(f"Gradebook of {len(rows)} students: {args.out}")
    if args.html:
        write_html(args.html, columns, rows, title=f"Gradebook: {args.submissions.resolve().name}")
        print(f"HTML summary: {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
