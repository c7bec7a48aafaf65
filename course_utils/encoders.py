"""The course's two SimCLR recipes, and the encoders that chapters 5 and 6 evaluate.

    encoder = pretrain_recipe("mnist", data.images)                # chapter 2's recipe, the profile's step budget
    encoder, info = load_or_pretrain("cifar10", profile, device)   # what chapter 4 saved, or train it now
    print(info)                                                    # which file, trained in which profile
    encoder.profile                                                # the profile whose architecture it has
    baseline = build_encoder("cifar10", seed=0)                    # the same network, randomly initialised

One recipe per data set (``RECIPES``), used by chapter 2, chapter 4's defaults, the benchmarks and
``load_or_pretrain``: one source of truth for the head, the temperature, the optimiser and the views.
MNIST (chapter 2): ``SmallCNN()``, head 128→512→128, AdamW with warm-up and cosine decay, ``mnist_augment()``;
CIFAR-10 (chapter 4): ``resnet18_cifar()``, head 512→2048→256, LARS (solo-learn, da Costa et al. 2022)
with a linear warm-up, ``cifar10_augment()``. In the cpu and smoke profiles the CIFAR ResNet-18 is its
quarter-width version (``profile.cifar_width``), which two CPU cores can train in minutes.

Files (a plain ``state_dict`` of the encoder f, without the projection head g):
``checkpoint_dir(profile) / "mnist_smallcnn_encoder.pt"`` and ``"cifar10_resnet18_encoder.pt"``.

Chapters 5 and 6 load the student's own encoder from whichever profile trained it (``find_encoder``): a
student who ran chapter 4 on a Colab GPU and opens chapter 5 in a CPU runtime gets the full-width ResNet-18
that the GPU trained, not a quick CPU retraining. The ``gpu`` and ``cpu`` profiles look in both folders, the
longer-trained ``gpu`` one first; ``smoke`` only in its own, so that a smoke run never passes for a real one
(and a test never picks up a real encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from . import config

DATASETS = ("mnist", "cifar10")
ENCODER_FILES = {"mnist": "mnist_smallcnn_encoder.pt", "cifar10": "cifar10_resnet18_encoder.pt"}
SEARCH_ORDER = ("gpu", "cpu")  # where a real profile looks for a saved encoder: the longer-trained first


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one SimCLR pretraining, except its size (the profile gives the steps and batch)."""

    encoder: str  # "smallcnn" or "resnet18_cifar"
    head: dict  # ProjectionHead(encoder.feature_dim, **head)
    augment: str  # the name of a function of course_utils.augment that makes the views
    temperature: float
    optimizer: str  # "adam" (AdamW) or "lars", as train.simclr_optimizer
    lr: float | None  # None: the optimizer's rule (LARS: 0.4 × batch / 256)
    warmup: float  # fraction of the run spent warming the learning rate up linearly

    def build_augment(self) -> Callable:
        from . import augment

        return getattr(augment, self.augment)()


# The recipes of chapters 2 and 4. CIFAR-10: solo-learn's (temperature 0.2). MNIST: found by measurement on a
# validation split of the 5,000 offline digits (mnist_recipe_search.json, benchmarks/bench_mnist.py): the digit
# views of augment.mnist_augment, temperature 0.3, AdamW at 4e-3 with 10% warm-up.
RECIPES = {
    "mnist": Recipe(encoder="smallcnn", head=dict(hidden_dim=512, out_dim=128), augment="mnist_augment",
                    temperature=0.3, optimizer="adam", lr=4e-3, warmup=0.1),
    "cifar10": Recipe(encoder="resnet18_cifar", head=dict(hidden_dim=2048, out_dim=256),
                      augment="cifar10_augment", temperature=0.2, optimizer="lars", lr=None, warmup=0.1),
}


def _check(dataset: str) -> str:
    key = str(dataset).lower().replace("-", "")
    if key not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return key


def build_encoder(dataset: str, seed: int | None = None, profile: config.Profile | None = None) -> nn.Module:
    """A freshly initialised encoder for ``dataset`` (the architecture of its recipe, in ``profile``).

    "mnist": ``SmallCNN()`` (N×1×28×28 -> N×128); "cifar10": ``resnet18_cifar(width=profile.cifar_width)``
    (N×3×32×32 -> N×8·width: ResNet-18 in the gpu profile, its quarter-width version in cpu and smoke).
    ``seed`` fixes the random initialisation (the global RNG is left as it was).
    """
    from .models import SmallCNN, resnet18_cifar

    key = _check(dataset)
    profile = profile or config.get_profile()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return SmallCNN() if key == "mnist" else resnet18_cifar(width=profile.cifar_width)


def build_model(dataset: str, seed: int | None = None, profile: config.Profile | None = None) -> nn.Module:
    """The recipe's ``SimCLRModel``: ``build_encoder(dataset, seed, profile)`` and its projection head."""
    from .models import ProjectionHead, SimCLRModel

    key = _check(dataset)
    encoder = build_encoder(key, seed, profile)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed + 1)
        return SimCLRModel(encoder, ProjectionHead(encoder.feature_dim, **RECIPES[key].head))


def encoder_path(dataset: str, profile: config.Profile | None = None) -> Path:
    """``checkpoint_dir(profile) / <file>``: where chapters 2 and 4 save the encoder of ``dataset``."""
    return config.checkpoint_dir(profile) / ENCODER_FILES[_check(dataset)]


def recipe_steps(dataset: str, profile: config.Profile) -> tuple[int, int]:
    """(optimiser steps, batch size) of ``dataset``'s pretraining in ``profile``: chapter 2's MNIST budget, or
    chapter 4's Colab-sized CIFAR-10 schedule (the one chapters 5 and 6 retrain when they must)."""
    key = _check(dataset)
    if key == "mnist":
        return profile.mnist_steps, profile.mnist_batch_size
    return profile.cifar_colab_steps, profile.cifar_batch_size


def build_optimizer(model: nn.Module, recipe: Recipe, *, n_images: int, steps: int, batch_size: int):
    """(optimizer, scheduler, epochs) for ``steps`` optimiser steps of ``recipe`` over ``n_images`` in batches of
    ``batch_size``: the step budget rounded up to whole epochs, the warm-up a fraction ``recipe.warmup`` of them."""
    from .train import simclr_optimizer

    epochs = config.epochs_for(steps, n_images, batch_size)
    optimizer, scheduler = simclr_optimizer(model, batch_size=batch_size, epochs=epochs,
                                            steps_per_epoch=n_images // batch_size,
                                            warmup_epochs=round(recipe.warmup * epochs), recipe=recipe.optimizer,
                                            lr=recipe.lr)
    return optimizer, scheduler, epochs


def pretrain_recipe(dataset: str, images: torch.Tensor, *, steps: int | None = None, seed: int = 0,
                    batch_size: int | None = None, profile: config.Profile | None = None, device=None,
                    checkpoint_path: str | Path | None = None, monitor: Callable | None = None,
                    monitor_every: int | None = None, progress: bool = True) -> nn.Module:
    """Pretrain ``dataset``'s recipe (``RECIPES``) on ``images`` and return the encoder f, in eval mode.

    images   uint8 N×C×H×W (N×1×28×28 digits, or N×3×32×32 colour images); no labels.
    steps    optimiser steps (None: the profile's budget, ``recipe_steps``); rounded up to whole epochs.
    batch_size  None: the profile's; capped at N.
    checkpoint_path  resumable, as ``train.pretrain`` (saved every epoch; a finished run returns at once).
    monitor  ``monitor(model) -> accuracy`` (e.g. a kNN monitor), ``monitor_every`` epochs (None: about
             ``profile.knn_evals`` times in the run) and at the end.
    With ``progress`` it first prints the expected time, measured on this machine (``measure``).
    The run's history (one dict per epoch, see ``train.pretrain``) is kept as ``encoder.history``.
    """
    from .measure import estimate_pretraining
    from .train import pretrain

    key = _check(dataset)
    recipe = RECIPES[key]
    profile = profile or config.get_profile()
    device = torch.device(device) if device is not None else config.get_device()
    default_steps, default_batch = recipe_steps(key, profile)
    steps, batch_size = steps or default_steps, min(batch_size or default_batch, len(images))
    model = build_model(key, seed=seed, profile=profile).to(device)
    augment = recipe.build_augment()
    optimizer, scheduler, epochs = build_optimizer(model, recipe, n_images=len(images), steps=steps,
                                                   batch_size=batch_size)
    steps_per_epoch = len(images) // batch_size
    if progress:
        print(f"SimCLR on {len(images):,} images: {epochs} epochs × {steps_per_epoch} steps of batch {batch_size} "
              f"({recipe.optimizer}, temperature {recipe.temperature})")
        print(estimate_pretraining(model, images, augment, steps=epochs * steps_per_epoch, batch_size=batch_size,
                                   temperature=recipe.temperature))
    if monitor_every is None:
        monitor_every = max(1, epochs // profile.knn_evals)
    history = pretrain(model, images, augment, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                       scheduler=scheduler, temperature=recipe.temperature, checkpoint_path=checkpoint_path,
                       monitor=monitor, monitor_every=monitor_every, seed=seed, progress=progress)
    encoder = model.encoder.eval()
    encoder.history = history
    return encoder


def recipe_search(dataset: str = "mnist"):
    """How the MNIST recipe was found: (the chain of changes that were kept, every configuration tried) as two
    pandas DataFrames of validation figures (%), measured by the course's search and shipped with the package
    (``mnist_recipe_search.json``; its "about" says how they were measured)."""
    import json

    import pandas as pd

    if _check(dataset) != "mnist":
        raise ValueError("only the MNIST recipe was found by a search (CIFAR-10's is solo-learn's)")
    record = json.loads((Path(__file__).parent / "mnist_recipe_search.json").read_text())
    tried = pd.DataFrame(record["rows"])
    chain = tried[tried["step_in_chain"].notna()].sort_values("step_in_chain")
    columns = ["what", "steps", "probe_all", "probe_10", "kmeans_whitened"]
    return chain[columns].reset_index(drop=True), tried[["name", "seed", *columns, "wall_s"]]


def _training_images(key: str, profile: config.Profile) -> "ImageData":  # noqa: F821
    from .data import load_cifar10, load_mnist

    if key == "mnist":
        return load_mnist(train=True, profile=profile).take(profile.mnist_train_size)
    return load_cifar10(train=True, profile=profile).take(profile.cifar_train_size)


def find_encoder(dataset: str, profile: config.Profile | None = None) -> list[tuple[config.Profile, Path]]:
    """The encoder files of ``dataset`` that exist, as (profile whose folder and architecture it is, path), best
    first: in the ``gpu`` and ``cpu`` profiles both folders, ``gpu`` first (``SEARCH_ORDER``); in ``smoke`` its own."""
    key = _check(dataset)
    profile = profile or config.get_profile()
    names = [profile.name] if profile.name not in SEARCH_ORDER else list(SEARCH_ORDER)
    found = []
    for name in names:
        owner = profile if name == profile.name else config.PROFILES[name]
        path = encoder_path(key, owner)
        if path.exists():
            found.append((owner, path))
    return found


def _describe(key: str, encoder: nn.Module) -> str:
    n = sum(p.numel() for p in encoder.parameters())
    if key == "mnist":
        return "SmallCNN"
    return f"ResNet-18 of width {encoder.conv1.out_channels} ({n / 1e6:.1f} M parameters)"


def _load(key: str, path: Path, owner: config.Profile, device) -> nn.Module:
    """The encoder of ``owner``'s architecture with the weights of ``path``, checked: a file of another
    architecture raises an error that names it and the fix."""
    encoder = build_encoder(key, profile=owner)
    try:
        encoder.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = " ".join(lines[:2]) + (" ..." if len(lines) > 2 else "")  # torch lists every mismatched tensor
        raise RuntimeError(f"{path} is not the state_dict of a {_describe(key, encoder)}, the '{owner.name}' profile's "
                           f"encoder ({detail}). Delete it (os.remove({str(path)!r})) and run again: the encoder is "
                           f"then loaded from another profile's folder, or retrained.") from error
    encoder.profile, encoder.path = owner, Path(path)
    return encoder.to(device).eval()


def load_or_pretrain(dataset: str, profile: config.Profile | None = None, device=None, *,
                     source: str | Path | None = None, sha256: str | None = None) -> tuple[nn.Module, str]:
    """The SimCLR encoder f of ``dataset`` ("mnist" or "cifar10"), in eval mode on ``device``, and a
    one-line ``info`` saying which file it came from and which profile trained it.

    source   a file path or an https:// URL of an encoder state_dict (e.g. one chapter 4 saved on Drive, or a
             published one), verified by ``sha256`` when given (``pretrained.load_pretrained``), of the
             architecture of ``profile``, or else of the ``gpu`` or ``cpu`` profile's;
    else     the encoder that chapter 2 or 4 saved, in whichever profile it was trained (``find_encoder``: the
             ``gpu`` profile's first, then the ``cpu`` profile's; in ``smoke`` only smoke's);
    else     pretrains the recipe for the profile's budget now (saying so first, with how long it will take and
             how to avoid it), saves it in this profile's folder, so that later chapters reuse it.
    The encoder carries ``.profile``, the profile whose architecture it has (its random-init twin is
    ``build_encoder(dataset, seed, encoder.profile)``), and ``.path``, the file it came from.
    A file that does not fit the architecture raises an error naming the fix.
    """
    key = _check(dataset)
    profile = profile or config.get_profile()
    device = torch.device(device) if device is not None else config.get_device()
    chapter = 2 if key == "mnist" else 4
    if source is not None:
        from .pretrained import load_pretrained

        path = load_pretrained(source, sha256, dest_dir=config.checkpoint_dir(profile) / "pretrained")
        owners = [profile] + [config.PROFILES[n] for n in SEARCH_ORDER if n != profile.name]
        for i, owner in enumerate(owners):  # the first architecture the file fits
            try:
                encoder = _load(key, path, owner, device)
            except RuntimeError:
                if i == len(owners) - 1:
                    raise
                continue
            return encoder, f"loaded {path}" + ("" if owner is profile else f" ({_describe(key, encoder)}: the "
                                                f"'{owner.name}' profile's architecture)")
    found = find_encoder(key, profile)
    if found:
        owner, path = found[0]
        encoder = _load(key, path, owner, device)
        info = (f"loaded {path}: the encoder chapter {chapter} trained in the '{owner.name}' profile "
                f"({_describe(key, encoder)})")
        if owner.name != profile.name:
            info += f"; this notebook runs the '{profile.name}' profile, whose own networks are smaller"
        if len(found) > 1:
            info += "; also found: " + ", ".join(str(p) for _, p in found[1:])
        return encoder, info
    searched = [profile] if profile.name not in SEARCH_ORDER else [config.PROFILES[n] for n in SEARCH_ORDER]
    print(f"{ENCODER_FILES[key]} not found in {' or '.join(str(config.checkpoint_dir(p)) for p in searched)}: "
          f"chapter {chapter} saves it there. Training the '{profile.name}' profile's recipe here now (its expected "
          f"time follows), and saving it for later chapters. To skip this next time: run chapter {chapter} first (on "
          f"Colab with Google Drive mounted, so the file outlives the session), or set PRETRAINED_SOURCE to an "
          f"encoder file or URL.")
    path = encoder_path(key, profile)
    data = _training_images(key, profile)
    resume = path.with_name(f"{key}_load_or_pretrain_run.pt")  # a disconnect costs at most one epoch
    encoder = pretrain_recipe(key, data.images, profile=profile, device=device, checkpoint_path=resume)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(encoder.state_dict(), tmp)
    tmp.replace(path)
    encoder.profile, encoder.path = profile, path
    steps, _ = recipe_steps(key, profile)
    info = (f"trained here: SimCLR on {len(data):,} {data.name} images for {steps:,} steps (final loss "
            f"{encoder.history[-1]['loss']:.3f}; the '{profile.name}' profile's recipe); saved to {path}")
    return encoder.to(device).eval(), info
