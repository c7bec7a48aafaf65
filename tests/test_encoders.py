"""load_or_pretrain: reuse the encoder a pretraining chapter saved, else train the quick version and save it."""

import pytest
import torch

from course_utils.config import get_profile, with_overrides
from course_utils.encoders import build_encoder, encoder_path, load_or_pretrain

torch.set_num_threads(2)


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    return tmp_path


def test_file_names_are_the_ones_chapters_2_and_4_save(checkpoints):
    profile = get_profile("smoke")
    assert encoder_path("mnist", profile) == checkpoints / "smoke" / "mnist_smallcnn_encoder.pt"
    assert encoder_path("cifar10", profile).name == "cifar10_resnet18_encoder.pt"


def test_a_saved_encoder_is_loaded_not_retrained(checkpoints):
    profile = get_profile("smoke")
    saved = build_encoder("mnist", seed=123)
    path = encoder_path("mnist", profile)
    path.parent.mkdir(parents=True)
    torch.save(saved.state_dict(), path)
    encoder, info = load_or_pretrain("mnist", profile, "cpu")
    assert "loaded" in info and str(path) in info
    assert not encoder.training
    for a, b in zip(saved.state_dict().values(), encoder.state_dict().values()):
        assert torch.equal(a, b)


def test_missing_encoder_is_pretrained_saved_and_then_reused(checkpoints, capsys):
    profile = with_overrides(get_profile("smoke"), mnist_train_size=64, mnist_epochs=1, mnist_batch_size=32)
    encoder, info = load_or_pretrain("mnist", profile, "cpu")
    assert "trained here" in info and "saved to" in info
    assert "not found" in capsys.readouterr().out
    assert encoder_path("mnist", profile).exists()
    assert not torch.equal(encoder.state_dict()["features.0.weight"],
                           build_encoder("mnist", seed=0).state_dict()["features.0.weight"])  # it trained
    again, info_again = load_or_pretrain("mnist", profile, "cpu")
    assert "loaded" in info_again
    assert torch.equal(again.state_dict()["features.0.weight"], encoder.state_dict()["features.0.weight"])


def test_a_file_of_the_wrong_architecture_gets_an_error_with_the_fix(checkpoints):
    profile = get_profile("smoke")
    path = encoder_path("mnist", profile)
    path.parent.mkdir(parents=True)
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(RuntimeError, match="Delete it"):
        load_or_pretrain("mnist", profile, "cpu")


def test_build_encoder_is_seeded_and_checks_the_name():
    a, b = build_encoder("cifar10", seed=1), build_encoder("CIFAR-10", seed=1)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert build_encoder("mnist")(torch.rand(2, 1, 28, 28)).shape == (2, 128)
    with pytest.raises(ValueError, match="mnist"):
        build_encoder("imagenet")
