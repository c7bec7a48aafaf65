"""load_or_pretrain: reuse the encoder a pretraining chapter saved, else train the quick version and save it."""

import pytest
import torch

from course_utils.config import get_profile, with_overrides
from course_utils.encoders import build_encoder, encoder_path, load_or_pretrain, pretrain_recipe


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
    profile = with_overrides(get_profile("smoke"), mnist_train_size=64, mnist_steps=2, mnist_batch_size=32)
    encoder, info = load_or_pretrain("mnist", profile, "cpu")
    assert "trained here" in info and "saved to" in info
    out = capsys.readouterr().out
    assert "not found" in out and "PRETRAINED_SOURCE" in out and "Google Drive" in out  # how to avoid it
    assert "expected: 2 steps of batch 32" in out  # how long it takes, measured before it starts
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


def test_an_encoder_from_a_source_file_is_verified_and_loaded(checkpoints, capsys):
    from course_utils.pretrained import ChecksumMismatchError, sha256sum

    saved = build_encoder("mnist", seed=5)
    file = checkpoints / "published.pt"
    torch.save(saved.state_dict(), file)
    encoder, info = load_or_pretrain("mnist", get_profile("smoke"), "cpu", source=file, sha256=sha256sum(file))
    assert info == f"loaded {checkpoints / 'smoke' / 'pretrained' / 'published.pt'}"
    assert torch.equal(encoder.state_dict()["features.0.weight"], saved.state_dict()["features.0.weight"])
    with pytest.raises(ChecksumMismatchError):
        load_or_pretrain("mnist", get_profile("smoke"), "cpu", source=file, sha256="0" * 64)


def test_pretrain_recipe_trains_the_budget_and_returns_the_encoder_in_eval_mode(checkpoints):
    from course_utils.data import mnist_standin

    images = mnist_standin().images[:96]
    encoder = pretrain_recipe("mnist", images, steps=5, batch_size=32, profile=get_profile("smoke"), device="cpu",
                              progress=False)
    assert not encoder.training and encoder(torch.rand(2, 1, 28, 28)).shape == (2, 128)
    assert [row["epoch"] for row in encoder.history] == [1, 2]  # 3 steps per epoch: 5 steps need 2 epochs
    assert not torch.equal(encoder.state_dict()["features.0.weight"],
                           build_encoder("mnist", seed=0).state_dict()["features.0.weight"])


def test_the_chapters_use_the_recipes_and_save_the_files_load_or_pretrain_reads():
    """The notebooks name the recipe constants and file names through course_utils.encoders, never as copies."""
    import json
    from pathlib import Path

    from course_utils.encoders import ENCODER_FILES

    root = Path(__file__).resolve().parents[1]
    for chapter, key in (("02_simclr_mnist", "mnist"), ("04_resnet18_cifar10", "cifar10")):
        code = "\n".join("".join(c["source"]) for c in json.loads((root / "notebooks" / f"{chapter}.ipynb").read_text())
                         ["cells"] if c["cell_type"] == "code")
        assert f'encoder_path("{key}"' in code, f"{chapter} must save its encoder at encoder_path({key!r}, profile)"
        assert ENCODER_FILES[key] not in code, f"{chapter} repeats the file name instead of using encoder_path"
        assert f'RECIPES["{key}"]' in code or f'pretrain_recipe("{key}"' in code
        assert "temperature=0." not in code and "hidden_dim=" not in code, f"{chapter} repeats a recipe constant"


def test_build_encoder_is_seeded_and_checks_the_name():
    a, b = build_encoder("cifar10", seed=1), build_encoder("CIFAR-10", seed=1)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert build_encoder("mnist")(torch.rand(2, 1, 28, 28)).shape == (2, 128)
    with pytest.raises(ValueError, match="mnist"):
        build_encoder("imagenet")


def test_a_cpu_runtime_loads_the_encoder_the_gpu_profile_trained_and_says_so(checkpoints, capsys):
    from course_utils.config import PROFILES

    gpu_file = encoder_path("cifar10", PROFILES["gpu"])
    gpu_file.parent.mkdir(parents=True)
    trained = build_encoder("cifar10", seed=3, profile=PROFILES["gpu"])  # ResNet-18 at full width
    torch.save(trained.state_dict(), gpu_file)
    encoder, info = load_or_pretrain("cifar10", PROFILES["cpu"], "cpu")
    assert encoder.profile is PROFILES["gpu"] and encoder.path == gpu_file and encoder.conv1.out_channels == 64
    assert f"loaded {gpu_file}" in info and "'gpu' profile" in info and "width 64" in info
    assert torch.equal(encoder.state_dict()["conv1.weight"], trained.state_dict()["conv1.weight"])
    assert "not found" not in capsys.readouterr().out  # nothing was trained
    # Both profiles' files: the longer-trained gpu one wins, and the other is named.
    cpu_file = encoder_path("cifar10", PROFILES["cpu"])
    cpu_file.parent.mkdir(parents=True)
    torch.save(build_encoder("cifar10", seed=4, profile=PROFILES["cpu"]).state_dict(), cpu_file)
    encoder, info = load_or_pretrain("cifar10", PROFILES["gpu"], "cpu")
    assert encoder.path == gpu_file and f"also found: {cpu_file}" in info
    gpu_file.unlink()
    encoder, info = load_or_pretrain("cifar10", PROFILES["gpu"], "cpu")
    assert encoder.path == cpu_file and encoder.conv1.out_channels == 16 and "'cpu' profile" in info


def test_a_file_whose_architecture_is_not_its_profiles_is_refused_with_the_fix(checkpoints):
    from course_utils.config import PROFILES

    path = encoder_path("cifar10", PROFILES["gpu"])
    path.parent.mkdir(parents=True)
    torch.save(build_encoder("cifar10", profile=PROFILES["cpu"]).state_dict(), path)  # width 16 in gpu/
    with pytest.raises(RuntimeError, match="ResNet-18 of width 64.*'gpu' profile.*Delete it"):
        load_or_pretrain("cifar10", PROFILES["cpu"], "cpu")


def test_smoke_never_takes_a_real_profiles_encoder(checkpoints, capsys):
    from course_utils.config import PROFILES

    real = encoder_path("mnist", PROFILES["cpu"])
    real.parent.mkdir(parents=True)
    torch.save(build_encoder("mnist", seed=9).state_dict(), real)
    tiny = with_overrides(get_profile("smoke"), mnist_train_size=64, mnist_steps=2, mnist_batch_size=32)
    encoder, info = load_or_pretrain("mnist", tiny, "cpu")
    assert "trained here" in info and encoder.path == encoder_path("mnist", tiny) and encoder.profile is tiny
    out = capsys.readouterr().out
    assert "not found in" in out and str(checkpoints / "smoke") in out and str(checkpoints / "cpu") not in out
    # ... and a cpu runtime then takes the cpu file, not smoke's.
    assert load_or_pretrain("mnist", PROFILES["cpu"], "cpu")[0].path == real
