"""Chapter 4's SimCLR recipe on many GPUs (or several CPU processes): the script that ``torchrun`` starts.

    torchrun --standalone --nproc_per_node=4 -m course_utils.pretrain_ddp                   # one machine, 4 GPUs
    python -m torch.distributed.run --standalone --nproc_per_node=2 -m course_utils.pretrain_ddp   # 2 processes
    python -m course_utils.pretrain_ddp                                                     # 1 process: chapter 4
    python -m course_utils.pretrain_ddp --download-only         # fetch the data first (where there is a network)
    sbatch examples/slurm_pretrain_ddp.sbatch                                               # several machines

torchrun starts ``--nproc_per_node`` copies of this script and tells each its rank in the environment. Each
copy joins the process group (``distributed.setup``: NCCL on GPUs, one GPU per process; gloo on the CPU),
loads the data set onto its device (rank 0 first, so that only one process downloads), builds the same
model, and calls the course's one training loop, ``train.pretrain``, with the GLOBAL batch: each rank trains
on its slice of it, gathers the negatives of all ranks with gradients and averages gradients with DDP (see
``train.pretrain`` and ``distributed``). LARS's learning rate, 0.4 × B / 256, follows the global batch B.

Sizes: the profile's (``COURSE_PROFILE``), chapter 4's Colab-sized schedule (``recipe_steps``: steps, global
batch) on ``cifar_train_size`` images, or the flags; ``--demo``, chapter 7's run: ``ddp_steps`` on
``ddp_train_size`` images (in the cpu profile a few short epochs, enough to show the machinery). A schedule meant
for GPUs would take days in CPU processes, so on the CPU the profile's sizes are capped at the ``cpu``
profile's (the run says so).

Data: under ``torchrun`` a missing data set is an error, on every rank, unless ``--allow-standin`` is given:
compute nodes often have no network, and a run on the offline stand-in would otherwise look like a run on the
real data. ``--download-only`` fetches the data set into ``COURSE_DATA`` and exits: run it where there is a
network (a cluster's login node) before submitting the job.

Checkpoints: rank 0 writes one after every epoch (``--checkpoint``, on a file system that every process
sees; by default named by its recipe, ``<dataset>_ddp_b<global batch>_s<steps>.pt``); a rerun of the same
command resumes from it on every rank, and a checkpoint made with another batch size or step budget is
refused. ``--until-epoch E`` stops after epoch E (the schedule stays the whole run's): an interrupted
session, on purpose. Rank 0 prints, saves the encoder f (``--encoder``) and writes a JSON summary
(``--results``: the sizes, the learning rate, the history).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from . import config, distributed
from .encoders import RECIPES, build_model, recipe_steps
from .train import RecipeMismatchError


def _sizes(dataset: str, profile: config.Profile, demo: bool) -> dict:
    steps, batch = recipe_steps(dataset, profile)
    train = profile.cifar_train_size if dataset == "cifar10" else profile.mnist_train_size
    if demo:  # chapter 7's run: the profile's ddp sizes where it has them
        steps = profile.ddp_steps or steps
        train = profile.ddp_train_size if profile.ddp_train_size is not None else train
    return {"steps": steps, "batch_size": batch, "train_size": train}


def profile_sizes(dataset: str, profile: config.Profile, device: torch.device, *,
                  demo: bool = False) -> tuple[dict, str | None]:
    """({"steps", "batch_size", "train_size"}, note): the profile's pretraining sizes for ``dataset`` (batch is the
    GLOBAL batch), capped at the ``cpu`` profile's when the processes run on a CPU; ``note`` says when it was.
    ``demo``: chapter 7's run (``profile.ddp_steps`` on ``profile.ddp_train_size`` images, where they are set)."""
    sizes = _sizes(dataset, profile, demo)
    steps, batch, train = sizes["steps"], sizes["batch_size"], sizes["train_size"]
    if device.type != "cpu":
        return sizes, None
    cpu = _sizes(dataset, config.PROFILES["cpu"], demo)
    cpu_steps, cpu_batch, cpu_train = cpu["steps"], cpu["batch_size"], cpu["train_size"]
    capped = {"steps": min(steps, cpu_steps), "batch_size": min(batch, cpu_batch),
              "train_size": cpu_train if train is None else min(train, cpu_train or train)}  # fmt: skip
    if capped == sizes:
        return sizes, None
    return capped, (f"the '{profile.name}' profile's schedule ({steps} steps of {batch} images) would take days in "
                    f"CPU processes: capped at the cpu profile's sizes ({capped['steps']} steps of "
                    f"{capped['batch_size']} images, {capped['train_size']} training images)")


def launch(args, nproc: int, *, env: dict | None = None) -> str:
    """Run ``python -m torch.distributed.run --standalone --nproc_per_node=<nproc> <args>`` (torchrun on one
    machine), printing its output as it comes; return the output. Raises ``CalledProcessError`` on failure.

    args  what follows torchrun's options: a script and its arguments, or ``["-m", "module", ...]``.
    OMP_NUM_THREADS is set to 1 unless ``env`` says otherwise (torchrun would set it, with a warning).
    """
    import subprocess

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               *map(str, args)]
    print("$ torchrun " + " ".join(command[3:]), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, "".join(lines))
    return "".join(lines)


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course_utils.pretrain_ddp", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "mnist"],
                        help="whose recipe: chapter 4's (cifar10, ResNet-18) or chapter 2's (mnist, small CNN)")
    parser.add_argument("--steps", type=int, help="optimiser steps (default: the profile's)")
    parser.add_argument("--batch-size", type=int, help="the GLOBAL batch, split over the processes (default: profile's)")
    parser.add_argument("--train-size", type=int, help="training images (default: the profile's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: one GPU per process when there are enough, else the CPU")
    parser.add_argument("--checkpoint", default=None,
                        help="resumable run (default: <checkpoint dir>/<dataset>_ddp_b<batch>_s<steps>.pt, named by "
                             "the recipe; 'none': no checkpoint)")
    parser.add_argument("--until-epoch", type=int, default=None, help="stop after this epoch (simulate an interruption)")
    parser.add_argument("--encoder", default=None, help="where rank 0 saves f (default: next to the checkpoint)")
    parser.add_argument("--results", default=None, help="a JSON summary written by rank 0")
    parser.add_argument("--no-monitor", action="store_true", help="skip the kNN monitor of test accuracy")
    parser.add_argument("--allow-standin", action="store_true",
                        help="under torchrun, train on the offline stand-in when the real data set is missing "
                             "(without it, that is an error on every rank)")
    parser.add_argument("--download-only", action="store_true",
                        help="download the data set into COURSE_DATA and exit (on a machine with network access, "
                             "e.g. a cluster's login node, before submitting the job)")
    parser.add_argument("--demo", action="store_true",
                        help="chapter 7's short run: the profile's ddp_steps on ddp_train_size images (on a CPU, the cpu "
                             "profile's: a few epochs that show the launch, an interruption and the resume), instead "
                             "of chapter 4's schedule")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def _knn_monitor(dataset: str, profile: config.Profile, device: torch.device, train_data):
    from .data import load_cifar10, load_mnist
    from .evaluate import extract_features, knn_accuracy

    load, test_size = (load_cifar10, profile.cifar_test_size) if dataset == "cifar10" else (load_mnist,
                                                                                            profile.mnist_test_size)
    test = load(train=False, profile=profile).take(test_size).to(device)
    bank = train_data.take(profile.knn_train_size)

    def monitor(model):  # features in the training precision, scored on the device: one number comes back
        return knn_accuracy(extract_features(model.encoder, bank.images, amp="auto", to_cpu=False), bank.labels,
                            extract_features(model.encoder, test.images, amp="auto", to_cpu=False), test.labels)

    return monitor


class StandInRefused(RuntimeError):
    """Under torchrun, the real data set is missing on some rank and --allow-standin was not given."""


def check_real_data(data, run: distributed.Dist, *, dataset: str, profile: config.Profile,
                    allow_standin: bool) -> None:
    """Under torchrun (``run.backend`` set), raise ``StandInRefused`` on EVERY rank when any rank holds an offline
    stand-in instead of the real data set, unless ``allow_standin``. Each rank reports what it loaded itself (a
    node without the shared data folder, or without network, falls back on its own), and all of them stop together
    instead of waiting for one another in the first collective. Outside torchrun: nothing (the loader's warning
    says it)."""
    if run.backend is None:
        return
    standin = distributed.gather_objects(bool(data.is_standin))  # one entry per rank, in rank order
    ranks = [r for r, fallback in enumerate(standin) if fallback]
    if not ranks or allow_standin:
        return
    real = "CIFAR-10" if dataset == "cifar10" else "MNIST"
    why = (f"the '{profile.name}' profile never downloads" if not profile.allow_download
           else f"it is not in {config.data_dir()} and could not be downloaded (no network on the node?)")
    downloading = profile.name if profile.allow_download else "gpu"  # a profile that downloads
    raise StandInRefused(
        f"rank {run.rank}: this run would train on {data.name}, not {real}: on rank(s) {ranks} of "
        f"{run.world_size}, {why}. Under torchrun a missing data set is an error. Download it first where there is "
        f"a network, into the data folder that every node sees (COURSE_HOME or COURSE_DATA):\n"
        f"    COURSE_PROFILE={downloading} python -m course_utils.pretrain_ddp --dataset {dataset} --download-only\n"
        "or pass --allow-standin to train on the offline stand-in on purpose.")


def default_checkpoint(dataset: str, batch_size: int, steps: int, profile: config.Profile) -> Path:
    """``<checkpoint dir>/<dataset>_ddp_b<global batch>_s<steps>.pt``: a run of another recipe never finds it."""
    return config.checkpoint_dir(profile) / f"{dataset}_ddp_b{batch_size}_s{steps}.pt"


def main(argv=None) -> int:
    args = _arguments(argv)
    if args.download_only:
        return _download(args.dataset)
    run = distributed.setup(None if args.device == "auto" else args.device)
    if not run.is_main:  # one voice: rank 0 prints; the others only report errors (stderr)
        sys.stdout = open(os.devnull, "w")
        warnings.simplefilter("ignore")
    try:
        return _main(args, run)
    except (StandInRefused, RecipeMismatchError) as refused:  # every rank stops, with the way out
        if run.is_main:
            print(f"error: {refused}", file=sys.stderr, flush=True)
        else:
            print(f"rank {run.rank}: stopped ({type(refused).__name__}; rank 0 says why)", file=sys.stderr, flush=True)
        return 2
    finally:
        distributed.cleanup()


def _download(dataset: str) -> int:
    """--download-only: fetch the training and test sets into COURSE_DATA; exit status 1 if either is a stand-in."""
    from .data import load_cifar10, load_mnist

    profile = config.get_profile()
    load = load_cifar10 if dataset == "cifar10" else load_mnist
    for train in (True, False):
        data = load(train=train, profile=profile)
        if data.is_standin:
            print(f"error: could not get the real {dataset} data ({'train' if train else 'test'}): see the warning "
                  f"above. Run this where there is a network, with the profile of the job (not smoke).",
                  file=sys.stderr)
            return 1
    print(f"{dataset} is in {config.data_dir()}: jobs that read this folder find it there")
    return 0


def _main(args, run: distributed.Dist) -> int:
    from .data import load_cifar10, load_mnist
    from .train import pretrain, simclr_optimizer

    # The node's cores shared among its processes (torchrun sets OMP_NUM_THREADS=1 for several; an explicit value wins).
    config.use_cpu_threads(processes=int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    profile = config.get_profile()
    config.banner(profile)
    recipe = RECIPES[args.dataset]
    sizes, note = profile_sizes(args.dataset, profile, run.device, demo=args.demo)
    steps, batch_size, train_size = (args.steps or sizes["steps"], args.batch_size or sizes["batch_size"],
                                     args.train_size or sizes["train_size"])
    if note and not (args.steps and args.batch_size and args.train_size):
        print("note:", note)
    print(f"torchrun: {run.world_size} process(es), backend {run.backend or 'none (one process)'}, "
          f"device {run.device.type}" + (f" (GPU {run.local_rank} for local rank {run.local_rank})"
                                         if run.device.type == "cuda" else ""))

    # Rank 0 loads (and downloads) first; the others then read the cached files.
    load = load_cifar10 if args.dataset == "cifar10" else load_mnist
    if not run.is_main:
        distributed.barrier()
    train_data = load(train=True, profile=profile).take(train_size).to(run.device)
    if run.is_main:
        distributed.barrier()
    check_real_data(train_data, run, dataset=args.dataset, profile=profile, allow_standin=args.allow_standin)
    batch_size = min(batch_size, len(train_data))
    epochs = config.epochs_for(steps, len(train_data), batch_size)
    steps_per_epoch = len(train_data) // batch_size

    # The same start on every rank; on CPU processes the cpu profile's (quarter-width) ResNet-18, as the sizes.
    model = build_model(args.dataset, seed=args.seed,
                        profile=config.PROFILES["cpu"] if note else profile).to(run.device)
    optimizer, scheduler = simclr_optimizer(model, batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                            warmup_epochs=round(recipe.warmup * epochs), recipe=recipe.optimizer,
                                            lr=recipe.lr)  # the GLOBAL batch sets LARS's rate
    peak_lr = scheduler.base_lrs[0]
    print(f"data: {len(train_data):,} {train_data.name} images | global batch {batch_size} = {run.world_size} × "
          f"{batch_size // run.world_size} | {epochs} epochs × {steps_per_epoch} steps | {recipe.optimizer} peak "
          f"learning rate {peak_lr:.4g}")

    total_steps = epochs * steps_per_epoch
    checkpoint = Path(args.checkpoint or default_checkpoint(args.dataset, batch_size, total_steps, profile))
    if (args.checkpoint or "").lower() == "none":  # --checkpoint none: no checkpoint
        checkpoint = None
    monitor = None if args.no_monitor else _knn_monitor(args.dataset, profile, run.device, train_data)
    history = pretrain(model, train_data.images, recipe.build_augment(), epochs=min(epochs, args.until_epoch or epochs),
                       batch_size=batch_size, optimizer=optimizer, scheduler=scheduler, temperature=recipe.temperature,
                       checkpoint_path=checkpoint, monitor=monitor, monitor_every=max(1, epochs // profile.knn_evals),
                       seed=args.seed, progress=True, total_steps=total_steps)
    synced = any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    if run.is_main:
        encoder_file = Path(args.encoder) if args.encoder else (checkpoint.with_name(checkpoint.stem + "_encoder.pt")
                                                                if checkpoint else None)
        finished = len(history) >= epochs
        if encoder_file and finished:
            encoder_file.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.encoder.state_dict(), encoder_file)
            print(f"encoder f saved to {encoder_file}")
        summary = {"dataset": args.dataset, "data": train_data.name, "is_standin": train_data.is_standin,
                   "profile": profile.name, "world_size": run.world_size, "backend": run.backend,
                   "device": run.device.type, "global_batch": batch_size, "per_rank_batch": batch_size // run.world_size,
                   "train_size": len(train_data), "epochs": epochs, "steps": epochs * steps_per_epoch,
                   "peak_lr": peak_lr, "optimizer": recipe.optimizer, "temperature": recipe.temperature,
                   "batch_norm": "global (nn.SyncBatchNorm)" if synced else ("per rank" if run.world_size > 1 else
                                                                              "one process"),
                   "finished": finished, "checkpoint": str(checkpoint) if checkpoint else None,
                   "encoder": str(encoder_file) if encoder_file and finished else None, "history": history}  # fmt: skip
        if args.results:
            Path(args.results).parent.mkdir(parents=True, exist_ok=True)
            Path(args.results).write_text(json.dumps(summary, indent=1) + "\n")
        print(f"done: {len(history)}/{epochs} epochs" + (f", last loss {history[-1]['loss']:.4f}" if history else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
