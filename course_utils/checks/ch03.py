"""Chapter 3's self-checks: NT-Xent with any number of views per image, and one anchor's gradient by hand.

``check_multiview_nt_xent`` compares ``my_multiview_nt_xent(z, ids, temperature)`` with the reference
``losses._nt_xent_from_ids`` on six cases (two views, where it is nt_xent; three, four and unequal numbers of
views; shuffled rows; a hand-computed one) and names the mistake the student's value matches by computing each
(``_multiview_variant``): only the next view or one view as the positive, the anchor among its own positives or
in its own denominator, the other positives taken out of the denominator or the positive counted twice, a sum
where a mean belongs, one mean over all pairs, the first views alone as anchors, no normalisation, the
temperature ignored or inverted.
``check_anchor_grad_z`` compares ``my_anchor_grad_z(z, i, j, temperature)``, ∂ℓ_i/∂z_i written out through the
normalisation u = z/‖z‖, with autograd, and recognises the gradient with respect to u_i, a missing projection or
1/‖z_i‖, the projector built from z_i, a flipped sign, a forgotten temperature, the anchor in its own softmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..losses import _nt_xent_from_ids
from ._common import _call, _close, _fail, _never_raises


# --- Chapter 3: NT-Xent with any number of views per image -------------------------------------------

def _first_views(ids: torch.Tensor) -> torch.Tensor:
    """True at the first row of every id (the rows of "view 1")."""
    return torch.tensor([bool((ids[:i] != ids[i]).all()) for i in range(len(ids))])


def _multiview_variant(z, ids, t, *, normalise=True, self_in_denominator=False, self_positive=False,
                       other_positives_in_denominator=True, positive_twice=False, one_positive=None,
                       over_positives="mean", anchors="all", average="anchors", over_anchors="mean"):
    """The multi-view loss (a float) with one usual mistake switched on. With the defaults it is the reference,
    ``losses._nt_xent_from_ids``."""
    u = F.normalize(z.double(), dim=1) if normalise else z.double()
    sim = u @ u.T / t
    m = len(u)
    eye = torch.eye(m, dtype=torch.bool)
    same = ids[:, None] == ids[None, :]
    positive = same if self_positive else same & ~eye
    if one_positive == "next":  # the next row with the same id, cyclically: (i + N) mod M for stacked views
        after = (torch.arange(m)[None, :] - torch.arange(m)[:, None]) % m  # how far row k comes after row i
        first = after.masked_fill(~positive, m).argmin(1)
        positive = torch.zeros_like(eye)
        positive[torch.arange(m), first] = True
    elif one_positive == "first":  # the first other row with the same id
        first = positive.float().argmax(1)
        positive = torch.zeros_like(eye)
        positive[torch.arange(m), first] = True
    candidates = sim if self_in_denominator else sim.masked_fill(eye, -math.inf)
    if other_positives_in_denominator:
        log_denominator = torch.logsumexp(candidates, 1, keepdim=True).expand(m, m)
    else:  # each positive against the negatives alone
        negatives = candidates.masked_fill(same & ~eye, -math.inf)
        log_denominator = torch.logaddexp(torch.logsumexp(negatives, 1, keepdim=True), sim)
    if positive_twice:
        log_denominator = torch.logaddexp(log_denominator, sim)
    pair_loss = (log_denominator - sim).masked_fill(~positive, 0.0)  # −log p_ip at the positives p of anchor i
    count = positive.sum(1)
    rows = torch.ones(m, dtype=torch.bool) if anchors == "all" else _first_views(ids)
    if average == "pairs":
        return (pair_loss[rows].sum() / count[rows].sum()).item()
    per_anchor = pair_loss.sum(1) / (count if over_positives == "mean" else 1)
    return (per_anchor[rows].sum() if over_anchors == "sum" else per_anchor[rows].mean()).item()


_MULTIVIEW_MISTAKES = [  # (variant, hint)
    (dict(one_positive="next"), "each anchor was paired with the next view only, (i + N) mod M as with two views. "
     "With V views of an image, every OTHER row with the same id is a positive: build the mask "
     "ids[:, None] == ids[None, :] and remove its diagonal."),
    (dict(one_positive="first"), "each anchor used one positive only. An anchor with V views has V − 1 positives, "
     "all the other rows with its id: average −log p_ip over all of them."),
    (dict(self_in_denominator=True, self_positive=True), "row i is among its own positives and in its own "
     "denominator: the positives of anchor i are the OTHER rows with the same id, and the softmax runs over k ≠ i."),
    (dict(self_in_denominator=True), "the self-similarity s_ii is still in the denominator: remove the diagonal "
     "(masked_fill with -inf) before the log-softmax."),
    (dict(other_positives_in_denominator=False), "you removed the other positives from the denominator. In this "
     "chapter's definition the softmax of every positive runs over ALL the other rows k ≠ i, other positives "
     "included (as nt_xent's runs over all 2N − 1): one log-softmax per row, then pick the positives."),
    (dict(positive_twice=True), "the positive is counted twice in the denominator (once as the target, once among "
     "the other rows). The softmax runs over the M − 1 other rows, each once."),
    (dict(over_positives="sum"), "you summed −log p_ip over an anchor's positives: take their mean, so that an "
     "image with more views does not weigh more."),
    (dict(average="pairs"), "you averaged over all (anchor, positive) pairs at once. First average over each "
     "anchor's positives, then over the anchors: the two differ when images have different numbers of views."),
    (dict(anchors="first view"), "you used only the first view of each image as anchors: every one of the M rows "
     "is an anchor."),
    (dict(over_anchors="sum"), "you summed the per-anchor losses: take their mean over the M anchors."),
    (dict(normalise=False), "your loss equals the reference without L2-normalising the rows: the similarity is the "
     "cosine, so normalise first (F.normalize(z, dim=1))."),
    ("temperature=1", "you seem to ignore the temperature: divide the similarities by it."),
    ("temperature=1/t", "you multiplied the similarities by the temperature: divide by it instead."),
]


def _diagnose_multiview(got: float, z, ids, t) -> str:
    for mistake, hint in _MULTIVIEW_MISTAKES:
        if isinstance(mistake, dict):
            expected = _multiview_variant(z, ids, t, **mistake)
        else:
            expected = _multiview_variant(z, ids, 1.0 if mistake == "temperature=1" else 1 / t)
        if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-5):
            return hint
    return ("work through the hand-computed case (three identical views of two orthogonal images) and compare each "
            "step with nt_xent_steps in the chapter: the positives now come from the ids.")


def _multiview_cases() -> list:
    g = torch.Generator().manual_seed(3)

    def views(counts, d, shuffle=False):
        """counts[n] views of image n, noisy copies of one vector; stacked view by view, as torch.cat([z1, z2,
        ...]) stacks them, or in random order."""
        counts = torch.tensor(counts)
        ids = torch.cat([torch.nonzero(counts > v).flatten() for v in range(int(counts.max()))])
        if shuffle:
            ids = ids[torch.randperm(len(ids), generator=g)]
        return torch.randn(len(counts), d, generator=g)[ids] + 0.6 * torch.randn(len(ids), d, generator=g), ids

    cases = [("2 views of 6 images (must equal nt_xent), D=8, temperature=0.5", *views([2] * 6, 8), 0.5),
             ("3 views of 5 images, D=16, temperature=0.2", *views([3] * 5, 16), 0.2),
             ("4 views of 4 images, D=8, temperature=1.0", *views([4] * 4, 8), 1.0),
             ("3 views of 6 images, rows in random order, D=8, temperature=0.1", *views([3] * 6, 8, True), 0.1),
             ("2, 3, 4, 2 and 5 views of 5 images, rows in random order, D=12, temperature=0.5",
              *views([2, 3, 4, 2, 5], 12, True), 0.5)]
    cases = [(name, z, ids, t, _nt_xent_from_ids(z.double(), ids, t).item()) for name, z, ids, t in cases]
    hand = math.log(2 * math.e + 3) - 1  # two positives at logit 1, three negatives at logit 0
    cases.append(("hand-computed: 3 identical views of 2 orthogonal images, temperature=1 (log(2e + 3) − 1)",
                  torch.eye(2)[[0, 1, 0, 1, 0, 1]], torch.tensor([0, 1, 0, 1, 0, 1]), 1.0, hand))
    return cases


@_never_raises
def check_multiview_nt_xent(student_fn) -> bool:
    """Check a student's ``my_multiview_nt_xent(z, ids, temperature)``: NT-Xent with any number of views per image.

    z: M×D, the projections of all views stacked (any order); ids: M int64, the image of each row (the views of
    one image share an id; every image has at least 2 views). With u_k = z_k / ‖z_k‖, s_ik = u_i·u_k / t and
    P(i) the OTHER rows with the id of row i,

        ℓ_i = (1/|P(i)|) Σ_{p ∈ P(i)} −log( exp(s_ip) / Σ_{k ≠ i} exp(s_ik) ),     L = (1/M) Σ_i ℓ_i :

    every row is an anchor, each positive is scored by the softmax over ALL other rows (the other positives stay
    in the denominator), and the mean is taken over an anchor's positives, then over the anchors. With two views
    and ids = [0..N-1, 0..N-1] it is ``losses.nt_xent``; the reference is ``losses._nt_xent_from_ids``.

    Cases: 2 views (nt_xent), 3 and 4 views, rows shuffled, 2 to 5 views per image, temperatures 0.1–1.0, and a
    hand-computed one. The result must be a scalar tensor with a gradient, finite, and z and ids unchanged.
    Prints PASS, or FAIL with the first failing case and a hint (it recognises the usual mistakes); returns
    True/False. Never raises.
    """
    cases = _multiview_cases()
    for name, z, ids, t, expected in cases:
        a = z.clone().requires_grad_()
        ids_given = ids.clone()
        out, message = _call(student_fn, name, a, ids_given, temperature=t)
        if message:
            print(message)
            return False
        problem = None
        if not isinstance(out, torch.Tensor):
            problem = (f"it returned a {type(out).__name__}; return a torch tensor (no .item() or numpy), so that "
                       "loss.backward() can train the model.")
        elif out.numel() == len(z):
            problem = "it returned one loss per anchor (M values): return their mean, a single number."
        elif out.numel() != 1:
            problem = f"it returned shape {tuple(out.shape)}: return a scalar (the mean over the M anchors)."
        elif not out.requires_grad:
            problem = "the result is detached from z (no gradient): avoid .detach(), .item(), numpy."
        elif not torch.equal(a.detach(), z) or not torch.equal(ids_given, ids):
            problem = "it changed z or ids in place (e.g. z /= ...): write z = z / ... instead."
        elif not torch.isfinite(out):
            problem = (f"the loss is {out.item()}. Is row i among its own positives? Once the diagonal is -inf, "
                       "log p_ii is -inf: the positive mask must leave out the diagonal. And never multiply -inf "
                       "by 0 (that gives NaN): select with masked_fill or torch.where.")
        elif not math.isclose(out.item(), expected, rel_tol=1e-4, abs_tol=1e-5):
            problem = (f"expected {expected:.6f}, got {out.item():.6f}. "
                       f"Hint: {_diagnose_multiview(out.item(), z, ids, t)}")
        if problem:
            return _fail(name, problem)
    print(f"PASS: your multi-view NT-Xent matches the reference on {len(cases)} cases (2 views, where it is "
          "nt_xent; 3, 4 and unequal numbers of views; shuffled rows; temperatures 0.1–1.0; a hand-computed one).")
    return True


# --- Chapter 3: the gradient of one anchor's loss with respect to z_i, through the normalisation ----------

def _anchor_grad_z_autograd(z, i, j, t):
    """∂ℓ_i/∂z_i by autograd: only the anchor's row varies, the other rows u_k are constants."""
    anchor = z[i].clone().requires_grad_()
    u = F.normalize(z, dim=1)
    logits = (u @ (anchor / anchor.norm()) / t).masked_fill(torch.arange(len(z)) == i, -math.inf)
    (grad,) = torch.autograd.grad(torch.logsumexp(logits, 0) - logits[j], anchor)
    return grad


def _anchor_grad_z_mistakes(z, i, j, t) -> list:
    """(the gradient a usual mistake gives, hint), from the formula."""
    u, r = F.normalize(z, dim=1), z[i].norm()

    def grad_u(rows, keep_self=False):  # (1/t)(Σ_{k≠i} p_ik rows_k − rows_j), p = softmax_k(rows_i·rows_k / t)
        logits = rows @ rows[i] / t
        if not keep_self:
            logits = logits.masked_fill(torch.arange(len(rows)) == i, -math.inf)
        return (torch.softmax(logits, 0) @ rows - rows[j]) / t

    def project(v, a):  # (I − a aᵀ) v
        return v - (a @ v) * a

    g = grad_u(u)
    right = project(g, u[i]) / r
    return [
        (g, "you returned ∂ℓ_i/∂u_i, the gradient with respect to the unit vector. Chain it through u_i = z_i/‖z_i‖, "
            "whose Jacobian is (I − u_i u_iᵀ)/‖z_i‖: project out the component along u_i, then divide by ‖z_i‖."),
        (project(g, u[i]), "you projected but did not divide by ‖z_i‖: the Jacobian of z ↦ z/‖z‖ is "
                           "(I − u_i u_iᵀ)/‖z_i‖ (a longer z_i turns less for the same step)."),
        (g / r, "you divided by ‖z_i‖ but did not project: remove the component along u_i, g − (u_i·g) u_i, because "
                "a step along z_i only changes its length, which the loss never sees."),
        (project(g, z[i]) / r, "the projector is built from the UNIT vector: (I − u_i u_iᵀ), not (I − z_i z_iᵀ)."),
        (-right, "the sign is flipped: the loss falls when u_i moves towards u_j, so the gradient contains −u_j."),
        (right * t, "you forgot the factor 1/temperature."),
        (project(grad_u(u, keep_self=True), u[i]) / r, "the softmax includes k = i: exclude the anchor itself."),
        (grad_u(z), "this is the gradient of a loss on raw dot products z_i·z_k: the loss uses cosine similarities, "
                    "so normalise the rows (u = z/‖z‖) and chain through the normalisation."),
    ]


@_never_raises
def check_anchor_grad_z(student_fn) -> bool:
    """Check a student's ``my_anchor_grad_z(z, i, j, temperature)``: ∂ℓ_i/∂z_i, through the normalisation.

    z: M×D un-normalised rows (float64, lengths far from 1); i: the anchor row; j: its positive. With
    u = z/‖z‖ row-wise and ℓ_i = −log softmax_{k≠i}(u_i·u_k / t) at k = j, where only the anchor's own row z_i
    varies (the other u_k are constants). The expected D-vector is

        ∂ℓ_i/∂z_i = (I − u_i u_iᵀ)/‖z_i‖ · (1/t)(Σ_{k≠i} p_ik u_k − u_j),

    compared with autograd. The student's function runs under torch.no_grad(): the exercise is the formula,
    not autograd. Cases: M from 4 to 16, D from 3 to 16, temperatures 0.1–1.0, anchors in either view.
    Prints PASS, or FAIL with a hint (the u-gradient without the projection, the projection without 1/‖z_i‖
    or with z_i instead of u_i, a flipped sign, a forgotten temperature, ...); returns True/False. Never raises.
    """
    g = torch.Generator().manual_seed(3)
    cases = []
    for m, d, t, i in [(4, 3, 1.0, 1), (8, 16, 0.5, 5), (16, 8, 0.1, 2), (12, 5, 0.2, 9)]:
        z = torch.randn(m, d, generator=g, dtype=torch.float64)
        z = z * (0.3 + 2.7 * torch.rand(m, 1, generator=g, dtype=torch.float64))  # lengths 0.3–3, not 1
        z[i] *= 2.5 / z[i].norm()  # the anchor's length is 2.5
        j = (i + m // 2) % m  # the anchor's other view
        cases.append((f"M={m}, D={d}, temperature={t}, anchor {i}, positive {j}", z, i, j, t))
    for name, z, i, j, t in cases:
        expected = _anchor_grad_z_autograd(z, i, j, t)
        given = z.clone()
        with torch.no_grad():
            out, message = _call(student_fn, name, given, i, j, t)
        if message:
            if "grad" in message and "RuntimeError" in message:
                message = (f"{message.rstrip('.')}. Hint: write the formula; autograd is what the check compares "
                           "with, and it runs your function under torch.no_grad().")
            print(message)
            return False
        problem = None
        if not isinstance(out, torch.Tensor):
            problem = f"it returned a {type(out).__name__}; return a torch tensor of shape (D,)."
        elif not torch.equal(given, z):
            problem = "it changed z in place: build new tensors (z / z.norm(...), not z /= ...)."
        elif tuple(out.shape) == tuple(z.shape):
            problem = "it returned an M×D matrix: return the gradient for the anchor row i only, a D-vector."
        elif out.shape != expected.shape:
            problem = f"expected a vector of shape {tuple(expected.shape)}, got {tuple(out.shape)}."
        elif not _close(out, expected, rtol=1e-4, atol=1e-6):
            hint = next((h for wrong, h in _anchor_grad_z_mistakes(z, i, j, t) if _close(out, wrong, 1e-4, 1e-6)),
                        "start from the chapter's ∂ℓ_i/∂u_i = (1/t)(Σ_{k≠i} p_ik u_k − u_j) and apply the chain "
                        "rule through u_i = z_i/‖z_i‖.")
            problem = f"max difference {(out.double() - expected).abs().max().item():.2e}. Hint: {hint}"
        if problem:
            return _fail(name, problem)
    print(f"PASS: your gradient with respect to z_i matches autograd on {len(cases)} cases (rows of length 0.3–3, "
          "temperatures 0.1–1.0): the normalisation turns the gradient, never stretches z_i.")
    return True
