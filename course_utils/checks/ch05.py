"""Chapter 5's self-checks: standardising features for the linear probe, and the weighted kNN classifier.

``check_standardize`` asks for (x − mean) / std per feature, with the statistics of the TRAINING features only,
finite for a constant feature; it recognises the test set standardised with its own statistics, statistics of
train and test together, rows standardised instead of columns, and a missing division. ``check_knn_predict``
compares ``my_knn_predict(bank, bank_labels, queries, k, temperature)`` with ``evaluate.knn_predict`` (Wu et
al. 2018, chapter 4's kNN monitor) on four cases, k = 1, 20, 200 and a k above the bank's size; a prediction
passes when it wins the reference's vote (ties within rounding go either way), and the hint names the variant
of ``_knn_votes`` whose vote the student's predictions win: raw dot products, Euclidean ranking, an unweighted
vote, a forgotten temperature, the similarities as weights, the least similar rows (and k not capped at the
bank's size, when the student's function raises).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import _call, _fail, _never_raises


# --- Chapter 5: standardising features for the linear probe --------------------------------------

def _standardize_cases() -> list:
    g = torch.Generator().manual_seed(5)
    cases = []
    for n_train, n_test, d in [(50, 20, 4), (200, 30, 16), (7, 3, 2)]:
        train = 3.0 + 2.0 * torch.randn(n_train, d, generator=g)
        test = 5.0 + 4.0 * torch.randn(n_test, d, generator=g)  # shifted: test statistics differ from train's
        cases.append((f"{n_train} training and {n_test} test rows, D={d}", train, test))
    train, test = torch.randn(30, 3, generator=g), torch.randn(10, 3, generator=g)
    train[:, 1], test[:, 1] = 0.5, 0.5  # a feature that never changes (a dead ReLU unit)
    cases.append(("a constant feature (std 0)", train, test))
    return cases


@_never_raises
def check_standardize(student_fn) -> bool:
    """Check a student's `standardize(train_features, test_features) -> (train_out, test_out)`.

    Both outputs must be (x - mean) / std with the mean and std of each feature (column) computed on the
    TRAINING features only (torch's unbiased std or the population std are both accepted), and stay finite
    when a feature is constant. Prints PASS, or FAIL with a hint; returns True/False.
    """
    cases = _standardize_cases()
    for name, train, test in cases:
        out, message = _call(student_fn, name, train.clone(), test.clone())
        if message:
            print(message)
            return False
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            print(f"FAIL on {name}: return two tensors, (standardised train, standardised test).")
            return False
        a, b = (torch.as_tensor(o).double() for o in out)
        if a.shape != train.shape or b.shape != test.shape:
            print(f"FAIL on {name}: shapes {tuple(a.shape)} and {tuple(b.shape)}, expected {tuple(train.shape)} "
                  f"and {tuple(test.shape)} (standardise each feature, keep every row).")
            return False
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            print(f"FAIL on {name}: the output has NaN or inf. Hint: a feature that never changes has std 0; "
                  "divide by std.clamp_min(1e-6).")
            return False
        x, y = train.double(), test.double()

        def matches(mean, std):
            return all(torch.allclose(got, (ref - mean) / std, rtol=1e-4, atol=1e-4) for got, ref in ((a, x), (b, y)))

        good = any(matches(x.mean(0), x.std(0, unbiased=u).clamp_min(1e-6)) for u in (True, False))
        if good:
            continue
        both = torch.cat([x, y])
        hint = "subtract the training mean of each feature and divide by the training std (dim=0)."
        if any(torch.allclose(b, (y - y.mean(0)) / y.std(0, unbiased=u).clamp_min(1e-6), rtol=1e-4, atol=1e-4)
               for u in (True, False)):
            hint = ("the test features were standardised with the TEST set's own mean/std. Use the training "
                    "statistics for both: the test set must not influence any choice, not even a scale.")
        elif any(torch.allclose(b, (y - both.mean(0)) / both.std(0, unbiased=u).clamp_min(1e-6), rtol=1e-4,
                                atol=1e-4) for u in (True, False)):
            hint = "you computed the statistics on train and test together: use the training features only."
        elif any(torch.allclose(a, (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True, unbiased=u), rtol=1e-4,
                                atol=1e-4) for u in (True, False)):
            hint = "you standardised each row (dim=1): standardise each feature, i.e. each column (dim=0)."
        elif torch.allclose(a, x - x.mean(0), rtol=1e-4, atol=1e-4):
            hint = "you subtracted the mean but did not divide by the standard deviation."
        print(f"FAIL on {name}: {hint}")
        return False
    print(f"PASS: your standardize uses the training statistics only, on {len(cases)} cases "
          "(including a constant feature).")
    return True


# --- Chapter 5: the weighted kNN classifier (chapter 4's monitor) ---------------------------------------

def _knn_votes(bank, labels, queries, k, t, *, normalise=True, weight="exp", rank="cosine", largest=True):
    """Q×C summed votes of the weighted cosine kNN classifier (float64), with one usual mistake switched on."""
    b, q = bank.double(), queries.double()
    similarity = F.normalize(q, dim=1) @ F.normalize(b, dim=1).T if normalise else q @ b.T
    order = -torch.cdist(q, b) if rank == "euclidean" else similarity  # Euclidean: on the raw features
    top = order.topk(min(k, len(b)), dim=1, largest=largest).indices
    s = similarity.gather(1, top)
    weights = {"exp": (s / t).exp(), "uniform": torch.ones_like(s), "no temperature": s.exp(), "linear": s}[weight]
    n_classes = int(labels.max()) + 1
    return torch.zeros(len(q), n_classes, dtype=torch.float64).scatter_add_(1, labels[top], weights)


def _wins(predictions, votes) -> bool:
    """True when every prediction gets the largest vote (ties within rounding count as wins)."""
    if predictions.min() < 0 or predictions.max() >= votes.shape[1]:
        return False
    best = votes.max(1).values
    return bool((votes.gather(1, predictions[:, None]).squeeze(1) >= best - 1e-6 * best.abs() - 1e-12).all())


_KNN_MISTAKES = [  # (variant, hint)
    (dict(normalise=False), "you used raw dot products: normalise the rows of the bank and of the queries first "
     "(F.normalize(x, dim=1)), so that the similarity is the cosine, for the ranking and for the weights."),
    (dict(rank="euclidean"), "you ranked the neighbours by Euclidean distance on the raw features: rank them by "
     "cosine similarity (for unit rows the two orders agree, for raw features they do not)."),
    (dict(weight="uniform"), "this is an unweighted majority vote: neighbour j votes with weight exp(s_j / "
     "temperature), so that close neighbours count more than far ones."),
    (dict(weight="no temperature"), "the weights ignore the temperature: exp(s_j / temperature), not exp(s_j)."),
    (dict(weight="linear"), "the weights are exp(s_j / temperature), not the similarities themselves."),
    (dict(largest=False), "you took the k LEAST similar rows: topk(k, dim=1) keeps the largest."),
]


def _knn_cases() -> list:
    g = torch.Generator().manual_seed(5)

    def draw(n, centres):  # overlapping classes, rows of lengths 0.3–2 (so that cosine and dot product differ)
        y = torch.randint(0, len(centres), (n,), generator=g)
        x = F.normalize(centres[y] + torch.randn(n, centres.shape[1], generator=g), dim=1)
        return x * (0.3 + 1.7 * torch.rand(n, 1, generator=g)), y

    cases = []
    for n_bank, n_query, d, classes, k, t in [(200, 60, 16, 5, 20, 0.1), (400, 80, 8, 10, 200, 0.07),
                                              (100, 40, 16, 4, 1, 0.5), (30, 20, 8, 3, 200, 0.1)]:
        centres = 2 * F.normalize(torch.randn(classes, d, generator=g), dim=1)
        (bank, labels), (queries, _) = draw(n_bank, centres), draw(n_query, centres)
        cases.append((f"a bank of {n_bank}×{d} ({classes} classes), {n_query} queries, k={k}, temperature={t}",
                      bank, labels, queries, k, t))
    return cases


def _knn_hint(student_fn, cases, failing, predictions):
    """The hint of the mistake whose votes the student's predictions win on the failing case; when several do
    (a vote of 20 neighbours is often the same with or without weights), the one they also win on the others."""
    name, bank, labels, queries, k, t = next(case for case in cases if case[0] == failing)
    found = [(mistake, hint) for mistake, hint in _KNN_MISTAKES
             if _wins(predictions, _knn_votes(bank, labels, queries, k, t, **mistake))]
    if len(found) > 1:
        def explains(mistake):
            for name, bank, labels, queries, k, t in cases:
                out, message = _call(student_fn, name, bank.clone(), labels.clone(), queries.clone(), k=k,
                                     temperature=t)
                try:
                    other = torch.as_tensor(out).long().cpu()
                except Exception:
                    continue
                if not message and other.shape == (len(queries),) and \
                        not _wins(other, _knn_votes(bank, labels, queries, k, t, **mistake)):
                    return False
            return True

        found = [(mistake, hint) for mistake, hint in found if explains(mistake)] or found
    return found[0][1] if found else None


@_never_raises
def check_knn_predict(student_fn) -> bool:
    """Check a student's ``my_knn_predict(bank, bank_labels, queries, k=200, temperature=0.1)``.

    bank: B×D features with int64 labels (B); queries: Q×D. Returns the Q predicted labels (int64), as
    ``course_utils.evaluate.knn_predict`` (Wu et al. 2018, the kNN monitor of chapter 4): normalise the rows;
    each query takes its k most cosine-similar bank rows (k capped at B); neighbour j votes for its class with
    weight exp(s_j / temperature); the largest summed vote wins (a tie within rounding may go either way).

    Cases: overlapping random classes with rows of lengths 0.3–2, k = 20, 200, 1 and a k larger than the bank.
    Inputs must not be modified. Prints PASS, or FAIL with a hint (dot products, Euclidean ranking, an
    unweighted vote, a forgotten temperature, k not capped, ...); returns True/False. Never raises.
    """
    from ..evaluate import knn_predict

    cases = _knn_cases()
    for name, bank, labels, queries, k, t in cases:
        given = (bank.clone(), labels.clone(), queries.clone())
        out, message = _call(student_fn, name, *given, k=k, temperature=t)
        if message:
            if message.startswith("FAIL") and k > len(bank):
                message = f"{message.rstrip('.')}. Hint: k = {k} is more than the {len(bank)} rows of the bank: use " \
                          "min(k, len(bank))."
            print(message)
            return False
        if not all(torch.equal(a, b) for a, b in zip(given, (bank, labels, queries))):
            return _fail(name, "it changed the bank, the labels or the queries in place: normalise into new tensors "
                               "(F.normalize(x, dim=1)), not x /= ....")
        try:
            predictions = torch.as_tensor(out)
        except Exception:
            return _fail(name, f"it returned a {type(out).__name__}; return a tensor of Q class labels (int64).")
        votes = _knn_votes(bank, labels, queries, k, t)
        if tuple(predictions.shape) == tuple(votes.shape):
            return _fail(name, f"it returned a {tuple(votes.shape)} matrix (the votes?): return the winning class of "
                               "each query, votes.argmax(1).")
        if tuple(predictions.shape) != (len(queries),):
            return _fail(name, f"expected {len(queries)} predictions, one per query, got shape "
                               f"{tuple(predictions.shape)}.")
        if predictions.is_floating_point() or predictions.dtype == torch.bool:
            return _fail(name, f"it returned {predictions.dtype}: return class labels as int64 (argmax gives them).")
        predictions = predictions.long().cpu()
        expected = knn_predict(bank, labels, queries, k=k, temperature=t)
        if _wins(predictions, votes):
            continue
        wrong = int((predictions != expected).sum())
        hint = _knn_hint(student_fn, cases, name, predictions) or (
            "follow the steps: normalise, similarities queries @ bank.T, topk, weights exp(s / temperature), "
            "scatter_add_ the weights into one column per class, argmax.")
        return _fail(name, f"{wrong} of {len(queries)} predictions differ from the reference. Hint: {hint}")
    print(f"PASS: your kNN classifier predicts as course_utils.evaluate.knn_predict on {len(cases)} cases "
          "(k = 1, 20, 200, and k larger than the bank; temperatures 0.07–0.5).")
    return True
