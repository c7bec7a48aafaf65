"""Specification of chapter 4's self-check, check_lars_update: one LARS step as course_utils.train.LARS takes it
passes; each usual mistake fails with a hint that names it; a student's exception never escapes the check."""

import pytest
import torch

from course_utils.checks import check_lars_update
from course_utils.checks.ch04 import _lars_cases, _lars_reference, _lars_variant


def student_lars(w, grad, momentum_buffer, *, lr, momentum=0.9, weight_decay=1e-4, eta=0.02, clip=True,
                 divide_by_lr=True, decay_in_denominator=True, decay_in_gradient=True, momentum_first=False,
                 zero_check=True, sign=1.0):
    """One LARS step as a student writes it, with one usual mistake switched on by a keyword."""
    d = grad + weight_decay * w if decay_in_gradient else grad
    w_norm, g_norm = w.norm(), grad.norm()
    trust = eta * w_norm / (g_norm + (weight_decay * w_norm if decay_in_denominator else 0) + 1e-8)
    scale = trust / lr if divide_by_lr else trust
    if clip:
        scale = torch.clamp(scale, max=1.0)
    if zero_check and (w_norm == 0 or g_norm == 0):
        scale = torch.ones_like(scale)
    if momentum_first:
        buffer = d if momentum_buffer is None else momentum * momentum_buffer + d
        return w - sign * lr * scale * buffer, buffer
    buffer = scale * d if momentum_buffer is None else momentum * momentum_buffer + scale * d
    return w - sign * lr * buffer, buffer


def through_the_optimizer(w, grad, momentum_buffer, *, lr, momentum=0.9, weight_decay=1e-4, eta=0.02):
    return _lars_reference(w, grad, momentum_buffer, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)


def run(fn, capsys):
    passed = check_lars_update(fn)
    return passed, capsys.readouterr().out


@pytest.mark.parametrize("fn", [through_the_optimizer, student_lars], ids=["course_utils.train.LARS", "student"])
def test_a_right_lars_step_passes(fn, capsys):
    passed, out = run(fn, capsys)
    assert passed is True and out.startswith("PASS")


def test_the_written_out_reference_is_the_optimizer_and_the_cases_cover_both_regimes():
    hyper_names = ("lr", "momentum", "weight_decay", "eta")
    for name, w, grad, buffer, hyper in _lars_cases():
        for a, b in zip(_lars_variant(w, grad, buffer, **hyper), _lars_reference(w, grad, buffer, **hyper)):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-15), name
        assert set(hyper) == set(hyper_names)
    cases = {name.split(",")[0]: (w, grad, hyper) for name, w, grad, buffer, hyper in _lars_cases()}
    trust_over_lr = {name: h["eta"] * w.norm() / (g.norm() + h["weight_decay"] * w.norm()) / h["lr"]
                     for name, (w, g, h) in cases.items() if w.norm() > 0}
    assert trust_over_lr["a small gradient"] > 1 > trust_over_lr["the first step (momentum_buffer=None)"]
    large = cases["a large learning rate"]
    assert 1 < trust_over_lr["a large learning rate"] * large[2]["lr"] < large[2]["lr"]  # 1 < trust < lr


# Each usual mistake, and a phrase its hint must contain.
MISTAKES = {
    "no clipping": (dict(clip=False), "not clipped"),
    "LARS without the clip (lr·trust)": (dict(clip=False, divide_by_lr=False), "without the clip"),
    "the trust ratio not divided by lr": (dict(divide_by_lr=False), "compare the trust ratio with the learning rate"),
    "weight decay missing from the denominator": (dict(decay_in_denominator=False), "missing from the denominator"),
    "weight decay not added to the gradient": (dict(decay_in_gradient=False), "d = grad + weight_decay·w"),
    "momentum before the trust ratio": (dict(momentum_first=True), "momentum before the trust ratio"),
    "a zero weight never moves": (dict(zero_check=False), "a zero weight has trust ratio 0"),
    "up the gradient": (dict(sign=-1.0), "stepped up the gradient"),
}


@pytest.mark.parametrize("kwargs, phrase", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_usual_mistake_fails_with_its_hint(kwargs, phrase, capsys):
    passed, out = run(lambda w, g, b, **hyper: student_lars(w, g, b, **hyper, **kwargs), capsys)
    assert passed is False and out.startswith("FAIL") and phrase in out


def test_the_norm_of_the_decayed_gradient_in_the_denominator_fails(capsys):
    def decayed_norm(w, grad, momentum_buffer, *, lr, momentum, weight_decay, eta):
        d = grad + weight_decay * w
        scale = torch.clamp(eta * w.norm() / (d.norm() + 1e-8) / lr, max=1.0)
        scale = scale if w.norm() > 0 and grad.norm() > 0 else torch.ones_like(scale)
        buffer = scale * d if momentum_buffer is None else momentum * momentum_buffer + scale * d
        return w - lr * buffer, buffer

    passed, out = run(decayed_norm, capsys)
    assert passed is False and "‖grad + weight_decay·w‖" in out


def test_plain_sgd_is_told_that_its_step_is_too_large(capsys):
    def sgd(w, grad, momentum_buffer, *, lr, momentum, weight_decay, eta):
        d = grad + weight_decay * w
        buffer = d if momentum_buffer is None else momentum * momentum_buffer + d
        return w - lr * buffer, buffer

    passed, out = run(sgd, capsys)
    assert passed is False and "more than eta·‖w‖" in out


@pytest.mark.parametrize("fn, phrase", [
    (lambda w, g, b, **h: (-h["lr"] * student_lars(w, g, b, **h)[1], student_lars(w, g, b, **h)[1]),
     "you returned the step"),
    (lambda w, g, b, **h: (student_lars(w, g, b, **h)[0], g), "the new weight is right but the buffer is not"),
    (lambda w, g, b, **h: student_lars(w, g, b, **h)[0], "return two tensors"),
    (lambda w, g, b, **h: (student_lars(w, g, b, **h)[0], None), "return two tensors"),
    (lambda w, g, b, **h: (student_lars(w, g, b, **h)[0].flatten(), student_lars(w, g, b, **h)[1]), "shape"),
], ids=["the step", "a wrong buffer", "one tensor", "no buffer", "flattened"])
def test_wrong_results_fail(fn, phrase, capsys):
    passed, out = run(fn, capsys)
    assert passed is False and phrase in out


def test_in_place_updates_fail(capsys):
    def in_place(w, grad, momentum_buffer, **hyper):
        new_w, buffer = student_lars(w, grad, momentum_buffer, **hyper)
        w.copy_(new_w)  # as the optimiser does to its parameter; this function must not
        return w, buffer

    passed, out = run(in_place, capsys)
    assert passed is False and "in place" in out


def test_not_implemented_and_exceptions_are_reported_not_raised(capsys):
    def stub(w, grad, momentum_buffer, *, lr, momentum=0.9, weight_decay=1e-4, eta=0.02):
        raise NotImplementedError("Exercise")

    passed, out = run(stub, capsys)
    assert passed is False and "not implemented yet" in out
    passed, out = run(lambda w, g, b, **h: b * h["momentum"], capsys)  # None * 0.9 on the first step
    assert passed is False and "raised TypeError" in out
