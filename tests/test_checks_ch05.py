"""Specification of chapter 5's self-checks: check_standardize (PASS for training-set statistics, a precise hint
for the usual leaks and slips) and check_knn_predict (the weighted cosine kNN classifier of chapter 4's monitor:
right answers pass, each usual mistake fails with a hint that names it, a student's exception never escapes)."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import check_knn_predict, check_standardize
from course_utils.checks.ch05 import _knn_cases
from course_utils.evaluate import knn_predict


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


# --- check_knn_predict: the weighted cosine kNN classifier --------------------------------------------------


def student_knn(bank, bank_labels, queries, k=200, temperature=0.1, *, normalise=True, weights="exp",
                rank="cosine", largest=True, cap=True):
    """The classifier as a student writes it (one-hot votes, a matrix product), one mistake switchable."""
    b, q = (F.normalize(bank, dim=1), F.normalize(queries, dim=1)) if normalise else (bank, queries)
    sim = q @ b.T
    order = -torch.cdist(queries, bank) if rank == "euclidean" else sim
    top = order.topk(min(k, len(bank)) if cap else k, dim=1, largest=largest).indices
    s = sim.gather(1, top)
    w = {"exp": (s / temperature).exp(), "uniform": torch.ones_like(s), "no temperature": s.exp(), "linear": s}[weights]
    one_hot = F.one_hot(bank_labels[top], int(bank_labels.max()) + 1).float()  # Q×k×C
    return torch.einsum("qk,qkc->qc", w, one_hot).argmax(1)


def knn_run(fn, capsys):
    return check_knn_predict(fn), capsys.readouterr().out


def through_the_reference(bank, bank_labels, queries, k=200, temperature=0.1):
    return knn_predict(bank, bank_labels, queries, k=k, temperature=temperature)


@pytest.mark.parametrize("fn", [through_the_reference, student_knn], ids=["reference", "student"])
def test_the_weighted_cosine_knn_passes(fn, capsys):
    passed, out = knn_run(fn, capsys)
    assert passed is True and out.startswith("PASS")


def test_the_cases_tell_the_variants_apart():
    """Raw dot products rank differently from cosines, and k=200 exceeds the last bank."""
    name, bank, labels, queries, k, t = _knn_cases()[0]
    norms = bank.norm(dim=1)
    assert norms.min() < 0.5 and norms.max() > 1.5
    assert _knn_cases()[-1][4] > len(_knn_cases()[-1][1])


KNN_MISTAKES = {
    "no normalisation (dot products)": (dict(normalise=False), "raw dot products"),
    "Euclidean ranking": (dict(rank="euclidean"), "Euclidean distance"),
    "an unweighted majority vote": (dict(weights="uniform"), "unweighted majority vote"),
    "weights without the temperature": (dict(weights="no temperature"), "ignore the temperature"),
    "the similarities as weights": (dict(weights="linear"), "not the similarities themselves"),
    "the least similar rows": (dict(largest=False), "LEAST similar"),
    "k not capped (a crash)": (dict(cap=False), "use min(k, len(bank))"),
}


@pytest.mark.parametrize("kwargs, phrase", KNN_MISTAKES.values(), ids=KNN_MISTAKES.keys())
def test_a_usual_knn_mistake_fails_with_its_hint(kwargs, phrase, capsys):
    passed, out = knn_run(lambda b, y, q, k=200, temperature=0.1: student_knn(b, y, q, k, temperature, **kwargs),
                          capsys)
    assert passed is False and out.startswith("FAIL") and phrase in out


def normalised_in_place(bank, bank_labels, queries, k=200, temperature=0.1):
    bank /= bank.norm(dim=1, keepdim=True)
    return student_knn(bank, bank_labels, queries, k, temperature)


@pytest.mark.parametrize("fn, phrase", [
    (lambda b, y, q, k=200, temperature=0.1: torch.zeros(len(q), int(y.max()) + 1), "the votes?"),
    (lambda b, y, q, k=200, temperature=0.1: student_knn(b, y, q, k, temperature).float(), "int64"),
    (lambda b, y, q, k=200, temperature=0.1: student_knn(b, y, q, k, temperature)[:-1], "one per query"),
    (lambda b, y, q, k=200, temperature=0.1: "seven", "return a tensor"),
    (normalised_in_place, "in place"),
    (lambda b, y, q, k=200, temperature=0.1: q @ b, "raised RuntimeError"),
], ids=["votes", "floats", "too few", "a string", "in place", "crash"])
def test_wrong_results_and_crashes_fail(fn, phrase, capsys):
    passed, out = knn_run(fn, capsys)
    assert passed is False and phrase in out


def test_knn_not_implemented_is_reported(capsys):
    def stub(bank, bank_labels, queries, k=200, temperature=0.1):
        raise NotImplementedError("Exercise")

    passed, out = knn_run(stub, capsys)
    assert passed is False and "not implemented yet" in out
