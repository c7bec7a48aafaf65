"""The GPU budget: every chapter of the gpu profile fits one free Colab T4 session, labs included.

The budget is arithmetic on the profile's sizes and the recipes' FLOPs (no training here): a profile change
that would make a chapter outlast a session fails the first test, whatever else it changes.
"""

import json

import pytest

from course_utils import budget, config
from course_utils.config import with_overrides


def test_every_chapter_of_the_gpu_profile_fits_a_free_t4_session():
    minutes = budget.chapter_budget("T4", config.PROFILES["gpu"], results="/nonexistent").minutes()
    assert set(minutes) == set(budget.CHAPTERS)
    too_long = {ch: round(m) for ch, m in minutes.items() if m > budget.SESSION_MINUTES}
    assert not too_long, (f"these chapters of the gpu profile exceed {budget.SESSION_MINUTES} min on a T4 by the "
                          f"budget: {too_long}; see `python -m course_utils.measure budget --device T4`")


def test_the_test_above_would_catch_the_old_lab_sizes():
    old_lab = with_overrides(config.PROFILES["gpu"], lab_cifar_steps=1940, lab_seeds=(0, 1, 2),
                             lab_cifar_train_size=None)
    minutes = budget.chapter_budget("T4", old_lab, results="/nonexistent").minutes()
    assert minutes["04_resnet18_cifar10"] > 2 * budget.SESSION_MINUTES  # hours of lab, as the issue found


def test_the_budget_follows_the_sizes_and_the_rate():
    gpu = config.PROFILES["gpu"]
    t4 = budget.chapter_budget("T4", gpu, results="/nonexistent")
    longer = budget.chapter_budget("T4", with_overrides(gpu, cifar_colab_steps=2 * gpu.cifar_colab_steps),
                                   results="/nonexistent")
    main = t4.parts()["04_resnet18_cifar10"]["main"]
    assert longer.parts()["04_resnet18_cifar10"]["main"] == pytest.approx(2 * main, rel=0.02)
    a100 = budget.chapter_budget("A100", gpu, results="/nonexistent")
    ratio = budget.RATES["A100"].tflops / budget.RATES["T4"].tflops
    assert a100.parts()["04_resnet18_cifar10"]["main"] == pytest.approx(main / ratio, rel=0.01)
    # ResNet-18's step is bound by arithmetic; the small MNIST CNN's by the per-step floor on every GPU.
    assert a100.parts()["02_simclr_mnist"]["main"] == pytest.approx(t4.parts()["02_simclr_mnist"]["main"])


def test_the_json_has_every_chapter_in_minutes_and_the_rate_with_its_source(capsys):
    assert budget.main(["--device", "L4", "--profile", "gpu", "--json", "--results", "/nonexistent"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "L4" and out["sustained_tflops"] == budget.RATES["L4"].tflops
    assert out["rate"] == "estimated" and "data sheet" in out["source"]
    assert list(out["chapters"]) == list(budget.CHAPTERS)
    assert all(isinstance(m, (int, float)) and m > 0 for m in out["chapters"].values())
    assert budget.main(["--device", "T4"]) == 0
    assert "04_resnet18_cifar10" in capsys.readouterr().out


def test_every_estimated_rate_cites_where_it_comes_from():
    for key, rate in budget.RATES.items():
        assert rate.device == key and not rate.measured and rate.tflops > 0
        assert rate.source.startswith("estimate") and ("README" in rate.source or "data sheet" in rate.source)


def test_a_measured_rate_replaces_the_estimate_for_its_device_only(tmp_path):
    results = tmp_path / "results.json"
    records = [{"name": budget.TFLOPS_RECORD, "value": 9.5, "unit": "TFLOP/s", "device": "cuda (Tesla T4)"},
               {"name": budget.FLOOR_RECORD, "value": 0.011, "unit": "s", "device": "cuda (Tesla T4)"}]
    other = [{"name": budget.TFLOPS_RECORD, "value": 99.0, "unit": "TFLOP/s", "device": "cuda (NVIDIA L40S)"}]
    results.write_text(json.dumps({"runs": [
        {"suite": "gpu-check", "device_type": "cuda", "device": "Tesla T4", "date": "2027-01-02", "records": records},
        {"suite": "gpu-check", "device_type": "cuda", "device": "NVIDIA L40S", "date": "2027-01-02", "records": other},
    ]}))
    t4 = budget.chapter_budget("T4", results=results)
    assert t4.measured and t4.rate.tflops == 9.5 and t4.rate.step_floor_s == 0.011 and "Tesla T4" in t4.rate.source
    assert budget.chapter_budget("Tesla T4", results=results).rate.tflops == 9.5  # a GPU's name works too
    assert not budget.chapter_budget("L4", results=results).measured  # an L40S is not an L4
    assert "measured" in t4.table()
    estimate = budget.chapter_budget("T4", results=tmp_path / "missing.json")
    assert not estimate.measured and estimate.minutes()["04_resnet18_cifar10"] > t4.minutes()["04_resnet18_cifar10"]


def test_an_unknown_device_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="T4, L4, A100"):
        budget.chapter_budget("TPU")


def test_chapter_4_states_the_expected_accuracy_of_the_schedule_the_gpu_profile_runs():
    """The expectation (interpolated from a cited source for a number of epochs) is typed prose: it must name the
    epochs that the gpu profile's Colab schedule really has, or be re-derived when the schedule changes."""
    import re
    from pathlib import Path

    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "04_resnet18_cifar10.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    stated = re.search(r"Colab schedule is (\d+) epochs", text)
    gpu = config.PROFILES["gpu"]
    assert stated and "kobak2024simclrcifar10" in text
    assert int(stated.group(1)) == config.epochs_for(gpu.cifar_colab_steps, 50_000, gpu.cifar_batch_size)
