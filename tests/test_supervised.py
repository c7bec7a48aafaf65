"""The supervised baseline: class-balanced label subsets, and end-to-end training that learns."""

import pytest
import torch

from course_utils.models import SmallCNN
from course_utils.data import subset_index
from course_utils.supervised import accuracy, predict, train_supervised


def toy_data(n=120, seed=0):
    """Bright blob on the left (class 0), right (1) or top (2) of a dark 16×16 image, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = 0.1 * torch.rand(n, 1, 16, 16, generator=g)
    for i, c in enumerate(labels.tolist()):
        rows, cols = [(slice(5, 11), slice(1, 6)), (slice(5, 11), slice(10, 15)), (slice(1, 6), slice(5, 11))][c]
        images[i, 0, rows, cols] += 0.8
    return (images.clamp(0, 1) * 255).to(torch.uint8), labels


def test_a_fraction_of_the_labels_is_class_balanced_sorted_and_seeded():
    labels = torch.arange(1000) % 10
    index = subset_index(labels, fraction=0.05, seed=3)
    assert len(index) == 50 and torch.bincount(labels[index]).tolist() == [5] * 10
    assert torch.equal(index, index.sort().values) and len(index.unique()) == 50
    assert torch.equal(index, subset_index(labels, fraction=0.05, seed=3))
    assert not torch.equal(index, subset_index(labels, fraction=0.05, seed=4))
    assert torch.equal(subset_index(labels, fraction=1.0), torch.arange(1000))
    tiny = subset_index(labels, fraction=0.0001, min_per_class=2)
    assert torch.bincount(labels[tiny]).tolist() == [2] * 10  # at least two per class
    with pytest.raises(ValueError, match="fraction"):
        subset_index(labels, fraction=1.5)


def test_training_from_scratch_learns_the_toy_task():
    images, labels = toy_data()
    test_images, test_labels = toy_data(60, seed=1)
    torch.manual_seed(0)  # the encoder's initialisation comes from the global generator
    untrained = torch.nn.Sequential(SmallCNN(width=8, feature_dim=16, convs_per_stage=1), torch.nn.Linear(16, 3))
    before = accuracy(untrained.eval(), test_images, test_labels)
    model = train_supervised(SmallCNN(width=8, feature_dim=16, convs_per_stage=1), images, labels, steps=32,
                             batch_size=32, lr=3e-3, seed=0, device="cpu", progress=False)
    assert not model.training
    assert model(torch.rand(4, 1, 16, 16)).shape == (4, 3)
    assert accuracy(model, test_images, test_labels) > max(0.9, before)
    assert predict(model, test_images).dtype == torch.int64


def test_augment_is_applied_and_training_is_seeded():
    images, labels = toy_data(40)
    calls = []

    def augment(x, generator=None):
        calls.append(x.shape)
        return x.flip(3)

    def make():
        torch.manual_seed(0)  # same initial encoder; the head and the batches are seeded by seed=5
        return train_supervised(SmallCNN(width=4, feature_dim=8, convs_per_stage=1), images, labels, steps=6,
                                batch_size=16, lr=1e-3, augment=augment, seed=5, progress=False)

    a, b = make(), make()
    assert len(calls) == 2 * 6  # two runs × six steps (two passes of batches of 16, 16 and 8)
    assert sorted({shape[0] for shape in calls}) == [8, 16]
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_bad_inputs_get_clear_errors():
    images, labels = toy_data(10)
    with pytest.raises(ValueError, match="one label each"):
        train_supervised(SmallCNN(), images, labels[:5], steps=1, batch_size=4, lr=1e-3)
    with pytest.raises(TypeError, match="feature_dim"):
        train_supervised(torch.nn.Conv2d(1, 2, 3), images, labels, steps=1, batch_size=4, lr=1e-3)


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16], ids=["bf16", "fp16+scaler"])
def test_mixed_precision_paths_train_on_the_cpu(amp, capsys):
    images, labels = toy_data()
    model = train_supervised(SmallCNN(width=8, feature_dim=16, convs_per_stage=1), images, labels, steps=24,
                             batch_size=32, lr=3e-3, seed=0, amp=amp)
    out = capsys.readouterr().out
    assert "expected" in out and ("bfloat16" if amp is torch.bfloat16 else "float16") in out
    assert accuracy(model, *toy_data(60, seed=1)) > 0.6


def test_recalibrated_batchnorm_holds_the_exact_statistics_of_the_data():
    from course_utils.supervised import recalibrate_batchnorm

    torch.manual_seed(0)
    conv, norm = torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)
    model = torch.nn.Sequential(conv, norm).eval()
    images = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
    weights = conv.weight.clone()
    recalibrate_batchnorm(model, images, batch_size=16)  # batches of 16, 16, 16 and 2
    with torch.no_grad():
        out = conv(images.float() / 255)
    # The cumulative average of the batch means is the mean over all images (equal batch weights aside).
    batch_means = torch.stack([out[i:i + 16].mean((0, 2, 3)) for i in range(0, 50, 16)])
    assert torch.allclose(norm.running_mean, batch_means.mean(0), atol=1e-5)
    assert norm.momentum == 0.1 and not model.training and torch.equal(conv.weight, weights)


def test_an_interrupted_baseline_resumes_to_the_same_network_and_a_finished_one_returns_at_once(tmp_path, monkeypatch,
                                                                                                 capsys):
    import course_utils.supervised as supervised

    images, labels = toy_data(40)  # batches of 16, 16, 8: three steps a pass

    def run(path=None):
        torch.manual_seed(0)  # the same initial encoder every time
        return train_supervised(SmallCNN(width=4, feature_dim=8, convs_per_stage=1), images, labels, steps=9,
                                batch_size=16, lr=1e-3, seed=5, progress=False, checkpoint_path=path,
                                checkpoint_seconds=0)  # a checkpoint at the start of every pass

    whole = run()
    path = tmp_path / "supervised.pt"
    save, saves = supervised._save, []

    def dies_after_the_first(*args, **kwargs):  # "the session dies" right after a checkpoint is written
        save(*args, **kwargs)
        saves.append(args[-1])
        raise KeyboardInterrupt

    monkeypatch.setattr(supervised, "_save", dies_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        run(path)
    assert saves == [3]  # the checkpoint at step 3 of 9, then the kill
    monkeypatch.setattr(supervised, "_save", save)
    resumed = run(path)
    assert f"resumed from {path} at step 3/9" in capsys.readouterr().out
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)  # bit for bit on a CPU
    again = run(path)
    assert "is complete (9/9 steps)" in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), again.state_dict().values()))
    # A file of another run (here: other steps) is not resumed: the run starts over and says so.
    torch.manual_seed(0)
    train_supervised(SmallCNN(width=4, feature_dim=8, convs_per_stage=1), images, labels, steps=4, batch_size=16,
                     lr=1e-3, seed=5, progress=False, checkpoint_path=path)
    assert "checkpoint of another run" in capsys.readouterr().out
