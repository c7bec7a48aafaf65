"""The GitHub Actions workflow that publishes the book is valid against GitHub's workflow schema."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK = Path(sys.executable).parent / "check-jsonschema"


def validate(path: Path) -> subprocess.CompletedProcess:
    if not CHECK.exists():
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    return subprocess.run([str(CHECK), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True)


def test_there_is_a_workflow_that_builds_and_deploys_the_book():
    assert WORKFLOWS, "no workflow in .github/workflows"
    text = "\n".join(p.read_text() for p in WORKFLOWS)
    assert "make book" in text and "deploy-pages" in text and "jupyter_cache" in text


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_githubs_schema(path):
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOWS[0].read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert validate(broken).returncode != 0


def test_make_test_runs_the_chapters_and_the_book_check_in_one_xdist_work_unit():
    """make test runs two xdist workers; the book check builds from the outputs of the nbval cells in its own
    process, and a notebook's cells share one kernel: so they must all be one work unit (conftest.py)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("root_conftest", root / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    makefile = (root / "Makefile").read_text()
    assert " -n 2 " in makefile and "notebooks tests" in makefile, "make test no longer runs nbval then tests in 2 workers"
    cells = [f"notebooks/{p.name}::Cell {i}" for p in sorted((root / "notebooks").glob("*.ipynb")) for i in (0, 7)]
    book = ["tests/test_book.py::test_book_builds_without_warnings", "tests/test_book.py::test_math[02]"]
    assert {conftest.work_unit(n) for n in cells + book} == {conftest.NOTEBOOK_GROUP}
    others = ["tests/test_losses.py::test_a", "tests/test_losses.py::test_b[1]", "tests/test_colab.py::test_c"]
    assert [conftest.work_unit(n) for n in others] == ["tests/test_losses.py"] * 2 + ["tests/test_colab.py"]


def test_make_test_hands_out_the_chapters_and_the_longest_modules_first_with_one_thread_each():
    import importlib.util
    from types import SimpleNamespace

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("root_conftest", root / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    assert all((root / path).is_file() for path in conftest.LONG_FIRST), "LONG_FIRST names a module that is gone"
    collected = ["notebooks/01_augmentations.ipynb::Cell 0", "notebooks/02_simclr_mnist.ipynb::Cell 0",
                 "tests/test_augment.py::test_a", "tests/test_book.py::test_b", "tests/test_colab.py::test_c",
                 "tests/test_augment.py::test_d", "tests/test_grade.py::test_e", "tests/test_colab.py::test_f"]
    items = [SimpleNamespace(nodeid=n) for n in collected]
    conftest.pytest_collection_modifyitems(None, items)
    assert [i.nodeid.split("::")[1] for i in items] == ["Cell 0", "Cell 0", "test_b", "test_c", "test_f", "test_e",
                                                        "test_a", "test_d"]
    makefile = (root / "Makefile").read_text()
    assert "OMP_NUM_THREADS=1" in makefile.split("TEST_ENV :=", 1)[1].split("test: setup", 1)[0], \
        "two workers need one thread each: with two, four threads fight over two cores"


def test_make_setup_leaves_the_installed_packages_compiled_to_bytecode():
    """make setup installs with pip --no-compile and compiles on every core afterwards (Makefile). Without the
    second step, where PYTHONDONTWRITEBYTECODE=1 is set every process compiles torch again: make test took 375 s,
    not 205-223 s. Checked on the venv that make setup built."""
    import importlib.util

    import torch

    root = Path(__file__).resolve().parents[1]
    if Path(sys.prefix).resolve() != (root / ".venv").resolve():
        pytest.skip("not running in the .venv that make setup builds")
    for module in (torch, torch.nn.modules.conv, pytest):
        assert Path(importlib.util.cache_from_source(module.__file__)).is_file(), \
            f"{module.__name__} has no bytecode: make setup must compile the packages it installs"
