"""Specification of the NT-Xent loss (course_utils.losses): what it computes, and what it refuses."""

import math

import pytest
import torch

from course_utils.losses import nt_xent, nt_xent_anchor_grad, nt_xent_lower_bound, nt_xent_naive


def pairs(n, d, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


# --- the vectorised loss equals the one-anchor-at-a-time loop -----------------------------------

# Cases that can fail differently: the smallest batch (one negative pair), an odd one and a large one; a
# 2-d embedding (directions nearly collide) and a wide one; a cold temperature (large logits: log-sum-exp
# matters) and a warm one; float32 and float64. Each row is one of them; a full grid adds nothing new.
@pytest.mark.parametrize("n, d, temperature, dtype", [
    (2, 2, 1.0, torch.float64),
    (2, 128, 0.05, torch.float32),
    (7, 16, 0.1, torch.float64),
    (7, 2, 0.05, torch.float32),
    (32, 128, 0.5, torch.float64),
    (32, 16, 0.05, torch.float32),
])
def test_vectorised_equals_naive_loop(n, d, temperature, dtype):
    z1, z2 = pairs(n, d, dtype, seed=n * 1000 + d)
    fast, slow = nt_xent(z1, z2, temperature), nt_xent_naive(z1, z2, temperature)
    assert fast.shape == () and fast.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(fast, slow, rtol=tol, atol=tol)


# --- hand-computed values -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 5, 16])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_orthogonal_embeddings_with_identical_views(n, temperature):
    # Rows of the identity: the positive has cosine 1 (logit 1/t), the 2N-2 negatives cosine 0 (logit 0).
    z = torch.eye(n, dtype=torch.float64)
    expected = -math.log(math.exp(1 / temperature) / (math.exp(1 / temperature) + 2 * n - 2))
    assert nt_xent(z, z.clone(), temperature).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 10])
def test_identical_embeddings_give_chance_level_log_2n_minus_1(n):
    # Every candidate looks the same: the positive gets weight 1/(2N-1), whatever the temperature.
    z = torch.ones(n, 4, dtype=torch.float64)
    for temperature in (0.1, 1.0):
        assert nt_xent(z, z, temperature).item() == pytest.approx(math.log(2 * n - 1), rel=1e-12)


def test_two_pairs_in_2d_worked_by_hand():
    # u0=(1,0), u1=(0,1) [from z1, rows rescaled away], u2=(1,1)/√2, u3=(0,-1) [z2]; pairs 0↔2, 1↔3; t=1.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    z2 = torch.tensor([[3.0, 3.0], [0.0, -1.0]], dtype=torch.float64)
    c = 1 / math.sqrt(2)
    l0 = math.log(1 + 2 * math.exp(-c))  # pos cos c; negatives u1, u3 at cos 0
    l1 = math.log(1 + math.e + math.exp(1 + c))  # pos cos -1; negatives u0 (0), u2 (c)
    l2 = math.log(2 + math.exp(-2 * c))  # pos cos c; negatives u1 (c), u3 (-c)
    l3 = math.log(1 + math.e + math.exp(1 - c))  # pos cos -1; negatives u0 (0), u2 (-c)
    expected = (l0 + l1 + l2 + l3) / 4
    assert nt_xent(z1, z2, 1.0).item() == pytest.approx(expected, rel=1e-12)
    assert nt_xent_naive(z1, z2, 1.0).item() == pytest.approx(expected, rel=1e-12)


# --- gradients ------------------------------------------------------------------------------------

def test_gradcheck_float64():
    z1, z2 = pairs(5, 3, torch.float64, seed=1)
    z1.requires_grad_(), z2.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.3), (z1, z2))


def anchor_loss(z, i, j, temperature, normalise):
    """ℓ_i written from its definition (dot products of the rows of z, optionally normalised first)."""
    u = z / z.norm(dim=1, keepdim=True) if normalise else z
    logits = u @ u[i] / temperature
    others = [k for k in range(len(z)) if k != i]
    return torch.logsumexp(logits[others], 0) - logits[j]


@pytest.mark.parametrize("i", [0, 3, 9])
def test_anchor_gradient_matches_hand_derived_formula(i):
    n, t = 5, 0.2
    torch.manual_seed(i)
    u = torch.nn.functional.normalize(torch.randn(2 * n, 8, dtype=torch.float64), dim=1).requires_grad_()
    j = (i + n) % (2 * n)
    (grad,) = torch.autograd.grad(anchor_loss(u, i, j, t, normalise=False), u)
    torch.testing.assert_close(grad[i], nt_xent_anchor_grad(u.detach(), i, j, t))
    # Through the normalisation, the gradient on the raw z_i is the analytic one projected onto the
    # tangent plane of the sphere at u_i, divided by |z_i|: (I - u_i u_iᵀ) g / |z_i|.
    z = (3 * torch.randn(2 * n, 8, dtype=torch.float64)).requires_grad_()
    (grad_z,) = torch.autograd.grad(anchor_loss(z, i, j, t, normalise=True), z)
    u = torch.nn.functional.normalize(z.detach(), dim=1)
    g = nt_xent_anchor_grad(u, i, j, t)
    projected = (g - (u[i] @ g) * u[i]) / z.detach()[i].norm()
    torch.testing.assert_close(grad_z[i], projected)


# --- symmetries: what the loss depends on, and what it does not --------------------------------

def test_invariances_and_the_pairing_matters():
    z1, z2 = pairs(8, 16, torch.float64, seed=2)
    loss = nt_xent(z1, z2, 0.5)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(nt_xent(z1[perm], z2[perm], 0.5), loss)  # order of the pairs
    torch.testing.assert_close(nt_xent(z2, z1, 0.5), loss)  # which view is "first"
    scale = torch.rand(8, 1, dtype=torch.float64) * 10 + 0.1
    torch.testing.assert_close(nt_xent(z1 * scale, z2 * scale.flip(0), 0.5), loss)  # cosine: row norms
    derangement = torch.roll(torch.arange(8), 1)
    assert abs(nt_xent(z1, z2[derangement], 0.5).item() - loss.item()) > 1e-3  # the pairing matters


# --- mixed precision ------------------------------------------------------------------------------

def test_bfloat16_autocast_is_close_to_float32():
    torch.manual_seed(0)
    head = torch.nn.Linear(32, 16)
    x1, x2 = torch.randn(64, 32), torch.randn(64, 32)
    reference = nt_xent(head(x1), head(x2), 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h1, h2 = head(x1), head(x2)
        assert h1.dtype == torch.bfloat16
        loss = nt_xent(h1, h2, 0.2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert abs(loss.item() - reference.item()) < 1e-2


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_with_small_temperature_stay_finite(dtype):
    assert torch.isinf(torch.exp(torch.tensor(1 / 0.05, dtype=torch.float16)))  # why we cast up
    z1, z2 = pairs(32, 64, seed=3)
    z1, z2 = z1.to(dtype).requires_grad_(), z2.to(dtype).requires_grad_()
    loss = nt_xent(z1, z2, 0.05)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all() and z1.grad.dtype == dtype
    assert abs(loss.item() - nt_xent(z1.double(), z2.double(), 0.05).item()) < 1e-2


# --- bad inputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("z1, z2, temperature, match", [
    (torch.randn(4, 8), torch.randn(5, 8), 0.5, "same shape"),
    (torch.randn(4, 8), torch.randn(4, 9), 0.5, "same shape"),
    (torch.randn(8), torch.randn(8), 0.5, "2-D"),
    (torch.randn(4, 8), torch.randn(4, 8), 0, "positive number"),
    (torch.randn(4, 8), torch.randn(4, 8), -1, "positive number"),
    (torch.randn(4, 8), torch.randn(4, 8), float("nan"), "positive number"),
    (torch.randn(4, 8), torch.randn(4, 8), "0.5", "positive number"),
    (torch.randn(1, 8), torch.randn(1, 8), 0.5, "at least 2 pairs"),
    (torch.full((4, 8), float("nan")), torch.randn(4, 8), 0.5, "inf or NaN"),
])
@pytest.mark.parametrize("loss_fn", [nt_xent, nt_xent_naive])
def test_bad_inputs_raise_clear_value_errors(loss_fn, z1, z2, temperature, match):
    with pytest.raises(ValueError, match=match):
        loss_fn(z1, z2, temperature)


def test_temperature_error_says_what_is_typical():
    with pytest.raises(ValueError, match="0.1–1.0"):
        nt_xent(torch.randn(4, 8), torch.randn(4, 8), 0.0)


def test_integer_tensors_are_a_type_error():
    with pytest.raises(TypeError, match="floating-point"):
        nt_xent(torch.ones(4, 8, dtype=torch.long), torch.ones(4, 8, dtype=torch.long))


# --- the loss as a bound on mutual information ----------------------------------------------------

def test_lower_bound_approaches_log_2n_minus_1_with_perfect_alignment():
    n = 8
    z = torch.eye(n, dtype=torch.float64)
    ceiling = math.log(2 * n - 1)
    temperatures = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02]
    losses = [nt_xent(z, z, t).item() for t in temperatures]
    bounds = [nt_xent_lower_bound(loss, n) for loss in losses]
    assert all(a < b for a, b in zip(bounds, bounds[1:]))  # sharper as t shrinks
    assert all(b <= ceiling for b in bounds)  # never above log(2N-1)
    assert losses[-1] < 1e-9 and bounds[-1] == pytest.approx(ceiling, abs=1e-9)


def test_lower_bound_is_zero_at_chance_and_keeps_tensors():
    n = 6
    z = torch.ones(n, 3)
    bound = nt_xent_lower_bound(nt_xent(z, z), n)
    assert isinstance(bound, torch.Tensor) and abs(bound.item()) < 1e-6
    assert nt_xent_lower_bound(0.0, n) == pytest.approx(math.log(11))
    with pytest.raises(ValueError, match="number of pairs"):
        nt_xent_lower_bound(1.0, 0)
