"""Profiles, device, seeding and paths: the one place that sizes every chapter.

Every notebook runs the same cells in every profile; only the numbers below change.

    COURSE_PROFILE=smoke   tiny subsets, one or two epochs, no network (CI, nbval)
    COURSE_PROFILE=cpu     a real run that a laptop or Colab CPU finishes in minutes per chapter
    COURSE_PROFILE=gpu     the full recipe

When COURSE_PROFILE is unset the profile is ``gpu`` if CUDA is available, else ``cpu``.

Paths (all overridable by environment variables):

    COURSE_HOME         default ~/.cache/simclr-course
    COURSE_DATA         default $COURSE_HOME/data          (MNIST, CIFAR-10)
    COURSE_CHECKPOINTS  default $COURSE_HOME/checkpoints   (or Google Drive when mounted on Colab)
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

PROFILE_ENV = "COURSE_PROFILE"
VALID_PROFILES = ("smoke", "cpu", "gpu")
DRIVE_ROOT = Path("/content/drive/MyDrive")


@dataclass(frozen=True)
class Profile:
    """Every size a chapter needs. Read it, never branch on ``name`` in teaching code."""

    name: str
    description: str
    # Real data may be downloaded (smoke never touches the network: it uses the stand-ins).
    allow_download: bool
    # --- Chapter 1: augmentations ------------------------------------------------------------
    aug_timing_images: int  # images pushed through each pipeline when timing it
    # --- Chapter 2: SimCLR on MNIST with a small CNN ------------------------------------------
    mnist_train_size: int | None  # None: the whole training set
    mnist_test_size: int | None
    mnist_epochs: int
    mnist_batch_size: int
    mnist_lr: float
    # --- Chapter 4: ResNet-18 on CIFAR-10 -----------------------------------------------------
    cifar_train_size: int | None
    cifar_test_size: int | None
    cifar_epochs: int
    cifar_colab_epochs: int  # the schedule that fits one Colab session (gpu profile)
    cifar_batch_size: int
    cifar_warmup_epochs: int
    knn_every: int  # evaluate the kNN monitor every this many epochs
    knn_train_size: int | None  # memory bank size for the kNN monitor
    # --- Chapters 3, 5 and 6: evaluation ------------------------------------------------------
    labels_per_class: tuple[int | None, ...]  # linear-probe label budgets (None: all labels)
    label_fractions: tuple[float, ...]  # CIFAR-10 label fractions for chapter 5
    probe_epochs: int
    supervised_epochs: int  # the "trained from scratch on the same labels" baseline
    cluster_size: int  # test images used for k-means, GMM and UMAP
    embedding_method: str  # 2-D maps of features: "umap", or "pca" (no 20 s numba compile) for smoke
    loss_experiment_steps: int  # chapter 3's temperature and batch-size experiments

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny subsets, one or two epochs, offline stand-in data: checks that the code runs",
        allow_download=False,
        aug_timing_images=256,
        mnist_train_size=1000,
        mnist_test_size=300,
        mnist_epochs=2,
        mnist_batch_size=128,
        mnist_lr=2e-3,
        cifar_train_size=64,
        cifar_test_size=64,
        cifar_epochs=2,
        cifar_colab_epochs=2,
        cifar_batch_size=32,
        cifar_warmup_epochs=1,
        knn_every=1,
        knn_train_size=64,
        labels_per_class=(10, None),
        label_fractions=(0.1, 1.0),
        probe_epochs=30,
        supervised_epochs=2,
        cluster_size=300,
        embedding_method="pca",
        loss_experiment_steps=10,
    ),
    "cpu": Profile(
        name="cpu",
        description="a real run sized for 2 CPU cores: minutes per chapter (ResNet-18 on a subset)",
        allow_download=True,
        aug_timing_images=2048,
        mnist_train_size=None,
        mnist_test_size=None,
        mnist_epochs=3,
        mnist_batch_size=256,
        mnist_lr=2e-3,
        # ResNet-18 costs ~6.6 GFLOP per image (two views, forward + backward): a 2-core CPU manages a
        # few images per second, so the cpu profile trains on a small subset (and the chapter says so).
        cifar_train_size=512,
        cifar_test_size=500,
        cifar_epochs=2,
        cifar_colab_epochs=2,
        cifar_batch_size=128,
        cifar_warmup_epochs=1,
        knn_every=1,
        knn_train_size=512,
        labels_per_class=(10, 100, None),
        label_fractions=(0.01, 0.1, 1.0),
        probe_epochs=100,
        supervised_epochs=3,
        cluster_size=2000,
        embedding_method="umap",
        loss_experiment_steps=100,
    ),
    "gpu": Profile(
        name="gpu",
        description="the full recipe on a GPU",
        allow_download=True,
        aug_timing_images=20000,
        mnist_train_size=None,
        mnist_test_size=None,
        mnist_epochs=20,
        mnist_batch_size=512,
        mnist_lr=2e-3,
        cifar_train_size=None,
        cifar_test_size=None,
        cifar_epochs=500,
        cifar_colab_epochs=100,
        cifar_batch_size=512,
        cifar_warmup_epochs=10,
        knn_every=10,
        knn_train_size=None,
        labels_per_class=(10, 100, None),
        label_fractions=(0.01, 0.1, 1.0),
        probe_epochs=100,
        supervised_epochs=30,
        cluster_size=5000,
        embedding_method="umap",
        loss_experiment_steps=200,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``, else $COURSE_PROFILE, else ``gpu``/``cpu`` by hardware.

    >>> get_profile("smoke").mnist_epochs
    2
    """
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip() or None
    if name is None:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}. Valid profiles are: {', '.join(VALID_PROFILES)}. "
            f"Set {PROFILE_ENV} to one of them (or unset it to choose by hardware)."
        )
    return PROFILES[key]


def with_overrides(profile: Profile, **sizes) -> Profile:
    """A copy of ``profile`` with some sizes changed, e.g. ``with_overrides(p, mnist_epochs=1)``."""
    return replace(profile, **sizes)


def get_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a CPU ``torch.Generator`` with that seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def course_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "simclr-course"
    return Path(os.environ.get("COURSE_HOME", default)).expanduser()


def data_dir() -> Path:
    """Where MNIST and CIFAR-10 are cached ($COURSE_DATA)."""
    return Path(os.environ.get("COURSE_DATA", course_home() / "data")).expanduser()


def checkpoint_dir(profile: Profile | None = None) -> Path:
    """Where checkpoints go: $COURSE_CHECKPOINTS, else Google Drive when mounted, else $COURSE_HOME.

    One sub-folder per profile, so that a smoke run never passes for a real one.
    """
    profile = profile or get_profile()
    if "COURSE_CHECKPOINTS" in os.environ:
        root = Path(os.environ["COURSE_CHECKPOINTS"]).expanduser()
    elif DRIVE_ROOT.is_dir():
        root = DRIVE_ROOT / "simclr-course" / "checkpoints"
    else:
        root = course_home() / "checkpoints"
    return root / profile.name


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 where the GPU supports it, fp16 on older GPUs, None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def describe_device(device: torch.device | None = None) -> str:
    device = device or get_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        dtype = amp_dtype(device)
        return f"cuda ({name}, mixed precision {str(dtype).replace('torch.', '')})"
    return f"cpu ({os.cpu_count()} cores, {platform.machine()}, fp32)"


def banner(profile: Profile | None = None) -> str:
    """Print and return the one-line banner every notebook starts with."""
    profile = profile or get_profile()
    line = (
        f"profile: {profile.name} ({profile.description}) | device: {describe_device()} | "
        f"torch {torch.__version__} | data: {data_dir()}"
    )
    if profile.name == "cpu" and torch.cuda.is_available():
        line += " | note: a GPU is available but the cpu profile was chosen"
    if profile.name == "gpu" and not torch.cuda.is_available():
        line += " | WARNING: gpu profile on a CPU: expect hours; use COURSE_PROFILE=cpu"
    print(line)
    return line
