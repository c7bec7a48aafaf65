"""Grade a class's submitted chapter notebooks with one command: a gradebook as CSV (and HTML).

    python -m course_utils.instructor.grade SUBMISSIONS/ --out grades.csv [--html grades.html] [--jobs N] [--resume]
                                 [--timeout 600] [--cell-timeout S] [--reference notebooks/]
                                 [--memory 4G] [--max-processes 256] [--max-file-size 1G]
                                 [--max-folder-size 256M] [--container IMAGE [--runtime docker|podman]]

SUBMISSIONS/ may mix these layouts (``LAYOUTS``; NN is the number of a reference chapter, ``notebooks/NN_*``):

    alice/03_nt_xent.ipynb                              a folder per student, any file name with "NN_" in it
    Alice Smith_12345_assignsubmission_file_/03_nt_xent.ipynb     Moodle's "download submissions in folders"
    Alice Smith_12345_assignsubmission_file_03_nt_xent.ipynb      Moodle without folders
    smithalice_12345_67890_03_nt_xent.ipynb             Canvas ("_LATE_" and a re-upload's "-1" understood)
    Alice Smith - 03_nt_xent.ipynb                      Google Classroom's copy for each student
    alice_03_nt_xent.ipynb                              flat: <student><_ - or space><NN_...>.ipynb

A notebook whose chapter or student cannot be told from its name, a chapter submitted twice by one student,
or an archive is SKIPPED: listed in the report and in the exit message, while everything else is graded.
Hidden files and folders (".ipynb_checkpoints", "__MACOSX") and other files are ignored.

Exit codes: 0 every notebook was graded (whatever the grades), 1 something was skipped, 2 the grader could not
run (no such folder, no notebooks at all, no reference chapters, a bad option, an earlier run's results that
--resume was not asked to keep); 130 interrupted (Ctrl-C).

What is graded, and why the notebook's own output is never trusted:

1. The REFERENCE chapter says what to expect: each of its cells tagged "self-check" calls a check on a
   student's function, e.g. ``check_nt_xent(my_nt_xent)``.
2. Each submission runs in a fresh kernel (course_utils.instructor.sandbox: limits, a scrubbed environment, a copy of
   its folder; nothing it starts outlives its grading), with $COURSE_PROFILE (``smoke`` when unset: the checks
   use their own small cases). A cell that raises does not stop the notebook. Each cell has a time limit
   (--cell-timeout, default --timeout) and the notebook one in all (--timeout); a cell over it is
   interrupted, and a kernel that ignores the interrupt is killed.
3. Then the grader runs its own cell in the same kernel: it imports course_utils afresh from this
   installation and calls every expected check on the student's function (its own limit: CHECKS_TIMEOUT).
4. A self-check cell that the student deleted or edited is reported in the notes; it changes no grade.
5. A check is "flagged", not PASS, when the submission uses the answer instead of writing it: it imports,
   names or reaches (any import form, attribute, getattr, a string run by exec or a magic) a name that
   ``course_utils.checks.REFERENCES`` lists for that exercise, or the student's function is, wraps, subclasses
   or calls such a name; or the notebook assigns to attributes of course_utils or IPython, or registers
   IPython hooks (every check is flagged then). The notes say where. Reading the notebook decides.

Results per check: PASS, FAIL, "not implemented", "missing", "flagged", "not run". Status per notebook: "ok",
"crashed (cell I, ExceptionName)", "timed out (cell I)", "kernel died (cell I)", "unreadable", "not
submitted", or "grader stopped it" (its grading process died or overran). Cells count from 0, markdown too.

Class-sized runs: --jobs N notebooks at once (default: the number of cores), each in its own worker process.
Each result is appended to a journal beside the CSV (grades.csv -> grades.jsonl, one JSON line per
submission, flushed to disk) as soon as it is known; the CSV and HTML are written from it at the end. After
an interruption, --resume grades only the notebooks that have no result yet (or changed since).

The default isolation (course_utils.instructor.sandbox) stops accidents and the easy tricks: runaway memory, processes,
files and loops, daemons, secrets in the environment, links out of a folder, shadowing modules. It does not
stop a notebook written to attack the grading machine from reading or changing the instructor's files, using
the network or disturbing the other kernels while it runs: it runs as the instructor. ``--container IMAGE``
(docker or podman; examples/grader.Dockerfile) does. The instructors' guide has the table.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from course_utils.instructor import sandbox
from course_utils.instructor.flagging import RUNTIME_CHECK, code_flags
from course_utils.instructor.gradebook import STOPPED, Journal, Result, gradebook, write_csv, write_html  # noqa: F401

DEFAULT_PROFILE = "smoke"
CHECKS_TIMEOUT = 120  # seconds for the grader's own cell: importing torch and running a few small checks
KERNEL_START_TIMEOUT = 60
INTERRUPT_GRACE = 10  # seconds a kernel gets to answer after an interrupt before it is killed
RESULTS = ("PASS", "FAIL", "not implemented", "missing", "flagged", "not run")
MIME = "application/vnd.simclr-course.grade+json"  # how the grader's cell reports; printed text is ignored
_TIMED_OUT = "GraderTimeLimit"  # the error nbclient reports for a cell it interrupted
INSTALL_HINT = "pip install 'simclr-course-utils[instructor]'"
PACKAGE_ROOT = sandbox.PACKAGE_ROOT  # the folder that holds this course_utils
LAYOUTS = """Accepted layouts of the submissions folder (NN: a reference chapter's number; {chapters}):
  SUBMISSIONS/<student>/<...NN_...>.ipynb                 a folder per student
  SUBMISSIONS/<Name>_<id>_assignsubmission_file_/<...NN_...>.ipynb    Moodle, in folders
  SUBMISSIONS/<Name>_<id>_assignsubmission_file_<...NN_...>.ipynb     Moodle, without folders
  SUBMISSIONS/<name>_[LATE_]<id>_<id>_<...NN_...>.ipynb   Canvas
  SUBMISSIONS/<Student Name> - <NN_...>.ipynb             Google Classroom
  SUBMISSIONS/<student>_<NN_...>.ipynb                    flat, e.g. alice_03_nt_xent.ipynb"""

_CHAPTER = re.compile(r"(?<!\d)(\d{2})_")  # the "NN_" in "03_nt_xent.ipynb" or "alice_03_nt_xent.ipynb"
_CANVAS = re.compile(r"^(?P<name>[^_]+)_(?:LATE_)?(?P<id>\d+)_\d+_(?P<file>.+)$")
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.*)$")
_REUPLOAD = re.compile(r"-(\d+)$")  # Canvas names a file uploaded again under the same name "name-1.ipynb"
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
    answers: tuple[str, ...] = ()  # names that hand out its answer (course_utils.checks.REFERENCES)


@dataclass(frozen=True)
class Chapter:
    """A reference chapter and the checks its self-check cells call."""
    number: str          # "03"
    name: str            # "03_nt_xent", the reference file's stem and the gradebook's column prefix
    checks: tuple[Check, ...]


def answer_names() -> dict[str, tuple[str, ...]]:
    """``course_utils.checks.REFERENCES``, read from its source (importing it would import torch)."""
    import importlib.util

    origin = importlib.util.find_spec("course_utils.checks").origin
    for node in ast.parse(Path(origin).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "REFERENCES" for t in node.targets):
            try:
                return {check: tuple(names) for check, names in ast.literal_eval(node.value).items()}
            except ValueError:
                break
    from course_utils import checks  # REFERENCES is computed, or lives elsewhere: import it after all
    return {check: tuple(names) for check, names in checks.REFERENCES.items()}


def reference_checks(path: str | Path, answers: dict | None = None) -> tuple[Check, ...]:
    """The checks that the "self-check" cells of the reference notebook at ``path`` call, in order.

    Every call ``check_x(my_fn)`` in such a cell counts; its argument must be a plain name.
    """
    nbformat, _ = _jupyter()
    path = Path(path)
    answers = answer_names() if answers is None else answers
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
                found.append(Check(node.func.id, node.args[0].id, cell.source, answers.get(node.func.id, ())))
    return tuple(found)


def reference_chapters(folder: str | Path) -> dict[str, Chapter]:
    """The chapters in ``folder`` (``NN_*.ipynb``), keyed by their number "NN"."""
    folder = Path(folder)
    paths = sorted(p for p in folder.glob("*.ipynb") if _CHAPTER.match(p.name))
    if not paths:
        raise FileNotFoundError(f"No reference chapters (NN_name.ipynb) in {folder}: pass the course's "
                                "notebooks/ folder with --reference.")
    answers = answer_names()
    return {p.name[:2]: Chapter(p.name[:2], p.stem, reference_checks(p, answers)) for p in paths}


# --- The submissions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submission:
    student: str
    chapter: Chapter
    path: Path            # the notebook
    folder: Path | None   # the student's folder, copied for the run (None for the flat layouts)


@dataclass(frozen=True)
class Skipped:
    path: str    # relative to the submissions folder
    reason: str


def _hidden(p: Path) -> bool:
    return p.name.startswith((".", "__"))


def find_submissions(folder: str | Path, chapters: dict[str, Chapter]) -> tuple[list[Submission], list[Skipped]]:
    """Every submitted notebook in ``folder`` (the layouts of the module docstring), sorted by student, and
    the notebooks that cannot be graded, with the reason.

    Raises FileNotFoundError only for a missing folder or one without any notebook.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder. {_layouts(chapters)}")
    candidates, skipped = [], []  # candidates: (student or None, notebook, its folder or None)
    for entry in sorted(p for p in folder.iterdir() if not _hidden(p)):
        if entry.is_dir():
            moodle = _MOODLE.match(entry.name)
            if moodle and moodle["plugin"] != "file":
                continue  # Moodle's online-text, comments...: no notebooks
            student = f"{moodle['name']}_{moodle['id']}" if moodle else entry.name
            notebooks = sorted(p for p in entry.glob("*.ipynb") if not _hidden(p) and p.is_file())
            if not notebooks:
                skipped.append(Skipped(entry.name + "/", "no notebook (.ipynb) directly in this folder"))
            candidates += [(student, nb, entry) for nb in notebooks]
        elif entry.suffix == ".ipynb":
            candidates.append((None, entry, None))
        elif entry.suffix.lower() in (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar"):
            skipped.append(Skipped(entry.name, "an archive: unpack it into a folder named after the student"))
    if not candidates and not skipped:
        raise FileNotFoundError(f"No notebooks in {folder}. {_layouts(chapters)}")

    groups: dict[tuple[str, str], list[_Candidate]] = {}  # (student, chapter number) -> its notebooks
    for student, path, student_folder in candidates:
        shown = str(path.relative_to(folder))
        name, canvas, upload = path.name, None, 0
        if student is None:
            layout = _MOODLE.match(name) or _CANVAS.match(name)
            if layout:
                student, name = f"{layout['name']}_{layout['id']}", layout["file"]
                if layout.re is _CANVAS:  # "03_nt_xent-1.ipynb": the same file uploaded a second time
                    canvas = _REUPLOAD.sub("", Path(name).stem)
                    again = _REUPLOAD.search(Path(name).stem)
                    upload = int(again.group(1)) if again else 0
        match = next((m for m in _CHAPTER.finditer(name) if m.group(1) in chapters), None)
        if match is None:
            skipped.append(Skipped(shown, "no chapter number of a reference chapter (NN_) in the file name"))
            continue
        if student is None:
            student = name[: match.start()].rstrip("_- ")
            if not student:
                skipped.append(Skipped(shown, f"whose is it? Rename it <student>_{name} or move it into a folder "
                                              "named after the student"))
                continue
        groups.setdefault((student, match.group(1)), []).append(
            _Candidate(path, student_folder, shown, canvas, upload))

    found = []
    for (student, number), items in groups.items():
        if len(items) > 1 and items[0].canvas is not None and len({item.canvas for item in items}) == 1:
            items = sorted(items, key=lambda item: item.upload)  # Canvas re-uploads: grade the latest
            skipped += [Skipped(item.shown, f"an earlier upload of {student}'s chapter {number} (graded: "
                                            f"{items[-1].shown})") for item in items[:-1]]
            items = items[-1:]
        if len(items) > 1:
            names = ", ".join(item.shown for item in items)
            skipped += [Skipped(item.shown, f"{student} submitted chapter {number} {len(items)} times ({names}): "
                                            "keep one, then run again with --resume") for item in items]
            continue
        found.append(Submission(student, chapters[number], items[0].path, items[0].folder))
    return (sorted(found, key=lambda s: (s.student.lower(), s.chapter.number)),
            sorted(skipped, key=lambda s: s.path))


class _Candidate(NamedTuple):
    path: Path
    folder: Path | None
    shown: str            # the path relative to the submissions folder
    canvas: str | None    # a Canvas file's name without its re-upload counter, else None
    upload: int           # Canvas's re-upload counter: 0 for "x.ipynb", 1 for "x-1.ipynb"...


def _layouts(chapters: dict[str, Chapter]) -> str:
    return LAYOUTS.format(chapters=", ".join(c.name for c in chapters.values()) or "see --reference")


# --- Running one notebook -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    """How each notebook is run (see ``main`` for the command-line options that set them)."""
    timeout: float = 600
    cell_timeout: float | None = None
    limits: sandbox.Limits = sandbox.Limits()
    threads: int = 1                  # CPU threads of each kernel (unless OMP_NUM_THREADS is set)
    container: str | None = None      # an image: run each kernel in docker or podman
    runtime: str | None = None        # the container runtime's path
    data_dir: str | None = None       # the course's data folder, shared by the kernels (stand-in caches)


_GRADER_CELL = '''\
# Added by course_utils.instructor.grade: the reference checks, run on this notebook's functions.
def _course_grade(expected, token, package_root, checks_file):
    import contextlib, importlib, io, os, sys
    from IPython.display import display

    # What a failed cell still holds (its traceback keeps its frames, and their variables, alive) is freed:
    # a cell that ran out of memory must not stop the checks from importing torch.
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    import gc
    gc.collect()
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
    for check, function, answers in expected:
        fn = globals().get(function)
        reached = None
        if not callable(fn):
            result, message = "missing", f"the notebook defines no function {function}"
        else:
            reached = _course_reaches(fn, set(answers))
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
        display({MIME: dict(token=token, check=check, result=result, message=message, reached=reached)}, raw=True)


_course_grade(EXPECTED, TOKEN, PACKAGE_ROOT, CHECKS_FILE)
del _course_grade, _course_reaches
'''


def _grader_cell(checks: tuple[Check, ...], token: str) -> str:
    """The source of the grader's own cell: runs ``checks`` and displays one MIME bundle per check."""
    source = RUNTIME_CHECK + "\n\n" + _GRADER_CELL.replace("MIME", repr(MIME))
    # The checks of the course_utils that holds this grader (the chapter modules load from their folder).
    checks_file = Path(PACKAGE_ROOT) / "course_utils" / "checks" / "__init__.py"
    for name, value in (("EXPECTED", [(c.check, c.function, c.answers) for c in checks]), ("TOKEN", token),
                        ("PACKAGE_ROOT", PACKAGE_ROOT), ("CHECKS_FILE", str(checks_file))):
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


def _kernel_manager(argv: list[str], connection_file: Path, container: bool):
    """A kernel manager that starts ``argv``, whatever the notebook's metadata names. In a container the
    kernel talks over Unix sockets in its scratch folder (it has no network) and is interrupted by a message."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class Sandboxed(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            return KernelSpec(argv=argv, display_name="grader", language="python",
                              interrupt_mode="message" if container else "signal")

    # Async, as nbclient expects: with a blocking client its "is the kernel alive?" watchdog never runs
    # while it waits for output, and a kernel that dies mid-cell hangs the grader.
    extra = dict(transport="ipc", ip=str(connection_file.with_name("socket"))) if container else {}
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=Sandboxed(), **extra)
    km.connection_file = str(connection_file)  # in the kernel's scratch folder, not the user's runtime folder
    return km


def _execute(client, cell, index: int, seconds: float) -> tuple[str, object]:
    """Run one cell in the kernel of ``client``, interrupting it after ``seconds``.

    Returns ("ok", None), ("error", the cell's error output), ("timed out", None), ("hung", None) when the
    kernel did not answer the interrupt either, or ("kernel died", None).
    """
    from nbclient.exceptions import DeadKernelError

    replies = []
    client.on_cell_executed = lambda execute_reply, **_: replies.append(execute_reply)
    client.timeout = max(1, math.ceil(seconds))
    try:
        client.execute_cell(cell, index)
    except DeadKernelError:
        return "kernel died", None
    reply = (replies[-1] or {}).get("content", {}) if replies else {}
    if reply.get("ename") == _TIMED_OUT:
        return ("timed out", None) if _responsive(client, INTERRUPT_GRACE) else ("hung", None)
    error = next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)
    if error is None and reply.get("status") == "error":  # IPython could not even format it (out of memory?)
        error = SimpleNamespace(ename=reply.get("ename") or "Error", evalue=reply.get("evalue") or "")
    return ("error", error) if error is not None else ("ok", None)


def _responsive(client, seconds: float) -> bool:
    """Whether the kernel answers a request within ``seconds``: after an interrupt that it ignored (a loop with
    SIGINT blocked, a stopped process), it does not, and the next cell would only wait for its limit too."""
    from queue import Empty

    from jupyter_core.utils import run_sync

    async def probe() -> bool:
        msg_id = client.kc.kernel_info()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                reply = await client.kc.get_shell_msg(timeout=left)
            except Empty:
                return False
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return True  # the interrupted cell's own late reply is read and dropped on the way
        return False

    try:
        return run_sync(probe)()
    except Exception:
        return False


def _run_cells(client, nb, deadline: float, cell_timeout: float, result: Result) -> bool:
    """Execute the code cells of ``nb`` in order, recording problems in ``result``; False if the kernel died
    or must be killed. A cell that raises, or runs over its limit (and is interrupted), does not stop the
    cells after it; reaching ``deadline`` (time.monotonic()) does."""
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
        if outcome in ("timed out", "hung"):
            result.notes.append(f"cell {index}: interrupted after {client.timeout} s")
            problem(f"timed out (cell {index})")
            if outcome == "hung":
                result.notes.append(f"cell {index} ignored the interrupt: the kernel was killed, and the later "
                                    "cells and the checks were not run")
                return False
        elif outcome == "kernel died":
            result.notes.append(f"cell {index}: the kernel died (os._exit, a segfault, or out of memory?)")
            problem(f"kernel died (cell {index})")
            return False
        elif outcome == "error" and "raises-exception" not in _tags(cell):
            result.notes.append(f"cell {index}: {error.ename}: {_first_line(error.evalue)}")
            problem(f"crashed (cell {index}, {error.ename})")
    return True


def _run_checks(client, nb, checks: tuple[Check, ...], result: Result) -> dict[str, str]:
    """Run the grader's cell in the kernel of ``client``; fill ``result.checks`` from what it displays.
    Returns {check: the reference the student's function reaches} for the functions that reach one."""
    nbformat, _ = _jupyter()
    token = secrets.token_hex(16)  # unknown to the student's code before this cell runs
    nb.cells.append(nbformat.v4.new_code_cell(_grader_cell(checks, token)))
    cell, index = nb.cells[-1], len(nb.cells) - 1
    outcome, error = _execute(client, cell, index, CHECKS_TIMEOUT)
    if outcome in ("timed out", "hung"):
        result.notes.append(f"the grader's checks were interrupted after {CHECKS_TIMEOUT} s: the kernel was still "
                            "busy with a cell that ignored the interrupt, or a checked function never returns")
    elif outcome == "kernel died":
        result.notes.append("the kernel died while the grader's checks ran")
        if result.status == "ok":
            result.status = "kernel died (grader's cell)"
    elif outcome == "error":
        result.notes.append(f"the grader's cell failed: {error.ename}: {_first_line(error.evalue)}")
    reached = {}
    for output in cell.get("outputs", []):  # the checks that finished, even if a later one did not
        report = output.get("data", {}).get(MIME) if output.output_type == "display_data" else None
        if isinstance(report, dict) and report.get("token") == token and report.get("result") in RESULTS:
            result.checks[report["check"]] = (report["result"], _first_line(report.get("message", ""), 500))
            if report.get("reached"):
                reached[report["check"]] = str(report["reached"])[:200]
    return reached


def _flag(result: Result, checks: tuple[Check, ...], flags: dict[str, list[str]]) -> None:
    """Turn each flagged check's verdict into "flagged" (the verdict it would have had goes in its message)."""
    for check in checks:
        reasons = flags.get(check.check)
        if not reasons:
            continue
        reasons = list(dict.fromkeys(reasons))  # each once, in order
        verdict, message = result.checks.get(check.check, ("not run", ""))
        if verdict in ("PASS", "FAIL", "not implemented"):
            result.checks[check.check] = ("flagged", f"flagged (the check said {verdict}): {reasons[0]}")
        result.notes.append(f"{check.check} flagged: {'; '.join(reasons[:4])}" + (" ..." if len(reasons) > 4 else ""))


def _student_sources(nb, work: Path) -> list[tuple[str, str]]:
    """The notebook's code cells and the Python files of the student's folder: what flagging reads."""
    sources = [(f"cell {i}", c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for path in sorted(work.rglob("*.py"))[:100]:
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
            sources.append((str(path.relative_to(work)), path.read_text(errors="replace")))
    return sources


def _read(path: Path):
    """(the notebook, None), or (None, why it cannot be read): not JSON, not a notebook, a truncated upload..."""
    nbformat, _ = _jupyter()
    try:
        return nbformat.read(path, as_version=4), None
    except Exception as error:
        return None, f"{type(error).__name__}: {_first_line(error)}"


def grade_notebook(submission: Submission, options: Options = Options(), sweep: bool = False) -> Result:
    """Execute one submitted notebook in a fresh, isolated kernel and run its chapter's checks on it.

    ``sweep``: this process is a grading worker (a child subreaper): after the kernel, every process below
    this one is killed too (what the kernel started and orphaned). Returns a Result; never raises for anything
    the notebook does.
    """
    from jupyter_core.utils import run_sync
    nbformat, nbclient = _jupyter()
    checks = submission.chapter.checks
    result = Result("ok", checks={c.check: ("not run", "") for c in checks})
    start = time.monotonic()
    nb, problem = _read(submission.path)
    if nb is None:
        result.status = "unreadable"
        result.notes.append(problem)
        return result
    result.notes += _self_check_notes(nb, checks)

    scratch = Path(tempfile.mkdtemp(prefix="grade-"))
    km, kernel, name = None, None, f"grade-{secrets.token_hex(6)}"
    try:
        work = scratch / "work"
        if submission.folder is not None:  # the student's other files (data, modules) come along
            result.notes += sandbox.copy_folder(submission.folder, work, options.limits)
        else:
            work.mkdir()
        flags = code_flags(_student_sources(nb, work), checks)
        defaults = {"COURSE_PROFILE": DEFAULT_PROFILE, **({"COURSE_DATA": options.data_dir} if options.data_dir
                                                         else {})}
        env = sandbox.kernel_env(scratch, threads=options.threads, package_root=PACKAGE_ROOT, defaults=defaults)
        limits = options.limits
        if limits.cpu_seconds is None:  # a backstop: the wall-clock limits come first
            seconds = options.timeout + CHECKS_TIMEOUT + KERNEL_START_TIMEOUT
            limits = replace(limits, cpu_seconds=int(seconds * max(1, options.threads) * 1.5))
        python = "python" if options.container else sys.executable
        argv = sandbox.kernel_argv(python, limits, PACKAGE_ROOT)
        launch_env = env
        if options.container:
            mounts = [(str(Path(PACKAGE_ROOT) / "course_utils"), False)]
            if options.data_dir:
                Path(options.data_dir).mkdir(parents=True, exist_ok=True)
                mounts.append((options.data_dir, True))
            argv = sandbox.container_argv(options.runtime, options.container, name=name, limits=limits,
                                          threads=options.threads, scratch=scratch, mounts=mounts,
                                          env={k: v for k, v in env.items() if k != "PATH"}, command=argv)
            launch_env = dict(os.environ)  # for the runtime's client; the kernel gets ``env`` through --env
            # (all of it but PATH: the image's own PATH finds its python)
        km = _kernel_manager(argv, scratch / "kernel.json", bool(options.container))
        # On a timeout nbclient interrupts the kernel and reports the cell as failed with _TIMED_OUT.
        client = nbclient.NotebookClient(nb, km=km, allow_errors=True, shutdown_kernel="immediate", log=_LOG,
                                         interrupt_on_timeout=True, startup_timeout=KERNEL_START_TIMEOUT,
                                         error_on_timeout=dict(ename=_TIMED_OUT, evalue="", traceback=[]))
        try:
            # The kernel's own stdout/stderr (warnings, C-level prints) would only clutter the grader's output.
            with client.setup_kernel(env=launch_env, cwd=str(work), cleanup_kc=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
                kernel = getattr(km.provisioner, "pid", None)
                timeout = options.timeout
                alive = _run_cells(client, nb, time.monotonic() + timeout, options.cell_timeout or timeout, result)
                if alive:
                    for check, where in _run_checks(client, nb, checks, result).items():
                        function = next(c.function for c in checks if c.check == check)
                        flags.setdefault(check, []).append(f"{function} reaches {where}")
        except Exception as error:  # the kernel would not start, or died between cells
            result.notes.append(f"grading stopped: {type(error).__name__}: {_first_line(error)}")
            if result.status == "ok":
                result.status = "kernel died"
        _flag(result, checks, flags)
    finally:
        if km is not None and km.has_kernel:
            try:
                run_sync(km.shutdown_kernel)(now=True)
            except Exception:
                pass
        if options.container:
            subprocess.run([options.runtime, "rm", "-f", name], capture_output=True, timeout=120)
        left = sandbox.stop_tree({kernel} if kernel else set(), below=os.getpid() if sweep else None,
                                 sessions={kernel} if kernel else set())
        if left - {kernel}:
            result.notes.append(f"{len(left - {kernel})} processes it started were still running when its grading "
                                "ended: killed")
        shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = round(time.monotonic() - start, 1)
    return result


# --- command line ---------------------------------------------------------------------------------

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
        return Result(STOPPED, notes=[f"the grader failed: {type(error).__name__}: {_first_line(error)}"])


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
    _jupyter()
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
    readable = [s for s in todo if _read(s.path)[0] is not None]
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
        try:
            sandbox.run_in_workers([(s, options) for s in readable], "course_utils.instructor.grade:_grade_job", jobs,
                                   limit=timeout + CHECKS_TIMEOUT + KERNEL_START_TIMEOUT + 120,
                                   started=started, finished=finished, failed=failed)
        finally:
            sandbox.become_subreaper(False)
            sandbox.set_dumpable(True)
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
    # The module's own copy, not __main__'s: the worker processes unpickle its classes by module name.
    from course_utils.instructor import grade as _module

    sys.exit(_module.main())
