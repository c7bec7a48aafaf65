"""The lab harness: one setting changed per run, a tidy table, results saved and reused, one figure."""

import pytest

from course_utils import config, experiments
from course_utils.augment import DigitAugment, SimCLRAugment
from course_utils.data import mnist_standin

SMOKE = config.get_profile("smoke")


@pytest.fixture(scope="module")
def digits():
    return mnist_standin(True).take(128), mnist_standin(False).take(60)


def test_the_families_are_the_recipe_with_parts_switched_off():
    for dataset, kind in (("mnist", DigitAugment), ("cifar10", SimCLRAugment)):
        families = experiments.augmentation_families(dataset)
        assert list(families) == ["geometry", "colour", "geometry + colour", "geometry + colour + blur"]
        assert all(isinstance(a, kind) for a in families.values())
        assert families["geometry"].jitter_p == 0 and families["colour"].jitter_p > 0
        assert families["geometry + colour + blur"].blur_p == 0.5 and families["geometry + colour"].blur_p == 0
    assert repr(experiments.augmentation_families("mnist")["geometry + colour"]) == repr(
        experiments.RECIPES["mnist"].build_augment())  # the recipe's own views are one of the families


def test_a_sweep_gives_one_row_per_value_and_reuses_saved_runs(digits, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    train, test = digits
    kw = dict(dataset="mnist", train=train, test=test, steps=2, profile=SMOKE, device="cpu")
    table = experiments.sweep("temperature", [0.1, 0.5], **kw)
    assert list(table["value"]) == ["0.1", "0.5"] and not table["cached"].any()
    for metric in experiments.METRICS:
        assert table[metric].between(0, 1).all()
    again = experiments.sweep("temperature", [0.5], **kw)  # the same run: read back from disk
    assert again["cached"].all() and again["probe_h"].iloc[0] == table["probe_h"].iloc[1]
    assert "saved result" in capsys.readouterr().out
    assert len(list((tmp_path / "smoke" / "experiments").glob("*.json"))) == 2


def test_batch_sizes_are_compared_at_the_same_number_of_images(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    train, test = digits
    table = experiments.sweep("batch_size", [32, 64], dataset="mnist", train=train, test=test, steps=2,
                              profile=SMOKE, device="cpu", progress=False)
    assert list(table["steps"]) == [8, 4]  # the recipe's batch (128) takes 2 steps: 256 images in every run


def test_heads_none_linear_mlp_and_the_figure(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    train, test = digits
    table = experiments.sweep("head", ["none", "linear"], dataset="mnist", train=train, test=test, steps=1,
                              profile=SMOKE, device="cpu", progress=False)
    none = table.set_index("value").loc["none"]
    assert none["probe_h"] == none["probe_z"]  # with no head, z is h
    assert len(experiments.plot_sweep(table).axes[0].lines) == 2


def test_a_simulated_plain_gather_is_a_run_of_its_own_and_one_rank_is_the_recipe(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    train, test = digits
    kw = dict(dataset="mnist", train=train, test=test, steps=1, profile=SMOKE, device="cpu", progress=False)
    experiments.sweep("head", ["mlp"], **kw)  # the recipe's run, as another chapter's sweep makes it
    table = experiments.sweep("plain_gather", {"1 process": 1, "2 ranks": 2}, **kw)
    assert list(table["cached"]) == [True, False]  # W = 1 is the recipe itself: read back; W = 2 trains
    with pytest.raises(ValueError, match="divides the batch"):
        experiments.run_simclr("mnist", train, test, steps=1, plain_gather=3, profile=SMOKE, device="cpu", cache=False)


def test_bad_settings_are_refused(digits):
    train, test = digits
    with pytest.raises(ValueError, match="setting must be one of"):
        experiments.sweep("learning_rate", [1e-3], dataset="mnist", train=train, test=test, steps=1)
    with pytest.raises(ValueError, match="head must be one of"):
        experiments.run_simclr("mnist", train, test, steps=1, head="deep", profile=SMOKE, device="cpu", cache=False)


# The child sweep, killed (SIGKILL) while its first run trains: after that run's first checkpoint, it pauses
# (a test-only wrapper) so that the kill lands between two epochs, as a Colab disconnect would.
KILLED_SWEEP = """
import time
from course_utils import config, experiments, train
from course_utils.data import mnist_standin

save = train.save_checkpoint
def slow_save(*args, **kwargs):
    save(*args, **kwargs)
    print("checkpoint written", flush=True)
    time.sleep(30)  # killed here
train.save_checkpoint = slow_save
experiments.sweep("temperature", [0.2, 0.5], dataset="mnist", train=mnist_standin(True).take(64),
                  test=mnist_standin(False).take(60), steps=6, batch_size=32, profile=config.get_profile("smoke"),
                  device="cpu")
"""


def test_a_killed_sweep_resumes_mid_run_and_gives_the_same_table(tmp_path, monkeypatch, capsys):
    import os
    import subprocess
    import sys

    train, test = mnist_standin(True).take(64), mnist_standin(False).take(60)  # the child's data
    kw = dict(dataset="mnist", train=train, test=test, steps=6, batch_size=32, profile=SMOKE, device="cpu")
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "interrupted"))
    folder = tmp_path / "interrupted" / "smoke" / "experiments"
    child = subprocess.Popen([sys.executable, "-c", KILLED_SWEEP], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert child.stdout.readline().strip() == "checkpoint written"  # epoch 1 of the first run is on disk
    finally:
        child.kill()
        child.wait()
    assert [p.name.endswith(".run.pt") for p in folder.iterdir()] == [True]  # mid-run: no result saved yet

    resumed = experiments.sweep("temperature", [0.2, 0.5], **kw)
    assert "resumed from" in capsys.readouterr().out
    assert not list(folder.glob("*.run.pt")) and len(list(folder.glob("*.json"))) == 2  # checkpoints removed

    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "uninterrupted"))
    whole = experiments.sweep("temperature", [0.2, 0.5], **kw)
    columns = ["value", "seed", *experiments.METRICS, "final_loss", "steps"]
    assert resumed[columns].equals(whole[columns])  # bit for bit on a CPU
    assert (resumed["steps"] == 6).all()  # 64 digits, batch 32: 2 steps an epoch, 3 epochs, killed after the 1st
