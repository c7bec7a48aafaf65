"""Run a student's notebook kernel so that it cannot take the grading machine with it (Linux, no root needed).

The grader starts its workers (grade.py) and every kernel (grade_one.py) through this module. By default each kernel:

1. runs in its own process session, and when its grading ends EVERY process it started is stopped and
   killed: the members of its session and process group, and every descendant of the grading process,
   which is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so that a child that double-forks or
   calls ``setsid()`` still has the grader as an ancestor (``stop_tree``);
2. gets resource limits (``Limits``): memory (RLIMIT_DATA: the heap and private mappings, where Python,
   NumPy and torch allocate), processes (RLIMIT_NPROC), the size of any file it writes (RLIMIT_FSIZE: a
   larger write raises OSError "File too large"), CPU seconds (RLIMIT_CPU, a backstop to the wall-clock
   limit), no core dumps;
3. gets a scrubbed environment (``kernel_env``): an allow-list (PATH, the locale, the course's own
   variables) and a private HOME, COURSE_HOME, TMPDIR and checkpoint folder in its scratch folder, never
   the grader's tokens or keys;
4. starts with ``python -I`` and IPython's ``ignore_cwd``: its working folder (the student's copy) is put
   LAST on sys.path, so the student's helper modules import but a ``numpy.py`` or ``ipykernel.py`` there
   cannot replace the real ones;
5. works in a copy of the student's folder made without following symbolic links and with a size cap
   (``copy_folder``).

Why RLIMIT_DATA and not RLIMIT_AS: importing torch maps about 3.4 GB of address space (its CUDA libraries)
but only about 0.8 GB of data, and CUDA reserves tens of GB of address space it never uses; a limit on the
address space would stop torch itself. What these limits cannot do without root: RLIMIT_NPROC counts all the
processes of the user, so the grader allows the user's current count plus ``processes`` (and root ignores
it); a limit applies per process, so children each get their own; a kernel runs as the instructor, so while
it runs it can read and write whatever the instructor can. ``container_argv`` builds the command that runs
the kernel in docker or podman instead, with no network, a cgroup for memory and processes, and only its
own folder mounted: that is what stops the rest.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import pickle
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

_PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 4, 36


@dataclass(frozen=True)
class Limits:
    """What one kernel may use. Sizes in bytes; ``cpu_seconds`` None: no CPU limit."""
    memory: int = 4 << 30           # heap and private memory of each of its processes (RLIMIT_DATA)
    processes: int = 256            # processes and threads it may start beyond the user's own (RLIMIT_NPROC)
    file_size: int = 1 << 30        # the size of any file it writes (RLIMIT_FSIZE)
    folder_size: int = 256 << 20    # the student's folder copied for it: bytes...
    folder_files: int = 2000        # ...and files
    cpu_seconds: int | None = None  # CPU time of the kernel process, all its threads (RLIMIT_CPU)

    def rlimits(self) -> list[tuple[str, int, int]]:
        """(resource name, soft, hard) for the kernel process; NPROC counts from the user's current number."""
        limits = [("RLIMIT_DATA", self.memory, self.memory), ("RLIMIT_FSIZE", self.file_size, self.file_size),
                  ("RLIMIT_CORE", 0, 0)]
        if self.processes and os.path.isdir("/proc"):  # elsewhere the user's own count is unknown
            allowed = user_tasks() + self.processes
            limits.append(("RLIMIT_NPROC", allowed, allowed))
        if self.cpu_seconds:  # SIGXCPU at the soft limit, SIGKILL at the hard one
            limits.append(("RLIMIT_CPU", self.cpu_seconds, self.cpu_seconds + 5))
        return limits


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes from "4G", "512M", "1.5G", "100k" or a number of bytes (binary units: 1K = 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a size: write a positive number with an optional unit, e.g. 4G, 512M.")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_size(size: int) -> str:
    """``parse_size`` backwards: 1536 -> "1.5K", 4 << 30 -> "4G"."""
    for unit in "TGMK":
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:g}{unit}"
    return f"{size} bytes"


# --- The student's folder ---------------------------------------------------------------------------

def copy_folder(source: Path, target: Path, limits: Limits) -> list[str]:
    """Copy ``source`` into ``target`` without following symbolic links; return notes on what was left out.

    Links (to files or folders), sockets, pipes and devices are not copied, nor ``.ipynb_checkpoints``; the copy
    stops at ``limits.folder_size`` bytes or ``limits.folder_files`` files (files in name order, depth-first).
    """
    target.mkdir(parents=True)
    links, special, over = [], 0, []
    budget = {"bytes": limits.folder_size, "files": limits.folder_files}

    def walk(src: Path, dst: Path, depth: int) -> None:
        nonlocal special
        with os.scandir(src) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_symlink():
                    links.append(str(Path(entry.path).relative_to(source)))
                elif entry.is_dir(follow_symlinks=False):
                    if entry.name != ".ipynb_checkpoints" and depth < 20:
                        (dst / entry.name).mkdir()
                        walk(Path(entry.path), dst / entry.name, depth + 1)
                elif entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    if size > budget["bytes"] or budget["files"] < 1:
                        over.append(str(Path(entry.path).relative_to(source)))
                        continue
                    budget["bytes"] -= size
                    budget["files"] -= 1
                    _copy_file(Path(entry.path), dst / entry.name)
                else:
                    special += 1

    walk(source, target, 0)
    notes = []
    if links:
        notes.append(f"symbolic links not copied: {', '.join(links[:5])}" + (" ..." if len(links) > 5 else ""))
    if special:
        notes.append(f"{special} special files (sockets, pipes, devices) not copied")
    if over:
        notes.append(f"{len(over)} files not copied: the folder is over the cap of {format_size(limits.folder_size)} "
                     f"and {limits.folder_files} files (--max-folder-size)")
    return notes


def _copy_file(src: Path, dst: Path) -> None:
    """Copy one regular file, refusing to open anything else (the file could be swapped for a link meanwhile)."""
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        with os.fdopen(fd, "rb", closefd=False) as f, open(dst, "wb") as out:
            shutil.copyfileobj(f, out)
    finally:
        os.close(fd)


# --- Environment and command line -----------------------------------------------------------------

PASSED_ON = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ")
# The course's own variables (course_utils.config, data, train; the chapters' setup cell), and which GPU.
COURSE_VARIABLES = ("COURSE_PROFILE", "COURSE_OVERRIDES", "COURSE_DATA", "COURSE_CIFAR10_URL", "COURSE_UTILS_SOURCE",
                    "COURSE_PROGRESS", "TQDM_DISABLE", "CUDA_VISIBLE_DEVICES")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def kernel_env(scratch: Path, *, threads: int, package_root: str, defaults: dict | None = None,
               source: dict | None = None) -> dict:
    """The environment of a kernel: the allow-listed variables of ``source`` (os.environ), ``defaults`` for
    those it lacks, a private HOME, COURSE_HOME, TMPDIR and COURSE_CHECKPOINTS under ``scratch``, ``threads``
    CPU threads (unless OMP_NUM_THREADS is set), and PYTHONPATH = ``package_root`` for the processes it starts.
    """
    source = os.environ if source is None else source
    env = {k: source[k] for k in PASSED_ON + COURSE_VARIABLES + THREAD_VARIABLES if k in source}
    for key, value in (defaults or {}).items():
        env.setdefault(key, value)
    if "OMP_NUM_THREADS" not in env:
        env.update({k: str(threads) for k in THREAD_VARIABLES})
    env.setdefault("PATH", os.defpath)
    home = scratch / "home"
    for folder in (home, scratch / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), COURSE_HOME=str(home / "course"), COURSE_CHECKPOINTS=str(scratch / "checkpoints"),
               TMPDIR=str(scratch / "tmp"), MPLBACKEND="Agg", PYTHONPATH=package_root)
    return env


# Run by ``python -I -c``: the limits, then the course's package first and the working folder last on sys.path,
# then ipykernel in this same process (so the limits are the kernel's own).
LAUNCHER = """\
import json, os, resource, sys
settings = json.loads(sys.argv.pop(1))
for name, soft, hard in settings["limits"]:
    kind = getattr(resource, name)
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))
if settings["package_root"] not in sys.path:
    sys.path.insert(0, settings["package_root"])
sys.path.append(os.getcwd())
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def kernel_argv(python: str, limits: Limits, package_root: str) -> list[str]:
    """The command that starts a limited ipykernel (jupyter_client fills in ``{connection_file}``).

    ``-I``: no PYTHON* variables, no user site-packages, and no working folder first on sys.path; IPython's
    ``ignore_cwd`` stops it putting the folder back before site-packages.
    """
    settings = json.dumps({"limits": limits.rlimits(), "package_root": package_root})
    return [python, "-I", "-c", LAUNCHER, settings, "-f", "{connection_file}", "--IPKernelApp.ignore_cwd=True"]


def find_runtime(name: str | None = None) -> str:
    """The path of a container runtime: ``name`` (docker, podman or a path), else docker, else podman."""
    for candidate in ([name] if name else ["docker", "podman"]):
        found = shutil.which(candidate)
        if found:
            return found
    raise FileNotFoundError(f"No container runtime {name or 'docker or podman'} on PATH: install one, or grade "
                            "without --container (the default isolation).")


def container_argv(runtime: str, image: str, *, name: str, limits: Limits, threads: int, scratch: Path,
                   mounts: list[tuple[str, bool]], env: dict, command: list[str]) -> list[str]:
    """``docker run`` (or podman) for ``command`` in ``image``: no network, no capabilities, a read-only root
    file system, the memory and process limits of ``limits`` as a cgroup, ``scratch`` mounted read-write at
    the same path (the kernel's sockets and connection file live there), ``mounts`` ((path, writable)) at
    their own paths, and exactly ``env`` as its environment. Runs as the calling user.
    """
    argv = [runtime, "run", "--rm", "--init", "--name", name, "--network", "none", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--read-only", "--tmpfs", "/tmp",
            "--memory", str(limits.memory), "--memory-swap", str(limits.memory),
            "--pids-limit", str(limits.processes), "--cpus", str(threads),
            "--ulimit", f"fsize={limits.file_size}:{limits.file_size}", "--ulimit", "core=0:0",
            "--user", f"{os.getuid()}:{os.getgid()}", "--workdir", str(scratch / "work"),
            "--volume", f"{scratch}:{scratch}:rw"]
    for path, writable in mounts:
        argv += ["--volume", f"{path}:{path}:{'rw' if writable else 'ro'}"]
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}"]
    return argv + [image] + command


# --- Processes --------------------------------------------------------------------------------------

def _prctl(option: int, value: int) -> bool:
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(option, value, 0, 0, 0) == 0


def become_subreaper(on: bool = True) -> bool:
    """Make this process adopt its orphaned descendants (Linux): a grandchild that double-forks or calls
    setsid() is then still below it, where ``stop_tree`` finds it. Returns False where unsupported."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, int(on))


def set_dumpable(on: bool) -> bool:
    """Not dumpable: processes of the same user cannot ptrace this one, read its memory or open its file
    descriptors through /proc (unless they are root). The grader's processes hold results and secrets."""
    return _prctl(_PR_SET_DUMPABLE, int(on))


def process_table() -> dict[int, tuple[int, int, int, str]]:
    """{pid: (parent pid, process group, session, state)} of every process, from /proc (Linux)."""
    table = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # the name, in parentheses, may hold anything
        except (OSError, IndexError):
            continue  # ended meanwhile
        table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[3]), fields[0].decode())
    return table


def descendants(root: int, table: dict | None = None) -> set[int]:
    """The pids below ``root`` (children, their children, ...), from ``table`` (``process_table()``)."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def stop_tree(roots: set[int] | None = None, *, below: int | None = None, sessions: set[int] = frozenset(),
              spare: set[int] = frozenset(), rounds: int = 100) -> set[int]:
    """Kill ``roots`` and every process below them or below ``below``, and every member of ``sessions``
    (session ids, which are also process-group ids of their leaders); never ``spare`` nor this process.

    Freeze first, then kill: each round stops (SIGSTOP) what it finds, so a process that forks while it is
    being killed cannot outrun the scan; when a round finds nothing new, everything frozen gets SIGKILL.
    Returns the pids that were killed, once they are gone (zombies that are our children are reaped).
    """
    spare = set(spare) | {os.getpid()}
    sessions = set(sessions) - {0, 1, os.getsid(0)}  # never this process's own session
    frozen: set[int] = set()
    for _ in range(rounds):
        table = process_table()
        found = set(roots or ()) & set(table)
        for root in set(found) | ({below} if below else set()):
            found |= descendants(root, table)
        found |= {pid for pid, (_, pgid, sid, _) in table.items() if sid in sessions or pgid in sessions}
        found = {pid for pid in found - spare - frozen if table.get(pid, (0, 0, 0, "Z"))[3] not in "ZX"}
        if not found:
            break
        for pid in found:
            _signal(pid, signal.SIGSTOP)
        frozen |= found
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    _wait_gone(frozen)
    return frozen


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pids: set[int], seconds: float = 10.0) -> None:
    """Reap those of ``pids`` that are our children; wait until the others have ended (or are zombies)."""
    deadline = time.monotonic() + seconds
    left = set(pids)
    while left and time.monotonic() < deadline:
        table = process_table()
        for pid in list(left):
            if table.get(pid, (0, 0, 0, "X"))[0] == os.getpid():
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        left.discard(pid)
                        continue
                except ChildProcessError:
                    pass
            if pid not in table or table[pid][3] in "ZX" and table[pid][0] != os.getpid():
                left.discard(pid)
        if left:
            time.sleep(0.02)


def user_tasks() -> int:
    """How many processes and threads this user runs now (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


# --- Worker processes ---------------------------------------------------------------------------------

# A worker runs ``target`` ("module:function") on one job at a time. It is a child subreaper (what its jobs
# orphan stays below it, where ``stop_tree(below=...)`` finds it) and not dumpable (a kernel of the same user
# can neither read its memory nor write into its pipes through /proc). Messages: pickles, length-prefixed.
_WORKER = "import sys; sys.path.insert(0, sys.argv[1]); from course_utils.instructor.sandbox import _serve; _serve()"
# The folder that holds this course_utils (this file is course_utils/instructor/sandbox.py): first on the sys.path
# of the workers and the kernels.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _send(fd: int, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = len(data).to_bytes(8, "little") + data
    while data:
        data = data[os.write(fd, data):]


def _receive(fd: int):
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = os.read(fd, n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data
    return pickle.loads(exactly(int.from_bytes(exactly(8), "little")))


def _serve() -> None:
    """A worker's loop: jobs in on stdin, ``target(job)``'s results out on the pipe named in argv."""
    results, (module, _, name) = int(sys.argv[2]), sys.argv[3].partition(":")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it then stops us
    become_subreaper()
    set_dumpable(False)
    target = getattr(importlib.import_module(module), name)
    _send(results, "ready")
    while True:
        try:
            job = _receive(sys.stdin.fileno())
        except EOFError:
            return
        if job is None:
            return
        _send(results, target(job))


class _Worker:
    def __init__(self, target: str):
        read, write = os.pipe()
        self.process = subprocess.Popen([sys.executable, "-c", _WORKER, PACKAGE_ROOT, str(write), target],
                                        stdin=subprocess.PIPE, pass_fds=(write,), cwd=PACKAGE_ROOT)
        os.close(write)
        self.results, self.buffer = read, b""
        self.job, self.started, self.ready = None, 0.0, False

    def give(self, job) -> None:
        self.job, self.started = job, time.monotonic()
        try:
            _send(self.process.stdin.fileno(), job)
        except OSError:
            pass  # it died: the loop sees it and fails the job

    def messages(self) -> tuple[list, bool]:
        """The complete messages that have arrived, and whether the pipe is closed (the worker ended)."""
        chunk = os.read(self.results, 1 << 20)
        self.buffer += chunk
        found = []
        while len(self.buffer) >= 8 and len(self.buffer) >= 8 + int.from_bytes(self.buffer[:8], "little"):
            size = int.from_bytes(self.buffer[:8], "little")
            found.append(pickle.loads(self.buffer[8:8 + size]))
            self.buffer = self.buffer[8 + size:]
        return found, not chunk

    def close(self) -> None:
        try:
            _send(self.process.stdin.fileno(), None)
            self.process.stdin.close()
        except (OSError, ValueError):
            pass
        os.close(self.results)


def run_in_workers(jobs: list, target: str, processes: int, *, limit: float, started, finished, failed) -> None:
    """Run ``target`` ("module:function", a function of one picklable job) on every job of ``jobs``, in
    ``processes`` worker processes, one job at a time each; call ``started(job)``, ``finished(job, result)`` or
    ``failed(job, why, seconds)`` in this process as it happens.

    A worker that dies, or spends more than ``limit`` seconds on a job, is killed with everything below it; its
    job fails and a new worker takes its place. Call it from a child subreaper (``become_subreaper``): what a
    dead worker's jobs orphaned comes here, and is killed too. Whatever happens, including Ctrl-C, every
    worker and everything below it is stopped before this returns or raises.
    """
    pending, workers = deque(jobs), []
    ours = {pid for pid, row in process_table().items() if row[0] == os.getpid()}  # children from before
    try:
        while pending or any(w.job is not None for w in workers):
            idle = [w for w in workers if w.job is None]
            if len(idle) < len(pending) and len(workers) < processes:
                workers.append(_Worker(target))
                continue
            for w in workers:
                if w.ready and w.job is None and pending:
                    started(pending[0])
                    w.give(pending.popleft())
            readable, _, _ = select.select([w.results for w in workers], [], [], 1.0)
            for w in list(workers):
                ended = False
                if w.results in readable:
                    messages, ended = w.messages()
                    for message in messages:
                        if message == "ready":
                            w.ready = True
                        elif w.job is not None:
                            finished(w.job, message)
                            w.job = None
                overran = w.job is not None and time.monotonic() - w.started > limit
                if not (ended or overran or w.process.poll() is not None):
                    continue
                try:  # its own exit status first (stop_tree would reap it)
                    w.process.wait(timeout=0.1 if overran else 5)
                except subprocess.TimeoutExpired:
                    stop_tree({w.process.pid})
                    w.process.wait()
                if not w.ready:
                    raise RuntimeError(f"a grading worker could not start (exit code {w.process.returncode}); "
                                       "its error is printed above")
                if w.job is not None:
                    why = (f"it ran over {limit:.0f} s" if overran else
                           f"the process grading it was killed (exit code {w.process.returncode})")
                    failed(w.job, why, round(time.monotonic() - w.started, 1))
                workers.remove(w)
                w.close()
                _stop_orphans(ours | {x.process.pid for x in workers})
    finally:
        for w in workers:
            w.close()
        deadline = time.monotonic() + 10
        while any(w.process.poll() is None for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop_tree({w.process.pid for w in workers})
        for w in workers:
            w.process.wait()
        _stop_orphans(ours)


def _stop_orphans(keep: set[int]) -> None:
    """Kill what a dead worker's jobs left behind: children of this process (a subreaper) not in ``keep``."""
    orphans = {pid for pid, row in process_table().items()
               if row[0] == os.getpid() and pid not in keep and row[3] not in "ZX"}
    if orphans:
        stop_tree(orphans)
