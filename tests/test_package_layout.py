"""The layout of course_utils: one idea a module, each short enough to read top to bottom in one sitting, and
every subpackage in the wheel that students install (tests/test_colab.py installs that wheel, but only at the
cost of running every chapter)."""

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
