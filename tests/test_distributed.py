"""SimCLR on several processes (course_utils.distributed, the distributed path of train.pretrain, the torchrun
launcher), checked on the CPU with 2 gloo processes against 1 process with the whole batch.

The 2-process runs are started with torch.multiprocessing (spawn) and a file rendezvous, so that no port can
clash; the launcher test goes through torchrun itself, as a student would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from course_utils import distributed
from course_utils.augment import SimCLRAugment
from course_utils.distributed import (check_local_anchor_loss, local_anchor_loss, local_slice, nt_xent_global,
                                      nt_xent_plain_gather, rank_seed, sync_batchnorm)
from course_utils.losses import nt_xent
from course_utils.config import PROFILES
from course_utils.models import ProjectionHead, SimCLRModel, SmallCNN
from course_utils.pretrain_ddp import StandInRefused, check_real_data
from course_utils.train import load_checkpoint, pretrain, simclr_optimizer

WORLD, PAIRS, DIM, T = 2, 8, 8, 0.5  # 2 ranks × 8 pairs = one process with 16 pairs


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return SimCLRModel(SmallCNN(width=4, feature_dim=8), ProjectionHead(8, 16, 8))


def toy_images(n, seed=0):
    return torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def augment():
    return SimCLRAugment(crop_scale=(0.5, 1.0), jitter=(0.4, 0.4, 0.0, 0.0), jitter_p=0.8, gray_p=0.0)


def optimizer_for(model, batch_size, epochs, steps_per_epoch):
    return simclr_optimizer(model, batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            warmup_epochs=1, recipe="lars")


def spawn(fn, tmp_path: Path, *args, timeout: float = 300) -> list[int]:
    """Run ``fn(rank, WORLD, store, *args)`` in WORLD fresh processes (spawned, as torchrun's are); wait for all of
    them and return their exit codes. A rank that dies makes the others fail at their next collective."""
    store = tmp_path / f"rendezvous-{time.monotonic_ns()}"
    context = mp.get_context("spawn")
    processes = [context.Process(target=fn, args=(rank, WORLD, str(store), *args)) for rank in range(WORLD)]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(1.0, deadline - time.monotonic()))
    for process in processes:  # a hang is a failure, never a stuck test run
        if process.is_alive():
            process.kill()
            process.join()
    return [process.exitcode for process in processes]


def join_group(rank, world, store):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)


# --- One process, no group ----------------------------------------------------------------------------

def test_outside_a_process_group_nt_xent_global_is_nt_xent():
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    assert torch.equal(nt_xent_global(z1, z2, 0.3), nt_xent(z1, z2, 0.3))
    assert distributed.rank_and_world() == (0, 1) and not distributed.is_distributed()
    assert distributed.gather_with_grad(z1) is z1 and distributed.gather_plain(z1) is z1
    assert distributed.gather_objects("x") == ["x"]
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_global(z1, z2, 0.0)


def test_the_ranks_anchor_losses_average_to_the_whole_batch_loss():
    z1, z2 = torch.randn(12, 7, dtype=torch.float64), torch.randn(12, 7, dtype=torch.float64)
    for world in (1, 2, 3, 4):
        z_all = distributed._stack_by_rank(z1, z2, world)
        per_rank = torch.stack([local_anchor_loss(z_all, r, world, 0.2) for r in range(world)])
        assert per_rank.mean().item() == pytest.approx(nt_xent(z1, z2, 0.2).item(), abs=1e-12)
    with pytest.raises(ValueError, match="rank"):
        local_anchor_loss(z_all, 4, 4, 0.2)


def test_sharding_and_seeds():
    assert [local_slice(12, r, 3) for r in range(3)] == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError, match="multiple of 2"):
        local_slice(7, 0, 2)
    seeds = [rank_seed(0, r) for r in range(8)] + [rank_seed(1, r) for r in range(8)]
    assert len(set(seeds)) == 16 and 0 not in seeds and 1 not in seeds


def test_sync_batchnorm_converts_on_gpus_and_keeps_per_rank_batch_norm_on_the_cpu():
    model = tiny_model()
    params = list(model.parameters())
    same, note = sync_batchnorm(model, "cpu")
    assert same is model and "per rank" in note
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    converted, note = sync_batchnorm(model, "cuda")  # module surgery only: nothing runs on a GPU here
    assert "global batch norm" in note and sum(isinstance(m, nn.SyncBatchNorm) for m in converted.modules()) == 4
    assert all(a is b for a, b in zip(params, converted.parameters()))  # an optimiser built before still fits


def test_the_self_check_of_chapter_7(capsys):
    assert check_local_anchor_loss(local_anchor_loss)
    assert "PASS" in capsys.readouterr().out

    def stub(z_all, rank, world_size, temperature):
        raise NotImplementedError

    def whole_batch(z_all, rank, world_size, temperature):  # every rank computes every anchor
        z = z_all.view(world_size, 2, -1, z_all.shape[1])
        return nt_xent(z[:, 0].reshape(-1, z_all.shape[1]), z[:, 1].reshape(-1, z_all.shape[1]), temperature)

    def own_rows_only(z_all, rank, world_size, temperature):  # no negatives from the other ranks
        block = z_all.chunk(world_size)[rank]
        return nt_xent(*block.chunk(2), temperature)

    assert not check_local_anchor_loss(stub) and "not implemented yet" in capsys.readouterr().out
    assert not check_local_anchor_loss(whole_batch) and "ALL 2B anchors" in capsys.readouterr().out
    assert not check_local_anchor_loss(own_rows_only) and "own 2n rows only" in capsys.readouterr().out


def test_the_simulated_plain_gather_is_nt_xent_for_one_rank_and_refuses_an_uneven_split():
    g = torch.Generator().manual_seed(3)
    grads = []
    for loss_fn in (lambda a, b: nt_xent(a, b, T), lambda a, b: nt_xent_plain_gather(a, b, T, world_size=1),
                    lambda a, b: nt_xent_plain_gather(a, b, T, world_size=4)):
        g.manual_seed(3)
        a = torch.randn(8, DIM, generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(8, DIM, generator=g, dtype=torch.float64, requires_grad=True)
        loss = loss_fn(a, b)
        loss.backward()
        grads.append((loss.item(), torch.cat([a.grad, b.grad])))
    (exact_loss, exact), (one_loss, one), (four_loss, four) = grads
    assert one_loss == pytest.approx(exact_loss, abs=1e-12) and torch.allclose(one, exact, atol=1e-12)
    assert four_loss == pytest.approx(exact_loss, abs=1e-12) and not torch.allclose(four, exact, atol=1e-3)
    with pytest.raises(ValueError, match="split evenly over world_size=3"):
        nt_xent_plain_gather(torch.randn(8, 4), torch.randn(8, 4), T, world_size=3)


# --- 2 processes against 1: the loss, the gradients, the update ---------------------------------------

def _equality_worker(rank, world, store, out):
    join_group(rank, world, store)
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(world * PAIRS, DIM, generator=g), torch.randn(world * PAIRS, DIM, generator=g)
    mine = local_slice(world * PAIRS, rank, world)
    result = {}
    for gather_grad, gather in ((True, None), (False, distributed.gather_plain)):  # with and without the gradient
        a, b = z1[mine].clone().requires_grad_(), z2[mine].clone().requires_grad_()
        loss = nt_xent_global(a, b, T, gather=gather)
        loss.backward()
        result[gather_grad] = {"loss": loss.item(), "grad1": a.grad / world, "grad2": b.grad / world}  # DDP's mean
    # One training step of the course's loop (DDP, nt_xent_global), then the same with the plain gather.
    for name, loss_fn in (("step", None), ("step_plain", partial(nt_xent_global, gather=distributed.gather_plain, check_finite=False))):
        model = tiny_model()
        optimizer, scheduler = optimizer_for(model, world * PAIRS, epochs=1, steps_per_epoch=1)
        history = pretrain(model, toy_images(world * PAIRS), augment(), epochs=1, batch_size=world * PAIRS,
                           optimizer=optimizer, scheduler=scheduler, temperature=T, progress=False, loss_fn=loss_fn)
        result[name] = {"loss": history[0]["loss"],
                        "grads": {k: p.grad.clone() for k, p in model.named_parameters()},
                        "params": {k: p.detach().clone() for k, p in model.named_parameters()}}
    # Every rank checks the data it loaded itself: here only rank 1 fell back to a stand-in (a node without the
    # shared data folder and without network), and both ranks must stop, not only rank 1.
    data = SimpleNamespace(is_standin=rank == 1, name="Shapes-10 (CIFAR-10 stand-in)")
    run = distributed.Dist(rank, world, rank, torch.device("cpu"), "gloo")
    try:
        check_real_data(data, run, dataset="cifar10", profile=PROFILES["gpu"], allow_standin=False)
        result["standin"] = "not refused"
    except StandInRefused as refused:
        result["standin"] = str(refused)
    check_real_data(data, run, dataset="cifar10", profile=PROFILES["gpu"], allow_standin=True)  # on purpose: fine
    try:  # does PyTorch's own global batch norm run on CPU tensors?
        nn.SyncBatchNorm(3)(torch.randn(4, 3, 2, 2))
        result["sync_bn_cpu"] = "works"
    except Exception as error:
        result["sync_bn_cpu"] = f"{type(error).__name__}: {error}"
    torch.save(result, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def _one_process_step(loss_fn=nt_xent):
    """The reference: one process, the whole global batch, the same views as the ranks drew, and batch norm over
    each rank's 2n views (the statistics each process computes on a CPU, where nn.SyncBatchNorm cannot run)."""
    torch.set_num_threads(1)
    model = tiny_model()
    optimizer, scheduler = optimizer_for(model, WORLD * PAIRS, epochs=1, steps_per_epoch=1)
    images, aug = toy_images(WORLD * PAIRS), augment()
    batch = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))  # pretrain's permutation
    z1, z2 = [], []
    for rank in range(WORLD):
        shard = images[batch[local_slice(WORLD * PAIRS, rank, WORLD)]]
        generator = torch.Generator().manual_seed(rank_seed(0, rank))
        views = torch.cat([aug(shard, generator=generator), aug(shard, generator=generator)])
        a, b = model(views)[1].chunk(2)
        z1.append(a), z2.append(b)
    loss = loss_fn(torch.cat(z1), torch.cat(z2), T)
    optimizer.zero_grad()
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    optimizer.step()
    return loss.item(), grads, {k: p.detach().clone() for k, p in model.named_parameters()}


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_processes_give_the_loss_gradients_and_update_of_one_process_with_the_whole_batch(tmp_path):
    assert spawn(_equality_worker, tmp_path, str(tmp_path)) == [0] * WORLD
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    # The loss alone, on fixed embeddings: mean over ranks = NT-Xent of the 16 pairs; gradients per row.
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(WORLD * PAIRS, DIM, generator=g), torch.randn(WORLD * PAIRS, DIM, generator=g)
    z1.requires_grad_(), z2.requires_grad_()
    whole = nt_xent(z1, z2, T)
    whole.backward()
    loss_diff = abs(sum(r[True]["loss"] for r in ranks) / WORLD - whole.item())
    grad_diff = max((torch.cat([r[True][k] for r in ranks]) - ref).abs().max().item()
                    for k, ref in (("grad1", z1.grad), ("grad2", z2.grad)))
    plain_loss_diff = abs(sum(r[False]["loss"] for r in ranks) / WORLD - whole.item())
    plain = torch.cat([torch.cat([r[False]["grad1"] for r in ranks]), torch.cat([r[False]["grad2"] for r in ranks])])
    exact = torch.cat([z1.grad, z2.grad])
    plain_grad_diff = (plain - exact).abs().max().item()
    assert loss_diff < 1e-6 and grad_diff < 1e-6
    # The trap: a plain all_gather gives the same loss value and a different gradient.
    assert plain_loss_diff < 1e-6 and plain_grad_diff > 1e-3
    assert (plain - exact).norm() / exact.norm() > 0.05
    # Chapter 7's lab simulates the plain gather in one process: the same loss, and the two processes' gradient.
    a, b = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    simulated = nt_xent_plain_gather(a, b, T, world_size=WORLD)
    simulated.backward()
    assert abs(simulated.item() - whole.item()) < 1e-6
    assert (torch.cat([a.grad, b.grad]) - plain).abs().max().item() < 1e-6

    # A training step of train.pretrain on 2 ranks = one step of one process with the 16 pairs.
    ref_loss, ref_grads, ref_params = _one_process_step()
    for r in ranks:
        assert abs(r["step"]["loss"] - ref_loss) < 1e-6
        assert max_diff(r["step"]["grads"], ref_grads) < 1e-5
        assert max_diff(r["step"]["params"], ref_params) < 1e-5
        assert abs(r["step_plain"]["loss"] - ref_loss) < 1e-6  # same loss ...
        assert max_diff(r["step_plain"]["grads"], ref_grads) > 1e-4  # ... different gradients
    step_diffs = (max(abs(r["step"]["loss"] - ref_loss) for r in ranks), max(max_diff(r["step"]["grads"], ref_grads)
                  for r in ranks), max(max_diff(r["step"]["params"], ref_params) for r in ranks))  # fmt: skip
    print(f"\nmax differences, 2 gloo processes vs 1 process: loss on fixed z {loss_diff:.2g}, dL/dz {grad_diff:.2g}; "
          f"training step: loss {step_diffs[0]:.2g}, gradients {step_diffs[1]:.2g}, parameters after the LARS step "
          f"{step_diffs[2]:.2g}. Plain all_gather: loss {plain_loss_diff:.2g}, dL/dz {plain_grad_diff:.2g} (relative "
          f"{((plain - exact).norm() / exact.norm()).item():.1%}), step gradients "
          f"{max(max_diff(r['step_plain']['grads'], ref_grads) for r in ranks):.2g}")

    # The same two processes: a stand-in on rank 1 alone stops both ranks, each with the way out.
    for rank, r in enumerate(ranks):
        assert r["standin"].startswith(f"rank {rank}: this run would train on Shapes-10"), r["standin"]
        assert "on rank(s) [1] of 2" in r["standin"] and "--download-only" in r["standin"]
        assert "--allow-standin" in r["standin"]

    # What we found: nn.SyncBatchNorm refuses CPU tensors in this torch, so the CPU path keeps per-rank batch norm.
    found = ranks[0]["sync_bn_cpu"]
    assert found != "works", ("nn.SyncBatchNorm now runs on the CPU: add 'cpu' to distributed.SYNC_BN_DEVICES and "
                              "compare the 2-process step with full-batch batch norm instead.")
    print(f"nn.SyncBatchNorm on the CPU in a gloo group: {found[:90]}")


# --- A run killed mid-way resumes on both ranks ---------------------------------------------------------

EPOCHS, N_IMAGES = 3, 64  # 4 steps per epoch of 16


def _run(rank, checkpoint, model_seed=0, kill_at_call=None):
    calls = []

    def loss_fn(z1, z2, t):  # the course's loss; rank 1's process exits in the middle of a step
        calls.append(1)
        if rank == 1 and len(calls) == kill_at_call:
            raise SystemExit(1)  # (os._exit would do too, but would leave tqdm's lock for the resource tracker)
        return nt_xent_global(z1, z2, t, check_finite=False)

    model = tiny_model(model_seed)
    optimizer, scheduler = optimizer_for(model, 16, EPOCHS, N_IMAGES // 16)
    history = pretrain(model, toy_images(N_IMAGES), augment(), epochs=EPOCHS, batch_size=16, optimizer=optimizer,
                       scheduler=scheduler, temperature=T, checkpoint_path=checkpoint, progress=True, loss_fn=loss_fn,
                       sync_every=2)  # fmt: skip
    return history, {k: v.clone() for k, v in model.state_dict().items()}


def _killed_worker(rank, world, store, checkpoint):
    join_group(rank, world, store)
    _run(rank, checkpoint, kill_at_call=6)  # epoch 2, step 2: after epoch 1's checkpoint


def _resume_worker(rank, world, store, checkpoint, out):
    join_group(rank, world, store)
    resumed = _run(rank, checkpoint, model_seed=7)  # fresh processes, another initialisation: all from the file
    dist.barrier()
    uninterrupted = _run(rank, None)
    torch.save({"resumed": resumed, "uninterrupted": uninterrupted}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_a_run_killed_mid_way_resumes_exactly_on_both_ranks(tmp_path, capfd):
    checkpoint = tmp_path / "run.pt"
    codes = spawn(_killed_worker, tmp_path, str(checkpoint))
    assert codes[1] == 1 and codes[0] not in (0, None)  # rank 1 killed; rank 0 fails at its next collective
    saved = load_checkpoint(checkpoint, tiny_model())
    assert saved["epoch"] == 1 and saved["config"]["world_size"] == WORLD  # one epoch lost, no more
    assert len(saved["rng"]["ranks"]) == WORLD  # every rank's view generator, so each resumes with its own
    assert not torch.equal(saved["rng"]["ranks"][0], saved["rng"]["ranks"][1])

    assert spawn(_resume_worker, tmp_path, str(checkpoint), str(tmp_path)) == [0] * WORLD
    out = capfd.readouterr().out
    assert f"resumed from {checkpoint} at epoch 1/{EPOCHS} (on all {WORLD} ranks)" in out
    assert out.count("resumed from") == 1  # rank 0 speaks for both
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        (history_r, state_r), (history_u, state_u) = result["resumed"], result["uninterrupted"]
        assert [row["epoch"] for row in history_r] == [1, 2, 3]
        assert [row["loss"] for row in history_r] == [row["loss"] for row in history_u]
        for name, value in state_u.items():
            assert torch.equal(state_r[name], value), (rank, name)
    assert load_checkpoint(checkpoint, tiny_model())["epoch"] == EPOCHS


# --- The launcher, under torchrun --------------------------------------------------------------------

def test_the_launcher_runs_under_torchrun(tmp_path):
    """One launch, as a student types it (its resume is train.pretrain's, tested above; chapter 7 runs it twice)."""
    env = {**os.environ, "COURSE_PROFILE": "smoke", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    results, checkpoint = tmp_path / "results.json", tmp_path / "run.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
               "-m", "course_utils.pretrain_ddp", "--dataset", "mnist", "--steps", "4", "--batch-size", "16",
               "--train-size", "32", "--no-monitor", "--checkpoint", str(checkpoint), "--results", str(results)]
    done = subprocess.run(command + ["--allow-standin"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "global batch 16 = 2 × 8" in done.stdout and done.stdout.count("torchrun: 2 process(es)") == 1
    summary = json.loads(results.read_text())
    assert summary["world_size"] == WORLD and summary["backend"] == "gloo" and summary["device"] == "cpu"
    assert summary["global_batch"] == 16 and summary["per_rank_batch"] == 8 and summary["finished"]
    assert [row["epoch"] for row in summary["history"]] == [1, 2] and summary["batch_norm"] == "per rank"
    assert load_checkpoint(checkpoint, SimCLRModel(SmallCNN(), ProjectionHead(128, 512, 128)))["epoch"] == 2
    assert Path(summary["encoder"]).is_file()


def test_under_torchrun_the_script_refuses_a_stand_in_unless_allowed(monkeypatch, capsys, tmp_path):
    """The script's own path, in this process as a torchrun world of one (the launcher test runs 2 processes with
    --allow-standin): the smoke profile never downloads, so the data is a stand-in, and the run stops before
    training with exit status 2 and the way out."""
    import socket

    from course_utils import pretrain_ddp

    with socket.socket() as s:  # a free port for the process group's store
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "COURSE_PROFILE": "smoke"}.items():
        monkeypatch.setenv(name, value)
    threads = torch.get_num_threads()
    try:
        code = pretrain_ddp.main(["--dataset", "mnist", "--device", "cpu", "--steps", "2", "--batch-size", "16",
                                  "--train-size", "32", "--no-monitor", "--checkpoint", str(tmp_path / "run.pt")])
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "run.pt").exists() and not dist.is_initialized()
    assert "Under torchrun a missing data set is an error" in err and "--allow-standin" in err
    assert "COURSE_PROFILE=gpu python -m course_utils.pretrain_ddp --dataset mnist --download-only" in err


def test_download_only_fails_clearly_where_the_real_data_cannot_be_had(monkeypatch, capsys):
    from course_utils import pretrain_ddp

    monkeypatch.setenv("COURSE_PROFILE", "smoke")  # never downloads: as a compute node without network
    assert pretrain_ddp.main(["--dataset", "mnist", "--download-only"]) == 1
    assert "could not get the real mnist data" in capsys.readouterr().err


def test_the_default_checkpoint_is_named_by_the_recipe():
    from course_utils.config import PROFILES
    from course_utils.pretrain_ddp import default_checkpoint

    name = default_checkpoint("cifar10", 1024, 9760, PROFILES["gpu"])
    assert name.name == "cifar10_ddp_b1024_s9760.pt" and name.parent.name == "gpu"
    assert default_checkpoint("cifar10", 512, 9760, PROFILES["gpu"]) != name


def test_the_learning_rate_follows_the_global_batch_and_cpu_runs_are_capped():
    from course_utils.config import PROFILES
    from course_utils.encoders import build_model
    from course_utils.pretrain_ddp import profile_sizes

    model = build_model("cifar10")
    for world, per_rank in ((1, 256), (4, 256), (8, 512)):
        _, scheduler = simclr_optimizer(model, batch_size=world * per_rank, epochs=1, steps_per_epoch=1, warmup_epochs=0)
        assert scheduler.base_lrs[0] == pytest.approx(0.4 * world * per_rank / 256)
    gpu = PROFILES["gpu"]
    assert profile_sizes("cifar10", gpu, torch.device("cuda")) == (
        {"steps": gpu.cifar_colab_steps, "batch_size": gpu.cifar_batch_size, "train_size": None}, None)
    sizes, note = profile_sizes("cifar10", gpu, torch.device("cpu"))
    cpu = PROFILES["cpu"]
    assert sizes == {"steps": cpu.cifar_colab_steps, "batch_size": cpu.cifar_batch_size,
                     "train_size": cpu.cifar_train_size} and "capped" in note
    assert profile_sizes("cifar10", PROFILES["smoke"], torch.device("cpu"))[1] is None
    # Chapter 7's short run (--demo): the cpu profile's few epochs in CPU processes; on GPUs the profile's own sizes.
    demo, note = profile_sizes("cifar10", gpu, torch.device("cpu"), demo=True)
    assert demo == {"steps": cpu.ddp_steps, "batch_size": cpu.cifar_batch_size, "train_size": cpu.ddp_train_size}
    assert "capped" in note and demo["steps"] < cpu.cifar_colab_steps
    assert profile_sizes("cifar10", cpu, torch.device("cpu"), demo=True) == (demo, None)


def test_chapter_7_shows_the_repositorys_slurm_example_and_it_parses():
    root = Path(__file__).resolve().parents[1]
    script = root / "examples" / "slurm_pretrain_ddp.sbatch"
    chapter = json.loads((root / "notebooks" / "07_many_gpus.ipynb").read_text())
    shown = "\n".join("".join(cell["source"]) for cell in chapter["cells"] if cell["cell_type"] == "markdown")
    assert script.read_text().strip() in shown, "chapter 7 must show examples/slurm_pretrain_ddp.sbatch as it is"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "-m course_utils.pretrain_ddp" in text and "--rdzv_backend=c10d" in text
    assert "--download-only" in text  # the data is fetched before the job, where there is a network
    assert "SLURM_JOB_ID %" in text and ":29500" not in text  # a port per job
    assert "/bin/activate" in text and "NCCL_SOCKET_IFNAME" in text and "NCCL_DEBUG" in text
    assert '--checkpoint "$CHECKPOINT"' in text and "b${BATCH}_s${STEPS}" in text  # named by its recipe
