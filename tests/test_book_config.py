"""`make book` keeps the executed notebooks of each profile apart: a build never shows another profile's outputs.

Cheap checks of the configuration it builds with (a real build per profile takes minutes; tests/test_book.py builds
the book once, in the smoke profile, with its own cache).
"""

import shutil
from pathlib import Path

import pytest
import yaml

from course_utils.config import PROFILES, get_profile
from course_utils.instructor import book_config

ROOT = Path(__file__).resolve().parents[1]


def key(monkeypatch, profile, overrides=""):
    monkeypatch.setenv("COURSE_PROFILE", profile)
    monkeypatch.setenv("COURSE_OVERRIDES", overrides)
    return book_config.cache_key()


def test_the_cache_key_follows_the_profile_and_its_overrides(monkeypatch):
    keys = {name: key(monkeypatch, name) for name in ("smoke", "cpu", "gpu")}
    assert len(set(keys.values())) == 3 and all(k.startswith(f"{name}-") for name, k in keys.items())
    steps = PROFILES["gpu"].cifar_colab_steps
    cut = key(monkeypatch, "gpu", f"cifar_colab_steps={steps // 10}")  # make gpu-check's kind of build
    assert cut.startswith("gpu-") and cut != keys["gpu"]
    assert key(monkeypatch, "gpu", f"cifar_colab_steps={steps}") == keys["gpu"]  # the same sizes: the same outputs
    assert key(monkeypatch, "gpu") == book_config.cache_key(PROFILES["gpu"]) == book_config.cache_key(get_profile())


def test_the_written_config_is_the_books_with_a_cache_per_profile(monkeypatch, tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    monkeypatch.delenv("COURSE_OVERRIDES", raising=False)
    written = book_config.write_config(tmp_path)
    assert written.parent == tmp_path / "_build" and written.name == f"_config.{book_config.cache_key()}.yml"
    original, config = yaml.safe_load((ROOT / "_config.yml").read_text()), yaml.safe_load(written.read_text())
    cache = Path(config["execute"].pop("cache"))
    assert config == original  # nothing else changes
    assert cache == (tmp_path / "_build" / ".jupyter_cache" / book_config.cache_key()).resolve()
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert yaml.safe_load(book_config.write_config(tmp_path).read_text())["execute"]["cache"] != str(cache)

    # What jupyter-book makes of it: the execution cache myst-nb will use.
    jb_config = pytest.importorskip("jupyter_book.config")
    sphinx_config, _ = jb_config.get_final_config(user_yaml=written, cli_config={"latex_individualpages": False},
                                                sourcedir=ROOT)
    assert sphinx_config["nb_execution_cache_path"] == str(cache)
    assert sphinx_config["nb_execution_mode"] == "cache"


def test_make_book_builds_with_that_config():
    recipe = (ROOT / "Makefile").read_text().split("\nbook:", 1)[1].split("\n\n", 1)[0]
    assert "-m course_utils.instructor.book_config" in recipe and '--config "$$config"' in recipe
    assert "jupyter-book build ." in recipe


def test_the_book_workflow_keeps_the_caches_of_every_profile():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    cached = [step["with"]["path"] for step in workflow["jobs"]["build"]["steps"]
              if "actions/cache" in step.get("uses", "")]
    assert any(str(book_config.CACHE_ROOT) in path for path in cached)  # the folder that holds one cache per profile
