"""Self-checks for the exercises: run a student's function against the reference implementation.

Each check prints PASS, or FAIL with what went wrong and a hint, and returns True or False. A wrong
answer never raises: the cell that calls the check always finishes, so Run-all keeps going.

    from course_utils.checks import check_nt_xent
    check_nt_xent(my_nt_xent)   # prints "PASS: ..." or "FAIL on <case>: ... Hint: ..."
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .losses import nt_xent

_NOT_IMPLEMENTED = "not implemented yet: replace `raise NotImplementedError` with your code and run the cell again."


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
