"""Specification of chapter 3's self-checks: check_multiview_nt_xent (NT-Xent with any number of views per
image) and check_anchor_grad_z (one anchor's gradient through the normalisation). Right answers pass, each
usual mistake fails with a hint that names it, and a student's exception never escapes the check."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import check_anchor_grad_z, check_multiview_nt_xent
from course_utils.checks.ch03 import _multiview_cases
from course_utils.losses import _nt_xent_from_ids, nt_xent

INF = float("inf")


# --- NT-Xent with several views -----------------------------------------------------------------------

def student_loss(z, ids, temperature=0.5):
    """How a student writes it: one log-softmax per row, then the mean over each row's positives."""
    u = F.normalize(z, dim=1)
    eye = torch.eye(len(z), dtype=torch.bool)
    log_p = F.log_softmax((u @ u.T / temperature).masked_fill(eye, -INF), dim=1)
    positive = (ids[:, None] == ids[None, :]) & ~eye
    return (-log_p.masked_fill(~positive, 0).sum(1) / positive.sum(1)).mean()


def loop_loss(z, ids, temperature=0.5):
    """One anchor and one positive at a time, each line a symbol of the definition."""
    u = z / z.norm(dim=1, keepdim=True)
    per_anchor = []
    for i in range(len(z)):
        others = [k for k in range(len(z)) if k != i]
        denominator = sum(torch.exp(u[i] @ u[k] / temperature) for k in others)
        positives = [p for p in others if ids[p] == ids[i]]
        per_anchor.append(sum(-torch.log(torch.exp(u[i] @ u[p] / temperature) / denominator)
                              for p in positives) / len(positives))
    return torch.stack(per_anchor).mean()


def test_the_reference_is_nt_xent_for_two_views_and_the_hand_computed_value():
    name, z, ids, t, expected = _multiview_cases()[0]
    n = len(z) // 2
    assert torch.equal(ids, torch.arange(n).repeat(2))
    assert math.isclose(expected, nt_xent(z[:n].double(), z[n:].double(), t).item(), rel_tol=1e-12)
    *_, (name, z, ids, t, hand) = _multiview_cases()
    assert math.isclose(_nt_xent_from_ids(z, ids, t).item(), hand, rel_tol=1e-6)


@pytest.mark.parametrize("fn", [_nt_xent_from_ids, student_loss, loop_loss], ids=["reference", "student", "loop"])
def test_right_multiview_losses_pass(fn, capsys):
    assert check_multiview_nt_xent(fn) is True
    assert capsys.readouterr().out.startswith("PASS")


def masks(z, ids):
    eye = torch.eye(len(z), dtype=torch.bool)
    return eye, (ids[:, None] == ids[None, :]) & ~eye


def next_view_only(z, ids, temperature):
    """The two-view code with N images: positive (i + N) mod M, the next view only."""
    m, n = len(z), len(torch.unique(ids))
    u = F.normalize(z, dim=1)
    logits = (u @ u.T / temperature).fill_diagonal_(-INF)
    return F.cross_entropy(logits, (torch.arange(m) + n) % m)


def first_positive_only(z, ids, temperature):
    eye, positive = masks(z, ids)
    u = F.normalize(z, dim=1)
    logits = (u @ u.T / temperature).masked_fill(eye, -INF)
    return F.cross_entropy(logits, positive.float().argmax(1))


def self_not_excluded(z, ids, temperature):
    u = F.normalize(z, dim=1)
    log_p = F.log_softmax(u @ u.T / temperature, dim=1)  # no mask at all
    positive = ids[:, None] == ids[None, :]
    return (-(log_p * positive).sum(1) / positive.sum(1)).mean()


def diagonal_in_denominator(z, ids, temperature):
    eye, positive = masks(z, ids)
    u = F.normalize(z, dim=1)
    log_p = F.log_softmax(u @ u.T / temperature, dim=1)
    return (-(log_p * positive).sum(1) / positive.sum(1)).mean()


def self_in_positive_mask(z, ids, temperature):
    eye, _ = masks(z, ids)
    u = F.normalize(z, dim=1)
    log_p = F.log_softmax((u @ u.T / temperature).masked_fill(eye, -INF), dim=1)
    positive = ids[:, None] == ids[None, :]
    return (-(log_p * positive).sum(1) / positive.sum(1)).mean()  # -inf * 1 on the diagonal


def negatives_only_denominator(z, ids, temperature):
    """Each positive against the negatives alone (the other positives left out)."""
    eye, positive = masks(z, ids)
    u = F.normalize(z, dim=1)
    sim = u @ u.T / temperature
    negatives = torch.logsumexp(sim.masked_fill(positive | eye, -INF), 1, keepdim=True)
    pair = torch.logaddexp(negatives, sim) - sim
    return (pair.masked_fill(~positive, 0).sum(1) / positive.sum(1)).mean()


def positive_twice(z, ids, temperature):
    """MoCo-style: the positive's logit in column 0, followed by the whole row (which holds it again)."""
    eye, positive = masks(z, ids)
    u = F.normalize(z, dim=1)
    sim = (u @ u.T / temperature).masked_fill(eye, -INF)
    losses = []
    for i, p in positive.nonzero().tolist():
        logits = torch.cat([sim[i, p:p + 1], sim[i]])
        losses.append((i, F.cross_entropy(logits[None], torch.tensor([0]))))
    per_anchor = [torch.stack([l for a, l in losses if a == i]).mean() for i in range(len(z))]
    return torch.stack(per_anchor).mean()


def reduce_variant(over_positives="mean", over_anchors="mean", anchors="all", pairs=False, normalise=True,
                   temperature_as=None):
    def loss(z, ids, temperature):
        eye, positive = masks(z, ids)
        t = {None: temperature, "ignored": 1.0, "multiplied": 1 / temperature}[temperature_as]
        u = F.normalize(z, dim=1) if normalise else z
        log_p = F.log_softmax((u @ u.T / t).masked_fill(eye, -INF), dim=1)
        pair = -log_p.masked_fill(~positive, 0)
        if pairs:
            return pair.sum() / positive.sum()
        per_anchor = pair.sum(1) / (positive.sum(1) if over_positives == "mean" else 1)
        if anchors == "first view":
            per_anchor = per_anchor[: len(torch.unique(ids))]
        return per_anchor.sum() if over_anchors == "sum" else per_anchor.mean()
    return loss


# Each usual mistake, and a phrase its hint must contain.
MULTIVIEW_MISTAKES = {
    "the next view as the only positive": (next_view_only, "the next view only"),
    "one positive per anchor": (first_positive_only, "one positive only"),
    "self not excluded": (self_not_excluded, "among its own positives"),
    "the diagonal left in the denominator": (diagonal_in_denominator, "s_ii is still in the denominator"),
    "self in the positive mask (-inf)": (self_in_positive_mask, "the positive mask must leave out the diagonal"),
    "other positives left out of the denominator": (negatives_only_denominator, "removed the other positives"),
    "the positive twice in the denominator": (positive_twice, "counted twice"),
    "sum over the positives": (reduce_variant(over_positives="sum"), "summed −log p_ip"),
    "mean over all pairs": (reduce_variant(pairs=True), "all (anchor, positive) pairs"),
    "anchors from the first view only": (reduce_variant(anchors="first view"), "only the first view"),
    "sum over the anchors": (reduce_variant(over_anchors="sum"), "summed the per-anchor losses"),
    "no normalisation": (reduce_variant(normalise=False), "L2-normalising"),
    "temperature ignored": (reduce_variant(temperature_as="ignored"), "ignore the temperature"),
    "temperature multiplied": (reduce_variant(temperature_as="multiplied"), "multiplied the similarities"),
}


@pytest.mark.parametrize("fn, phrase", MULTIVIEW_MISTAKES.values(), ids=MULTIVIEW_MISTAKES.keys())
def test_a_usual_multiview_mistake_fails_with_its_hint(fn, phrase, capsys):
    assert check_multiview_nt_xent(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and phrase in out


def normalised_in_place(z, ids, temperature):
    with torch.no_grad():
        z /= z.norm(dim=1, keepdim=True)  # the loss does not change, the caller's z does
    return student_loss(z, ids, temperature)


@pytest.mark.parametrize("fn, phrase", [
    (lambda z, ids, temperature: student_loss(z, ids, temperature).item(), "return a torch tensor"),
    (lambda z, ids, temperature: student_loss(z, ids, temperature).detach(), "detached"),
    (lambda z, ids, temperature: student_loss(z, ids, temperature).expand(len(z)), "one loss per anchor"),
    (normalised_in_place, "in place"),
    (lambda z, ids, temperature: z[ids.max() * 100], "raised IndexError"),
], ids=["a float", "detached", "per anchor", "in place", "crash"])
def test_results_that_cannot_train_and_crashes_fail(fn, phrase, capsys):
    assert check_multiview_nt_xent(fn) is False
    assert phrase in capsys.readouterr().out


def test_not_implemented_is_reported(capsys):
    def stub(z, ids, temperature=0.5):
        raise NotImplementedError("Exercise")

    assert check_multiview_nt_xent(stub) is False
    assert "not implemented yet" in capsys.readouterr().out


# --- The gradient with respect to z_i --------------------------------------------------------------------

def formula(z, i, j, temperature, *, project=True, scale=True, projector="u", sign=1.0, use_t=True,
            keep_self=False, normalise=True):
    """∂ℓ_i/∂z_i from the chapter's ∂ℓ_i/∂u_i and the Jacobian of the normalisation, mistakes switchable."""
    u = F.normalize(z, dim=1) if normalise else z
    logits = u @ u[i] / temperature
    if not keep_self:
        logits[i] = -INF
    g = (torch.softmax(logits, 0) @ u - u[j]) / (temperature if use_t else 1.0)
    if not normalise:
        return g
    a = u[i] if projector == "u" else z[i]
    if project:
        g = g - (a @ g) * a
    return sign * (g / z[i].norm() if scale else g)


def jacobian_form(z, i, j, temperature):
    """The same, with the Jacobian (I − u_i u_iᵀ)/‖z_i‖ as a matrix."""
    u = F.normalize(z, dim=1)
    logits = (u @ u[i] / temperature).masked_fill(torch.arange(len(z)) == i, -INF)
    g_u = (torch.softmax(logits, 0) @ u - u[j]) / temperature
    jacobian = (torch.eye(z.shape[1], dtype=z.dtype) - torch.outer(u[i], u[i])) / z[i].norm()
    return jacobian @ g_u


@pytest.mark.parametrize("fn", [formula, jacobian_form], ids=["projection", "jacobian matrix"])
def test_right_gradients_pass(fn, capsys):
    assert check_anchor_grad_z(fn) is True
    assert capsys.readouterr().out.startswith("PASS")


GRADIENT_MISTAKES = {
    "the u-gradient, no projection": (dict(project=False, scale=False), "you returned ∂ℓ_i/∂u_i"),
    "projected, not divided by ‖z_i‖": (dict(scale=False), "did not divide by ‖z_i‖"),
    "divided by ‖z_i‖, not projected": (dict(project=False), "did not project"),
    "projector built from z_i": (dict(projector="z"), "UNIT vector"),
    "sign flipped": (dict(sign=-1.0), "sign is flipped"),
    "temperature forgotten": (dict(use_t=False), "1/temperature"),
    "the anchor in its own softmax": (dict(keep_self=True), "exclude the anchor itself"),
    "raw dot products": (dict(normalise=False), "raw dot products"),
}


@pytest.mark.parametrize("kwargs, phrase", GRADIENT_MISTAKES.values(), ids=GRADIENT_MISTAKES.keys())
def test_a_usual_gradient_mistake_fails_with_its_hint(kwargs, phrase, capsys):
    assert check_anchor_grad_z(lambda z, i, j, t: formula(z, i, j, t, **kwargs)) is False
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and phrase in out


def test_autograd_is_not_the_exercise(capsys):
    def by_autograd(z, i, j, temperature):
        anchor = z[i].clone().requires_grad_()
        u = F.normalize(z, dim=1)
        logits = (u @ (anchor / anchor.norm()) / temperature).masked_fill(torch.arange(len(z)) == i, -INF)
        return torch.autograd.grad(torch.logsumexp(logits, 0) - logits[j], anchor)[0]

    assert check_anchor_grad_z(by_autograd) is False
    out = capsys.readouterr().out
    assert "RuntimeError" in out and "write the formula" in out and "torch.no_grad()" in out


def test_wrong_shapes_in_place_changes_and_crashes_fail(capsys):
    every_row = lambda z, i, j, t: torch.stack([formula(z, k, j, t) for k in range(len(z))])  # noqa: E731
    assert check_anchor_grad_z(every_row) is False
    assert "return the gradient for the anchor row i only" in capsys.readouterr().out

    def in_place(z, i, j, t):
        z /= z.norm(dim=1, keepdim=True)
        return formula(z, i, j, t)

    assert check_anchor_grad_z(in_place) is False
    assert "changed z in place" in capsys.readouterr().out
    assert check_anchor_grad_z(lambda z, i, j, t: z[100]) is False
    assert "IndexError" in capsys.readouterr().out

    def stub(z, i, j, t):
        raise NotImplementedError

    assert check_anchor_grad_z(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
