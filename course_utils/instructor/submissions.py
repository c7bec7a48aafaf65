"""What to grade: the checks each reference chapter expects, and the submitted notebooks, whose and which.

A submissions folder may mix these layouts (``LAYOUTS``; NN is the number of a reference chapter,
``notebooks/NN_*``):

    alice/03_nt_xent.ipynb                              a folder per student, any file name with "NN_" in it
    Alice Smith_12345_assignsubmission_file_/03_nt_xent.ipynb     Moodle's "download submissions in folders"
    Alice Smith_12345_assignsubmission_file_03_nt_xent.ipynb      Moodle without folders
    smithalice_12345_67890_03_nt_xent.ipynb             Canvas ("_LATE_" and a re-upload's "-1" understood)
    Alice Smith - 03_nt_xent.ipynb                      Google Classroom's copy for each student
    alice_03_nt_xent.ipynb                              flat: <student><_ - or space><NN_...>.ipynb

A notebook whose chapter or student cannot be told from its name, a chapter submitted twice by one student,
or an archive is SKIPPED: listed with the reason, while everything else is graded. Hidden files and folders
(".ipynb_checkpoints", "__MACOSX") and other files are ignored.

The REFERENCE chapter says what to expect: each of its cells tagged "self-check" calls a check on a student's
function, e.g. ``check_nt_xent(my_nt_xent)``; ``course_utils.checks.REFERENCES`` names, for each check, the
functions that hand out its answer (flagging.py).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

INSTALL_HINT = "pip install 'simclr-course-utils[instructor]'"
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


def require_jupyter():
    """Import nbformat and nbclient (the instructor extra); a clear message when they are missing."""
    try:
        import ipykernel  # noqa: F401  (the kernel that runs the notebooks)
        import nbclient
        import nbformat
    except ImportError as error:
        raise ImportError(f"Grading needs nbformat, nbclient and ipykernel ({error.name} is missing): "
                          f"{INSTALL_HINT}") from error
    return nbformat, nbclient


def cell_tags(cell) -> list[str]:
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
    nbformat, _ = require_jupyter()
    path = Path(path)
    answers = answer_names() if answers is None else answers
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if "self-check" not in cell_tags(cell):
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
