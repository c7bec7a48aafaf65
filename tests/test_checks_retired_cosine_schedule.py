"""Specification of chapter 4's self-check (course_utils.checks.check_cosine_schedule): PASS for a
right schedule, a useful hint for the usual wrong ones, and never an exception from a student's mistake.

Retired from chapter 4 (the notebook now asks for a LARS step); the check stays for the grading
tool and older student copies.
"""

import math

import pytest

from course_utils.checks import check_cosine_schedule
from course_utils.train import warmup_cosine


def student(step, total, warmup, base_lr, *, warm_from_zero=False, cosine_offset=True, half=True, scale=True):
    """How a student typically writes it, with one usual mistake switched on by a keyword."""
    if step < warmup:
        factor = (step if warm_from_zero else step + 1) / warmup
    else:
        progress = (step - warmup) / (total - warmup) if cosine_offset else step / total
        factor = 0.5 * (1 + math.cos(math.pi * progress)) if half else math.cos(math.pi * progress)
    return base_lr * factor if scale else factor


def run(fn, capsys):
    passed = check_cosine_schedule(fn)
    return passed, capsys.readouterr().out


def test_reference_and_student_pass(capsys):
    for fn in (lambda s, t, w, b: b * warmup_cosine(s, w, t), student):
        passed, out = run(fn, capsys)
        assert passed is True and out.startswith("PASS")


@pytest.mark.parametrize("mistake, words", [
    (dict(warm_from_zero=True), "(step + 1) / warmup"),
    (dict(cosine_offset=False), "after the warm-up"),
    (dict(half=False), "0.5 * (1 + cos"),
    (dict(scale=False), "multiply it by base_lr"),
])
def test_usual_mistakes_get_their_hint(mistake, words, capsys):
    passed, out = run(lambda s, t, w, b: student(s, t, w, b, **mistake), capsys)
    assert passed is False and out.startswith("FAIL") and words in out


def test_unrecognised_error_gets_a_generic_hint(capsys):
    passed, out = run(lambda s, t, w, b: student(s, t, w, b) + 1e-3, capsys)
    assert passed is False and "plot your schedule" in out


def test_not_implemented_and_crashes_do_not_raise(capsys):
    def stub(step, total, warmup, base_lr):
        raise NotImplementedError("Exercise")

    passed, out = run(stub, capsys)
    assert passed is False and "not implemented yet" in out
    passed, out = run(lambda s, t, w, b: 1 / 0, capsys)
    assert passed is False and "ZeroDivisionError" in out


def test_non_number_is_reported(capsys):
    passed, out = run(lambda s, t, w, b: "0.1", capsys)  # float("0.1") works: a string number is fine
    assert passed is False  # ...but the value is wrong for almost every step
    passed, out = run(lambda s, t, w, b: [b], capsys)
    assert passed is False and "return a number" in out
