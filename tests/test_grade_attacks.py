"""Hostile submissions: each is graded and reported, and none harms the others, the gradebook or the machine.

One grading run (two at a time, small limits: 1.5 GiB of memory, 8 MiB files) grades an honest student and
one submission per attack, against a one-exercise reference chapter (Lloyd's k-means, chapter 6's check):

    lingerer    starts a child, a child in a new session and a double-forked daemon, all meant to outlive it
    writer      a detached daemon that forges lines in the journal and would overwrite the CSV; a wrong answer
    hogs        allocates memory without end, then writes a file without end; then a right answer
    deaf        ignores SIGINT and loops forever
    folder      a folder with links to / and to the instructor's files, a numpy.py, an ipykernel.py...; it checks
                its own environment, sys.path and limits from inside
    answer      imports the reference: ``from course_utils.checks import lloyd_reference as my_lloyd``
    sneaky      reaches it by names built at run time (only the grader's run-time check can see it)
    forger      patches IPython's display so that the grader's report says PASS; a wrong answer
    killer      kills the process that grades it

Afterwards no process any of them started is alive, and the gradebook and the journal hold the grader's
results only. Then: an interrupted run keeps its results and --resume grades the rest; and the container path
(``--container``) runs end to end with a stand-in for docker that runs the command it is given.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from course_utils.instructor import grade, labs, sandbox

ROOT = Path(__file__).resolve().parents[1]
CH6 = ROOT / "notebooks" / "06_baselines.ipynb"
pytestmark = [pytest.mark.skipif(not CH6.is_file(), reason="chapter 6 is needed"),
              pytest.mark.skipif(sys.platform != "linux", reason="the isolation is Linux's")]

MEMORY, FILE_SIZE = "1536M", "8M"
CHAPTER = "06_lloyd"
cell = nbformat.v4.new_code_cell


def reference_cells():
    nb = nbformat.read(CH6, as_version=4)
    stub = next(c for c in nb.cells if "exercise-stub" in labs.tags(c))
    check = next(c for c in nb.cells if "self-check" in labs.tags(c))
    solution = next(c.source for c in nb.cells if "solution" in labs.tags(c) and c.source.startswith("def my_lloyd"))
    return stub, check, "import numpy as np\n\n" + solution


STUB, SELF_CHECK, SOLVED = reference_cells()
WRONG = "def my_lloyd(x, centroids, iterations):\n    return None, None"
# A stand-alone Python program that detaches itself: fork, setsid, fork again, the parents exit.
DAEMON = """import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
"""


def notebook(*sources) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[cell(textwrap.dedent(s)) for s in sources])


def daemon(body: str) -> str:
    """A cell that starts ``body`` as a detached daemon process (a program of its own: forking the kernel
    itself, which has threads, could deadlock the child)."""
    program = DAEMON + textwrap.dedent(body)
    return f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {program!r}], check=True)\n"


def hostile(tmp: Path) -> dict[str, Path]:
    """Write the submissions into tmp/subs; return {student: evidence file or folder}."""
    subs, evidence = tmp / "subs", tmp / "evidence"
    subs.mkdir()
    evidence.mkdir()
    out = tmp / "out"
    save = lambda nb, name: nbformat.write(nb, subs / name)  # noqa: E731

    save(notebook(SOLVED), f"zoe_{CHAPTER}.ipynb")

    save(notebook(f"""
        import subprocess, sys, time
        child = subprocess.Popen(["sleep", "300"])
        session = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
        open("{evidence}/lingerer-child", "w").write(str(child.pid))
        open("{evidence}/lingerer-session", "w").write(str(session.pid))
        """, daemon(f"""
        open("{evidence}/lingerer-daemon", "w").write(str(os.getpid()))
        time.sleep(300)
        """), SOLVED), f"lingerer_{CHAPTER}.ipynb")

    forged = json.dumps({"type": "result", "student": "writer", "chapter": CHAPTER, "status": "ok",
                         "checks": {"check_lloyd": ["PASS", "forged"]}, "notes": []})
    save(notebook(daemon(f"""
        open("{evidence}/writer-daemon", "w").write(str(os.getpid()))
        for _ in range(3000):
            with open("{out}/grades.jsonl", "a") as f:
                f.write({forged!r} + "\\n")
            if os.path.exists("{out}/grades.csv"):
                open("{out}/grades.csv", "w").write("forged")
            time.sleep(0.05)
        """), "import time\ntime.sleep(1)", WRONG), f"writer_{CHAPTER}.ipynb")

    save(notebook("""
        import numpy as np

        def hog():
            chunks = []
            while True:  # address space it never touches: the limit, not the machine's memory, stops it
                chunks.append(np.empty(64 << 20, dtype=np.uint8))

        hog()
        """, """
        with open("big.bin", "wb") as f:
            while True:
                f.write(bytes(1 << 20))
        """, SOLVED), f"hogs_{CHAPTER}.ipynb")

    save(notebook("""
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
        """, SOLVED), f"deaf_{CHAPTER}.ipynb")

    folder = subs / "folder"
    folder.mkdir()
    secret = evidence / "instructor-secret.txt"
    secret.write_text("the instructor's secret")
    (folder / "root").symlink_to("/")
    (folder / "passwords").symlink_to(secret)
    for module in ("numpy", "ipykernel", "ipykernel_launcher", "zmq", "IPython", "course_utils"):
        (folder / f"{module}.py").write_text(f"open('{evidence}/shadow-{module}', 'w').write('imported')\n"
                                             "raise ImportError('a student file shadowed a real module')\n")
    (folder / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    probe = f"""
        import json, os, resource, sys
        from helper import double  # the student's own modules still import
        import numpy
        seen = dict(secret=os.environ.get("GRADER_TEST_SECRET"), home=os.environ["HOME"], cwd=os.getcwd(),
                    last_on_path=sys.path[-1], numpy=numpy.__file__, links=[p for p in ("root", "passwords")
                    if os.path.lexists(p)], limits={{name: resource.getrlimit(getattr(resource, name))[0] for name
                    in ("RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_CPU", "RLIMIT_CORE")}},
                    variables=sorted(os.environ))
        open("{evidence}/folder-probe.json", "w").write(json.dumps(seen))
        assert double(2) == 4
        assert seen["secret"] is None, "the grader's environment reached the kernel"
        assert not seen["links"], "a symbolic link was copied"
        assert seen["last_on_path"] == os.getcwd() and "" not in sys.path, sys.path
        assert not numpy.__file__.startswith(os.getcwd()), numpy.__file__
        """
    nbformat.write(notebook(probe, SOLVED), folder / f"{CHAPTER}.ipynb")

    save(notebook("from course_utils.checks import lloyd_reference as my_lloyd"), f"answer_{CHAPTER}.ipynb")
    save(notebook("""
        import importlib
        module = importlib.import_module("course_utils." + "che" + "cks")
        my_lloyd = getattr(module, "lloyd_" + "reference")
        """), f"sneaky_{CHAPTER}.ipynb")
    save(notebook("""
        import IPython.display
        real = IPython.display.display

        def display(*objects, **kwargs):  # every report of the grader's becomes a PASS
            objects = [{k: dict(v, result="PASS") if isinstance(v, dict) else v for k, v in o.items()}
                       if isinstance(o, dict) else o for o in objects]
            return real(*objects, **kwargs)

        IPython.display.display = display
        """, WRONG), f"forger_{CHAPTER}.ipynb")
    save(notebook(f"""
        import os, signal
        open("{evidence}/killer-kernel", "w").write(str(os.getpid()))
        os.kill(os.getppid(), signal.SIGKILL)
        """, SOLVED), f"killer_{CHAPTER}.ipynb")
    return evidence


JOURNAL_NOTE = "the journal was changed while this notebook was being graded (restored)"


def alive(pid: int) -> bool:
    return sandbox.process_table().get(pid, (0, 0, 0, "X"))[3] not in "ZX"


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    reference = tmp / "reference"
    reference.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[STUB, SELF_CHECK]), reference / f"{CHAPTER}.ipynb")
    evidence = hostile(tmp)
    (tmp / "out").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADER_TEST_SECRET", "hunter2")  # the grader has it; no kernel may see it
        patch.setenv("COURSE_DATA", str(tmp / "data"))
        (tmp / "tmp").mkdir()
        patch.setattr(tempfile, "tempdir", str(tmp / "tmp"))  # where the grader makes its scratch folders
        patch.setenv("TMPDIR", str(tmp / "tmp"))  # and its workers
        start = time.monotonic()
        code = grade.main([str(tmp / "subs"), "--out", str(tmp / "out" / "grades.csv"), "--html",
                           str(tmp / "out" / "grades.html"), "--reference", str(reference), "--jobs", "2",
                           "--timeout", "60", "--cell-timeout", "20", "--memory", MEMORY,
                           "--max-file-size", FILE_SIZE])
        seconds = time.monotonic() - start
    csv_text = (tmp / "out" / "grades.csv").read_text()
    time.sleep(1)  # a writer that outlived its grading would strike now
    rows = {r["student"]: r for r in csv.DictReader((tmp / "out" / "grades.csv").open())}
    for student, row in rows.items():  # the attack table of the report
        print(f"{student:9s} {row[f'{CHAPTER}/status']:20s} {row[f'{CHAPTER}/check_lloyd']:8s} "
              f"{row[f'{CHAPTER}/notes']} | {row[f'{CHAPTER}/messages']}")
    print(f"graded in {seconds:.0f} s")
    return dict(code=code, rows=rows, csv=csv_text, evidence=evidence, tmp=tmp, left=sorted((tmp / "tmp").iterdir()),
                journal=(tmp / "out" / "grades.jsonl").read_text(), html=(tmp / "out" / "grades.html").read_text())


def result(attacked, student: str) -> tuple[str, str, str, str]:
    row = attacked["rows"][student]
    return (row[f"{CHAPTER}/status"], row[f"{CHAPTER}/check_lloyd"], row[f"{CHAPTER}/notes"],
            row[f"{CHAPTER}/messages"])


def test_every_submission_is_graded_and_the_honest_one_passes(attacked):
    assert attacked["code"] == 0
    assert sorted(attacked["rows"]) == ["answer", "deaf", "folder", "forger", "hogs", "killer", "lingerer",
                                        "sneaky", "writer", "zoe"]
    status, check, notes, _ = result(attacked, "zoe")
    assert (status, check) == ("ok", "PASS"), notes
    # She left the self-check cell out; if she was graded while the writer forged the journal, she is named
    # with it (the grader cannot tell which of the notebooks running at the time did it). Nothing else.
    assert set(notes.split("; ")) - {JOURNAL_NOTE} == {"the self-check cell of check_lloyd was deleted or replaced"}


def test_nothing_a_notebook_started_outlives_its_grading(attacked):
    evidence = attacked["evidence"]
    pids = {f.name: int(f.read_text()) for f in evidence.iterdir() if f.name.startswith(("lingerer-", "writer-",
                                                                                           "killer-"))}
    assert set(pids) == {"lingerer-child", "lingerer-session", "lingerer-daemon", "writer-daemon", "killer-kernel"}
    assert not [name for name, pid in pids.items() if alive(pid)]
    status, check, notes, _ = result(attacked, "lingerer")
    # The plain child was in the kernel's process group, killed with the kernel; the other two had left it.
    assert (status, check) == ("ok", "PASS") and "2 processes it started were still running" in notes


def test_a_detached_writer_cannot_touch_the_gradebook(attacked):
    status, check, notes, _ = result(attacked, "writer")
    assert (status, check) == ("ok", "FAIL"), notes  # its own wrong answer, whatever the forged lines said
    assert JOURNAL_NOTE in notes
    assert "forged" not in attacked["journal"] and "forged" not in attacked["csv"]
    assert attacked["csv"] == (attacked["tmp"] / "out" / "grades.csv").read_text()
    assert '<h2 id="incidents">' in attacked["html"] and "writer 06_lloyd" in attacked["html"]
    results = [json.loads(line) for line in attacked["journal"].splitlines() if '"result"' in line]
    assert sorted(r["student"] for r in results) == sorted(attacked["rows"]), "one result per submission"


def test_memory_and_disk_hogs_hit_their_limits_and_the_notebook_goes_on(attacked):
    status, check, notes, _ = result(attacked, "hogs")
    assert status.startswith("crashed (cell 0,") and "MemoryError" in status, notes
    assert "cell 1: OSError: [Errno 27] File too large" in notes
    assert check == "PASS", notes  # the cell after them ran, and the checks too


def test_a_loop_that_ignores_the_interrupt_is_killed(attacked):
    status, check, notes, _ = result(attacked, "deaf")
    assert (status, check) == ("timed out (cell 0)", "not run"), notes
    assert "cell 0 ignored the interrupt: the kernel was killed, and the later cells and the checks were not run" \
        in notes


def test_a_kernel_sees_neither_the_graders_environment_nor_links_out_of_its_folder(attacked):
    status, check, notes, _ = result(attacked, "folder")
    assert (status, check) == ("ok", "PASS"), notes
    assert "symbolic links not copied: passwords, root" in notes
    seen = json.loads((attacked["evidence"] / "folder-probe.json").read_text())
    print(json.dumps(seen, indent=1))
    assert seen["secret"] is None and "grade-" in seen["home"] and seen["home"] != os.environ.get("HOME")
    assert not {"GRADER_TEST_SECRET", "PYTHONPATH_BEFORE"} & set(seen["variables"])
    assert seen["limits"]["RLIMIT_DATA"] == sandbox.parse_size(MEMORY)
    assert seen["limits"]["RLIMIT_FSIZE"] == sandbox.parse_size(FILE_SIZE)
    assert seen["limits"]["RLIMIT_CORE"] == 0
    assert all(seen["limits"][name] > 0 for name in ("RLIMIT_NPROC", "RLIMIT_CPU"))  # finite: -1 is unlimited
    assert not [f.name for f in attacked["evidence"].iterdir() if f.name.startswith("shadow-")], "a shadow ran"


def test_the_reference_imported_or_reached_is_flagged_not_passed(attacked):
    status, check, notes, messages = result(attacked, "answer")
    assert (status, check) == ("ok", "flagged"), notes
    assert "flagged (the check said PASS): cell 0 uses lloyd_reference, the answer to my_lloyd" in messages
    status, check, notes, messages = result(attacked, "sneaky")
    assert (status, check) == ("ok", "flagged"), notes
    assert "my_lloyd reaches course_utils.checks.ch06.lloyd_reference" in notes  # where it is defined


def test_a_forged_report_is_flagged(attacked):
    status, check, notes, messages = result(attacked, "forger")
    assert (status, check) == ("ok", "flagged"), notes  # its forgery made the report say PASS...
    assert "flagged (the check said PASS)" in messages  # ...which the grader says it does not trust
    assert "cell 0 line 9 assigns to IPython.display.display" in notes


def test_no_scratch_folder_is_left_behind_not_even_a_killed_workers(attacked):
    assert attacked["left"] == []  # the kernels' folders (connection keys, copies of the students' files)


def test_a_notebook_that_kills_its_grader_is_stopped_and_the_others_go_on(attacked):
    status, check, notes, _ = result(attacked, "killer")
    assert (status, check) == (grade.STOPPED, "not run"), notes
    assert "the process grading it was killed (exit code -9)" in notes


# --- Interrupted, then resumed -----------------------------------------------------------------------------

def test_an_interrupted_run_keeps_its_results_and_resume_grades_the_rest(tmp_path):
    reference, subs, out = tmp_path / "reference", tmp_path / "subs", tmp_path / "out"
    for folder in (reference, subs, out):
        folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[STUB, SELF_CHECK]), reference / f"{CHAPTER}.ipynb")
    (subs / f"amy_{CHAPTER}.ipynb").write_text("not a notebook")  # graded at once, without a kernel
    pid_file = tmp_path / "sleeper"
    nbformat.write(notebook(f"import os, time\nopen('{pid_file}', 'w').write(str(os.getpid()))\ntime.sleep(300)"),
                   subs / f"bob_{CHAPTER}.ipynb")
    command = [sys.executable, "-m", "course_utils.instructor.grade", str(subs), "--out", str(out / "grades.csv"),
               "--reference", str(reference), "--jobs", "2"]
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "COURSE_DATA": str(tmp_path / "data"), "TMPDIR": str(tmp_path / "tmp")}
    run = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal: the grader and its workers get it
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130 and "--resume" in err
    assert not alive(int(pid_file.read_text())), "the kernel of the interrupted notebook was stopped"
    assert list((tmp_path / "tmp").iterdir()) == [], "an interrupted run leaves no scratch folder behind"
    journal = [json.loads(line) for line in (out / "grades.jsonl").read_text().splitlines()]
    assert [(r["type"], r.get("student")) for r in journal if r["type"] in ("start", "result")] == [
        ("start", "amy"), ("result", "amy"), ("start", "bob")]
    assert not (out / "grades.csv").exists()

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "pass --resume" in again.stderr  # no result is thrown away by accident

    (subs / f"bob_{CHAPTER}.ipynb").write_text("bob's notebook, replaced")  # a quick one this time
    resumed = subprocess.run(command + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert "these were being graded when a run stopped: bob 06_lloyd" in resumed.stdout
    assert "1 notebooks graded now, 1 kept from the journal" in resumed.stdout
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [(r["student"], r[f"{CHAPTER}/status"]) for r in rows] == [("amy", "unreadable"), ("bob", "unreadable")]


# --- In a container ----------------------------------------------------------------------------------------

FAKE_RUNTIME = '''#!{python}
"""A stand-in for docker: records its command line, then runs the container's command here, with the
container's environment and working folder only (no isolation: this tests the grader's side)."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_RUNTIME_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[0] != "run":
    sys.exit(0)
takes_value = {{"--name", "--network", "--cap-drop", "--security-opt", "--tmpfs", "--memory", "--memory-swap",
               "--pids-limit", "--cpus", "--ulimit", "--user", "--workdir", "--volume", "--env"}}
env, i = {{}}, 1
while args[i].startswith("--"):
    if args[i] == "--env":
        key, _, value = args[i + 1].partition("=")
        env[key] = value
    elif args[i] == "--workdir":
        os.chdir(args[i + 1])
    i += 2 if args[i] in takes_value else 1
command = args[i + 1:]
command[0] = sys.executable if command[0] == "python" else command[0]
os.execve(command[0], command, env)
'''


def test_with_a_container_runtime_each_kernel_runs_in_a_container_without_network(tmp_path, monkeypatch):
    runtime = tmp_path / "docker"
    runtime.write_text(FAKE_RUNTIME.format(python=sys.executable))
    runtime.chmod(0o755)
    log = tmp_path / "runtime.log"
    monkeypatch.setenv("FAKE_RUNTIME_LOG", str(log))
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    reference, subs = tmp_path / "reference", tmp_path / "subs"
    reference.mkdir()
    subs.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[STUB, SELF_CHECK]), reference / f"{CHAPTER}.ipynb")
    nbformat.write(notebook(SOLVED), subs / f"zoe_{CHAPTER}.ipynb")
    report = grade.grade(subs, reference, timeout=60, jobs=1, container="course-grader:1", runtime=str(runtime),
                         verbose=False)
    [row] = report.rows
    assert (row[f"{CHAPTER}/status"], row[f"{CHAPTER}/check_lloyd"]) == ("ok", "PASS")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    run, remove = calls
    assert run[0] == "run" and "course-grader:1" in run and run[run.index("--network") + 1] == "none"
    assert run[run.index("--memory") + 1] == str(sandbox.Limits().memory)
    assert remove == ["rm", "-f", run[run.index("--name") + 1]]  # and the container is removed afterwards
    assert not [a for a in run if a.startswith("GRADER_") or "TOKEN" in a]
