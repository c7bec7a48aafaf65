"""Specification of the grader's isolation (course_utils.instructor.sandbox) and of flagging
(course_utils.instructor.flagging), in unit tests that start no kernel: the copy of a student's folder, the kernel's environment, the container
command, killing a process tree that tries to escape, and which code is flagged. The kernels themselves are
attacked in tests/test_grade_attacks.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from course_utils.instructor import flagging, labs, sandbox

ROOT = Path(__file__).resolve().parents[1]
linux = pytest.mark.skipif(sys.platform != "linux", reason="process trees and limits: Linux")


# --- Sizes, the folder copy, the environment -------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("4G", 4 << 30), ("512M", 512 << 20), ("1.5G", 3 << 29), ("100k", 102400),
                                        ("2GiB", 2 << 30), ("12345", 12345), (" 8 MB ", 8 << 20)])
def test_sizes_are_read_with_binary_units(text, size):
    assert sandbox.parse_size(text) == size
    assert sandbox.parse_size(sandbox.format_size(size)) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "4X"])
def test_a_bad_size_says_how_to_write_one(text):
    with pytest.raises(ValueError, match="e.g. 4G, 512M"):
        sandbox.parse_size(text)


def test_the_copy_of_a_folder_follows_no_link_and_stops_at_its_cap(tmp_path):
    secret = tmp_path / "instructor" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the instructor's secret")
    student = tmp_path / "alice"
    (student / "data" / "deep").mkdir(parents=True)
    (student / "03_nt_xent.ipynb").write_text("{}")
    (student / "data" / "deep" / "small.txt").write_text("mine")
    (student / "data" / "big.bin").write_bytes(bytes(3000))
    (student / ".ipynb_checkpoints").mkdir()
    (student / ".ipynb_checkpoints" / "old.ipynb").write_text("{}")
    (student / "root").symlink_to("/")
    (student / "data" / "secret").symlink_to(secret)
    (student / "up").symlink_to(tmp_path / "instructor", target_is_directory=True)
    os.mkfifo(student / "pipe")  # reading it would block the copy forever

    copy = tmp_path / "copy"
    notes = sandbox.copy_folder(student, copy, sandbox.Limits(folder_size=1000, folder_files=10))
    copied = sorted(str(p.relative_to(copy)) for p in copy.rglob("*"))
    assert copied == ["03_nt_xent.ipynb", "data", "data/deep", "data/deep/small.txt"]
    assert not any(p.is_symlink() for p in copy.rglob("*"))
    assert notes == ["symbolic links not copied: data/secret, root, up",
                     "1 special files (sockets, pipes, devices) not copied",
                     "1 files not copied: the folder is over the cap of 1000 bytes and 10 files (--max-folder-size)"]


def test_a_kernel_gets_an_allow_list_of_variables_and_private_folders(tmp_path):
    grader = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "HOME": "/home/teacher", "AWS_SECRET_ACCESS_KEY": "x",
              "GITHUB_TOKEN": "y", "PYTHONPATH": "/elsewhere", "COURSE_PROFILE": "cpu", "COURSE_DATA": "/data",
              "LD_PRELOAD": "/evil.so", "JUPYTER_TOKEN": "z"}
    env = sandbox.kernel_env(tmp_path, threads=3, package_root="/course", defaults={"COURSE_PROFILE": "smoke"},
                             source=grader)
    assert {k: env[k] for k in ("PATH", "LANG", "COURSE_PROFILE", "COURSE_DATA")} == {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "COURSE_PROFILE": "cpu", "COURSE_DATA": "/data"}
    assert not {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "LD_PRELOAD", "JUPYTER_TOKEN"} & set(env)
    assert env["HOME"] == str(tmp_path / "home") and Path(env["HOME"]).is_dir()
    assert env["COURSE_HOME"].startswith(env["HOME"]) and env["TMPDIR"] == str(tmp_path / "tmp")
    assert env["COURSE_CHECKPOINTS"] == str(tmp_path / "checkpoints") and env["PYTHONPATH"] == "/course"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert sandbox.kernel_env(tmp_path, threads=3, package_root="/c", source={"OMP_NUM_THREADS": "1"})[
        "OMP_NUM_THREADS"] == "1", "an instructor's own thread count is kept"


def test_the_kernel_command_isolates_python_and_carries_the_limits():
    limits = sandbox.Limits(memory=1 << 30, processes=10, file_size=1 << 20, cpu_seconds=99)
    argv = sandbox.kernel_argv("/venv/bin/python", limits, "/course")
    assert argv[:3] == ["/venv/bin/python", "-I", "-c"] and argv[-3:] == ["-f", "{connection_file}",
                                                                          "--IPKernelApp.ignore_cwd=True"]
    settings = json.loads(argv[4])
    rlimits = {name: (soft, hard) for name, soft, hard in settings["limits"]}
    assert rlimits["RLIMIT_DATA"] == (1 << 30, 1 << 30) and rlimits["RLIMIT_FSIZE"] == (1 << 20, 1 << 20)
    assert rlimits["RLIMIT_CPU"] == (99, 104) and rlimits["RLIMIT_CORE"] == (0, 0)
    assert rlimits["RLIMIT_NPROC"][0] >= 10  # the user's own processes, and 10 more
    assert settings["package_root"] == "/course" and "sys.path.append(os.getcwd())" in sandbox.LAUNCHER


def test_the_container_command_has_no_network_and_maps_the_limits(tmp_path):
    limits = sandbox.Limits(memory=2 << 30, processes=64, file_size=1 << 30)
    argv = sandbox.container_argv("/usr/bin/podman", "course-grader", name="grade-1", limits=limits, threads=2,
                                  scratch=tmp_path, mounts=[("/course/course_utils", False), ("/data", True)],
                                  env={"HOME": "/h", "COURSE_PROFILE": "smoke"},
                                  command=["python", "-I", "-c", "pass"])
    line = " ".join(argv)
    assert argv[:4] == ["/usr/bin/podman", "run", "--rm", "--init"]
    for option in ("--network none", "--cap-drop ALL", "--security-opt no-new-privileges", "--read-only",
                   f"--memory {2 << 30}", f"--memory-swap {2 << 30}", "--pids-limit 64", "--cpus 2",
                   f"--ulimit fsize={1 << 30}:{1 << 30}", "--name grade-1", f"--workdir {tmp_path / 'work'}",
                   f"--volume {tmp_path}:{tmp_path}:rw", "--volume /course/course_utils:/course/course_utils:ro",
                   "--volume /data:/data:rw", "--env COURSE_PROFILE=smoke", "--env HOME=/h",
                   f"--user {os.getuid()}:{os.getgid()}"):
        assert option in line, option
    assert argv[-5:] == ["course-grader", "python", "-I", "-c", "pass"]
    assert sum(a == "--env" for a in argv) == 2, "the kernel's environment is exactly the one given"


def test_a_missing_container_runtime_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="without --container"):
        sandbox.find_runtime("no-such-runtime-here")


# --- Nothing outlives its grading ---------------------------------------------------------------------

ESCAPES = """
import json, os, subprocess, sys, time
from course_utils.instructor import sandbox
sandbox.become_subreaper()
plain = subprocess.Popen(["sleep", "60"])
session = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
daemon = subprocess.Popen([sys.executable, "-c", '''
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
print(os.getpid(), flush=True)
time.sleep(60)'''], stdout=subprocess.PIPE, text=True)
escaped = int(daemon.stdout.readline())
daemon.wait()
table = sandbox.process_table()
before = {"parent of the double-forked daemon": table[escaped][0], "me": os.getpid()}
killed = sandbox.stop_tree(below=os.getpid())
print(json.dumps({"pids": [plain.pid, session.pid, escaped], "killed": sorted(killed), **before}))
"""


@linux
def test_a_subreaper_kills_children_that_left_the_session_or_double_forked():
    run = subprocess.run([sys.executable, "-c", ESCAPES], capture_output=True, text=True, cwd=ROOT, timeout=60)
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["parent of the double-forked daemon"] == report["me"], "the subreaper adopted it"
    assert set(report["pids"]) <= set(report["killed"])
    alive = [pid for pid in report["pids"] if sandbox.process_table().get(pid, (0, 0, 0, "Z"))[3] not in "ZX"]
    assert not alive


@linux
def test_a_process_that_forks_while_it_is_killed_is_caught(tmp_path):
    # Every process of this tree forks as fast as it can until it is frozen: none may be left.
    bomb = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, time
        for _ in range(6):
            try:
                os.fork()
            except OSError:
                pass
            time.sleep(0.05)
        time.sleep(60)""")], start_new_session=True)
    import time
    time.sleep(0.2)
    killed = sandbox.stop_tree({bomb.pid}, sessions={bomb.pid})
    bomb.wait()
    table = sandbox.process_table()
    assert len(killed) > 1
    assert not [pid for pid, (_, _, sid, state) in table.items() if sid == bomb.pid and state not in "ZX"]


# --- Flagging: the answer instead of the student's code ------------------------------------------------

LLOYD = SimpleNamespace(check="check_lloyd", function="my_lloyd",
                        answers=("KMeans", "k_means", "kmeans2", "lloyd_reference"))
ANSWERS = {
    "from-import": "from course_utils.checks import lloyd_reference as my_lloyd",
    "module alias": "import course_utils.checks as c\nmy_lloyd = c.lloyd_reference",
    "getattr": "import course_utils.checks as c\nmy_lloyd = getattr(c, 'lloyd_reference')",
    "import_module": "import importlib\nmy_lloyd = importlib.import_module('course_utils.checks').lloyd_reference",
    "__import__": "my_lloyd = __import__('course_utils.checks', fromlist=['x']).lloyd_reference",
    "a library's": "from sklearn.cluster import KMeans\ndef my_lloyd(x, c, i):\n    return KMeans(3).fit(x)",
    "exec": "exec('from course_utils.checks import lloyd_reference as my_lloyd')",
    "a magic": "%time from course_utils.checks import lloyd_reference as my_lloyd",
}
TAMPERING = {
    "a check replaced": "import course_utils.checks\ncourse_utils.checks.check_lloyd = lambda f: True",
    "setattr": "from course_utils import checks as k\nsetattr(k, 'check_lloyd', print)",
    "the display patched": "import IPython.display\nIPython.display.display = print",
    "a hook registered": "ip = get_ipython()\nip.events.register('pre_run_cell', print)",
    "a transformer added": "get_ipython().input_transformers_post.append(str)",
    "sys.modules": "import sys\nsys.modules['course_utils.checks'].check_lloyd = print",
    "vars": "import course_utils.checks as c\nvars(c)['check_lloyd'] = print",
    "__dict__": "import course_utils.checks as c\nc.__dict__['check_lloyd'] = print",
    "deleted": "from course_utils import losses\ndel losses.nt_xent",
}


@pytest.mark.parametrize("source", ANSWERS.values(), ids=ANSWERS.keys())
def test_using_the_answer_in_any_form_is_flagged(source):
    assert flagging.code_flags([("cell 4", source)], [LLOYD])["check_lloyd"][0].startswith("cell 4 uses ")


@pytest.mark.parametrize("source", TAMPERING.values(), ids=TAMPERING.keys())
def test_changing_course_utils_or_ipython_flags_every_check(source):
    other = SimpleNamespace(check="check_x", function="my_x", answers=("nothing_here",))
    flags = flagging.code_flags([("cell 2", source)], [LLOYD, other])
    assert set(flags) == {"check_lloyd", "check_x"} and flags["check_x"][0].startswith("cell 2 line ")


def test_plumbing_with_course_utils_is_not_flagged():
    source = ("from course_utils.config import get_profile\nprofile = get_profile()\nname = profile.name\n"
              "from course_utils.models import SmallCNN\nnet = SmallCNN()\nnet.head = None\n"
              "from IPython.display import display\ndisplay(net)\nresults = {}\nresults['a'] = 1\n"
              "def my_lloyd(x, centroids, iterations):\n    return x\n")
    assert flagging.code_flags([("cell 1", source), ("cell 2", "this is not Python (")], [LLOYD]) == {}


CHAPTERS = labs.chapter_notebooks(ROOT)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_chapter_is_flagged_neither_its_solution_nor_its_student_copy(path):
    from course_utils.instructor import submissions

    checks = submissions.reference_checks(path)
    full = nbformat.read(path, as_version=4)
    student, _ = labs.student_version(nbformat.read(path, as_version=4), path)
    for nb in (full, student):
        sources = [(f"cell {i}", c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        assert flagging.code_flags(sources, checks) == {}
