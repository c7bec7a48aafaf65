"""Every chapter's header states its running time per profile: measured in the cpu book build (recorded from
jupyter-cache, cpu runs only), estimated for a Colab T4 by the budget; a missing measurement never fails."""

import json
from pathlib import Path

import nbformat
import pytest

from course_utils import budget, chapter_times
from course_utils.chapter_times import NOT_MEASURED, chapter_times as times_of

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_measurement_says_so_and_the_gpu_figure_is_the_budgets_estimate(tmp_path):
    times = times_of("04_resnet18_cifar10", path=tmp_path / "absent.json", results="/nonexistent")
    assert times["cpu"] == NOT_MEASURED
    minutes = budget.chapter_budget("T4", results="/nonexistent").minutes()["04_resnet18_cifar10"]
    assert times["gpu"] == f"about {round(minutes)} minutes, estimated for a free Colab T4"
    assert times_of("01_augmentations", path=ROOT / "course_utils" / "chapter_times.json")["cpu"]  # the shipped file
    with pytest.raises(ValueError, match="unknown chapter"):
        times_of("08_nothing")


def test_a_recorded_measurement_is_stated_with_its_build(tmp_path):
    path = tmp_path / "times.json"
    path.write_text(json.dumps({"cpu": {"date": "2026-12-10", "machine": "2 CPU cores",
                                        "chapters": {"02_simclr_mnist": 845.0, "01_augmentations": 30.0}}}))
    assert times_of("02_simclr_mnist", path=path)["cpu"] == "14 minutes, measured in the book build of 2026-12-10 on 2 CPU cores"
    assert times_of("01_augmentations", path=path)["cpu"].startswith("under a minute, measured")
    assert times_of("03_nt_xent", path=path)["cpu"] == NOT_MEASURED


def _executed(chapter: str, banner: str):
    """The chapter as it is now, with the banner its setup cell would print in an execution."""
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    setup = next(c for c in nb.cells if "setup" in c.metadata.get("tags", []))
    setup.outputs = [nbformat.v4.new_output("stream", name="stdout", text=banner + "\n")]
    return nb


def test_record_takes_the_cpu_builds_times_only_and_drops_the_page_that_shows_them(tmp_path):
    jc = pytest.importorskip("jupyter_cache")
    from jupyter_cache.base import CacheBundleIn

    cache = jc.get_cache(str(tmp_path / "cache"))
    cpu = ("profile: cpu (a real run sized for 2 CPU cores: minutes per chapter (ResNet-18 on a subset)) | "
           "device: cpu (2 cores, x86_64, fp32) | torch 2.x | data: /d")
    smoke = cpu.replace("profile: cpu", "profile: smoke")
    overridden = cpu + " | sizes changed by COURSE_OVERRIDES: mnist_steps=1"
    for chapter, banner, seconds in (("01_augmentations", cpu, 41.5), ("02_simclr_mnist", cpu, 845.2),
                                     ("03_nt_xent", smoke, 20.0), ("04_resnet18_cifar10", overridden, 30.0)):
        cache.cache_notebook_bundle(CacheBundleIn(_executed(chapter, banner), str(ROOT / "notebooks" / f"{chapter}.ipynb"),
                                                  data={"execution_seconds": seconds}), check_validity=False)
    page = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("glue_all();")])
    cache.cache_notebook_bundle(CacheBundleIn(page, str(ROOT / "book" / "instructors.md")), check_validity=False)
    out = tmp_path / "times.json"
    done = chapter_times.record(tmp_path / "cache", ROOT / "notebooks", out)
    assert done["taken"] == ["01_augmentations", "02_simclr_mnist"]
    assert [line.split(":")[0] for line in done["skipped"]] == ["03_nt_xent", "04_resnet18_cifar10",
                                                                 "05_linear_evaluation", "06_baselines", "07_many_gpus"]
    written = json.loads(out.read_text())["cpu"]
    assert written["chapters"] == {"01_augmentations": 41.5, "02_simclr_mnist": 845.2}
    assert written["machine"] == "2 CPU cores" and len(written["date"]) == 10
    assert [r.uri for r in jc.get_cache(str(tmp_path / "cache")).list_cache_records()
            if r.uri.endswith("instructors.md")] == []  # the page re-executes in the next build, in seconds


def test_every_chapter_prints_its_times_and_its_header_pastes_them_from_the_one_page_that_glues_them():
    guide = (ROOT / "book" / "instructors.md").read_text()
    assert "glue_all()" in guide
    for n, chapter in enumerate(budget.CHAPTERS, start=1):
        nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
        assert f"{{glue:text}}`../book/instructors.md::ch{n}_time_cpu:s`" in nb.cells[1].source
        assert f"{{glue:text}}`../book/instructors.md::ch{n}_time_gpu:s`" in nb.cells[1].source
        setup = next(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))
        header = nb.cells[setup + 1]
        assert f'chapter_times("{chapter}")' in header.source and "remove-cell" in header.metadata["tags"]
        assert f"{{glue:text}}`ch{n}_time_cpu`" in guide and f"{{glue:text}}`ch{n}_time_gpu`" in guide


def test_record_finds_the_cpu_builds_folder_under_the_cache_root_that_make_book_uses(tmp_path):
    jc = pytest.importorskip("jupyter_cache")
    root = tmp_path / ".jupyter_cache"
    with pytest.raises(FileNotFoundError, match="COURSE_PROFILE=cpu make book"):
        chapter_times.record(root, ROOT / "notebooks", tmp_path / "times.json")
    for name in ("smoke-000000000000", "cpu-111111111111"):
        jc.get_cache(str(root / name)).list_cache_records()  # creates the folder's database
    assert chapter_times._profile_cache(root) == root / "cpu-111111111111"
    assert chapter_times._profile_cache(root / "smoke-000000000000") == root / "smoke-000000000000"
