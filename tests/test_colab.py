"""Run every chapter as Colab would: the STUDENT copy, alone in an empty folder, course_utils missing.

What Colab gives a student, and how this test recreates it:
- a Python with torch, numpy, sklearn, ... but without course_utils: a fresh venv whose .pth file adds a
  *view* of this venv's site-packages (a folder of symlinks to every entry except course_utils and its
  dist-info / editable finder). A plain path line in a .pth adds a folder to sys.path without running
  the .pth files in it, so the repository's editable install is not active; and since our own
  distribution is left out of the view, pip in the new venv does not see it installed either, while it
  does see torch & co. as installed and never tries to download them (PIP_NO_INDEX=1 makes sure).
- only the notebook: each student copy is written alone into an empty folder, which is the kernel's cwd.
- the setup cell's pip line runs unchanged: COURSE_UTILS_SOURCE points it at a wheel built once from this
  checkout, instead of git+https://github.com/... (no network on CI). Before each chapter the wheel is
  uninstalled again, so that every chapter really installs it.

One execution per chapter checks three things: the notebook works as on Colab (and pip keeps the platform's
torch); the student version (solutions removed, see course_utils.instructor.labs) runs top to bottom, every cell after
the unsolved exercises included, with self-checks that say "not implemented yet"; and every number its text quotes
is printed by the glued-values cell under the paragraph, from this run. The kernel is the fresh venv's python,
driven by nbclient from this process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import pytest

from course_utils.instructor import labs

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = labs.chapter_notebooks(ROOT)
DIST = "simclr-course-utils"  # the distribution name in pyproject.toml
HIDDEN = ("course_utils", "simclr_course_utils", "__editable__.simclr_course_utils", "__editable___simclr_course_utils")
CELL_TIMEOUT = 600  # seconds; a smoke notebook takes tens of seconds in all

pytestmark = pytest.mark.skipif(not CHAPTERS, reason="no chapter notebooks in notebooks/ yet")


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1", **extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of course_utils built once from this checkout (from a copy, so no build/ is left in the repo)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.cfg"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "course_utils", source / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", tmp / "dist", source], env=clean_env())
    wheels = list((tmp / "dist").glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def colab(tmp_path_factory) -> Path:
    """The python of a fresh venv that sees this venv's packages, except course_utils."""
    tmp = tmp_path_factory.mktemp("colab")
    venv = tmp / "venv"
    # --without-pip: pip too comes from the view below (a current pip, and ensurepip costs ~10 s).
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())

    view = tmp / "site-packages-view"
    view.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not entry.name.startswith(HIDDEN) and not entry.name.endswith(".pth"):
            (view / entry.name).symlink_to(entry)
    (site / "_course_dependencies.pth").write_text(f"{view}\n")
    return python


@pytest.fixture(scope="module")
def colab_home(tmp_path_factory) -> Path:
    """One COURSE_HOME for all the chapters, as a student's Drive is: chapters 5 and 6 load the encoders that
    chapters 2 and 4 saved (the chapters run in order), instead of training them again."""
    return tmp_path_factory.mktemp("colab-home")


def in_colab(python: Path, code: str, cwd: Path) -> str:
    return run([python, "-c", code], cwd=cwd, env=clean_env()).stdout.strip()


def test_colab_venv_sees_the_dependencies_but_not_course_utils(colab, tmp_path):
    found = in_colab(colab, "import importlib.util as u; print(u.find_spec('course_utils'))", tmp_path)
    assert found == "None"
    shown = run([colab, "-m", "pip", "show", "torch", "torchvision", "scikit-learn", "umap-learn"],
                cwd=tmp_path, env=clean_env()).stdout
    assert shown.count("Name:") == 4, "pip in the Colab venv must see the dependencies as installed"
    listed = run([colab, "-m", "pip", "list"], cwd=tmp_path, env=clean_env()).stdout
    assert DIST not in listed


def execute(nb, python: Path, cwd: Path, env: dict):
    """Execute ``nb`` in place with a kernel started by ``python`` in ``cwd``; raises on a cell error."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    class ColabKernel(KernelSpecManager):
        def get_kernel_spec(self, kernel_name, *args, **kwargs):
            return KernelSpec(argv=[str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                              display_name="Colab-like", language="python")

    # Async: nbclient then watches the kernel while waiting, so a kernel that dies fails the test instead of hanging.
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ColabKernel())
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute(env=env, cleanup_kc=True)  # a client given a km leaves its kernel running otherwise
    finally:
        if km.has_kernel:
            from jupyter_core.utils import run_sync

            run_sync(km.shutdown_kernel)(now=True)
    return nb


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
    return "\n".join(parts)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_student_copy_runs_alone_as_on_colab(chapter, wheel, colab, colab_home, tmp_path):
    content = tmp_path / "content"  # Colab's working folder: the notebook and nothing else
    content.mkdir()
    student, removed = labs.student_version(nbformat.read(chapter, as_version=4), chapter)
    copy = content / chapter.name
    nbformat.write(student, copy)

    run([colab, "-m", "pip", "uninstall", "--yes", "--quiet", DIST], cwd=content, env=clean_env())
    assert in_colab(colab, "import importlib.util as u; print(u.find_spec('course_utils'))", content) == "None"

    env = clean_env(COURSE_PROFILE="smoke", COURSE_HOME=str(colab_home), COURSE_UTILS_SOURCE=str(wheel),
                    MPLBACKEND="Agg", TQDM_DISABLE="1", PATH=f"{colab.parent}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    executed = execute(nbformat.read(copy, as_version=4), colab, content, env)
    seconds = time.perf_counter() - start
    print(f"{chapter.name}: student copy ({removed} solution cells removed) ran in {seconds:.1f} s")

    # The setup cell installed the wheel into the Colab venv, and the notebook imported it from there.
    where = in_colab(colab, "import course_utils, importlib.metadata as m; print(course_utils.__file__); "
                            f"print(m.distribution('{DIST}').read_text('direct_url.json'))", content)
    module_file, direct_url = where.splitlines()[0], "\n".join(where.splitlines()[1:])
    assert Path(module_file).is_relative_to(colab.parent.parent), module_file
    assert wheel.name in direct_url, f"course_utils was not installed from the wheel: {direct_url}"
    assert sorted(p.name for p in content.iterdir() if p.suffix == ".ipynb") == [chapter.name]

    # pip kept the platform's torch: nothing of it was installed into the "Colab" venv itself.
    site = Path(in_colab(colab, "import sysconfig; print(sysconfig.get_paths()['purelib'])", content))
    assert not [p.name for p in site.iterdir() if p.name.startswith(("torch", "torchvision"))], "torch was reinstalled"

    code = [(i, c) for i, c in enumerate(executed.cells) if c.cell_type == "code"]
    texts = [outputs_text(c) for _, c in code]
    assert not any("Traceback (most recent call last)" in t for t in texts)
    # "Run all" went through: every code cell ran, those after the first unsolved exercise too.
    first_stub = next(i for i, c in code if "exercise-stub" in labs.tags(c))
    not_run = [i for i, c in code if c.execution_count is None]
    assert not not_run, f"cells {not_run} did not run (the first exercise stub is cell {first_stub})"
    assert any(i > first_stub and c.outputs for i, c in code), "no cell after the first stub printed anything"
    checks = [c for c in executed.cells if "self-check" in labs.tags(c)]
    assert checks, "the student copy has no self-check cell"
    for cell in checks:
        assert "not implemented yet" in outputs_text(cell), \
            f"a self-check on an unsolved stub must say 'not implemented yet':\n{cell.source}\n{outputs_text(cell)}"
    # Every number the text quotes was printed from this run, under the paragraph that quotes it.
    for cell in (c for c in executed.cells if "glued-values" in labs.tags(c)):
        shown = outputs_text(cell)
        assert shown.startswith("The numbers in the text above, from your run:"), f"{cell.source}\n{shown}"
        assert "not computed yet" not in shown, f"a quoted number was not glued by the cells above it:\n{shown}"
        specs = re.findall(r'"([^"]+)"', cell.source.split("show_glued(", 1)[1])
        assert len(shown.strip().splitlines()) == 1 + len(specs), f"one line per quoted number:\n{shown}"
