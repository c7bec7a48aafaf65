"""check_standardize: PASS for training-set statistics, a precise hint for the usual leaks and slips."""

import pytest
import torch

from course_utils.checks import check_standardize


def reference(train, test, unbiased=True):
    mean, std = train.mean(0), train.std(0, unbiased=unbiased).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def pooled(train, test):
    both = torch.cat([train, test])
    mean, std = both.mean(0), both.std(0).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def run(fn, capsys):
    return check_standardize(fn), capsys.readouterr().out


@pytest.mark.parametrize("unbiased", [True, False])
def test_training_statistics_pass(unbiased, capsys):
    passed, out = run(lambda a, b: reference(a, b, unbiased), capsys)
    assert passed is True and out.startswith("PASS")


def test_not_implemented_is_reported_not_raised(capsys):
    def stub(a, b):
        raise NotImplementedError("Exercise")
    passed, out = run(stub, capsys)
    assert passed is False and "not implemented yet" in out


@pytest.mark.parametrize("fn, hint", [
    (lambda a, b: (reference(a, a)[0], reference(b, b)[0]), "TEST set's own mean/std"),
    (lambda a, b: pooled(a, b),
     "train and test together"),
    (lambda a, b: (a - a.mean(0), b - a.mean(0)), "did not divide"),
    (lambda a, b: ((a - a.mean(0)) / a.std(0), (b - a.mean(0)) / a.std(0)), "std 0"),
    (lambda a, b: a, "return two tensors"),
    (lambda a, b: (a / 0 + 1, b), "NaN or inf"),
])
def test_common_mistakes_get_a_hint(fn, hint, capsys):
    passed, out = run(fn, capsys)
    assert passed is False and out.startswith("FAIL") and hint in out


def test_a_crashing_function_is_reported(capsys):
    passed, out = run(lambda a, b: a @ b, capsys)
    assert passed is False and "raised RuntimeError" in out
