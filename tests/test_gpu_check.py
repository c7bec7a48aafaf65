"""`make gpu-check`: what it runs (every chapter, every long loop cut), its own estimate, what it says without a
usable GPU, and the figures it records. No GPU here: the GPU steps themselves run where there is one."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402


def test_without_a_gpu_it_says_so_and_exits_with_2(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: None)  # no nvidia-smi either
    assert gpu_check.main([]) == 2
    captured = capsys.readouterr()
    assert "No CUDA GPU here" in captured.err and "make test" in captured.err
    assert "min on an A100-class GPU" in captured.out  # its own estimate comes first


def test_a_gpu_that_this_torch_cannot_drive_is_named_with_both_versions(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout="Tesla T4, 470.82.01\n", stderr=""))
    monkeypatch.setattr("torch.version.cuda", "12.4")
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "No CUDA GPU here" not in err
    assert "Tesla T4, 470.82.01" in err and "cannot use" in err and "CUDA 12.4" in err and torch.__version__ in err
    monkeypatch.setattr("torch.version.cuda", None)
    assert "CPU-only build" in gpu_check.why_no_gpu()


def test_every_chapter_runs_with_every_long_loop_cut_tuples_included():
    gpu, cut = gpu_check.config.PROFILES["gpu"], gpu_check.cut_profile(epochs=2)
    assert cut.cifar_colab_steps == 2 * 97 and cut.lab_seeds == (0,) and "lab_seeds=0," in gpu_check.overrides()
    for field in ("mnist_steps", "supervised_steps", "lab_steps", "lab_cifar_steps", "cifar_colab_steps"):
        assert getattr(cut, field) < getattr(gpu, field) / 5, field
    assert len(cut.lab_seeds) < len(gpu.lab_seeds) and cut.lab_train_size < gpu.lab_train_size
    minutes = gpu_check.budget.chapter_budget("A100", gpu_check.cut_profile(), setup_s=0,
                                              results="/nonexistent").minutes()  # 1 epoch, the default
    assert list(minutes) == list(gpu_check.budget.CHAPTERS) and max(minutes.values()) < 6


def test_its_own_estimate_on_an_a100_is_under_20_minutes():
    assert gpu_check.expected_minutes("A100") < gpu_check.A100_LIMIT_MINUTES == 20
    assert gpu_check.expected_minutes("T4") > gpu_check.expected_minutes("A100")  # a slower GPU takes longer


def test_the_chapters_get_the_cut_gpu_profile_fresh_checkpoints_and_the_usual_data(tmp_path):
    env = gpu_check.chapter_env(str(tmp_path), epochs=1)
    assert env["COURSE_PROFILE"] == "gpu" and env["COURSE_CHECKPOINTS"] == str(tmp_path)
    assert env["COURSE_OVERRIDES"] == gpu_check.overrides(1)
    assert env["COURSE_DATA"] == str(gpu_check.config.data_dir())


def test_the_budget_at_the_measured_rate_for_a_known_and_an_unknown_gpu(tmp_path, monkeypatch):
    import run_all

    budget = gpu_check.budget
    out = tmp_path / "results.json"
    rates = [{"name": budget.TFLOPS_RECORD, "value": 12.0, "unit": "TFLOP/s", "device": "cuda (x)"},
             {"name": budget.FLOOR_RECORD, "value": 0.01, "unit": "s", "device": "cuda (x)"}]
    monkeypatch.setattr(run_all, "machine", lambda: {"device_type": "cuda", "device": "Tesla T4", "date": "2027-01-01"})
    run_all.save("gpu-check", rates, output=out)
    monkeypatch.setattr(run_all, "machine", lambda: {"device_type": "cuda", "device": "NVIDIA A100-SXM4-80GB",
                                                     "date": "2027-01-02"})
    run_all.save("gpu-check", rates, output=out)
    assert len(json.loads(out.read_text())["runs"]) == 2  # two GPUs' runs side by side
    plan, records = gpu_check.budget_at_measured_rate("Tesla T4", rates, out)
    assert plan.measured and plan.rate.tflops == 12.0 and plan.rate.device == "T4"
    assert [r["name"] for r in records] == [f"budget of {ch}, gpu profile, at the measured rate"
                                            for ch in budget.CHAPTERS]
    plan, _ = gpu_check.budget_at_measured_rate("NVIDIA H100 80GB HBM3", rates, out, "bfloat16")  # not in RATES
    assert plan.measured and plan.rate.tflops == 12.0 and plan.rate.step_floor_s == 0.01


def test_glued_values_are_read_back_from_an_executed_notebook(monkeypatch):
    pytest.importorskip("myst_nb")
    from myst_nb import glue
    from IPython.core.interactiveshell import InteractiveShell

    # What glue() writes, captured as a display output of a cell.
    shell = InteractiveShell.instance()
    outputs = []
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, metadata=None, **kw: outputs.append((data, metadata)))
    glue("ch4_knn_end", 0.4375, display=False)
    data, metadata = outputs[-1]
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data, metadata=metadata)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert gpu_check.glued(nb, "ch4_knn_end") == 0.4375
    assert gpu_check.glued(nb, "missing") is None


def test_the_rates_it_records_are_the_ones_the_budget_reads(monkeypatch):
    from course_utils import measure

    def fake(model, images, augment, *, steps, batch_size, **kw):  # no GPU here: the timing itself is faked
        seconds = 0.5 if images.shape[1] == 3 else 0.012
        return measure.Estimate(steps, batch_size, seconds, "x", "bfloat16", 4e12 if images.shape[1] == 3 else 1e9, None)

    monkeypatch.setattr(measure, "estimate_pretraining", fake)
    import sync_check  # its own test is tests/test_sync_free.py; here only that its records join the rates

    monkeypatch.setattr(sync_check, "check_recipes", lambda device: [{"name": "synchronisations in the x step",
                                                                        "value": 0, "unit": "count", "device": "cpu"}])
    records = {r["name"]: r for r in gpu_check.measure_rates("cuda (x)", device="cpu")}
    assert records["synchronisations in the x step"]["device"] == "cuda (x)"
    assert records[gpu_check.budget.TFLOPS_RECORD]["value"] == 8.0  # 4 TFLOP a step in 0.5 s
    assert records[gpu_check.budget.FLOOR_RECORD]["value"] == 0.012
    assert records["SimCLR step of the cifar10 recipe, images/s"]["value"] == 1024  # batch 512 in 0.5 s


def test_the_chapters_run_in_order_in_their_environment_and_it_is_restored_after(monkeypatch, tmp_path):
    """The execution itself is faked (no GPU here): what reaches the kernels, in which order, and what is left."""
    import os

    import nbclient

    seen = []

    class FakeClient:
        def __init__(self, nb, **kwargs):
            self.nb = nb

        def execute(self):
            seen.append((os.environ["COURSE_PROFILE"], os.environ["COURSE_OVERRIDES"], os.environ["COURSE_CHECKPOINTS"]))
            if len(seen) == 3:
                raise RuntimeError("a cell failed\nValueError: boom")

    monkeypatch.setattr(nbclient, "NotebookClient", FakeClient)
    monkeypatch.setenv("COURSE_OVERRIDES", "mnist_steps=1")  # the caller's own, restored afterwards
    records, failures = gpu_check.run_chapters(1, 60, "cuda (x)")
    assert [s[:2] for s in seen] == [("gpu", gpu_check.overrides(1))] * 7 and len({s[2] for s in seen}) == 1
    assert failures == ["03_nt_xent: RuntimeError: ValueError: boom"]  # reported, and the others still ran
    assert [r["name"] for r in records if r["unit"] == "s"] == [
        f"{ch} executed, cut short" for ch in gpu_check.budget.CHAPTERS if ch != "03_nt_xent"]
    assert os.environ["COURSE_OVERRIDES"] == "mnist_steps=1"
