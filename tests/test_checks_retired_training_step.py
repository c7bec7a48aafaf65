"""Specification of chapter 2's self-check, check_training_step: a correct SimCLR step passes; the usual
mistakes fail with a hint that names them; a student's exception never escapes the check.

Retired from chapter 2 (the notebook now asks for the projection head); the check stays for
the grading tool and older student copies.
"""

import pytest
import torch

from course_utils.checks import check_training_step
from course_utils.losses import nt_xent


def student_step(model, batch, augment, optimizer, temperature=0.5, *, views=2, passes=1, zero_grad=True,
                 use_h=False, as_tensor=False, ignore_temperature=False):
    """A SimCLR step as a student writes it, with one mistake switched on at a time."""
    x1 = augment(batch)
    x2 = augment(batch) if views == 2 else x1
    if passes == 1:
        h, z = model(torch.cat([x1, x2]))
    else:  # two forward passes: batch norm sees each view separately
        (h1, z1), (h2, z2) = model(x1), model(x2)
        h, z = torch.cat([h1, h2]), torch.cat([z1, z2])
    out = h if use_h else z
    loss = nt_xent(*out.chunk(2), 0.5 if ignore_temperature else temperature)
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss if as_tensor else loss.item()


def run(fn, capsys):
    passed = check_training_step(fn)
    return passed, capsys.readouterr().out


def test_a_correct_step_passes(capsys):
    passed, out = run(student_step, capsys)
    assert passed is True and out.startswith("PASS")


def test_the_check_leaves_the_global_random_state_alone(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_training_step(student_step)
    assert torch.equal(torch.rand(3), expected)


def mistake(**kwargs):
    return lambda model, batch, augment, optimizer, temperature: student_step(
        model, batch, augment, optimizer, temperature, **kwargs)


# Each usual mistake, and the phrases its hint must contain.
MISTAKES = {
    "one view used twice": (dict(views=1), ["augment was called 1 time"]),
    "two forward passes": (dict(passes=2), ["ONE forward pass"]),
    "returning a tensor": (dict(as_tensor=True), ["loss.item()"]),
    "loss on h instead of z": (dict(use_h=True), ["you used h"]),
    "ignoring the temperature": (dict(ignore_temperature=True), ["ignored the temperature"]),
    "no zero_grad (fails on the second step)": (dict(zero_grad=False), ["FAIL on step 2", "zero_grad"]),
}


@pytest.mark.parametrize("kwargs, phrases", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_usual_mistake_fails_with_a_hint_that_names_it(kwargs, phrases, capsys):
    passed, out = run(mistake(**kwargs), capsys)
    assert passed is False
    for phrase in phrases:
        assert phrase in out


def test_no_optimizer_step_fails(capsys):
    def no_step(model, batch, augment, optimizer, temperature):
        _, z = model(torch.cat([augment(batch), augment(batch)]))
        return nt_xent(*z.chunk(2), temperature).item()

    passed, out = run(no_step, capsys)
    assert passed is False and "parameters did not change" in out


def test_not_implemented_and_exceptions_are_reported_not_raised(capsys):
    def stub(*args):
        raise NotImplementedError("Exercise")

    def buggy(*args):
        raise KeyError("oops")

    passed, out = run(stub, capsys)
    assert passed is False and "not implemented yet" in out
    passed, out = run(buggy, capsys)
    assert passed is False and "KeyError" in out
