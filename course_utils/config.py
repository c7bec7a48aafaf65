"""Profiles, device, precision, seeding and paths: the one place that sizes every chapter.

Every notebook runs the same cells in every profile; only the numbers below change.

    COURSE_PROFILE=smoke   tiny subsets, a few optimiser steps, no network (CI, nbval)
    COURSE_PROFILE=cpu     a real run that a laptop or Colab CPU finishes in minutes per chapter
    COURSE_PROFILE=gpu     the full recipe

When COURSE_PROFILE is unset the profile is ``gpu`` if CUDA is available, else ``cpu``.
COURSE_OVERRIDES="cifar_colab_steps=200,knn_evals=2" changes single sizes of the chosen profile (the
banner says so); ``make gpu-check`` uses it to cut every chapter to a few minutes. Pairs are separated by
commas; a tuple field takes its elements separated by semicolons ("lab_seeds=0;1", "lab_seeds=0" for one,
"labels_per_class=10;None"); "None" is None where the field allows it.

The ``gpu`` profile is sized so that every chapter, labs included, fits one free Colab session on a T4
(``course_utils.budget``: ``python -m course_utils.measure budget --device T4``; a test keeps it so).

Training is sized by COMPUTE, not by epochs: each pretraining gets a budget of optimiser steps, and the
number of epochs follows from the size of the data (``epochs_for``). A 4,000-image offline stand-in
therefore gets as many gradient steps as the 60,000 real digits would.

Paths (all overridable by environment variables):

    COURSE_HOME         default ~/.cache/simclr-course
    COURSE_DATA         default $COURSE_HOME/data          (MNIST, CIFAR-10)
    COURSE_CHECKPOINTS  default $COURSE_HOME/checkpoints   (or Google Drive when mounted on Colab)
"""

from __future__ import annotations

import math
import os
import platform
import random
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import UnionType
from typing import Union, get_args, get_origin, get_type_hints

import numpy as np
import torch

PROFILE_ENV = "COURSE_PROFILE"
OVERRIDES_ENV = "COURSE_OVERRIDES"
VALID_PROFILES = ("smoke", "cpu", "gpu")
DRIVE_ROOT = Path("/content/drive/MyDrive")
BF16_MIN_CAPABILITY = (8, 0)  # Ampere and newer have bf16 tensor cores; a T4 (7.5) only emulates bf16


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
    mnist_steps: int  # optimiser steps of pretraining (epochs follow from the data size)
    mnist_batch_size: int
    # --- Chapter 4: ResNet-18 on CIFAR-10 -----------------------------------------------------
    cifar_train_size: int | None
    cifar_test_size: int | None
    cifar_steps: int  # the full recipe of this profile, in optimiser steps
    cifar_colab_steps: int  # the schedule that fits one Colab session (what chapters 4-6 train)
    cifar_batch_size: int
    cifar_width: int  # channels of ResNet-18's first stage: 64 is ResNet-18, 16 the quarter-width one for CPUs
    knn_evals: int  # how many times the kNN monitor runs during a pretraining (always at the end)
    knn_train_size: int | None  # memory bank size for the kNN monitor
    # --- Chapters 3, 5 and 6: evaluation ------------------------------------------------------
    labels_per_class: tuple[int | None, ...]  # linear-probe label budgets (None: all labels)
    label_draws: int  # random draws of the labelled images at the small budgets (one draw is a lottery)
    label_fractions: tuple[float, ...]  # label fractions for chapter 5
    probe_iterations: int  # full-batch L-BFGS iterations of a linear probe
    supervised_steps: int  # the "trained from scratch on the same labels" baseline, in optimiser steps
    cluster_size: int  # test images used for k-means, GMM and UMAP
    embedding_method: str  # 2-D maps of features: "umap", or "pca" (no 20 s numba compile) for smoke
    loss_experiment_steps: int  # chapter 3's experiments on free embeddings
    # --- The labs: short SimCLR runs with one setting changed (course_utils.experiments) -------------
    lab_train_size: int | None  # training images of each MNIST run (pretraining and the probe's labels)
    lab_steps: int  # optimiser steps of each MNIST run of a sweep
    lab_cifar_steps: int  # optimiser steps of each CIFAR-10 run of a sweep
    lab_cifar_train_size: int | None  # training images of each CIFAR-10 run (pretraining and the probe's labels)
    lab_seeds: tuple[int, ...]  # pretraining seeds of every sweep
    # --- Chapter 7: the same recipe in several processes (course_utils.pretrain_ddp --demo) -----------
    ddp_steps: int | None  # optimiser steps of the chapter's run (None: chapter 4's cifar_colab_steps)
    ddp_train_size: int | None  # its training images (None: cifar_train_size)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny subsets, a few optimiser steps, offline stand-in data: checks that the code runs",
        allow_download=False,
        aug_timing_images=256,
        mnist_train_size=1000,
        mnist_test_size=300,
        mnist_steps=16,
        mnist_batch_size=128,
        cifar_train_size=64,
        cifar_test_size=64,
        cifar_steps=4,
        cifar_colab_steps=4,
        cifar_batch_size=32,
        cifar_width=16,
        knn_evals=2,
        knn_train_size=64,
        labels_per_class=(10, None),
        label_draws=2,
        label_fractions=(0.1, 1.0),
        probe_iterations=30,
        supervised_steps=4,
        cluster_size=300,
        embedding_method="pca",
        loss_experiment_steps=10,
        # The labs' sweeps run 3-5 short trainings each, in four chapters: 256 digits and 2 steps per run check the
        # same code as 512 and 3 did (nothing is learned in either), and save 10 s per execution of the chapters.
        lab_train_size=256,
        lab_steps=2,
        lab_cifar_steps=2,
        lab_cifar_train_size=256,
        lab_seeds=(0,),
        ddp_steps=4,
        ddp_train_size=64,
    ),
    "cpu": Profile(
        name="cpu",
        description="a real run sized for 2 CPU cores: minutes per chapter (ResNet-18 on a subset)",
        allow_download=True,
        aug_timing_images=2048,
        mnist_train_size=None,
        mnist_test_size=None,
        mnist_steps=2400,  # the recipe's budget: 300-550 s on 2 cores, idle or shared (benchmarks/bench_mnist.py)
        mnist_batch_size=128,
        # ResNet-18 costs ~6.6 GFLOP per image (two views, forward + backward): 2 CPU cores manage about
        # 20-30 images per second, 15,000 in ten minutes, and its kNN accuracy FELL in that time on the stand-in.
        # The same 18 layers at a quarter of the width (1/16 of the work) train at 170-290 images/s on 2 cores
        # (machines vary): 700 steps of 128 in 5 to 9 minutes. In the book build of 2026-12-04 a 1,014-step run
        # took the kNN monitor from 28.9% to 81.5% by step 702 and 82.1% at the end, in 13 minutes: 700 steps
        # keep nearly all of the gain inside ten minutes (chapter 4 shows this build's own figures).
        # On the stand-in as redrawn since (shapes10-v3) the 700-step run took it from 28.9% to 45.2% on 2026-12-07
        # (6 min on 2 cores), and a 468-step run only to 36.1%: the rise chapter 4 shows needs the 700 steps.
        cifar_train_size=10000,
        cifar_test_size=1000,
        cifar_steps=700,
        cifar_colab_steps=700,
        cifar_batch_size=128,
        cifar_width=16,
        knn_evals=4,
        knn_train_size=2048,
        labels_per_class=(10, 100, None),
        label_draws=5,
        label_fractions=(0.01, 0.1, 1.0),
        probe_iterations=100,
        supervised_steps=300,
        cluster_size=2000,
        embedding_method="umap",
        loss_experiment_steps=100,
        # The labs were the book's longest part at 300 MNIST steps a run (chapters 2, 3, 5 and 7 run 16 of them,
        # 40 s each on 2 cores). 2 epochs of the 4,000 digits (60 steps, about 9 s; a sweep over batch sizes keeps
        # 2 epochs at every size) keep the clear kNN differences that 300 steps show on the stand-in (colour alone
        # worst, batch 256 worst, no head worst, the plain gather worse with more ranks), measured on 2 seeds;
        # gaps of a point or two between the other settings change order with the size and the seed. The linear
        # probe with all 4,000 labels is near its ceiling for every setting at 60 or 300 steps: the labs say so.
        # ResNet-18 runs: 16 steps, one epoch of 2,048 images (40 steps on 4,000 gave the same ordering).
        lab_train_size=4000,
        lab_steps=60,
        lab_cifar_steps=16,
        lab_cifar_train_size=2048,
        lab_seeds=(0,),
        # Chapter 7 shows the machinery (launch, an interrupted session, the resume on every rank), which its
        # equality checks already prove: 3 epochs of 16 steps on 2,048 images, not chapter 4's 700 steps.
        ddp_steps=48,
        ddp_train_size=2048,
    ),
    "gpu": Profile(
        name="gpu",
        description="the full recipe on a GPU",
        allow_download=True,
        aug_timing_images=20000,
        mnist_train_size=None,
        mnist_test_size=None,
        mnist_steps=9400,  # 20 epochs of the 60,000 digits at batch 128
        mnist_batch_size=128,
        cifar_train_size=None,
        cifar_test_size=None,
        cifar_steps=48500,  # 500 epochs of CIFAR-10 at batch 512 (97 steps per epoch): the longer run
        # The Colab schedule: 70 epochs, 77 min on a T4 at the budget's conservative 5 TFLOP/s, so that chapter 4
        # with its lab fits one session (python -m course_utils.measure budget). Expected: about 82% kNN and 85%
        # linear probe, extrapolating (log-linearly in epochs, a little below their shortest run) the closest
        # published ResNet-18 SimCLR runs, dkobak/simclr-cifar10: 83.2% kNN (k=10) and 85.6% linear after 100
        # epochs, 91.4% and 91.7% after 1000.
        cifar_colab_steps=6790,
        cifar_batch_size=512,
        cifar_width=64,
        knn_evals=10,
        knn_train_size=None,
        labels_per_class=(10, 100, None),
        label_draws=5,
        label_fractions=(0.01, 0.1, 1.0),
        probe_iterations=100,
        supervised_steps=2940,  # 30 epochs of CIFAR-10 at batch 512
        cluster_size=5000,
        embedding_method="umap",
        loss_experiment_steps=200,
        # The labs: 10,000 training images per run (the scoring probes and kNN on them too), two seeds. Chapter 4's
        # lab is 4 families × 2 seeds × 304 steps of 512 (16 epochs of its 10,000 images, 3 of CIFAR-10): 28 min on
        # a T4 by the budget (it was 12 runs of 1,940 steps: 4.4 hours).
        lab_train_size=10000,
        lab_steps=2000,
        lab_cifar_steps=300,
        lab_cifar_train_size=10000,
        lab_seeds=(0, 1),
        ddp_steps=None,  # chapter 4's Colab schedule, on all of CIFAR-10
        ddp_train_size=None,
    ),
}


def _parse_overrides(text: str, profile: Profile) -> dict:
    """``"cifar_colab_steps=200, lab_seeds=0;1"`` -> {field: value}, each value of its field's type (a tuple
    field's elements separated by ";")."""
    hints = get_type_hints(Profile)
    sizes = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or key not in hints or key in ("name", "description"):
            raise ValueError(f"{OVERRIDES_ENV}: cannot read {item!r}. Write field=value pairs separated by commas, "
                             f"with fields of course_utils.config.Profile, e.g. 'cifar_colab_steps=200' (a tuple "
                             f"field takes its elements separated by ';', e.g. 'lab_seeds=0;1').")
        try:
            sizes[key] = _parse_value(value, hints[key])
        except ValueError as error:
            raise ValueError(f"{OVERRIDES_ENV}: bad value in {item!r}: {error}.") from None
    return sizes


def _parse_value(text: str, hint):
    """``text`` as a value of the type ``hint`` (int, float, bool, str, X | None, or tuple[X, ...])."""
    if get_origin(hint) is tuple:
        element = get_args(hint)[0]
        parts = [p.strip() for p in text.split(";")]
        if not text.strip() or "" in parts:
            raise ValueError("a tuple needs one or more elements separated by ';', e.g. 0;1")
        return tuple(_parse_value(p, element) for p in parts)
    types = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    if text.lower() == "none":
        if type(None) not in types:
            raise ValueError("None is not allowed here")
        return None
    if bool in types:
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() in ("1", "true", "yes")
    if int in types:
        try:
            return int(text)
        except ValueError:
            if float not in types:
                raise ValueError(f"{text!r} is not a whole number") from None
    if float in types:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if str in types:
        return text
    raise ValueError(f"cannot read {text!r}")


def get_profile(name: str | None = None) -> Profile:
    """Return the profile called ``name``, else $COURSE_PROFILE, else ``gpu``/``cpu`` by hardware.

    $COURSE_OVERRIDES (``"field=value,..."``, a tuple's elements separated by ";") changes single sizes of it.

    >>> get_profile("smoke").mnist_batch_size
    128
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
    profile = PROFILES[key]
    overrides = os.environ.get(OVERRIDES_ENV, "").strip()
    return with_overrides(profile, **_parse_overrides(overrides, profile)) if overrides else profile


def with_overrides(profile: Profile, **sizes) -> Profile:
    """A copy of ``profile`` with some sizes changed, e.g. ``with_overrides(p, mnist_steps=100)``."""
    return replace(profile, **sizes)


def epochs_for(steps: int, n_images: int, batch_size: int) -> int:
    """Whole epochs that give at least ``steps`` optimiser steps over ``n_images`` in batches of ``batch_size``
    (the last partial batch of an epoch is dropped, as ``train.pretrain`` does).

    >>> epochs_for(1900, 4000, 128)   # 31 steps per epoch
    62
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    per_epoch = n_images // batch_size
    if per_epoch < 1:
        raise ValueError(f"a batch of {batch_size} needs at least {batch_size} images, got {n_images}")
    return math.ceil(steps / per_epoch)


def get_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a CPU ``torch.Generator`` with that seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def use_cpu_threads(limit: int = 4, processes: int = 1) -> int:
    """Set how many CPU threads torch uses, and return it.

    $OMP_NUM_THREADS when it is set: whoever set it knows what else runs on the machine (torchrun sets it to
    1 for several processes; ``make test`` too, for its two workers). Otherwise the cores shared among
    ``processes`` processes on this machine, at most ``limit``: past about 4, threads only slow a small model.
    """
    explicit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if explicit:
        if not explicit.isdigit() or int(explicit) < 1:
            raise ValueError(f"OMP_NUM_THREADS={explicit!r} is not a whole number of threads. Unset it, or set "
                             "it to one, e.g. OMP_NUM_THREADS=2.")
        threads = int(explicit)
    else:
        threads = max(1, min(limit, (os.cpu_count() or 1) // max(1, processes)))
    torch.set_num_threads(threads)
    return threads


# --- Precision ------------------------------------------------------------------------------------

def choose_precision(device: torch.device | str) -> tuple[torch.dtype | None, str]:
    """(autocast dtype, the reason) for ``device``.

    bf16 at compute capability ≥ 8.0 (A100, L4, H100: bf16 tensor cores, fp32's range, no scaler needed);
    fp16 with a GradScaler below it (a T4 is 7.5: fp16 tensor cores, and bf16 only emulated, far slower);
    None (fp32) on a CPU. Not ``torch.cuda.is_bf16_supported()``: by default it only checks that a bf16
    tensor can be made, and says True on a T4.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None, f"fp32 on the {device.type}"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) >= BF16_MIN_CAPABILITY:
        return torch.bfloat16, f"bf16: compute capability {major}.{minor} has bf16 tensor cores"
    return torch.float16, (f"fp16 with a GradScaler: compute capability {major}.{minor} < 8.0 has fp16 tensor "
                           "cores but no fast bf16")


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``device``: see ``choose_precision``."""
    return choose_precision(device)[0]


def describe_device(device: torch.device | None = None) -> str:
    device = device or get_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda ({name}, mixed precision {choose_precision(device)[1]})"
    return f"cpu ({os.cpu_count()} cores, {platform.machine()}, fp32)"


def banner(profile: Profile | None = None) -> str:
    """Print and return the one-line banner every notebook starts with."""
    profile = profile or get_profile()
    line = (
        f"profile: {profile.name} ({profile.description}) | device: {describe_device()} | "
        f"torch {torch.__version__} | data: {data_dir()}"
    )
    changed = {k: v for k, v in profile.as_dict().items() if v != PROFILES[profile.name].as_dict()[k]}
    if changed:
        line += " | sizes changed by " + OVERRIDES_ENV + ": " + ", ".join(f"{k}={v}" for k, v in changed.items())
    if profile.name == "cpu" and torch.cuda.is_available():
        line += " | note: a GPU is available but the cpu profile was chosen"
    if profile.name == "gpu" and not torch.cuda.is_available():
        line += " | WARNING: gpu profile on a CPU: expect hours; use COURSE_PROFILE=cpu"
    print(line)
    return line


# --- Paths --------------------------------------------------------------------------------------

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


def live_progress() -> bool:
    """True when someone watches the output live (Colab, Jupyter, VS Code, a terminal): progress bars then
    redraw in place. False when a program records it (the book build, CI logs), where every redraw of a
    bar would become a line of its own: training prints a line per epoch instead. (JPY_SESSION_NAME is set by
    a Jupyter server for a notebook someone opened; JPY_PARENT_PID is not a sign: jupyter_client sets it for
    every kernel, those of nbclient and the book build included.)"""
    if on_colab() or any(k in os.environ for k in ("JPY_SESSION_NAME", "VSCODE_PID")):
        return True
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def on_colab() -> bool:
    """True inside a Google Colab runtime (its ``google.colab`` package is importable)."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def keep_checkpoints_on_drive(use_drive: bool = True, profile: Profile | None = None) -> Path:
    """On Colab, mount Google Drive so that checkpoints outlive the session; return ``checkpoint_dir``.

    Elsewhere nothing changes. ``use_drive=False`` keeps them on the Colab machine (lost when the runtime is
    recycled) and says so. When the user declines Drive's permission dialog, or mounting fails, the run goes
    on with local checkpoints and a message that says what that costs and how to change it.
    """
    profile = profile or get_profile()
    if not on_colab():
        print(f"checkpoints: {checkpoint_dir(profile)}")
        return checkpoint_dir(profile)
    local = course_home() / "checkpoints"
    lost = "on this Colab machine only: they are lost when the runtime disconnects or is recycled"
    ours = os.environ.get("COURSE_CHECKPOINTS") == str(local)  # set by an earlier call with use_drive=False
    if use_drive and ours:
        del os.environ["COURSE_CHECKPOINTS"]
    if not use_drive:
        if DRIVE_ROOT.is_dir() and "COURSE_CHECKPOINTS" not in os.environ:
            os.environ["COURSE_CHECKPOINTS"] = str(local)  # Drive is mounted, but the user said no
        print(f"checkpoints: {checkpoint_dir(profile)} ({lost}; you chose USE_DRIVE = False)")
        return checkpoint_dir(profile)
    if not DRIVE_ROOT.is_dir():
        from google.colab import drive

        try:
            drive.mount(str(DRIVE_ROOT.parent))
        except Exception as error:  # declined in the dialog, timed out, or Drive unavailable
            print(f"Google Drive was not mounted ({type(error).__name__}: {error}).\n"
                  f"checkpoints: {checkpoint_dir(profile)} ({lost}). To keep them, run this cell again and allow "
                  f"access to Drive; to stop being asked, set USE_DRIVE = False.")
            return checkpoint_dir(profile)
    print(f"checkpoints: {checkpoint_dir(profile)} (on Google Drive: a disconnect costs at most one epoch)")
    return checkpoint_dir(profile)
