"""Small SimCLR experiments that test the paper's claims: change one setting, train briefly, measure.

    families = augmentation_families("mnist")      # {"geometry": ..., "colour": ..., "geometry + colour": ...}
    table = sweep("augment", families, dataset="mnist", train=train, test=test, steps=profile.lab_steps)
    plot_sweep(table, "augment")                    # one figure: the probe accuracy for each value

Every run is the chapter's recipe (``encoders.RECIPES``) with ONE setting changed (``augment``, ``temperature``,
``batch_size``, ``head`` or ``plain_gather``), trained for a budget of optimiser steps, and scored the same way: a
linear probe on h = f(x) and on z = g(h) with the training labels, and the weighted kNN classifier on h. The test images are
used for scoring only. A run's result is saved under ``checkpoint_dir(profile)/experiments/`` keyed by
everything that defines it, so running a cell again, or another sweep that contains the same run (the
recipe's own setting appears in every sweep), takes no time. While a run trains it writes a checkpoint there
after every epoch, under the same key (``train.pretrain``): a disconnect loses at most one epoch, and running
the cell again resumes the interrupted run where it stopped and ends with the same numbers (bit for bit on a
CPU). The checkpoint is deleted once the run's result is saved. Everything random in a run is seeded from its
``seed`` (the encoder, the head, the views, the batches), so a run's numbers depend on its settings only, not
on which runs came before it.

Batch sizes are compared at the same number of images seen (the paper's Figure 9 compares at equal epochs):
a run with twice the batch takes half the steps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from functools import partial

import pandas as pd
import torch
import torch.nn as nn

from . import config
from .augment import SimCLRAugment
from .encoders import RECIPES, _check, build_encoder, build_optimizer

SETTINGS = ("augment", "temperature", "batch_size", "head", "plain_gather")
HEADS = ("none", "linear", "mlp")
METRICS = {"probe_h": "linear probe on h", "probe_z": "linear probe on z", "knn_h": "kNN on h"}
RESULT_VERSION = 3  # bump when what a run computes changes, so old saved results are not reused
# (3: the head is seeded by the run's seed, and a run resumes from its checkpoint)


def augmentation_families(dataset: str) -> dict:
    """The paper's composition experiment (Figure 5, Table 1), for the recipe of ``dataset``:

    "geometry"                  where things are: random resized crop and flip (photos), or rotation, zoom,
                                shear, shift, elastic distortion and pen width (digits);
    "colour"                    colour distortion only (photos: jitter and grey; digits: ink brightness and contrast);
    "geometry + colour"         both: the recipe (the paper's "crop + colour");
    "geometry + colour + blur"  and Gaussian blur with probability 0.5 (neither recipe uses it).
    """
    key = _check(dataset)
    full = RECIPES[key].build_augment()
    settings = dict(vars(full))
    if key == "mnist":
        def variant(**changes):
            return type(full)(**{**settings, **changes})

        no_geometry = dict(rotation_deg=0.0, zoom=(1.0, 1.0), shear_deg=0.0, translate=0.0, elastic_alpha=0.0,
                           stroke_p=0.0)
        no_colour = dict(jitter_p=0.0)
    else:
        def variant(**changes):
            merged = {**settings, **changes}
            return SimCLRAugment(merged.pop("size"), **merged)

        no_geometry = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation_deg=0.0, flip_p=0.0)
        no_colour = dict(jitter_p=0.0, gray_p=0.0)
    return {"geometry": variant(**no_colour, blur_p=0.0), "colour": variant(**no_geometry, blur_p=0.0),
            "geometry + colour": variant(blur_p=0.0), "geometry + colour + blur": variant(blur_p=0.5)}


def _head(kind: str, dataset: str, in_dim: int) -> nn.Module:
    from .models import ProjectionHead

    spec = RECIPES[dataset].head
    if kind == "mlp":
        return ProjectionHead(in_dim, **spec)
    if kind == "linear":
        return ProjectionHead(in_dim, out_dim=spec["out_dim"], num_layers=1)
    if kind == "none":
        return nn.Identity()  # the loss on h itself
    raise ValueError(f"head must be one of {HEADS}, got {kind!r}")


def _cache_path(spec: dict, profile: config.Profile):
    """Where the result of the run ``spec`` is saved (.json); its checkpoint while it trains is the same name
    with ``.run.pt``."""
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return config.checkpoint_dir(profile) / "experiments" / f"{spec['dataset']}-{digest}.json"


@torch.no_grad()
def _features(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    from .evaluate import extract_features

    model.eval()
    h = extract_features(model.encoder, images)  # in batches of the size that suits the device
    device = next(model.parameters()).device
    z = torch.cat([model.head(h[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(h), batch_size)])
    return h, z


def run_simclr(dataset: str, train, test, *, steps: int, batch_size: int | None = None,
               temperature: float | None = None, augment: SimCLRAugment | None = None, head: str = "mlp",
               seed: int = 0, plain_gather: int = 1, profile: config.Profile | None = None, device=None,
               cache: bool = True) -> dict:
    """One short SimCLR run of ``dataset``'s recipe with the given changes, and its scores.

    train, test  ImageData (labels are used for scoring only). steps: optimiser steps.
    plain_gather W > 1: the gradient that W data-parallel ranks with a plain all_gather would get, simulated in
                 this process (``distributed.nt_xent_plain_gather``, chapter 7); 1: NT-Xent itself.
    Returns {"probe_h", "probe_z", "knn_h"} (test accuracies in [0, 1]), "final_loss", "seconds" (training
    time, the epochs before an interruption included), "steps", "batch_size", "temperature", "head", "seed" and
    "cached" (True when read from disk). With ``cache``, the run checkpoints every epoch and resumes.
    """
    from .evaluate import knn_accuracy, linear_probe
    from .models import SimCLRModel
    from .train import pretrain

    key = _check(dataset)
    recipe = RECIPES[key]
    profile = profile or config.get_profile()
    device = torch.device(device) if device is not None else config.get_device()
    batch_size = min(batch_size or (profile.mnist_batch_size if key == "mnist" else profile.cifar_batch_size),
                     len(train))
    if isinstance(plain_gather, bool) or not isinstance(plain_gather, int) or plain_gather < 1 \
            or batch_size % plain_gather:
        raise ValueError(f"plain_gather must be a number of ranks that divides the batch ({batch_size}), got "
                         f"{plain_gather!r}")
    temperature = temperature if temperature is not None else recipe.temperature
    augment = augment if augment is not None else recipe.build_augment()
    spec = {"version": RESULT_VERSION, "dataset": key, "data": train.name, "n_train": len(train), "n_test": len(test),
            "steps": steps, "batch_size": batch_size, "temperature": temperature, "augment": repr(augment),
            "head": head, "seed": seed, "recipe": asdict(recipe), "probe_iterations": profile.probe_iterations}
    loss_fn = None  # train.pretrain's default: NT-Xent
    if plain_gather != 1:  # only then: the recipe's own run keeps its key, and is shared with the other sweeps
        from .distributed import nt_xent_plain_gather

        spec["plain_gather"] = plain_gather
        loss_fn = partial(nt_xent_plain_gather, world_size=plain_gather, check_finite=False)
    path = _cache_path(spec, profile)
    if cache and path.exists():
        return {**json.loads(path.read_text()), "cached": True}

    encoder = build_encoder(key, seed=seed, profile=profile)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)  # as encoders.build_model: the head too is the seed's, whatever ran before
        model = SimCLRModel(encoder, _head(head, key, encoder.feature_dim)).to(device)
    optimizer, scheduler, epochs = build_optimizer(model, recipe, n_images=len(train), steps=steps,
                                                   batch_size=batch_size)
    run_path = path.with_suffix(".run.pt") if cache else None  # resumable: saved every epoch, removed at the end
    history = pretrain(model, train.images, augment, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                       scheduler=scheduler, temperature=temperature, seed=seed, progress=False, loss_fn=loss_fn,
                       checkpoint_path=run_path)
    seconds = sum(row["seconds"] for row in history)
    (h_train, z_train), (h_test, z_test) = _features(model, train.images), _features(model, test.images)
    probe = lambda a, b: linear_probe(a, train.labels, b, test.labels, weight_decays=(1e-4, 1e-2, 1.0),
                                      max_iter=profile.probe_iterations, seed=0, device=device).accuracy
    result = {"probe_h": probe(h_train, h_test), "probe_z": probe(z_train, z_test),
              "knn_h": knn_accuracy(h_train, train.labels, h_test, test.labels),
              "final_loss": history[-1]["loss"], "seconds": seconds, "steps": epochs * (len(train) // batch_size),
              "batch_size": batch_size, "temperature": temperature, "head": head, "seed": seed}
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
        run_path.unlink(missing_ok=True)  # the result is saved: the run's checkpoint has done its job
    return {**result, "cached": False}


def sweep(setting: str, values, *, dataset: str, train, test, steps: int, seeds=(0,), progress: bool = True,
          **fixed) -> pd.DataFrame:
    """Run ``run_simclr`` once per value of ``setting`` (and per seed); return a tidy table.

    setting  one of ``SETTINGS``; values: a list, or a dict {label: value} (e.g. ``augmentation_families``).
    steps    the budget of each run; for ``batch_size`` it is the budget of the recipe's batch size, and a run
             with batch B gets steps × (recipe batch) / B, so that every run sees the same number of images.
    fixed    other keyword arguments of ``run_simclr`` (profile, device, ...), the same for every run.
    Columns: setting, value (the label), seed, probe_h, probe_z, knn_h, final_loss, seconds, steps, cached.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
    labelled = values if isinstance(values, dict) else {str(v): v for v in values}
    if not labelled:
        raise ValueError("values is empty: give at least one value to try")
    profile = fixed.get("profile") or config.get_profile()
    base_batch = profile.mnist_batch_size if _check(dataset) == "mnist" else profile.cifar_batch_size
    rows = []
    for label, value in labelled.items():
        for seed in seeds:
            run_steps = max(1, round(steps * base_batch / value)) if setting == "batch_size" else steps
            result = run_simclr(dataset, train, test, steps=run_steps, seed=seed, **{setting: value}, **fixed)
            rows.append({"setting": setting, "value": label, "seed": seed,
                         **{k: result[k] for k in (*METRICS, "final_loss", "seconds", "steps", "cached")}})
            if progress:
                where = "saved result" if result["cached"] else f"{result['seconds']:.0f} s"
                print(f"{setting} = {label} (seed {seed}, {result['steps']} steps): "
                      + ", ".join(f"{METRICS[m]} {result[m]:.1%}" for m in METRICS) + f" [{where}]", flush=True)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The mean of every metric per value (over the seeds), in the order the values were tried."""
    return table.groupby("value", sort=False)[list(METRICS)].mean()


def plot_sweep(table: pd.DataFrame, title: str | None = None, metrics=("probe_h", "probe_z")):
    """One figure: each metric (mean over seeds, every seed as a dot) against the swept values."""
    import matplotlib.pyplot as plt

    from .plots import WIDTH

    means = summary(table)
    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 3.2))
    positions = range(len(means))
    for i, metric in enumerate(metrics):
        ax.plot(positions, means[metric], marker="o", color=f"C{i}", label=METRICS[metric])
        for seed, rows in table.groupby("seed"):
            dots = rows.set_index("value").loc[means.index, metric]
            ax.scatter(positions, dots, s=10, color=f"C{i}", alpha=0.4)
    ax.set_xticks(list(positions), list(means.index))
    ax.set_xlabel(table["setting"].iloc[0])
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title or f"SimCLR with one setting changed: {table['setting'].iloc[0]}")
    fig.tight_layout()
    return fig
