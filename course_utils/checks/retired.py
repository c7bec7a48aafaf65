"""The retired self-checks: exercises that no chapter asks for any more (their answers were on the page).

The grading tool and older student copies still call them, so they stay, each with its test
(tests/test_checks.py and tests/test_checks_retired_*.py). ``check_nt_xent`` (chapter 3, NT-Xent for two views)
names the mistake the student's value matches among the variants of ``_nt_xent_variant`` (the diagonal kept,
the positive as the anchor itself, no normalisation, CLIP's cross-view loss, the positive out of the
denominator, one view as anchors, a sum, the temperature ignored or inverted, a factor of 2).
``check_anchor_grad`` (chapter 3) compares ∂ℓ_i/∂u_i with autograd. ``check_cosine_schedule`` (chapter 4)
checks the warm-up and cosine learning rate at every phase. ``check_cluster_accuracy`` (chapter 6) asks for the
best ONE-TO-ONE matching of clusters to classes and recognises purity, the worst matching, ids compared
directly, a count instead of a fraction. ``check_training_step`` (chapter 2) runs two SimCLR steps on a tiny
model with a counting augmentation: two views, one forward pass on both, the loss on z as a float, and the
parameters exactly where two reference steps leave them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..augment import to_float
from ..losses import nt_xent
from ._common import _NOT_IMPLEMENTED, _call, _call_number


# --- Retired from chapter 3: NT-Xent for two views ----------------------------------------------------

def _nt_xent_variant(z1, z2, t, *, normalise=True, keep_diagonal=False, positive_in_denominator=True,
                     positive_is_self=False, cross_view_only=False, anchors=2, reduce="mean") -> float:
    """The reference loss with one common mistake switched on; used only to recognise mistakes."""
    n = len(z1)
    z = torch.cat([z1, z2]).double()
    z = F.normalize(z, dim=1) if normalise else z
    sim = z @ z.T / t
    rows = torch.arange(2 * n)
    positive = rows if positive_is_self else (rows + n) % (2 * n)
    keep = torch.ones(2 * n, 2 * n, dtype=torch.bool)
    if cross_view_only:  # CLIP-style: z1 is compared with z2 only, and z2 with z1 only
        view = rows // n
        keep = view[:, None] != view[None, :]
    if not keep_diagonal:
        keep[rows, rows] = False
    if not positive_in_denominator:
        keep[rows, positive] = False
    per_anchor = torch.logsumexp(sim.masked_fill(~keep, -math.inf), dim=1) - sim[rows, positive]
    per_anchor = per_anchor[: n * anchors]
    return (per_anchor.sum() if reduce == "sum" else per_anchor.mean()).item()


_MISTAKES = [  # (variant of the loss, or a multiple of the reference; hint)
    (dict(keep_diagonal=True), "your loss equals the reference with the diagonal not removed: did you mask the "
     "self-similarities sim[i, i] (e.g. masked_fill with -inf) before the softmax?"),
    (dict(positive_is_self=True, keep_diagonal=True), "the target of anchor i is i itself: the positive of z1[i] "
     "is z2[i], at row i + N of the stacked 2N×D matrix (and the positive of z2[i] is row i)."),
    (dict(normalise=False), "your loss equals the reference without L2-normalising the rows: the similarity is "
     "the cosine, so normalise first (F.normalize(z, dim=1))."),
    (dict(cross_view_only=True), "you compared z1 only with z2 (an N×N matrix, as in CLIP): NT-Xent uses all 2N "
     "embeddings, so the negatives of z1[i] include the other rows of z1 too."),
    (dict(positive_in_denominator=False), "the denominator must include the positive: sum over all k ≠ i "
     "(2N−1 terms), not only the 2N−2 negatives."),
    (dict(anchors=1), "you used only the rows of z1 as anchors: average over all 2N anchors, from both views."),
    (dict(reduce="sum"), "you summed the 2N per-anchor losses: take their mean."),
    ("temperature=1", "you seem to ignore the temperature: divide the similarities by it."),
    ("temperature=1/t", "you multiplied the similarities by the temperature: divide by it instead."),
    (2.0, "off by a factor of 2: average over all 2N anchors (adding the z1→z2 and z2→z1 losses, each a mean "
     "over N anchors, gives twice the reference)."),
    (0.5, "off by a factor of 1/2: divide the sum of the 2N per-anchor losses by 2N, once."),
]


def _diagnose(got: float, z1, z2, t) -> str:
    for mistake, hint in _MISTAKES:
        if isinstance(mistake, dict):
            expected = _nt_xent_variant(z1, z2, t, **mistake)
        elif isinstance(mistake, str):
            expected = _nt_xent_variant(z1, z2, 1.0 if mistake == "temperature=1" else 1 / t)
        else:
            expected = mistake * _nt_xent_variant(z1, z2, t)
        if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-5):
            return hint
    return ("work through a tiny case by hand (N=2, as in the chapter) and compare each step with "
            "course_utils.losses.nt_xent_naive.")


def _nt_xent_cases() -> list:
    g = torch.Generator().manual_seed(0)
    cases = []
    for n, d, t in [(2, 2, 1.0), (7, 16, 0.5), (32, 128, 0.1), (16, 8, 0.2)]:
        z1 = torch.randn(n, d, generator=g)
        z2 = z1 + 0.7 * torch.randn(n, d, generator=g)  # two correlated "views"
        cases.append((f"N={n}, D={d}, temperature={t}", z1, z2, t, nt_xent(z1, z2, t).item()))
    hand = -math.log(math.exp(2) / (math.exp(2) + 6))  # positive logit 1/0.5, six negatives at logit 0
    eye = torch.eye(4)
    cases.append(("hand-computed: z1 = z2 = rows of a 4×4 identity, temperature=0.5", eye, eye.clone(), 0.5, hand))
    return cases


def check_nt_xent(student_fn) -> bool:
    """Check a student's `nt_xent(z1, z2, temperature)` against `course_utils.losses.nt_xent`.

    Runs it on random N×D pairs (N from 2 to 32, D from 2 to 128, temperatures 0.1–1.0) and on a
    hand-computed case. Prints PASS, or FAIL with the first failing case and a hint; returns True/False.
    """
    cases = _nt_xent_cases()
    for name, z1, z2, t, expected in cases:
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        try:
            out = student_fn(a, b, temperature=t)
        except NotImplementedError:
            print(_NOT_IMPLEMENTED)
            return False
        except Exception as error:  # a bug in the student's code: report it, don't crash the notebook
            print(f"FAIL on {name}: your function raised {type(error).__name__}: {error}")
            return False
        problem = None
        if not isinstance(out, torch.Tensor):
            problem = (f"it returned a {type(out).__name__}; return a torch tensor (no .item() or numpy), "
                       "so that loss.backward() can train the model.")
        elif out.numel() == 2 * len(z1):
            problem = "it returned one loss per anchor (2N values): return their mean, a single number."
        elif out.numel() != 1:
            problem = f"it returned shape {tuple(out.shape)}: return a scalar (the mean over the 2N anchors)."
        elif not out.requires_grad:
            problem = "the result is detached from z1 and z2 (no gradient): avoid .detach(), .item(), numpy."
        elif not torch.equal(a.detach(), z1) or not torch.equal(b.detach(), z2):
            problem = "it changed z1 or z2 in place (e.g. z1 /= ...): write z1 = z1 / ... instead."
        elif not torch.isfinite(out):
            problem = (f"the loss is {out.item()}: a -inf mask multiplied by 0 gives NaN, and exp() overflows "
                       "for small temperatures; use logsumexp or F.cross_entropy.")
        elif not math.isclose(out.item(), expected, rel_tol=1e-4, abs_tol=1e-5):
            problem = f"expected {expected:.6f}, got {out.item():.6f}. Hint: {_diagnose(out.item(), z1, z2, t)}"
        if problem:
            print(f"FAIL on {name}: {problem}")
            return False
    print(f"PASS: your nt_xent matches the reference on {len(cases)} cases "
          "(N from 2 to 32, D from 2 to 128, temperatures 0.1–1.0, and a hand-computed one).")
    return True


# --- Retired from chapter 3: the gradient with respect to u_i -----------------------------------------

def check_anchor_grad(student_fn) -> bool:
    """Check a student's `anchor_grad(u, i, j, temperature)`: the gradient of ℓ_i with respect to u_i,
    (1/t)(Σ_{k≠i} p_ik u_k − u_j), against autograd on random unit rows. Prints PASS or FAIL; returns True/False.
    """
    g = torch.Generator().manual_seed(0)
    cases = []
    for m, d, t in [(4, 3, 1.0), (8, 16, 0.5), (16, 8, 0.1)]:
        u = F.normalize(torch.randn(m, d, generator=g, dtype=torch.float64), dim=1)
        cases.append((f"2N={m}, D={d}, temperature={t}, anchor 1", u, 1, (1 + m // 2) % m, t))
    for name, u, i, j, t in cases:
        anchor = u[i].clone().requires_grad_()  # ℓ_i depends on u_i only as the anchor (k ≠ i)
        logits = (u @ anchor / t).masked_fill(torch.arange(len(u)) == i, -math.inf)
        (expected,) = torch.autograd.grad(torch.logsumexp(logits, dim=0) - logits[j], anchor)
        out, message = _call(student_fn, name, u.clone(), i, j, t)
        if message:
            print(message)
            return False
        problem = None
        if not isinstance(out, torch.Tensor):
            problem = f"it returned a {type(out).__name__}; return a torch tensor of shape (D,)."
        elif out.shape != expected.shape:
            problem = f"expected a vector of shape {tuple(expected.shape)} (the gradient for row i), got {tuple(out.shape)}."
        elif not torch.allclose(out.double(), expected, atol=1e-5, rtol=1e-4):
            got = out.double()
            if torch.allclose(got, -expected, atol=1e-5, rtol=1e-4):
                hint = "the sign is flipped: the loss falls when u_i moves towards u_j, so the gradient contains −u_j."
            elif torch.allclose(got, expected * t, atol=1e-5, rtol=1e-4):
                hint = "you forgot the factor 1/temperature."
            else:
                hint = ("include the positive in the softmax (all k ≠ i), exclude k = i itself, and weight each u_k "
                        "by p_ik = softmax_k(u_i·u_k / t).")
            problem = f"max difference {(got - expected).abs().max().item():.2e}. Hint: {hint}"
        if problem:
            print(f"FAIL on {name}: {problem}")
            return False
    print(f"PASS: your gradient matches autograd on {len(cases)} cases (temperatures 0.1–1.0).")
    return True


# --- Retired from chapter 4: the learning-rate schedule (linear warm-up, then cosine) -----------------

_SCHEDULE_MISTAKES = [  # (wrong schedule as a function of (step, total, warmup, base_lr), hint)
    (lambda s, t, w, b: b * (s / w if s < w else 0.5 * (1 + math.cos(math.pi * (s - w) / (t - w)))),
     "the warm-up starts at 0: step 0 would not train at all. Use (step + 1) / warmup."),
    (lambda s, t, w, b: b * ((s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * s / t))),
     "the cosine must start after the warm-up: progress = (step - warmup) / (total - warmup)."),
    (lambda s, t, w, b: b * ((s + 1) / w if s < w else math.cos(math.pi * (s - w) / (t - w))),
     "cos goes from 1 to -1: the half-cosine is 0.5 * (1 + cos(pi * progress)), from 1 down to 0."),
    (lambda s, t, w, b: (s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * (s - w) / (t - w))),
     "you returned the factor in [0, 1]: multiply it by base_lr."),
]


def check_cosine_schedule(student_fn) -> bool:
    """Check ``my_cosine_schedule(step, total, warmup, base_lr) -> float`` against
    ``base_lr * course_utils.train.warmup_cosine(step, warmup, total)`` (linear warm-up from
    base_lr/warmup to base_lr over steps 0..warmup-1, then a half-cosine down to 0 at step total).
    Prints PASS, or FAIL with the first wrong step and a hint; returns True/False."""
    from ..train import warmup_cosine

    cases = [(100, 10, 0.4), (1000, 100, 0.8), (50, 1, 1.0), (390 * 100, 390 * 10, 0.8)]
    for total, warmup, base_lr in cases:
        steps = sorted({0, 1, warmup - 1, warmup, warmup + 1, (total + warmup) // 2, total - 1, total}
                       | set(range(0, total + 1, max(1, total // 17))))  # fmt: skip
        for step in steps:
            name = f"step={step}, total={total}, warmup={warmup}, base_lr={base_lr}"
            expected = base_lr * warmup_cosine(step, warmup, total)
            got, problem = _call_number(student_fn, name, "a number (the learning rate)", step, total, warmup, base_lr)
            if problem:
                print(problem)
                return False
            if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
                hint = next((h for wrong, h in _SCHEDULE_MISTAKES
                             if math.isclose(got, wrong(step, total, warmup, base_lr), rel_tol=1e-6, abs_tol=1e-9)),
                            "plot your schedule next to the reference one (the chapter's figure) and compare.")  # fmt: skip
                print(f"FAIL on {name}: expected {expected:.6g}, got {got:.6g}. Hint: {hint}")
                return False
    print(f"PASS: your schedule matches course_utils.train.warmup_cosine on {len(cases)} schedules "
          "(warm-up of 1 to 3,900 steps, every phase checked).")
    return True


# --- Retired from chapter 6: clustering accuracy (Hungarian matching) ---------------------------------

def _cluster_accuracy_reference(y_true, y_pred) -> float:
    from ..evaluate import cluster_accuracy

    return cluster_accuracy(y_true, y_pred)


def _cluster_accuracy_cases() -> list:
    import numpy as np

    rng = np.random.default_rng(6)
    truth = rng.integers(0, 10, 500)
    noisy = np.where(rng.random(500) < 0.3, rng.integers(0, 10, 500), (truth * 7 + 3) % 10)
    return [
        ("the chapter's worked example", np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]), np.array([1, 1, 0, 2, 2, 2, 0, 0, 2])),
        ("labels renamed (a perfect clustering)", np.array([0, 0, 1, 1, 2, 2]), np.array([5, 5, 3, 3, 9, 9])),
        ("two clusters whose majority is the same class", np.array([0, 0, 0, 0, 1, 1]),
         np.array([0, 0, 1, 1, 1, 1])),
        ("500 points, 10 classes, 30% noise", truth, noisy),
        ("more clusters (4) than classes (2)", np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 3, 3, 3])),
    ]


def check_cluster_accuracy(student_fn) -> bool:
    """Check a student's `cluster_accuracy(y_true, y_pred) -> float in [0, 1]` (NumPy int arrays) against
    `course_utils.evaluate.cluster_accuracy`: the accuracy after the best ONE-TO-ONE matching of cluster
    ids to labels. Prints PASS, or FAIL with a hint; returns True/False.
    """
    import numpy as np

    cases = _cluster_accuracy_cases()
    for name, y_true, y_pred in cases:
        got, message = _call_number(student_fn, name, "one number, the accuracy", y_true.copy(), y_pred.copy())
        if message:
            print(message)
            return False
        expected = _cluster_accuracy_reference(y_true, y_pred)
        if math.isclose(got, expected, abs_tol=1e-9):
            continue
        majority = sum(np.bincount(y_true[y_pred == c]).max() for c in np.unique(y_pred)) / len(y_true)
        from scipy.optimize import linear_sum_assignment

        k = int(max(y_true.max(), y_pred.max())) + 1
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (y_pred, y_true), 1)
        worst = counts[linear_sum_assignment(counts)].sum() / len(y_true)  # the matching that MINIMISES
        if math.isclose(got, expected * len(y_true), abs_tol=1e-9):
            hint = "you returned the number of matched points: divide by the number of points."
        elif math.isclose(got, worst, abs_tol=1e-9):
            hint = ("you found the WORST matching: linear_sum_assignment minimises cost by default; pass "
                    "maximize=True (or negate the counts).")
        elif math.isclose(got, float(np.mean(y_true == y_pred)), abs_tol=1e-9):
            hint = ("you compared cluster ids with labels directly: cluster ids are arbitrary names. Build the "
                    "contingency matrix and match clusters to classes first (linear_sum_assignment).")
        elif math.isclose(got, majority, abs_tol=1e-9):
            hint = ("you mapped each cluster to its most frequent class, so two clusters can claim the same class "
                    "(purity, not clustering accuracy). The matching must be one-to-one: use "
                    "scipy.optimize.linear_sum_assignment(counts, maximize=True).")
        elif got < expected:
            hint = "your matching is not the best one-to-one matching: use linear_sum_assignment(..., maximize=True)."
        else:
            hint = "the result is higher than the best one-to-one matching allows: check the matching is one-to-one."
        print(f"FAIL on {name}: expected {expected:.4f}, got {got:.4f}. Hint: {hint}")
        return False
    print(f"PASS: your cluster_accuracy matches the Hungarian reference on {len(cases)} cases "
          "(renamed labels, competing clusters, noise, more clusters than classes).")
    return True


# --- Retired from chapter 2: one SimCLR training step -------------------------------------------------

class _CountingAugment:
    """A deterministic stand-in for an augmentation: call k returns the batch, as floats in [0, 1], shifted
    by k + 1 pixels and dimmed a little, so that every call gives a different, reproducible view."""

    def __init__(self):
        self.calls = 0

    def __call__(self, batch, generator=None):
        k, self.calls = self.calls, self.calls + 1
        x = to_float(batch)
        return x.roll(k + 1, dims=-1) * (1.0 - 0.05 * k)


def _tiny_simclr(seed: int):
    from ..models import ProjectionHead, SimCLRModel, SmallCNN

    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(seed)
        return SimCLRModel(SmallCNN(width=4, feature_dim=8, convs_per_stage=1), ProjectionHead(8, 16, 8))


def _reference_step(model, batch, augment, optimizer, temperature):
    views = torch.cat([augment(batch), augment(batch)])  # 2N views, one batch norm over all of them
    _, z = model(views)
    z1, z2 = z.chunk(2)
    loss = nt_xent(z1, z2, temperature)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def check_training_step(student_fn) -> bool:
    """Check a student's `training_step(model, batch, augment, optimizer, temperature)`.

    On a tiny SimCLRModel and an 8×1×12×12 uint8 batch, with an SGD optimizer and a deterministic
    "augmentation", two steps must: call ``augment`` twice per step, run the encoder ONCE per step on the
    2N views, return the NT-Xent loss as a Python float, and leave the parameters exactly where two
    reference steps leave them (which also catches a missing ``optimizer.zero_grad()``).
    Prints PASS, or FAIL with a hint; returns True/False. Never raises.
    """
    temperature, n = 0.2, 8
    batch = torch.randint(0, 256, (n, 1, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    student, reference = _tiny_simclr(0), _tiny_simclr(0)
    opt_s = torch.optim.SGD(student.parameters(), lr=0.5, momentum=0.9)
    opt_r = torch.optim.SGD(reference.parameters(), lr=0.5, momentum=0.9)
    aug_s, aug_r = _CountingAugment(), _CountingAugment()
    encoder_inputs = []
    hook = student.encoder.register_forward_hook(lambda module, args, out: encoder_inputs.append(len(args[0])))
    before = [p.detach().clone() for p in student.parameters()]
    try:
        for step in (1, 2):
            calls_before, forwards_before = aug_s.calls, len(encoder_inputs)
            out, error = _call(student_fn, f"step {step}", student, batch, aug_s, opt_s, temperature)
            if error:
                print(error)
                return False
            expected = _reference_step(reference, batch, aug_r, opt_r, temperature)
            calls, forwards = aug_s.calls - calls_before, encoder_inputs[forwards_before:]
            problem = None
            if calls != 2:
                problem = (f"augment was called {calls} time(s) in one step: call it twice on the same batch, "
                           "once per view (x1 = augment(batch); x2 = augment(batch)).")
            elif len(forwards) != 1 or forwards[0] != 2 * n:
                problem = (f"the encoder ran {len(forwards)} time(s) on batches of {forwards} images: send both "
                           f"views through the model in ONE forward pass, model(torch.cat([x1, x2])) ({2 * n} "
                           "images), so that batch norm sees all 2N views together.")
            elif isinstance(out, torch.Tensor):
                problem = ("it returned a tensor: return loss.item(), a Python float (a kept tensor holds on "
                           "to the whole computation graph).")
            elif isinstance(out, bool) or not isinstance(out, (int, float)) and not hasattr(out, "__float__"):
                problem = f"it returned {type(out).__name__}: return the loss as a Python float (loss.item())."
            elif step == 1 and all(torch.equal(a, b) for a, b in zip(before, student.parameters())):
                problem = "the parameters did not change: call loss.backward() and then optimizer.step()."
            elif not math.isclose(float(out), expected, rel_tol=1e-4, abs_tol=1e-5):
                hint = "compute nt_xent(z1, z2, temperature) on the projections z = model(views)[1], split in two."
                if step == 1:
                    with torch.no_grad():
                        probe = _tiny_simclr(0).train()
                        a = _CountingAugment()
                        h, z = probe(torch.cat([a(batch), a(batch)]))
                        if math.isclose(float(out), nt_xent(*h.chunk(2), temperature).item(), rel_tol=1e-4):
                            hint = "you used h (the encoder output): the loss is computed on z = g(h), the projection."
                        elif math.isclose(float(out), nt_xent(*z.chunk(2), 0.5).item(), rel_tol=1e-4):
                            hint = "you ignored the temperature argument: pass it on to nt_xent."
                problem = f"the loss was {float(out):.6f}, expected {expected:.6f}. Hint: {hint}"
            elif not all(torch.allclose(a, b, rtol=1e-4, atol=1e-5)
                         for a, b in zip(student.parameters(), reference.parameters())):
                problem = ("the parameters differ from the reference after this step: call optimizer.zero_grad() "
                           "before loss.backward() (gradients add up otherwise), and step the optimizer once.")
            if problem:
                print(f"FAIL on step {step}: {problem}")
                return False
    finally:
        hook.remove()
    print("PASS: two views, one forward pass on both, the NT-Xent loss returned as a float, and two steps "
          "that move the parameters exactly as the reference does.")
    return True
