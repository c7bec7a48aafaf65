"""Specification of the grader (course_utils.instructor.grade): one command turns a folder of submitted notebooks into a
gradebook, from checks the grader runs itself, whatever the notebooks print, crash or loop on.

The submissions are made from the real chapters: the student version (course_utils.instructor.labs), truncated to what
grading needs, namely the setup cell, the imports cell (the first code cell after it that starts with an
import), and the exercises section (from the first
exercise stub to the end: stubs, self-check cells, exercise prose). The chapters' experiments are left out
to keep the test fast; grading does not depend on them. A stub is "solved" with the code of the reference
notebook's solution cell, or with one of the usual mistakes of chapter 3's multi-view NT-Xent.

One grading run (about 10 notebooks, a few seconds each) serves most tests; the infinite loop gets a run of
its own with a 3-second limit, on two notebooks whose cells all finish at once except the loop.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nbformat
import pytest

from course_utils.instructor import grade, labs, submissions
from course_utils.instructor.gradebook import Journal

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "notebooks"
CH3 = REFERENCE / "03_nt_xent.ipynb"
CH6 = REFERENCE / "06_baselines.ipynb"

pytestmark = pytest.mark.skipif(not (CH3.is_file() and CH6.is_file()), reason="chapters 3 and 6 are needed")

NOT_IMPLEMENTED = "not implemented"


# --- Making submissions ---------------------------------------------------------------------------------

def student_copy(chapter: Path):
    """The student version of ``chapter``: setup cell, imports cell, and the exercises section."""
    nb, _ = labs.student_version(nbformat.read(chapter, as_version=4), chapter)
    setup = next(i for i, c in enumerate(nb.cells) if "setup" in labs.tags(c))
    imports = next(i for i, c in enumerate(nb.cells) if i > setup and c.cell_type == "code"
                   and c.source.startswith(("import ", "from ")))
    exercises = next(i for i, c in enumerate(nb.cells) if "exercise-stub" in labs.tags(c))
    nb.cells = [nb.cells[setup], nb.cells[imports]] + nb.cells[exercises:]
    return nb


def defined(source: str) -> str:
    return re.search(r"^def (\w+)\(", source, re.MULTILINE).group(1)


def solution(chapter: Path, function: str) -> str:
    """The code of the reference's solution cell that defines ``function``."""
    nb = nbformat.read(chapter, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code" and "solution" in labs.tags(c)
                and re.search(rf"^def {function}\(", c.source, re.MULTILINE))


def solve(nb, source: str):
    """Replace the exercise stub that defines the same function as ``source`` by ``source``."""
    stub = next(c for c in nb.cells if "exercise-stub" in labs.tags(c) and defined(c.source) == defined(source))
    stub.source = source
    return nb


def solve_all(nb, chapter: Path):
    for stub in [c for c in nb.cells if "exercise-stub" in labs.tags(c)]:
        solve(nb, solution(chapter, defined(stub.source)))
    return nb


def self_check(nb, check: str):
    return next(c for c in nb.cells if "self-check" in labs.tags(c) and check in c.source)


def insert_before_exercises(nb, source: str) -> int:
    """Insert a code cell just before the first exercise stub; return its index."""
    index = next(i for i, c in enumerate(nb.cells) if "exercise-stub" in labs.tags(c))
    nb.cells.insert(index, nbformat.v4.new_code_cell(source))
    return index


def save(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


CORRECT = solution(CH3, "my_multiview_nt_xent")
DIAGONAL_NOT_MASKED = CORRECT.replace('.masked_fill(self_mask, float("-inf"))', "")
SUMMED = CORRECT.replace(".sum(1) / positive.sum(1)", ".sum(1)")
assert DIAGONAL_NOT_MASKED != CORRECT and SUMMED != CORRECT, "the chapter 3 solution changed: update the mistakes"
FIRST, SECOND = "check_multiview_nt_xent", "check_anchor_grad_z"  # chapter 3's two self-checks
DIAGONAL_HINT, SUM_HINT = "the self-similarity s_ii is still in the denominator", "you summed −log p_ip"


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory):
    """Grade one folder of submissions through the command line; the CSV rows by student, and more."""
    tmp = tmp_path_factory.mktemp("grading")
    subs = tmp / "submissions"

    save(solve_all(student_copy(CH3), CH3), subs / "alice" / "03_nt_xent.ipynb")
    save(solve_all(student_copy(CH6), CH6), subs / "alice" / "06_baselines.ipynb")
    save(solve(student_copy(CH3), DIAGONAL_NOT_MASKED), subs / "bob" / "03_nt_xent.ipynb")

    carol = solve(student_copy(CH3), SUMMED)  # flat layout; also deleted the stub of the second exercise
    carol.cells = [c for c in carol.cells if not ("exercise-stub" in labs.tags(c) and "my_anchor_grad_z" in c.source)]
    save(carol, subs / "carol_03_nt_xent.ipynb")

    save(student_copy(CH3), subs / "dave" / "Copy of 03_nt_xent.ipynb")  # untouched

    erin = solve_all(student_copy(CH3), CH3)  # a cell that raises; the cells after it still run
    crash = insert_before_exercises(erin, 'raise ValueError("my experiment broke")')
    save(erin, subs / "erin" / "03_nt_xent.ipynb")

    grace = solve(student_copy(CH3), DIAGONAL_NOT_MASKED)  # a wrong answer, and its self-check deleted
    grace.cells.remove(self_check(grace, FIRST))
    save(grace, subs / "grace" / "03_nt_xent.ipynb")

    heidi = solve(student_copy(CH3), SUMMED)  # a wrong answer, and a self-check that prints PASS
    self_check(heidi, FIRST).source = 'print("PASS")'
    save(heidi, subs / "heidi" / "03_nt_xent.ipynb")

    ivan = solve_all(student_copy(CH3), CH3)  # the kernel dies before the exercises are defined
    death = insert_before_exercises(ivan, "import os\nos._exit(1)")
    save(ivan, subs / "ivan" / "03_nt_xent.ipynb")

    kim = solve(student_copy(CH3), SUMMED)  # a wrong answer, and the check and its reference patched
    patch = ("import course_utils.checks, course_utils.losses\n"
             "course_utils.losses._nt_xent_from_ids = my_multiview_nt_xent\n"
             f"course_utils.checks.{FIRST} = lambda fn: print('PASS') or True")
    kim.cells.insert(kim.cells.index(self_check(kim, FIRST)), nbformat.v4.new_code_cell(patch))
    save(kim, subs / "kim" / "03_nt_xent.ipynb")
    (subs / "kim" / ".ipynb_checkpoints").mkdir()  # ignored, like any hidden file
    nbformat.write(student_copy(CH3), subs / "kim" / ".ipynb_checkpoints" / "03_nt_xent-checkpoint.ipynb")
    (subs / "README.txt").write_text("not a notebook: ignored")

    out, page = tmp / "grades.csv", tmp / "grades.html"
    with pytest.MonkeyPatch.context() as patch:  # the kernels share the session's data folder
        patch.setenv("COURSE_DATA", str(tmp_path_factory.getbasetemp() / "course-home" / "data"))
        code = grade.main([str(subs), "--out", str(out), "--html", str(page), "--reference", str(REFERENCE),
                           "--timeout", "300", "--cell-timeout", "120", "--jobs", "2"])
    with open(out, newline="", encoding="utf-8") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return dict(code=code, rows=rows, csv=out.read_text(), html=page.read_text(), crash=crash, death=death,
                carol=carol)


def results(row: dict, chapter: str = "03_nt_xent") -> tuple[str, str, str]:
    return row[f"{chapter}/status"], row[f"{chapter}/{FIRST}"], row[f"{chapter}/{SECOND}"]


# --- The gradebook --------------------------------------------------------------------------------------

def test_grading_finishes_with_exit_code_0_and_one_row_per_student(gradebook):
    print(gradebook["csv"])
    assert gradebook["code"] == 0
    assert list(gradebook["rows"]) == ["alice", "bob", "carol", "dave", "erin", "grace", "heidi", "ivan", "kim"]
    header = gradebook["csv"].splitlines()[0].split(",")
    assert header[:5] == ["student", "03_nt_xent/status", "03_nt_xent/seconds", f"03_nt_xent/{FIRST}",
                          f"03_nt_xent/{SECOND}"]
    assert "06_baselines/check_lloyd" in header


def test_a_correct_submission_passes_every_check(gradebook):
    alice = gradebook["rows"]["alice"]
    assert results(alice) == ("ok", "PASS", "PASS")
    assert alice["06_baselines/status"] == "ok" and alice["06_baselines/check_lloyd"] == "PASS"
    assert alice["03_nt_xent/notes"] == "" and alice["03_nt_xent/messages"] == ""
    assert 0 < float(alice["03_nt_xent/seconds"]) < 120


def test_usual_mistakes_fail_with_the_checks_hint(gradebook):
    bob, carol = gradebook["rows"]["bob"], gradebook["rows"]["carol"]
    assert results(bob) == ("ok", "FAIL", NOT_IMPLEMENTED)
    assert DIAGONAL_HINT in bob["03_nt_xent/messages"]
    # carol also deleted the second stub, so her (unchanged) self-check cell of it raises a NameError
    check_cell = next(i for i, c in enumerate(gradebook["carol"].cells) if f"{SECOND}(" in c.source)
    assert results(carol) == (f"crashed (cell {check_cell}, NameError)", "FAIL", "missing")
    assert SUM_HINT in carol["03_nt_xent/messages"]
    assert "no function my_anchor_grad_z" in carol["03_nt_xent/messages"]


def test_an_untouched_student_copy_is_not_implemented(gradebook):
    dave = gradebook["rows"]["dave"]  # submitted as "Copy of 03_nt_xent.ipynb", as Colab names a copy
    assert results(dave) == ("ok", NOT_IMPLEMENTED, NOT_IMPLEMENTED)
    assert dave["03_nt_xent/notes"] == ""


def test_a_crash_is_reported_and_the_later_cells_still_count(gradebook):
    erin = gradebook["rows"]["erin"]
    assert results(erin) == (f"crashed (cell {gradebook['crash']}, ValueError)", "PASS", "PASS")
    assert "my experiment broke" in erin["03_nt_xent/notes"]


def test_a_dead_kernel_is_reported_and_its_checks_not_run(gradebook):
    ivan = gradebook["rows"]["ivan"]
    assert results(ivan) == (f"kernel died (cell {gradebook['death']})", "not run", "not run")


def test_a_deleted_self_check_is_a_note_not_a_pass(gradebook):
    grace = gradebook["rows"]["grace"]
    assert results(grace) == ("ok", "FAIL", NOT_IMPLEMENTED)
    assert f"the self-check cell of {FIRST} was deleted" in grace["03_nt_xent/notes"]


def test_printing_pass_instead_of_the_self_check_does_not_pass(gradebook):
    heidi = gradebook["rows"]["heidi"]
    assert results(heidi) == ("ok", "FAIL", NOT_IMPLEMENTED)
    assert f"the self-check cell of {FIRST} was deleted or replaced" in heidi["03_nt_xent/notes"]


def test_monkeypatching_the_checks_does_not_pass_and_is_flagged(gradebook):
    kim = gradebook["rows"]["kim"]  # her own self-check cell printed PASS
    assert results(kim) == ("ok", "flagged", "flagged")
    assert "flagged (the check said FAIL)" in kim["03_nt_xent/messages"]  # the grader's own check still ran
    assert "assigns to course_utils.checks.check_multiview_nt_xent" in kim["03_nt_xent/notes"]
    assert "uses _nt_xent_from_ids, the answer to my_multiview_nt_xent" in kim["03_nt_xent/notes"]


def test_a_chapter_a_student_did_not_submit(gradebook):
    bob = gradebook["rows"]["bob"]
    assert bob["06_baselines/status"] == "not submitted"
    assert bob["06_baselines/check_lloyd"] == "not run"


def test_the_html_summary_colours_results_and_shows_hints_on_hover(gradebook):
    page = gradebook["html"]
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr>") == 1 + 9
    assert 'style="background:#c8e6c9"' in page  # PASS and ok
    assert 'style="background:#ffcdd2"' in page  # FAIL and crashed
    assert re.search(r'<td style="background:#ffcdd2" title="[^"]*' + DIAGONAL_HINT + r'[^"]*">FAIL</td>', page)


# --- Time limits ---------------------------------------------------------------------------------------

def test_an_infinite_loop_is_stopped_and_the_next_submission_graded(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    # Both notebooks are the chapter's stub cell solved and nothing else but the loop, so that only the loop
    # can reach the 3-second limit (torch is imported inside the function, when the grader calls it).
    solved = CORRECT.replace('"""\n', '"""\n    import torch\n    import torch.nn.functional as F\n', 1)
    cell = nbformat.v4.new_code_cell
    frank = nbformat.v4.new_notebook(cells=[cell(solved), cell("while True:\n    pass"), cell("after = 1")])
    gina = nbformat.v4.new_notebook(cells=[cell(solved)])
    save(frank, tmp_path / "subs" / "frank_03_nt_xent.ipynb")
    save(gina, tmp_path / "subs" / "gina_03_nt_xent.ipynb")

    frank, gina = grade.grade(tmp_path / "subs", REFERENCE, timeout=3, verbose=False).rows
    assert (frank["student"], frank["03_nt_xent/status"]) == ("frank", "timed out (cell 1)")
    assert frank[f"03_nt_xent/{FIRST}"] == "PASS"  # the kernel was interrupted, then graded
    assert "cells 2 and later not run" in frank["03_nt_xent/notes"]
    assert float(frank["03_nt_xent/seconds"]) < 60
    assert (gina["student"], gina["03_nt_xent/status"], gina[f"03_nt_xent/{FIRST}"]) == ("gina", "ok", "PASS")
    assert f"the self-check cell of {FIRST} was deleted" in gina["03_nt_xent/notes"]


# --- What the grader expects, and bad input ----------------------------------------------------------

def test_the_expected_checks_come_from_the_reference_self_check_cells():
    chapters = submissions.reference_chapters(REFERENCE)
    assert [(c.check, c.function) for c in chapters["03"].checks] == [
        (FIRST, "my_multiview_nt_xent"), (SECOND, "my_anchor_grad_z")]
    assert all(chapter.checks for chapter in chapters.values()), "every chapter has at least one self-check"


def test_both_layouts_are_recognised(tmp_path):
    for name in ("alice/03_nt_xent.ipynb", "alice/Copy of 06_baselines.ipynb", "bob-smith_03_nt_xent (1).ipynb",
                 "alice/.ipynb_checkpoints/03_nt_xent-checkpoint.ipynb", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found, skipped = submissions.find_submissions(tmp_path, submissions.reference_chapters(REFERENCE))
    assert [(s.student, s.chapter.name, s.folder is not None) for s in found] == [
        ("alice", "03_nt_xent", True), ("alice", "06_baselines", True), ("bob-smith", "03_nt_xent", False)]
    assert skipped == []


@pytest.mark.parametrize("files, message", [
    (["alice_99_extra.ipynb"], "alice_99_extra.ipynb: no chapter number of a reference chapter"),
    (["alice/my_solutions.ipynb"], "my_solutions.ipynb: no chapter number"),
    (["03_nt_xent.ipynb"], "whose is it?"),
    (["alice/03_nt_xent.ipynb", "alice_03_nt_xent.ipynb"], "alice submitted chapter 03 2 times"),
    (["bob/notes.txt"], "bob/: no notebook (.ipynb) directly in this folder"),
    (["carol_03_nt_xent.zip"], "an archive: unpack it"),
], ids=["unknown-chapter", "no-chapter", "no-student", "twice", "no-notebook", "archive"])
def test_what_cannot_be_graded_is_skipped_listed_and_exits_1(tmp_path, capsys, files, message):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in files:
        (subs / name).parent.mkdir(parents=True, exist_ok=True)
        (subs / name).write_text("{}")
    code = grade.main([str(subs), "--out", str(tmp_path / "g.csv"), "--html", str(tmp_path / "g.html"),
                       "--reference", str(REFERENCE)])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Accepted layouts" in err and "--resume" in err
    assert (tmp_path / "g.csv").read_text().startswith("student")  # the gradebook is written all the same
    page = (tmp_path / "g.html").read_text()
    assert '<h2 id="skipped">' in page and message.split(": ", 1)[-1] in page


def test_a_skipped_file_never_stops_the_others(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "zoe_03_nt_xent.ipynb").write_text("{ not json")  # graded (as unreadable) without a kernel
    (subs / "zoe_03_nt_xent (1).ipynb").write_text("{}")  # her second copy: both skipped, so she is "not graded"
    (subs / "yann_99_extra.ipynb").write_text("{}")
    (subs / "xena_06_baselines.ipynb").write_text("not json either")
    code = grade.main([str(subs), "--out", str(tmp_path / "g.csv"), "--reference", str(REFERENCE), "--jobs", "2"])
    err = capsys.readouterr().err
    rows = {r["student"]: r for r in csv.DictReader((tmp_path / "g.csv").open())}
    assert code == 1 and list(rows) == ["xena"] and rows["xena"]["06_baselines/status"] == "unreadable"
    assert "Skipped 3 (not graded)" in err and "zoe submitted chapter 03 2 times" in err and "yann_99" in err


def test_the_lms_export_layouts_are_recognised(tmp_path):
    names = [
        "Ana Lima_4821_assignsubmission_file_/03_nt_xent.ipynb",       # Moodle, a folder per student
        "Ana Lima_4821_assignsubmission_onlinetext_/onlinetext.html",  # Moodle's online text: ignored
        "Ben Ode_4822_assignsubmission_file_Copy of 06_baselines.ipynb",  # Moodle without folders
        "limaana_31337_904411_06_baselines.ipynb",                      # Canvas
        "odeben_LATE_31338_904412_03_nt_xent.ipynb",                    # Canvas, late
        "kaycee_31339_904413_03_nt_xent.ipynb",                         # Canvas, uploaded three times:
        "kaycee_31339_904413_03_nt_xent-1.ipynb",                       # the latest ("-2") is graded
        "kaycee_31339_904413_03_nt_xent-2.ipynb",
        "Dana Scully - 03_nt_xent.ipynb",                               # Google Classroom's copy per student
        "__MACOSX/._x_03_nt_xent.ipynb", ".DS_Store", "readme.txt",     # ignored
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found, skipped = submissions.find_submissions(tmp_path, submissions.reference_chapters(REFERENCE))
    assert [(s.student, s.chapter.number, s.path.name) for s in found] == [
        ("Ana Lima_4821", "03", "03_nt_xent.ipynb"),
        ("Ben Ode_4822", "06", "Ben Ode_4822_assignsubmission_file_Copy of 06_baselines.ipynb"),
        ("Dana Scully", "03", "Dana Scully - 03_nt_xent.ipynb"),
        ("kaycee_31339", "03", "kaycee_31339_904413_03_nt_xent-2.ipynb"),
        ("limaana_31337", "06", "limaana_31337_904411_06_baselines.ipynb"),
        ("odeben_31338", "03", "odeben_LATE_31338_904412_03_nt_xent.ipynb")]
    assert [(s.path, s.reason.split(" (")[0]) for s in skipped] == [
        ("kaycee_31339_904413_03_nt_xent-1.ipynb", "an earlier upload of kaycee_31339's chapter 03"),
        ("kaycee_31339_904413_03_nt_xent.ipynb", "an earlier upload of kaycee_31339's chapter 03")]


# --- The journal: results kept as they come ------------------------------------------------------------

def test_the_journal_notices_and_undoes_writes_that_are_not_the_graders(tmp_path):
    path = tmp_path / "grades.jsonl"
    journal = Journal(path)
    assert journal.append({"type": "result", "student": "ann", "status": "ok"}) is False
    with open(path, "a") as f:  # a kernel appends a forged line
        f.write('{"type": "result", "student": "ann", "status": "ok", "forged": true}\n')
    assert journal.verify() is True and "forged" not in path.read_text()
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")  # ... or swaps the file for a link
    assert journal.append({"type": "end"}) is True
    assert not path.is_symlink() and [r["type"] for r in Journal(path).records()] == ["result", "end"]
    assert not (tmp_path / "elsewhere").exists()
    with open(path, "ab") as f:  # a crash in the middle of a line: the line is dropped when read again
        f.write(b'{"type": "res')
    assert [r["type"] for r in Journal(path).records()] == ["result", "end"]
    assert path.read_bytes().endswith(b"\n")


def test_a_missing_folder_or_reference_is_a_clear_error(tmp_path, capsys):
    assert grade.main([str(tmp_path / "nowhere"), "--reference", str(REFERENCE)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert grade.main([str(tmp_path), "--reference", str(tmp_path)]) == 2
    assert "No reference chapters" in capsys.readouterr().err
    assert grade.main([str(tmp_path), "--timeout", "0", "--reference", str(REFERENCE)]) == 2
    assert "timeouts must be positive" in capsys.readouterr().err


def test_an_unreadable_notebook_is_graded_as_unreadable(tmp_path):
    (tmp_path / "zoe_03_nt_xent.ipynb").write_text("{ this is not json")
    [row] = grade.grade(tmp_path, REFERENCE, verbose=False).rows
    assert row["03_nt_xent/status"] == "unreadable" and row[f"03_nt_xent/{FIRST}"] == "not run"


def test_the_kernels_share_the_course_data_folder_of_the_graders_environment(monkeypatch, tmp_path):
    from course_utils import config

    assert grade._course_data_dir() == str(config.data_dir().resolve())  # asks course_utils.config itself
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    assert grade._course_data_dir() == str(tmp_path / "data")
