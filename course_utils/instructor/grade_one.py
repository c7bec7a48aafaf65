"""Grading one submitted notebook: run it in a fresh, isolated kernel, then the grader's own checks in it.

1. The submission runs in a fresh kernel (sandbox.py: limits, a scrubbed environment, a copy of its folder;
   nothing it starts outlives its grading), with $COURSE_PROFILE (``smoke`` when unset: the checks use their
   own small cases). A cell that raises does not stop the notebook. Each cell has a time limit (``cell_timeout``,
   default ``timeout``) and the notebook one in all (``timeout``); a cell over it is interrupted, and a kernel
   that ignores the interrupt is killed.
2. Then the grader runs its own cell in the same kernel: it imports course_utils afresh from this installation
   and calls every expected check on the student's function (its own limit: CHECKS_TIMEOUT). Only what that
   cell displays under a token the notebook never saw counts: the notebook's own output is never trusted.
3. A self-check cell that the student deleted or edited is reported in the notes; it changes no grade.
4. A check is "flagged", not PASS, when the submission uses the answer instead of writing it (flagging.py):
   it imports, names or reaches a name that ``course_utils.checks.REFERENCES`` lists for that exercise, or the
   student's function is, wraps, subclasses or calls such a name; or the notebook changes course_utils or
   IPython (every check is flagged then). The notes say where. Reading the notebook decides.

Results per check: PASS, FAIL, "not implemented", "missing", "flagged", "not run". Status per notebook: "ok",
"crashed (cell I, ExceptionName)", "timed out (cell I)", "kernel died (cell I)", "unreadable", "not
submitted", or "grader stopped it" (its grading process died or overran). Cells count from 0, markdown too.
"""

from __future__ import annotations

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
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

from course_utils.instructor import sandbox
from course_utils.instructor.flagging import RUNTIME_CHECK, code_flags
from course_utils.instructor.gradebook import Result
from course_utils.instructor.submissions import Check, Submission, cell_tags, require_jupyter

DEFAULT_PROFILE = "smoke"
CHECKS_TIMEOUT = 120  # seconds for the grader's own cell: importing torch and running a few small checks
KERNEL_START_TIMEOUT = 60
INTERRUPT_GRACE = 10  # seconds a kernel gets to answer after an interrupt before it is killed
RESULTS = ("PASS", "FAIL", "not implemented", "missing", "flagged", "not run")
MIME = "application/vnd.simclr-course.grade+json"  # how the grader's cell reports; printed text is ignored
_TIMED_OUT = "GraderTimeLimit"  # the error nbclient reports for a cell it interrupted
PACKAGE_ROOT = sandbox.PACKAGE_ROOT  # the folder that holds this course_utils
_LOG = logging.getLogger(__name__ + ".nbclient")  # nbclient's own messages: the gradebook says it better
_LOG.addHandler(logging.NullHandler())
_LOG.propagate = False


@dataclass(frozen=True)
class Options:
    """How each notebook is run (grade.main: the command-line options that set them)."""
    timeout: float = 600
    cell_timeout: float | None = None
    limits: sandbox.Limits = sandbox.Limits()
    threads: int = 1                  # CPU threads of each kernel (unless OMP_NUM_THREADS is set)
    container: str | None = None      # an image: run each kernel in docker or podman
    runtime: str | None = None        # the container runtime's path
    data_dir: str | None = None       # the course's data folder, shared by the kernels (stand-in caches)
    scratch: str | None = None        # the run's folder for the kernels' scratch folders (grade removes it at the
    #                                   end: also those of a worker that a notebook killed before it could clean up)


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


def first_line(text: str, limit: int = 200) -> str:
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
        elif outcome == "error" and "raises-exception" not in cell_tags(cell):
            result.notes.append(f"cell {index}: {error.ename}: {first_line(error.evalue)}")
            problem(f"crashed (cell {index}, {error.ename})")
    return True


def _run_checks(client, nb, checks: tuple[Check, ...], result: Result) -> dict[str, str]:
    """Run the grader's cell in the kernel of ``client``; fill ``result.checks`` from what it displays.
    Returns {check: the reference the student's function reaches} for the functions that reach one."""
    nbformat, _ = require_jupyter()
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
        result.notes.append(f"the grader's cell failed: {error.ename}: {first_line(error.evalue)}")
    reached = {}
    for output in cell.get("outputs", []):  # the checks that finished, even if a later one did not
        report = output.get("data", {}).get(MIME) if output.output_type == "display_data" else None
        if isinstance(report, dict) and report.get("token") == token and report.get("result") in RESULTS:
            result.checks[report["check"]] = (report["result"], first_line(report.get("message", ""), 500))
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


def read_notebook(path: Path):
    """(the notebook, None), or (None, why it cannot be read): not JSON, not a notebook, a truncated upload..."""
    nbformat, _ = require_jupyter()
    try:
        return nbformat.read(path, as_version=4), None
    except Exception as error:
        return None, f"{type(error).__name__}: {first_line(error)}"


def grade_notebook(submission: Submission, options: Options = Options(), sweep: bool = False) -> Result:
    """Execute one submitted notebook in a fresh, isolated kernel and run its chapter's checks on it.

    ``sweep``: this process is a grading worker (a child subreaper): after the kernel, every process below
    this one is killed too (what the kernel started and orphaned). Returns a Result; never raises for anything
    the notebook does.
    """
    from jupyter_core.utils import run_sync
    nbformat, nbclient = require_jupyter()
    checks = submission.chapter.checks
    result = Result("ok", checks={c.check: ("not run", "") for c in checks})
    start = time.monotonic()
    nb, problem = read_notebook(submission.path)
    if nb is None:
        result.status = "unreadable"
        result.notes.append(problem)
        return result
    result.notes += _self_check_notes(nb, checks)

    scratch = Path(tempfile.mkdtemp(prefix="grade-", dir=options.scratch))
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
            result.notes.append(f"grading stopped: {type(error).__name__}: {first_line(error)}")
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
