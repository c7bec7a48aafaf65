"""Specification of chapter 3's self-check `check_anchor_grad` (the hand-derived gradient of one
anchor's NT-Xent term): PASS for the formula and for autograd, hints for the usual mistakes.

Retired from chapter 3 (the notebook now asks for the gradient with respect to z_i); the check
stays for the grading tool and older student copies.
"""

import pytest
import torch

from course_utils.checks import check_anchor_grad
from course_utils.losses import nt_xent_anchor_grad


def formula(u, i, j, temperature, sign=1.0, scale=True, keep_self=False):
    logits = u @ u[i] / temperature
    if not keep_self:
        logits = logits.masked_fill(torch.arange(len(u)) == i, float("-inf"))
    p = torch.softmax(logits, dim=0)
    return sign * (p @ u - u[j]) / (temperature if scale else 1.0)


def by_autograd(u, i, j, temperature):
    anchor = u[i].clone().requires_grad_()
    logits = (u @ anchor / temperature).masked_fill(torch.arange(len(u)) == i, float("-inf"))
    return torch.autograd.grad(torch.logsumexp(logits, 0) - logits[j], anchor)[0]


def run(fn, capsys):
    return check_anchor_grad(fn), capsys.readouterr().out


@pytest.mark.parametrize("fn", [nt_xent_anchor_grad, formula, by_autograd], ids=["reference", "formula", "autograd"])
def test_correct_gradients_pass(fn, capsys):
    passed, out = run(fn, capsys)
    assert passed is True and out.startswith("PASS")


@pytest.mark.parametrize("kwargs, hint", [
    (dict(sign=-1.0), "sign is flipped"),
    (dict(scale=False), "1/temperature"),
    (dict(keep_self=True), "exclude k = i"),
])
def test_common_mistakes_fail_with_a_hint(kwargs, hint, capsys):
    passed, out = run(lambda u, i, j, t: formula(u, i, j, t, **kwargs), capsys)
    assert passed is False and out.startswith("FAIL") and hint in out


def test_wrong_shape_and_crashes_are_reported_not_raised(capsys):
    passed, out = run(lambda u, i, j, t: formula(u, i, j, t)[None], capsys)
    assert passed is False and "shape" in out
    passed, out = run(lambda u, i, j, t: u[100], capsys)
    assert passed is False and "IndexError" in out

    def todo(u, i, j, t):
        raise NotImplementedError
    passed, out = run(todo, capsys)
    assert passed is False and "not implemented yet" in out
