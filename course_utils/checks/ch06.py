"""Chapter 6's self-check, ``check_lloyd``: Lloyd's iterations of k-means, from given centroids.

``my_lloyd(x, centroids, iterations)`` returns (labels, centroids) as ``lloyd_reference`` does (this module's
own reference: squared Euclidean distance, ties to the lowest index, an empty cluster's centroid left where it
is, the labels of the FINAL centroids). Six cases must agree exactly (0 to 10 iterations, an empty cluster, a
tie); then a run of 0 to 6 iterations must never raise the within-cluster sum of squares. The hints name the
variant of ``_lloyd_variant`` that the student's output matches: centroids never updated, labels from before the
last update, an empty cluster moved to 0 (or NaN), Manhattan distance, ties broken upwards, one iteration too
many or too few.
"""

from __future__ import annotations

import numpy as np

from ._common import _call, _fail, _never_raises


def _assign(x, centroids, metric="sqeuclidean", ties="lowest"):
    """The index of each row's nearest centroid (ties to the lowest index, as np.argmin breaks them)."""
    difference = x[:, None, :] - centroids[None, :, :]
    distance = (difference ** 2).sum(-1) if metric == "sqeuclidean" else np.abs(difference).sum(-1)
    if ties == "highest":
        return len(centroids) - 1 - distance[:, ::-1].argmin(1)
    return distance.argmin(1)


def lloyd_reference(x, centroids, iterations):
    """Lloyd's algorithm for k-means from given centroids: the reference of ``check_lloyd``.

    x: N×D, centroids: K×D (NumPy). Each iteration assigns every row to its nearest centroid (squared Euclidean
    distance, ties to the lowest index) and moves every centroid to the mean of its rows (a centroid without
    rows stays where it is). Returns (labels, centroids): the final centroids (K×D float64) and the assignment
    of every row to them (N int64), so that the two agree. ``centroids`` is not modified.
    """
    x = np.asarray(x, dtype=np.float64)
    c = np.array(centroids, dtype=np.float64)  # a copy: the caller's array is left alone
    for _ in range(iterations):
        labels = _assign(x, c)
        for j in range(len(c)):
            if (labels == j).any():
                c[j] = x[labels == j].mean(0)
    return _assign(x, c).astype(np.int64), c


def _lloyd_variant(x, centroids, iterations, *, update=True, relabel=True, empty="keep", metric="sqeuclidean",
                   ties="lowest"):
    """Lloyd's iterations with one usual mistake switched on; the defaults give ``lloyd_reference``."""
    c = np.array(centroids, dtype=np.float64)
    labels = _assign(x, c, metric, ties)
    for _ in range(iterations):
        labels = _assign(x, c, metric, ties)
        if update:
            new = c.copy()
            for j in range(len(c)):
                members = x[labels == j]
                new[j] = members.mean(0) if len(members) else (c[j] if empty == "keep" else 0.0)
            c = new
    return (_assign(x, c, metric, ties) if relabel else labels), c


_LLOYD_MISTAKES = [  # (variant, hint)
    (dict(update=False), "the centroids never moved: after each assignment, move every centroid to the mean of its "
     "rows, and repeat that `iterations` times."),
    (dict(relabel=False), "the centroids are right but the labels were computed before the last update: assign the "
     "rows once more to the final centroids, so that every row's label names its nearest returned centroid."),
    (dict(empty="zero"), "an empty cluster's centroid became 0 (a sum of no rows divided by max(count, 1)?): a "
     "centroid without rows keeps its previous position."),
    (dict(metric="manhattan"), "you assigned by Manhattan distance (the sum of |x − c|): k-means minimises the "
     "squared Euclidean distance, ((x − c) ** 2).sum(-1)."),
    (dict(ties="highest"), "a row at the same distance from two centroids goes to the one with the LOWER index "
     "(np.argmin does that)."),
    ("one more", "you ran one iteration too many: `iterations` assignment-and-update steps, then the final "
     "assignment (iterations=0 only assigns)."),
    ("one fewer", "you ran one iteration too few: `iterations` assignment-and-update steps, then the final "
     "assignment (iterations=0 only assigns)."),
]


def _lloyd_cases() -> list:
    rng = np.random.default_rng(6)
    blobs = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]])[rng.integers(0, 3, 60)] + rng.normal(size=(60, 2))
    spread = rng.normal(size=(200, 5)) + 2.0 * rng.integers(0, 2, size=(200, 5))
    ties = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [6.0, 0.0]])
    return [
        ("3 blobs in 2-D, 3 clusters started at the first 3 rows, 2 iterations", blobs, blobs[:3], 2),
        ("the same, 0 iterations (the assignment alone)", blobs, blobs[:3], 0),
        ("200 rows in 5-D, 4 clusters, 2 iterations", spread, spread[:4], 2),
        ("the same, 10 iterations", spread, spread[:4], 10),
        ("an empty cluster: a centroid at (100, 100), far from every row, 3 iterations", blobs,
         np.vstack([blobs[:2], [[100.0, 100.0]]]), 3),
        ("a tie: the row (1, 0) is as far from (0, 0) as from (2, 0), and goes to cluster 0; 1 iteration", ties,
         ties[[0, 2]], 1),
    ]


def _wcss(x, labels, centroids) -> float:
    """Within-cluster sum of squares: Σ_i ‖x_i − c_{label_i}‖²."""
    return float(((x - centroids[labels]) ** 2).sum())


def _lloyd_output(student_fn, name, x, centroids, iterations):
    """Run the student's function on copies; return ((labels, centroids), None) or (None, message)."""
    given = (x.copy(), centroids.copy())
    out, message = _call(student_fn, name, *given, iterations)
    if message:
        return None, message
    if not (np.array_equal(given[0], x) and np.array_equal(given[1], centroids)):
        return None, (f"FAIL on {name}: it changed x or the initial centroids in place: work on a copy "
                      "(c = centroids.copy(), or np.array(centroids, dtype=float)).")
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        return None, f"FAIL on {name}: return two arrays, (labels, centroids)."
    try:
        labels, c = np.asarray(out[0]), np.asarray(out[1], dtype=np.float64)
    except (TypeError, ValueError) as error:
        return None, f"FAIL on {name}: the result is not two arrays ({error})."
    if labels.shape != (len(x),) or c.shape != centroids.shape:
        return None, (f"FAIL on {name}: expected labels of shape ({len(x)},) and centroids of shape "
                      f"{centroids.shape}, got {labels.shape} and {c.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        return None, (f"FAIL on {name}: the labels are {labels.dtype}: return integer cluster indices (argmin gives "
                      "them).")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(centroids)):
        return None, f"FAIL on {name}: the labels must be cluster indices from 0 to {len(centroids) - 1}."
    if not np.isfinite(c).all():
        return None, (f"FAIL on {name}: a centroid is NaN or infinite. Hint: the mean of an empty cluster is NaN "
                      "(0/0): a centroid without rows keeps its previous position.")
    return (labels, c), None


@_never_raises
def check_lloyd(student_fn) -> bool:
    """Check a student's ``my_lloyd(x, centroids, iterations) -> (labels, centroids)``: Lloyd's k-means.

    x: N×D NumPy array; centroids: K×D, the initial centroids (not to be modified). Each of the ``iterations``
    iterations assigns every row to its nearest centroid (squared Euclidean distance, ties to the lowest index)
    and moves each centroid to the mean of its rows; a centroid without rows keeps its position. Returns the
    final centroids (K×D) and the labels (N integers) of the rows' nearest FINAL centroids; iterations=0 gives
    the assignment to the initial centroids. The reference is ``lloyd_reference`` in this module.

    Exact agreement on six cases (0 to 10 iterations, an empty cluster, a tie), then a run of 0 to 6 iterations
    whose within-cluster sum of squares must never rise. Prints PASS, or FAIL with a hint (centroids never
    updated, labels from before the last update, an empty cluster turned NaN or 0, Manhattan distance, ties
    broken upwards, one iteration too many or too few); returns True/False. Never raises.
    """
    cases = _lloyd_cases()
    for name, x, centroids, iterations in cases:
        got, message = _lloyd_output(student_fn, name, x, centroids, iterations)
        if message:
            print(message)
            return False
        labels, c = got
        expected_labels, expected_c = lloyd_reference(x, centroids, iterations)
        if np.array_equal(labels, expected_labels) and np.allclose(c, expected_c, rtol=1e-7, atol=1e-9):
            continue
        hint = "compare one iteration by hand with the reference: assign (argmin), then update (mean per cluster)."
        for mistake, text in _LLOYD_MISTAKES:
            if isinstance(mistake, str):
                n = iterations + 1 if mistake == "one more" else iterations - 1
                wrong = lloyd_reference(x, centroids, n) if n >= 0 else None
            else:
                wrong = _lloyd_variant(x, centroids, iterations, **mistake)
            if wrong is not None and np.array_equal(labels, wrong[0]) and np.allclose(c, wrong[1], 1e-7, 1e-9):
                hint = text
                break
        wrong_labels, wrong_c = int((labels != expected_labels).sum()), int((~np.isclose(c, expected_c)).any(1).sum())
        return _fail(name, f"{wrong_labels} of {len(x)} labels and {wrong_c} of {len(c)} centroids differ from the "
                           f"reference. Hint: {hint}")
    x, start = cases[2][1], cases[2][2]
    sums = []
    for iterations in range(7):
        got, message = _lloyd_output(student_fn, f"200 rows in 5-D, {iterations} iterations", x, start, iterations)
        if message:
            print(message)
            return False
        sums.append(_wcss(x, *got))
        if len(sums) > 1 and sums[-1] > sums[-2] * (1 + 1e-12):
            return _fail(f"200 rows in 5-D, {iterations - 1} then {iterations} iterations",
                         f"the within-cluster sum of squares rose from {sums[-2]:.4f} to {sums[-1]:.4f}. Assigning "
                         "each row to its nearest centroid, and moving each centroid to its rows' mean, can only "
                         "lower it.")
    print(f"PASS: your Lloyd iterations match the reference on {len(cases)} cases (an empty cluster, a tie, 0 to 10 "
          f"iterations), and the within-cluster sum of squares falls from {sums[0]:.1f} to {sums[-1]:.1f} over "
          "6 iterations, never rising.")
    return True
