"""The layout of course_utils: one idea a module, each short enough to read top to bottom in one sitting, every
subpackage in the wheel that students install (tests/test_colab.py installs that wheel, but only at the cost of
running every chapter), and the instructors' tools (course_utils.instructor) out of the chapters' way."""

import ast
import tomllib
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_utils"
MAX_LINES = 600  # longer than this, a module holds more than one idea: split it (a subpackage, as checks/)


def test_no_module_of_course_utils_is_over_600_lines():
    lengths = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in sorted(PACKAGE.rglob("*.py"))}
    assert "course_utils/checks/__init__.py" in lengths, "the subpackages' modules are not counted"
    too_long = {path: lines for path, lines in lengths.items() if lines > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines, to split by idea: {too_long}"


def test_the_wheel_gets_every_subpackage_of_course_utils():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    if "packages" in config and isinstance(config["packages"], list):
        installed = set(config["packages"])
    else:
        find = config.get("packages", {}).get("find", {})
        installed = set(setuptools.find_packages(str(ROOT), include=find.get("include", ["*"]),
                                                 exclude=find.get("exclude", ())))
    subpackages = {p.parent.relative_to(ROOT).as_posix().replace("/", ".") for p in PACKAGE.rglob("__init__.py")}
    assert "course_utils.checks" in subpackages
    assert subpackages <= installed, f"pyproject.toml leaves {sorted(subpackages - installed)} out of the wheel"
    assert all(name.split(".")[0] == "course_utils" for name in installed), f"only course_utils: {sorted(installed)}"


# --- The instructors' tools: an arrow that points one way ----------------------------------------------------------

INSTRUCTOR = "course_utils.instructor"


def imported_modules(source: str, package: str) -> set[str]:
    """The modules that ``source`` imports (``from m import a`` gives m and m.a), relative imports resolved
    against ``package`` (the dotted name of the package the code lives in)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return found


def reaches_instructor(modules: set[str]) -> set[str]:
    return {m for m in modules if m == INSTRUCTOR or m.startswith(INSTRUCTOR + ".")}


def test_imported_modules_resolves_relative_imports_so_the_arrow_test_below_can_fail():
    assert reaches_instructor(imported_modules("from .instructor import labs", "course_utils"))
    assert reaches_instructor(imported_modules("from .. import instructor", "course_utils.checks"))
    assert reaches_instructor(imported_modules("import course_utils.instructor.grade as g", "course_utils"))
    assert not reaches_instructor(imported_modules("from . import report, config", "course_utils.checks"))


def test_nothing_a_chapter_imports_imports_the_instructors_tools():
    """course_utils.instructor needs nbformat, pyyaml, pybtex...: no module outside it, no chapter and no
    student copy may import it, or a student's Colab session would need them too."""
    offenders, scanned = {}, set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[:2] == ("course_utils", "instructor"):
            continue
        scanned.add(relative.as_posix())
        package = ".".join(relative.parent.parts)  # what "." means in it (for an __init__.py: its own package)
        if reached := reaches_instructor(imported_modules(path.read_text(), package)):
            offenders[relative.as_posix()] = sorted(reached)
    assert {"course_utils/report.py", "course_utils/checks/ch01.py"} <= scanned

    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "labs").glob("*.ipynb"))
    assert notebooks, "no chapters found"
    for path in notebooks:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                source = TransformerManager().transform_cell(cell.source)  # magics and !pip as Python
                if reached := reaches_instructor(imported_modules(source, "")):
                    offenders[f"{path.relative_to(ROOT).as_posix()} cell {index}"] = sorted(reached)
    assert not offenders, (f"these import {INSTRUCTOR}, whose dependencies students do not install: {offenders}. "
                           "Move what they need out of instructor/, or the code that needs it into instructor/.")
