"""The pretrained encoders that chapters 5 and 6 evaluate: load the ones chapters 2 and 4 saved, or
train the profile's quick version here and save it under the same name.

    encoder, info = load_or_pretrain("mnist", profile, device)    # SmallCNN, 1×28×28 -> 128
    encoder, info = load_or_pretrain("cifar10", profile, device)  # ResNet-18 (CIFAR stem), 3×32×32 -> 512
    print(info)                                                   # where it came from: file, or trained now
    baseline = build_encoder("cifar10", seed=0)                   # the same network, randomly initialised

Files (a plain ``state_dict`` of the encoder f, without the projection head g):
``checkpoint_dir(profile) / "mnist_smallcnn_encoder.pt"`` and ``"cifar10_resnet18_encoder.pt"``.

The quick recipe follows chapters 2 and 4: SimCLR (Chen et al. 2020) with ``course_utils.train.pretrain``;
MNIST (chapter 2): ``SmallCNN()``, head 128→512→128, AdamW (lr ``profile.mnist_lr``, no
warm-up), ``mnist_augment()``, temperature 0.2, ``profile.mnist_epochs`` epochs;
CIFAR-10 (chapter 4): ``resnet18_cifar()``, head 512→2048→256, LARS (solo-learn, da Costa et al. 2022) with
``profile.cifar_warmup_epochs`` of warm-up, ``cifar10_augment()``, temperature 0.2,
``profile.cifar_colab_epochs`` epochs (the schedule that fits one Colab session).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from . import config

DATASETS = ("mnist", "cifar10")
# The recipes of chapters 2 and 4 (temperature 0.2: solo-learn's CIFAR-10 setting; on MNIST it gave tighter
# clusters than 0.5 in benchmarks/bench_mnist.py). Keep these in step with those chapters.
TEMPERATURES = {"mnist": 0.2, "cifar10": 0.2}
HEADS = {"mnist": dict(in_dim=128, hidden_dim=512, out_dim=128), "cifar10": dict(in_dim=512, hidden_dim=2048, out_dim=256)}
ENCODER_FILES = {"mnist": "mnist_smallcnn_encoder.pt", "cifar10": "cifar10_resnet18_encoder.pt"}


def _check(dataset: str) -> str:
    key = str(dataset).lower().replace("-", "")
    if key not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return key


def build_encoder(dataset: str, seed: int | None = None) -> nn.Module:
    """A freshly initialised encoder for ``dataset`` (the architecture chapters 2 and 4 pretrain).

    "mnist": ``SmallCNN()`` (N×1×28×28 -> N×128); "cifar10": ``resnet18_cifar()`` (N×3×32×32 -> N×512).
    ``seed`` fixes the random initialisation (the global RNG is left as it was).
    """
    from .models import SmallCNN, resnet18_cifar

    key = _check(dataset)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return SmallCNN() if key == "mnist" else resnet18_cifar()


def encoder_path(dataset: str, profile: config.Profile | None = None) -> Path:
    """``checkpoint_dir(profile) / <file>``: where chapters 2 and 4 save the encoder of ``dataset``."""
    return config.checkpoint_dir(profile) / ENCODER_FILES[_check(dataset)]


def _pretrain(key: str, profile: config.Profile, device: torch.device) -> tuple[nn.Module, str]:
    from .augment import cifar10_augment, mnist_augment
    from .data import load_cifar10, load_mnist
    from .models import ProjectionHead, SimCLRModel
    from .train import pretrain, simclr_optimizer

    if key == "mnist":
        data = load_mnist(train=True, profile=profile).take(profile.mnist_train_size)
        epochs, batch_size, augment = profile.mnist_epochs, profile.mnist_batch_size, mnist_augment()
        temperature = TEMPERATURES["mnist"]
        recipe, lr, warmup = "adam", profile.mnist_lr, 0
    else:
        data = load_cifar10(train=True, profile=profile).take(profile.cifar_train_size)
        epochs, batch_size, augment, temperature = profile.cifar_colab_epochs, profile.cifar_batch_size, \
            cifar10_augment(), TEMPERATURES["cifar10"]
        recipe, lr, warmup = "lars", None, profile.cifar_warmup_epochs
    batch_size = min(batch_size, len(data))
    model = SimCLRModel(build_encoder(key, seed=0), ProjectionHead(**HEADS[key])).to(device)
    optimizer, scheduler = simclr_optimizer(model, batch_size=batch_size, epochs=epochs,
                                            steps_per_epoch=len(data) // batch_size, warmup_epochs=warmup,
                                            recipe=recipe, lr=lr)
    # A resumable run of its own: a disconnect costs at most one epoch.
    resume = encoder_path(key, profile).with_name(f"{key}_load_or_pretrain_run.pt")
    history = pretrain(model, data.images, augment, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                       scheduler=scheduler, temperature=temperature, checkpoint_path=resume, seed=0)
    info = (f"trained here: SimCLR on {len(data):,} {data.name} images for {epochs} epochs "
            f"(final loss {history[-1]['loss']:.3f}; the '{profile.name}' profile's quick recipe)")
    return model.encoder, info


def load_or_pretrain(dataset: str, profile: config.Profile | None = None, device=None) -> tuple[nn.Module, str]:
    """The SimCLR encoder f of ``dataset`` ("mnist" or "cifar10"), in eval mode on ``device``, and a
    one-line ``info`` saying where it came from.

    Loads ``encoder_path(dataset, profile)`` when the chapter 2/4 notebook saved it; otherwise pretrains
    the profile's quick version (see the module docstring), saves it there (so later chapters reuse it)
    and says so in ``info``. A file that does not fit the architecture raises an error naming the fix.
    """
    key = _check(dataset)
    profile = profile or config.get_profile()
    device = torch.device(device) if device is not None else config.get_device()
    path = encoder_path(key, profile)
    if path.exists():
        encoder = build_encoder(key)
        try:
            encoder.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as error:
            raise RuntimeError(f"{path} is not a {type(encoder).__name__} state_dict ({error}). Delete it "
                               f"(os.remove({str(path)!r})) and run again: the encoder is then retrained.") from error
        info = f"loaded {path} (saved by the {'MNIST' if key == 'mnist' else 'CIFAR-10'} pretraining chapter)"
    else:
        print(f"{path} not found: pretraining the '{profile.name}' profile's quick version now")
        encoder, info = _pretrain(key, profile, device)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(encoder.state_dict(), tmp)
        tmp.replace(path)
        info += f"; saved to {path}"
    return encoder.to(device).eval(), info
