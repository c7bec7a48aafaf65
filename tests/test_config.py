"""Profiles, device, seeding and the banner: the one switch that sizes every chapter."""

import os

import pytest
import torch

from course_utils import config


def test_named_profiles_exist_with_their_own_names():
    for name in config.VALID_PROFILES:
        assert config.get_profile(name).name == name


def test_profile_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert config.get_profile().name == "smoke"
    monkeypatch.setenv("COURSE_PROFILE", " CPU ")
    assert config.get_profile().name == "cpu"


def test_unset_profile_follows_the_hardware(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert config.get_profile().name == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_profile().name == "gpu"


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError) as error:
        config.get_profile("fast")
    message = str(error.value)
    assert "'fast'" in message and all(name in message for name in config.VALID_PROFILES)
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        config.get_profile()


def test_profiles_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = (config.get_profile(n) for n in config.VALID_PROFILES)
    assert not smoke.allow_download and cpu.allow_download and gpu.allow_download
    assert smoke.mnist_steps <= cpu.mnist_steps <= gpu.mnist_steps
    assert smoke.cifar_colab_steps <= cpu.cifar_colab_steps <= gpu.cifar_colab_steps <= gpu.cifar_steps
    assert smoke.cifar_train_size < cpu.cifar_train_size and gpu.cifar_train_size is None
    assert None in cpu.labels_per_class and None in gpu.labels_per_class  # "all labels" is a budget


def test_with_overrides_changes_only_what_is_asked():
    p = config.with_overrides(config.get_profile("cpu"), mnist_steps=1)
    assert p.mnist_steps == 1 and p.cifar_steps == config.get_profile("cpu").cifar_steps


def test_overrides_from_the_environment_are_typed_and_announced(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OVERRIDES", "cifar_colab_steps=12, knn_train_size=None,embedding_method=pca")
    p = config.get_profile("gpu")
    assert (p.cifar_colab_steps, p.knn_train_size, p.embedding_method) == (12, None, "pca")
    assert p.cifar_steps == config.PROFILES["gpu"].cifar_steps
    assert "cifar_colab_steps=12" in config.banner(p)
    for bad in ("cifar_colab_steps", "no_such_size=3", "name=cpu", "mnist_steps=lots"):
        monkeypatch.setenv("COURSE_OVERRIDES", bad)
        with pytest.raises(ValueError, match="COURSE_OVERRIDES"):
            config.get_profile("cpu")


def test_tuple_fields_are_overridden_with_semicolons_and_bad_ones_say_how(monkeypatch):
    monkeypatch.setenv("COURSE_OVERRIDES", "lab_seeds=0, labels_per_class=10;None, label_fractions=0.1;1")
    p = config.get_profile("gpu")
    assert (p.lab_seeds, p.labels_per_class, p.label_fractions) == ((0,), (10, None), (0.1, 1.0))
    monkeypatch.setenv("COURSE_OVERRIDES", "lab_seeds=3;4")
    assert config.get_profile("cpu").lab_seeds == (3, 4)
    for bad, why in [("lab_seeds=", "separated by ';'"), ("lab_seeds=0;;1", "separated by ';'"),
                     ("lab_seeds=0.5", "whole number"), ("lab_seeds=None", "None is not allowed"),
                     ("mnist_steps=None", "None is not allowed"), ("allow_download=maybe", "true or false")]:
        monkeypatch.setenv("COURSE_OVERRIDES", bad)
        with pytest.raises(ValueError, match=f"COURSE_OVERRIDES.*{why}"):
            config.get_profile("gpu")


def test_epochs_follow_from_the_step_budget_and_the_data_size():
    assert config.epochs_for(1900, 4000, 128) == 62  # 31 steps per epoch: 1,922 steps
    assert config.epochs_for(1900, 60000, 128) == 5  # the real MNIST: 468 steps per epoch
    assert config.epochs_for(10, 100, 10) == 1
    with pytest.raises(ValueError, match="needs at least"):
        config.epochs_for(10, 5, 10)


def test_seed_everything_makes_torch_numpy_and_python_repeatable():
    import random

    import numpy as np

    draws = []
    for _ in range(2):
        g = config.seed_everything(123)
        draws.append((torch.rand(3).tolist(), np.random.rand(), random.random(), torch.rand(2, generator=g).tolist()))
    assert draws[0] == draws[1]


def test_cpu_threads_are_omp_num_threads_when_set_else_the_shared_cores_at_most_4(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what make test and torchrun set
        assert config.use_cpu_threads() == 1 == torch.get_num_threads()
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(os, "cpu_count", lambda: 16)
        assert config.use_cpu_threads() == 4
        assert config.use_cpu_threads(processes=8) == 2 == torch.get_num_threads()
        monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one thread
        assert config.use_cpu_threads() == 1
        for bad in ("two", "0", "-1", "1.5"):
            monkeypatch.setenv("OMP_NUM_THREADS", bad)
            with pytest.raises(ValueError, match=f"OMP_NUM_THREADS='{bad}' is not a whole number"):
                config.use_cpu_threads()
    finally:
        torch.set_num_threads(before)


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "home"))
    assert config.data_dir() == tmp_path / "home" / "data"
    assert config.checkpoint_dir(config.get_profile("smoke")) == tmp_path / "home" / "checkpoints" / "smoke"
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path / "c"))
    assert config.data_dir() == tmp_path / "d"
    assert config.checkpoint_dir(config.get_profile("cpu")) == tmp_path / "c" / "cpu"


def test_banner_names_profile_device_torch_and_data(capsys):
    line = config.banner(config.get_profile("smoke"))
    assert capsys.readouterr().out.strip() == line
    assert "profile: smoke" in line and f"torch {torch.__version__}" in line
    assert "device: " + ("cuda" if torch.cuda.is_available() else "cpu") in line
    assert str(config.data_dir()) in line
    assert "\n" not in line


def test_banner_warns_about_gpu_profile_on_a_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "WARNING" in config.banner(config.get_profile("gpu"))


def fake_gpu(monkeypatch, capability, name="Fake GPU"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # as on a T4, by default


@pytest.mark.parametrize("capability, dtype, scaler", [((7, 5), torch.float16, True), ((8, 0), torch.bfloat16, False),
                                                       ((9, 0), torch.bfloat16, False), ((6, 0), torch.float16, True)])
def test_precision_follows_the_compute_capability(monkeypatch, capability, dtype, scaler):
    from course_utils.train import mixed_precision

    fake_gpu(monkeypatch, capability)
    chosen, reason = config.choose_precision(torch.device("cuda"))
    assert chosen is dtype and f"compute capability {capability[0]}.{capability[1]}" in reason
    assert config.amp_dtype("cuda") is dtype
    assert ("GradScaler" in reason) == scaler
    got_dtype, got_scaler = mixed_precision("cuda")
    assert got_dtype is dtype and got_scaler.is_enabled() == scaler


def test_no_autocast_on_cpu():
    assert config.amp_dtype(torch.device("cpu")) is None
    assert config.choose_precision("cpu") == (None, "fp32 on the cpu")


def test_banner_says_which_precision_and_why(monkeypatch):
    fake_gpu(monkeypatch, (7, 5), "Tesla T4")
    line = config.banner(config.get_profile("gpu"))
    assert "Tesla T4" in line and "fp16 with a GradScaler" in line and "7.5" in line
    fake_gpu(monkeypatch, (8, 0), "NVIDIA A100-SXM4-40GB")
    assert "bf16: compute capability 8.0" in config.banner(config.get_profile("gpu"))


@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    """A fake google.colab whose drive.mount creates MyDrive (or raises, like a declined dialog)."""
    import sys
    import types

    drive_root = tmp_path / "content" / "drive" / "MyDrive"
    monkeypatch.setattr(config, "DRIVE_ROOT", drive_root)
    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COURSE_CHECKPOINTS", raising=False)
    drive = types.ModuleType("google.colab.drive")
    drive.calls = []
    drive.decline = False

    def mount(mountpoint):
        drive.calls.append(mountpoint)
        if drive.decline:
            raise ValueError("mount failed: credential propagation was unsuccessful")
        drive_root.mkdir(parents=True)

    drive.mount = mount
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    return drive, drive_root


def test_on_colab_drive_is_mounted_and_checkpoints_go_there(fake_colab, capsys):
    drive, drive_root = fake_colab
    smoke = config.get_profile("smoke")
    assert config.on_colab()
    path = config.keep_checkpoints_on_drive(True, smoke)
    assert drive.calls == [str(drive_root.parent)]
    assert path == drive_root / "simclr-course" / "checkpoints" / "smoke" == config.checkpoint_dir(smoke)
    assert "on Google Drive" in capsys.readouterr().out
    config.keep_checkpoints_on_drive(True, smoke)  # already mounted: not asked again
    assert len(drive.calls) == 1


def test_a_declined_drive_keeps_local_checkpoints_and_says_what_it_costs(fake_colab, capsys, tmp_path):
    drive, drive_root = fake_colab
    drive.decline = True
    path = config.keep_checkpoints_on_drive(True, config.get_profile("smoke"))
    out = capsys.readouterr().out
    assert path == tmp_path / "home" / "checkpoints" / "smoke"
    assert "not mounted" in out and "lost when the runtime disconnects" in out and "USE_DRIVE = False" in out


def test_opting_out_of_drive_is_respected_even_when_it_is_mounted(fake_colab, capsys, tmp_path, monkeypatch):
    drive, drive_root = fake_colab
    drive_root.mkdir(parents=True)
    monkeypatch.setenv("COURSE_CHECKPOINTS", "")  # restored by monkeypatch after the test
    monkeypatch.delenv("COURSE_CHECKPOINTS")
    path = config.keep_checkpoints_on_drive(False, config.get_profile("smoke"))
    assert path == tmp_path / "home" / "checkpoints" / "smoke" and not drive.calls
    assert "you chose USE_DRIVE = False" in capsys.readouterr().out
    assert config.keep_checkpoints_on_drive(True, config.get_profile("smoke")).is_relative_to(drive_root)


def test_off_colab_nothing_is_mounted(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "google.colab", None)  # import fails
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    assert not config.on_colab()
    assert config.keep_checkpoints_on_drive(True, config.get_profile("cpu")) == tmp_path / "cpu"
    assert capsys.readouterr().out == f"checkpoints: {tmp_path / 'cpu'}\n"


def test_progress_is_live_in_notebook_frontends_and_a_line_per_epoch_in_a_build(monkeypatch):
    import sys

    for key in ("JPY_SESSION_NAME", "JPY_PARENT_PID", "VSCODE_PID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", None)
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))
    assert not config.live_progress()  # CI: nobody watches
    monkeypatch.setenv("JPY_PARENT_PID", "4242")  # jupyter_client sets it for every kernel, nbclient's too
    assert not config.live_progress()  # nbclient / jupyter-book: nobody watches
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/02_simclr_mnist.ipynb")
    assert config.live_progress()
