"""Profiles, device, seeding and the banner: the one switch that sizes every chapter."""

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
    assert smoke.mnist_epochs <= cpu.mnist_epochs <= gpu.mnist_epochs
    assert smoke.cifar_epochs <= cpu.cifar_epochs <= gpu.cifar_colab_epochs <= gpu.cifar_epochs
    assert smoke.cifar_train_size < cpu.cifar_train_size and gpu.cifar_train_size is None
    assert None in cpu.labels_per_class and None in gpu.labels_per_class  # "all labels" is a budget


def test_with_overrides_changes_only_what_is_asked():
    p = config.with_overrides(config.get_profile("cpu"), mnist_epochs=1)
    assert p.mnist_epochs == 1 and p.cifar_epochs == config.get_profile("cpu").cifar_epochs


def test_seed_everything_makes_torch_numpy_and_python_repeatable():
    import random

    import numpy as np

    draws = []
    for _ in range(2):
        g = config.seed_everything(123)
        draws.append((torch.rand(3).tolist(), np.random.rand(), random.random(), torch.rand(2, generator=g).tolist()))
    assert draws[0] == draws[1]


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


def test_no_autocast_on_cpu():
    assert config.amp_dtype(torch.device("cpu")) is None
