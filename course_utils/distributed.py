"""SimCLR on many GPUs: one process per GPU under ``torchrun``, and NT-Xent over the global batch.

Each process (a *rank* r = 0..W−1) holds the model and the whole data set on its own device, and takes its
slice of every global batch of B = W·n images (``local_slice``). Its two views give z1_r, z2_r (n×D each).
The loss must be the one of the GLOBAL batch: an anchor is compared with the 2B − 2 other views of all ranks,
not only with the 2n − 2 of its own rank (SimCLR: batch 4,096 on 128 TPU cores, 32 images per core). So each
rank gathers every rank's projections, stacked rank by rank,

    Z = [z1_0; z2_0; z1_1; z2_1; …; z1_{W−1}; z2_{W−1}]       (2B × D)

and computes the loss of its own 2n anchors against all 2B rows (``local_anchor_loss``):

    u = normalise(Z),   s_ik = u_i·u_k / t,   ℓ_i = −log( exp(s_ij(i)) / Σ_{k≠i} exp(s_ik) ),
    L_r = (1/2n) Σ_{i of rank r} ℓ_i,          L = (1/W) Σ_r L_r  (= NT-Xent of the 2B views)

DistributedDataParallel averages the ranks' gradients, which gives the gradient of L exactly, provided the
gather lets gradients flow back: z_r is a negative in every other rank's loss, and those terms ∂L_s/∂z_r
(s ≠ r) are computed on the other ranks. ``torch.distributed.all_gather`` returns plain tensors without a
gradient, so they are silently dropped (the loss value is unchanged, only the gradient is wrong: see
``gather_plain``). ``GatherWithGrad`` (``gather_with_grad``) all-gathers forward and, backward, all-reduces (sums) the gradient of Z and keeps its own
slice, as solo-learn's ``GatherLayer`` and lightly's ``GatherLayer`` do. (torch 2.14's
``torch.distributed.nn.functional.all_gather`` has a gradient too, but its backward aborts the process under
the gloo backend: its fallback uses all-to-all, which gloo lacks.)

Also here: the process group from torchrun's environment (``setup``/``cleanup``), per-rank augmentation
seeds (``rank_seed``), batch norm across GPUs (``sync_batchnorm``: nn.SyncBatchNorm, the paper's global BN,
which PyTorch implements for GPUs only), the plain gather simulated in one process for chapter 7's lab
(``nt_xent_plain_gather``), and a self-check for chapter 7's exercise.

References: Chen et al. 2020 (SimCLR, §2.2 "Training with large batch size" and "Global BN"); Li et al.
2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel Training" (DDP); da Costa et al. 2022
(solo-learn); Goyal et al. 2017 (the learning rate for a large batch).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .losses import _check, _check_finite, nt_xent

# Device types for which nn.SyncBatchNorm has kernels (torch 2.14 refuses CPU tensors with a ValueError, and
# its CPU backend lacks aten::batch_norm_stats).
SYNC_BN_DEVICES = ("cuda", "hpu", "xpu", torch._C._get_privateuse1_backend_name())


# --- The process group -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank r of world_size, its device, and the backend ("gloo", "nccl" or None)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints, writes checkpoints and saves results."""
        return self.rank == 0


def setup(device: str | torch.device | None = None, backend: str | None = None, *,
          timeout_s: float = 600.0) -> Dist:  # fmt: skip
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT); outside torchrun, return a world of one process and start nothing.

    device   None or "auto": a GPU per process when this node has at least LOCAL_WORLD_SIZE of them (process
             ``local_rank`` takes GPU ``local_rank``), else the CPU; or "cpu" / "cuda".
    backend  None: "nccl" on GPUs, "gloo" on the CPU.
    """
    env = os.environ
    local_world = int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1)))
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() and torch.cuda.device_count() >= local_world else "cpu"
    device = torch.device(device)
    if "RANK" not in env or "WORLD_SIZE" not in env:  # plain `python ...`: one process, no group
        return Dist(0, 1, 0, device, None)
    rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        if torch.cuda.device_count() <= local:
            raise RuntimeError(f"local rank {local} has no GPU: this node has {torch.cuda.device_count()}. Start "
                               "at most that many processes per node (torchrun --nproc_per_node), or use the CPU.")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)  # NCCL and all_gather_object use the current device
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return Dist(rank, world, local, device, backend)


def cleanup() -> None:
    """Leave the process group (call it at the end of every rank's script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return rank_and_world()[1] > 1


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for outside a process group)."""
    if is_distributed():
        dist.barrier()


def gather_objects(obj) -> list:
    """Every rank's ``obj`` (any picklable object), as a list indexed by rank; ``[obj]`` outside a group."""
    if not is_distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# --- Sharding and seeds ----------------------------------------------------------------------------

def local_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch of ``batch_size`` images that rank ``rank`` trains on: the r-th of
    ``world_size`` equal, contiguous blocks. Every rank draws the same permutation of the data set, so the
    blocks never overlap and together make the whole global batch.

    >>> local_slice(8, rank=1, world_size=2)
    slice(4, 8, None)
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..world_size-1, got rank {rank} of {world_size}.")
    if batch_size % world_size:
        raise ValueError(f"the global batch ({batch_size}) must split evenly over {world_size} processes: "
                         f"choose a batch size that is a multiple of {world_size}.")
    n = batch_size // world_size
    return slice(rank * n, (rank + 1) * n)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s augmentation generator: different on every rank and from ``seed`` itself.

    Equal seeds would give every rank's i-th image the same crop, flip and colours: W copies of one set of
    random draws instead of W independent ones. The permutation of the data set, by contrast, uses ``seed`` on
    every rank, so that all ranks agree on which images form each global batch.
    """
    return int(seed) + 1_000_003 * (int(rank) + 1)


# --- Batch norm across GPUs -------------------------------------------------------------------------

def sync_batchnorm(model: nn.Module, device: str | torch.device) -> tuple[nn.Module, str]:
    """``(model, note)``: the model with every BatchNorm layer turned into ``nn.SyncBatchNorm`` when ``device``
    supports it (GPUs), so that batch norm normalises with the mean and variance of the GLOBAL batch, as
    SimCLR's global BN does; the parameters and buffers are the same tensors, so an optimiser built before
    keeps working and checkpoints keep their keys. On a CPU (torch 2.14: nn.SyncBatchNorm refuses CPU
    tensors, and the CPU backend lacks its kernels) the model is returned unchanged: each rank normalises
    with its own 2n views. ``note`` says which of the two happened.
    """
    device = torch.device(device)
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if n_bn == 0:
        return model, "no batch-norm layers"
    if device.type not in SYNC_BN_DEVICES:
        return model, (f"batch norm per rank ({n_bn} layers): nn.SyncBatchNorm has no {device.type} kernels in "
                       f"torch {torch.__version__.split('+')[0]}, so each process normalises with its own views")
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, f"global batch norm: {n_bn} layers are nn.SyncBatchNorm (statistics over every rank's views)"


# --- Gathering with gradients -----------------------------------------------------------------------

class GatherWithGrad(torch.autograd.Function):
    """All-gather that passes gradients back: forward, every rank gets the W blocks stacked (W·m × …);
    backward, the gradients that all ranks' losses sent to the stacked tensor are summed (all-reduce) and
    each rank keeps the rows of its own block. Works under gloo and NCCL. Every rank's block must have the
    same shape."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        blocks = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(blocks, x.contiguous())
        return torch.cat(blocks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # all_reduce works in place
        dist.all_reduce(grad)  # Σ_s ∂L_s/∂Z: rank r's rows are negatives in every rank's loss
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` (m×…, the same shape on every rank), stacked in rank order, (W·m)×…, with a gradient
    back to every rank's ``x`` (``GatherWithGrad``). Outside a process group of several processes: ``x``."""
    return GatherWithGrad.apply(x) if is_distributed() else x


def gather_plain(x: torch.Tensor) -> torch.Tensor:
    """The trap, kept for chapter 7 and the tests: a plain ``dist.all_gather``, with this rank's block put back
    as ``x`` so that at least its own loss terms reach it. Without that patch backward fails loudly; with it,
    it silently loses the other ranks' terms (the loss value is the same). Outside a group: ``x``."""
    if not is_distributed():
        return x
    blocks = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(blocks, x.contiguous())  # plain tensors: no grad_fn, nothing flows back through them
    blocks[dist.get_rank()] = x
    return torch.cat(blocks)


# --- The loss over the global batch -----------------------------------------------------------------

def local_anchor_loss(z_all: torch.Tensor, rank: int, world_size: int, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent of rank ``rank``'s anchors against every view of the global batch (the module's equation).

    z_all: (W·2n)×D, the ranks' projections stacked rank by rank, each rank's block [z1_r; z2_r] (2n rows:
    row i of z1_r and row i of z2_r are a positive pair). Returns L_r, the mean of ℓ_i over the 2n rows of
    block ``rank``; the mean of L_r over the ranks is ``losses.nt_xent`` of all 2B = W·2n views. Computed in
    float32 (float64 stays float64), also under autocast.
    """
    if z_all.dim() != 2 or world_size < 1 or len(z_all) % (2 * world_size) or not 0 <= rank < world_size:
        raise ValueError(f"z_all must be (world_size·2n)×D with 0 <= rank < world_size; got shape "
                         f"{tuple(z_all.shape)}, rank {rank}, world_size {world_size}.")
    n = len(z_all) // (2 * world_size)
    dtype = torch.promote_types(z_all.dtype, torch.float32)
    with torch.autocast(device_type=z_all.device.type, enabled=False):
        u = F.normalize(z_all.to(dtype), dim=1)
        rows = torch.arange(2 * n * rank, 2 * n * (rank + 1), device=u.device)  # this rank's anchors
        partner = rows + torch.where(rows - 2 * n * rank < n, n, -n)  # z1_r[i] <-> z2_r[i], inside the block
        sim = u[rows] @ u.T / temperature  # 2n × 2B
        sim = sim.masked_fill(rows[:, None] == torch.arange(len(u), device=u.device), float("-inf"))  # k ≠ i
        log_prob = sim.gather(1, partner[:, None]).squeeze(1) - torch.logsumexp(sim, dim=1)
        return -log_prob.mean()


def nt_xent_global(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, *,
                   gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   check_finite: bool = True) -> torch.Tensor:  # fmt: skip
    r"""NT-Xent over the global batch, inside a process group (SimCLR's loss on many GPUs).

    Each rank passes its own N pairs; the negatives come from all ranks, gathered with gradients. Returns
    L_r, the mean loss of this rank's 2N anchors; the loss of the global batch is the mean of L_r over the
    ranks, and DistributedDataParallel's averaging of the gradients makes the gradient exactly that of
    ``losses.nt_xent`` on all W·N pairs in one process.

    L_r = \frac{1}{2N} \sum_{i \in \text{rank } r} -\log \frac{\exp(\mathrm{sim}(z_i, z_{j(i)})/t)}
                                                       {\sum_{k \ne i,\ k \in \text{all ranks}} \exp(\mathrm{sim}(z_i, z_k)/t)}

    Args:
        z1, z2: N×D projections of this rank's two views, row i of each a positive pair; N ≥ 2 and the same
            N and D on every rank.
        temperature: t > 0 (SimCLR 0.5 on CIFAR-10, solo-learn 0.2).
        gather: how every rank's 2N×D block cat(z1, z2) is collected, x -> (W·2N)×D in rank order; None:
            ``gather_with_grad``. ``gather_plain`` gives the same loss value and a wrong gradient (for
            demonstrations only); chapter 7 passes its own ``GatherWithGrad``.
        check_finite: as in ``losses.nt_xent``; the training loop turns it off (it synchronises).
    Returns:
        A scalar tensor. Outside a process group (or with one process) it is ``losses.nt_xent(z1, z2, t)``.

    Example (outside a process group, so it equals nt_xent; under torchrun every rank calls it the same way):
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> bool(torch.allclose(nt_xent_global(z1, z2, 0.5), nt_xent(z1, z2, 0.5)))
        True
    """
    _check(z1, z2, temperature)
    if check_finite:
        _check_finite(z1, z2)
    rank, world = rank_and_world()
    if world == 1:
        return nt_xent(z1, z2, temperature, check_finite=False)
    z_all = (gather or gather_with_grad)(torch.cat([z1, z2]))
    return local_anchor_loss(z_all, rank, world, temperature)


def nt_xent_plain_gather(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, *, world_size: int,
                         check_finite: bool = True) -> torch.Tensor:  # fmt: skip
    """NT-Xent of the whole batch as ``world_size`` data-parallel ranks with the PLAIN gather would differentiate
    it, simulated in one process (chapter 7's lab): pair i lives on rank i // (N / world_size), and every anchor
    sees the rows of the other ranks as constants (detached): the mean over the ranks of ``local_anchor_loss``
    with every other rank's rows detached. The value is ``losses.nt_xent``'s; the gradient
    keeps, for each row, its own terms as an anchor and the pushes of its own rank's anchors only. With
    ``world_size=1`` nothing is detached: it is ``nt_xent``, gradient and all.

    z1, z2: N×D, row i of each a positive pair; N must split evenly over the ranks. Returns a scalar.
    """
    _check(z1, z2, temperature)
    if check_finite:
        _check_finite(z1, z2)
    n = len(z1)
    if world_size < 1 or n % world_size:
        raise ValueError(f"the batch of {n} pairs must split evenly over world_size={world_size} ranks: choose a "
                         f"number of ranks that divides the batch size.")
    # Rank r's loss as the plain gather gives it: the rows of every other rank are constants.
    z_all = _stack_by_rank(z1, z2, world_size)
    owner = torch.arange(len(z_all), device=z_all.device) // (len(z_all) // world_size)
    return torch.stack([local_anchor_loss(torch.where((owner == r)[:, None], z_all, z_all.detach()), r, world_size,
                                          temperature) for r in range(world_size)]).mean()


# --- Chapter 7's self-check ---------------------------------------------------------------------------

_NOT_IMPLEMENTED = "not implemented yet: replace `raise NotImplementedError` with your code and run the cell again."


def _stack_by_rank(z1: torch.Tensor, z2: torch.Tensor, world_size: int) -> torch.Tensor:
    """The global batch's N pairs, split into ``world_size`` ranks and stacked as the gather returns them."""
    return torch.cat([torch.cat([a, b]) for a, b in zip(z1.chunk(world_size), z2.chunk(world_size))])


def check_local_anchor_loss(student_fn) -> bool:
    """Check a student's ``my_local_anchor_loss(z_all, rank, world_size, temperature)`` against
    ``local_anchor_loss`` for 1, 2 and 4 simulated ranks, and that the mean over the ranks is ``nt_xent`` of
    the whole batch. Prints PASS, or FAIL with a hint; returns True/False. Never raises."""
    g = torch.Generator().manual_seed(7)
    for world, n, d, t in [(2, 3, 5, 0.5), (4, 2, 8, 0.2), (1, 4, 6, 1.0), (2, 8, 16, 0.1)]:
        z1, z2 = torch.randn(world * n, d, generator=g, dtype=torch.float64), torch.randn(world * n, d, generator=g,
                                                                                           dtype=torch.float64)
        z_all = _stack_by_rank(z1, z2, world)
        whole = nt_xent(z1, z2, t).item()
        for rank in range(world):
            name = f"world_size={world}, rank={rank}, n={n} pairs per rank, D={d}, t={t}"
            expected = local_anchor_loss(z_all, rank, world, t).item()
            try:
                got = student_fn(z_all.clone(), rank, world, t)
            except NotImplementedError:
                print(_NOT_IMPLEMENTED)
                return False
            except Exception as error:  # a bug in the student's code: report it, do not crash the notebook
                print(f"FAIL on {name}: your function raised {type(error).__name__}: {error}")
                return False
            try:
                got = float(got)
            except (TypeError, ValueError):
                print(f"FAIL on {name}: it returned a {type(got).__name__}; return the loss (a 0-d tensor).")
                return False
            if math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
                continue
            if math.isclose(got, whole, rel_tol=1e-6, abs_tol=1e-9):
                hint = ("you returned the loss of ALL 2B anchors (the whole batch): take only this rank's 2n rows, "
                        "2n·rank to 2n·(rank+1) − 1, as anchors; the other rows are their negatives.")
            elif world > 1 and math.isclose(got, nt_xent(*z_all[2 * n * rank:2 * n * (rank + 1)].chunk(2), t).item(),
                                            rel_tol=1e-6, abs_tol=1e-9):
                hint = ("you used this rank's own 2n rows only: the other ranks' rows must be in the denominator "
                        "(negatives from every rank), that is the point of the gather.")
            else:
                hint = ("the positive of row i < n of the block is row i + n of the SAME block (z2_r[i]), and row "
                        "i ≥ n pairs with row i − n; exclude each anchor's own similarity (k ≠ i) and divide by t.")
            print(f"FAIL on {name}: expected {expected:.6f}, got {got:.6f}. Hint: {hint}")
            return False
    print("PASS: your loss matches local_anchor_loss for 1, 2 and 4 simulated ranks, and its mean over the ranks "
          "is NT-Xent of the whole batch.")
    return True
