"""NT-Xent, the SimCLR loss (normalised temperature-scaled cross-entropy), and its InfoNCE bound.

For N pairs, stack the two views into u = normalise(cat(z1, z2)), a 2N×D matrix with unit rows. Anchor
i's positive is its other view, j(i) = (i + N) mod 2N; the 2N−2 other rows are its negatives. Then

    s_ik = u_i·u_k / t,     ℓ_i = −log( exp(s_ij) / Σ_{k≠i} exp(s_ik) ),     L = (1/2N) Σ_i ℓ_i

References: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations"
(SimCLR, arXiv:2002.05709, eq. 1); van den Oord et al. 2018, "Representation Learning with Contrastive
Predictive Coding" (InfoNCE, arXiv:1807.03748); Poole et al. 2019, "On Variational Bounds of Mutual
Information" (arXiv:1905.06922).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F


def _check(z1, z2, temperature) -> None:
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
        if not z.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {z.dtype}: call .float() first")
        if z.dim() != 2:
            raise ValueError(f"{name} must be 2-D (N pairs × D features), got shape {tuple(z.shape)}")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape (row i of each is a positive pair), "
                         f"got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError(f"NT-Xent needs at least 2 pairs, got N={z1.shape[0]}: with one pair there are "
                         "no negatives and the loss is always 0 (did you drop the last, smaller batch?)")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number (typical values are 0.1–1.0), "
                         f"got {temperature!r}")



def _check_finite(z1, z2) -> None:
    # Reading a GPU tensor's value makes the CPU wait for the GPU: train.pretrain skips this check per
    # step (check_finite=False) and checks its summed loss every few steps instead.
    if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
        raise ValueError("z1 or z2 contains inf or NaN: training has probably diverged "
                         "(lower the learning rate; with float16 use a GradScaler)")


def _nt_xent_from_ids(z: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over anchors of −log softmax weight of the positives. z: M×D (all views stacked),
    ids: M sample ids; rows with equal ids are positives (solo-learn style: any number of views)."""
    # Compute in (at least) float32 even under fp16/bf16 autocast: exp(1/t) overflows float16 at t≈0.09.
    dtype = torch.promote_types(z.dtype, torch.float32)
    with torch.autocast(device_type=z.device.type, enabled=False):
        u = F.normalize(z.to(dtype), dim=1)
        sim = u @ u.T / temperature  # M×M cosine similarities / t
        self_mask = torch.eye(len(u), dtype=torch.bool, device=u.device)
        # -inf (not -1e9) removes the self-similarity exactly: exp(-inf) = 0 in every dtype.
        sim = sim.masked_fill(self_mask, float("-inf"))
        log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)  # log-sum-exp: no overflow
        positive = (ids[:, None] == ids[None, :]) & ~self_mask
        per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1)
        return per_anchor.mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, *, check_finite: bool = True) -> torch.Tensor:
    r"""NT-Xent loss of SimCLR (Chen et al. 2020, eq. 1), vectorised.

    L = \frac{1}{2N} \sum_{i=1}^{2N} -\log \frac{\exp(\mathrm{sim}(z_i, z_{j(i)})/t)}
                                          {\sum_{k \ne i} \exp(\mathrm{sim}(z_i, z_k)/t)}

    with sim the cosine similarity, z = cat(z1, z2) and j(i) the other view of sample i.

    Args:
        z1, z2: N×D projections of the two views; row i of z1 and row i of z2 are a positive pair.
            Any float dtype; the loss is computed in float32 (float64 stays float64), also under
            autocast. N ≥ 2 (one pair has no negatives).
        temperature: t > 0; typical values 0.1–1.0 (SimCLR uses 0.5 for CIFAR-10, solo-learn 0.2).
        check_finite: raise a clear error when z1 or z2 holds inf or NaN (a diverged run). It reads a
            value back from the device, a synchronisation: the training loop turns it off.
    Returns:
        A scalar tensor, between 0 and about log(2N−1) + 2/t.

    Example:
        >>> z1 = torch.randn(8, 128, requires_grad=True)  # projections g(f(x)) of view 1
        >>> z2 = z1 + 0.1 * torch.randn(8, 128)            # and of view 2, row i with row i
        >>> loss = nt_xent(z1, z2, temperature=0.5)
        >>> loss.backward()
        >>> loss.shape, z1.grad.shape
        (torch.Size([]), torch.Size([8, 128]))
    """
    _check(z1, z2, temperature)
    if check_finite:
        _check_finite(z1, z2)
    ids = torch.arange(len(z1), device=z1.device).repeat(2)  # row i and row i+N share sample id i
    return _nt_xent_from_ids(torch.cat([z1, z2]), ids, temperature)


def nt_xent_naive(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """The same loss as `nt_xent`, one anchor at a time: slow, but each line is one symbol of eq. 1.

    Uses exp() literally, so it overflows in float32 for t below 1/88.7 ≈ 0.0113 (exp(1/t) > 3.4e38):
    that is why `nt_xent` uses log-sum-exp instead.
    """
    _check(z1, z2, temperature)
    _check_finite(z1, z2)
    n = len(z1)
    z = torch.cat([z1, z2]).to(torch.promote_types(z1.dtype, torch.float32))
    u = z / z.norm(dim=1, keepdim=True)  # unit rows: dot products are cosine similarities
    losses = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)  # the positive: the other view of the same image
        positive = torch.exp(u[i] @ u[j] / temperature)
        negatives = [torch.exp(u[i] @ u[k] / temperature) for k in range(2 * n) if k not in (i, j)]
        softmax_weight = positive / (positive + sum(negatives))  # 2N−1 candidates, self excluded
        losses.append(-torch.log(softmax_weight))
    return torch.stack(losses).mean()  # average over all 2N anchors


def nt_xent_anchor_grad(u: torch.Tensor, i: int, j: int, temperature: float) -> torch.Tensor:
    """Analytic gradient of one anchor's loss ℓ_i with respect to u_i (Chapter 3).

    ℓ_i = −log( exp(u_i·u_j/t) / Σ_{k≠i} exp(u_i·u_k/t) ), so

        ∂ℓ_i/∂u_i = (1/t) (Σ_{k≠i} p_ik u_k − u_j),   p_ik = softmax_{k≠i}(u_i·u_k/t):

    the positive pulls u_i towards u_j, every other row pushes it away with its softmax weight.
    u: M×D (normalised embeddings, as dot products); i, j: anchor and positive rows. Returns a D vector.
    """
    logits = (u @ u[i] / temperature).masked_fill(torch.arange(len(u), device=u.device) == i, float("-inf"))
    p = torch.softmax(logits, dim=0)
    return (p @ u - u[j]) / temperature


def nt_xent_lower_bound(loss, batch_size: int):
    """InfoNCE lower bound on the mutual information between the two views: log(2N−1) − L (in nats).

    Each anchor picks its positive among 2N−1 candidates, so a loss of L means the encoder does
    better than chance (log(2N−1), the loss of identical embeddings) by log(2N−1) − L; van den Oord et
    al. 2018 and Poole et al. 2019 show this bounds I(view1; view2) from below. The bound can never
    exceed log(2N−1), however good the encoder: a bigger batch is needed to certify more information.
    `loss` is a float or a tensor (the result has the same type); `batch_size` is N, the number of pairs.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be the number of pairs N ≥ 1, got {batch_size!r}")
    return math.log(2 * batch_size - 1) - loss
