"""check_cluster_accuracy: PASS for a one-to-one (Hungarian) matching, hints for the usual mistakes.

Retired from chapter 6 (the notebook now asks for Lloyd's k-means); the check stays for the
grading tool and older student copies.
"""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from course_utils.checks import check_cluster_accuracy
from course_utils.evaluate import cluster_accuracy


def student(y_true, y_pred, maximize=True, normalise=True):
    k = max(y_true.max(), y_pred.max()) + 1
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(counts, maximize=maximize)
    matched = counts[rows, cols].sum()
    return matched / len(y_true) if normalise else matched


def majority_vote(y_true, y_pred):
    return sum(np.bincount(y_true[y_pred == c]).max() for c in np.unique(y_pred)) / len(y_true)


def run(fn, capsys):
    return check_cluster_accuracy(fn), capsys.readouterr().out


@pytest.mark.parametrize("fn", [cluster_accuracy, student], ids=["reference", "student"])
def test_hungarian_matching_passes(fn, capsys):
    passed, out = run(fn, capsys)
    assert passed is True and out.startswith("PASS")


@pytest.mark.parametrize("fn, hint", [
    (lambda t, p: float(np.mean(t == p)), "compared cluster ids with labels directly"),
    (majority_vote, "one-to-one"),
    (lambda t, p: student(t, p, maximize=False), "maximize=True"),
    (lambda t, p: student(t, p, normalise=False), "divide by the number of points"),
    (lambda t, p: "high", "return one number"),
])
def test_common_mistakes_get_a_hint(fn, hint, capsys):
    passed, out = run(fn, capsys)
    assert passed is False and out.startswith("FAIL") and hint in out


def test_not_implemented_and_crashes_never_raise(capsys):
    def stub(t, p):
        raise NotImplementedError
    assert run(stub, capsys) == (False, run(stub, capsys)[1])
    assert "not implemented yet" in run(stub, capsys)[1]
    passed, out = run(lambda t, p: t[len(t)], capsys)
    assert passed is False and "raised IndexError" in out
