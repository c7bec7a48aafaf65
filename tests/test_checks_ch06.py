"""Specification of chapter 6's self-check, check_lloyd (Lloyd's k-means iterations from given centroids):
right answers pass, each usual mistake fails with a hint that names it, and a student's exception never
escapes the check."""

import numpy as np
import pytest

from course_utils.checks import check_lloyd, lloyd_reference
from course_utils.checks.ch06 import _lloyd_cases


def student_lloyd(x, centroids, iterations, *, update=True, relabel=True, empty="keep", metric="euclidean",
                  copy=True, extra=0):
    """Lloyd's algorithm as a student writes it (vectorised, bincount means), one mistake switchable."""
    c = np.array(centroids, dtype=float) if copy else centroids

    def assign(c):
        if metric == "manhattan":
            return np.abs(x[:, None] - c[None]).sum(-1).argmin(1)
        return ((x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None]).argmin(1)  # the expanded square

    labels = assign(c)
    for _ in range(iterations + extra):
        labels = assign(c)
        if update:
            counts = np.bincount(labels, minlength=len(c))
            sums = np.zeros_like(c)
            np.add.at(sums, labels, x)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = sums / (counts[:, None] if empty == "nan" else np.maximum(counts, 1)[:, None])
            c[:] = np.where(counts[:, None] > 0, means, c) if empty == "keep" else means
    return (assign(c) if relabel else labels), c


def run(fn, capsys):
    return check_lloyd(fn), capsys.readouterr().out


@pytest.mark.parametrize("fn", [lloyd_reference, student_lloyd], ids=["reference", "student"])
def test_lloyds_algorithm_passes(fn, capsys):
    passed, out = run(fn, capsys)
    assert passed is True and out.startswith("PASS")


def test_the_reference_keeps_an_empty_cluster_and_breaks_ties_downwards():
    cases = {name.split(":")[0]: case for name, *case in _lloyd_cases()}
    x, centroids, iterations = cases["an empty cluster"]
    labels, c = lloyd_reference(x, centroids, iterations)
    assert 2 not in labels and np.array_equal(c[2], [100.0, 100.0])
    x, centroids, iterations = cases["a tie"]
    labels, c = lloyd_reference(x, centroids, iterations)
    assert np.array_equal(labels, [0, 0, 0, 1]) and np.allclose(c, [[0.5, 0.0], [4.0, 0.0]])
    assert np.array_equal(centroids, x[[0, 2]])  # not modified


# Each usual mistake, and a phrase its hint must contain.
MISTAKES = {
    "centroids never updated": (dict(update=False), "the centroids never moved"),
    "labels from before the last update": (dict(relabel=False), "computed before the last update"),
    "an empty cluster becomes NaN": (dict(empty="nan"), "the mean of an empty cluster is NaN"),
    "an empty cluster becomes 0": (dict(empty="zero"), "an empty cluster's centroid became 0"),
    "Manhattan distance": (dict(metric="manhattan"), "Manhattan distance"),
    "one iteration too many": (dict(extra=1), "one iteration too many"),
    "one iteration too few": (dict(extra=-1), "one iteration too few"),
    "the initial centroids changed in place": (dict(copy=False), "in place"),
}


@pytest.mark.parametrize("kwargs, phrase", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_usual_mistake_fails_with_its_hint(kwargs, phrase, capsys):
    passed, out = run(lambda x, c, n: student_lloyd(x, c, n, **kwargs), capsys)
    assert passed is False and out.startswith("FAIL") and phrase in out


def test_ties_broken_upwards_fail(capsys):
    def highest(x, centroids, iterations):
        c = np.array(centroids, dtype=float)
        for _ in range(iterations + 1):
            distance = ((x[:, None] - c[None]) ** 2).sum(-1)
            labels = len(c) - 1 - distance[:, ::-1].argmin(1)
            if _ < iterations:
                c = np.array([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(len(c))])
        return labels, c

    passed, out = run(highest, capsys)
    assert passed is False and "a tie" in out and "LOWER index" in out


def test_a_sum_of_squares_that_rises_fails(capsys):
    def restarts_after_four(x, centroids, iterations):  # right on the exact cases, wrong for 5 and 6 iterations
        return lloyd_reference(x, centroids, 0 if iterations in (5, 6) else iterations)

    passed, out = run(restarts_after_four, capsys)
    assert passed is False and "4 then 5 iterations" in out and "rose" in out


@pytest.mark.parametrize("fn, phrase", [
    (lambda x, c, n: lloyd_reference(x, c, n)[0], "return two arrays"),
    (lambda x, c, n: (lloyd_reference(x, c, n)[0].astype(float), lloyd_reference(x, c, n)[1]), "integer"),
    (lambda x, c, n: (lloyd_reference(x, c, n)[0][:-1], lloyd_reference(x, c, n)[1]), "shape"),
    (lambda x, c, n: (lloyd_reference(x, c, n)[0], lloyd_reference(x, c, n)[1].T), "shape"),
    (lambda x, c, n: (lloyd_reference(x, c, n)[0] + 1, lloyd_reference(x, c, n)[1]), "cluster indices from 0"),
], ids=["labels only", "float labels", "a label short", "centroids transposed", "labels from 1"])
def test_malformed_results_fail(fn, phrase, capsys):
    passed, out = run(fn, capsys)
    assert passed is False and phrase in out


def test_an_input_changed_in_place_fails(capsys):
    def shuffles_x(x, centroids, iterations):
        labels, c = lloyd_reference(x, centroids, iterations)
        x[:] = x[::-1]
        return labels, c

    passed, out = run(shuffles_x, capsys)
    assert passed is False and "in place" in out


def test_not_implemented_and_crashes_are_reported_not_raised(capsys):
    def stub(x, centroids, iterations):
        raise NotImplementedError("Exercise")

    passed, out = run(stub, capsys)
    assert passed is False and "not implemented yet" in out
    passed, out = run(lambda x, c, n: x @ c, capsys)
    assert passed is False and "raised ValueError" in out
