"""Chapter 4's self-check, ``check_lars_update``: one LARS step for one weight tensor.

``my_lars_update(w, grad, momentum_buffer, *, lr, momentum, weight_decay, eta)`` must take the step that
``train.LARS`` takes for a layer with lars=True and clip=True (the course's CIFAR-10 recipe, solo-learn's):
the decayed gradient d, scaled by the clipped trust ratio min(trust / lr, 1), accumulated with momentum. Ten
cases: a first step, a four-step run that follows the reference's state, the clip binding, a huge gradient, a
zero weight, a learning rate above 1, other hyperparameters. Each usual mistake is one switch of
``_lars_variant`` (no clip, trust not compared with lr, a wrong denominator of the trust ratio, weight decay
left out of d, momentum before the trust ratio, no plain step at a zero weight, a step up the gradient); when
several explain the failing case, ``_lars_hint`` keeps the one that also explains the student's later steps.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._common import _call, _close, _fail, _never_raises


def _lars_reference(w, grad, buffer, *, lr, momentum, weight_decay, eta):
    """(new_w, new_buffer) of one step of course_utils.train.LARS (a group with lars=True, clip=True)."""
    from ..train import LARS

    p = nn.Parameter(w.detach().clone())
    p.grad = grad.detach().clone()
    optimizer = LARS([p], lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip=True)
    if buffer is not None:
        optimizer.state[p]["momentum_buffer"] = buffer.detach().clone()
    optimizer.step()
    return p.detach(), optimizer.state[p]["momentum_buffer"]


def _lars_variant(w, grad, buffer, *, lr, momentum, weight_decay, eta, clip=True, divide_by_lr=True,
                  decay_in_denominator=True, denominator="norms", decay_in_gradient=True, momentum_first=False,
                  plain_step_at_zero=True, sign=1.0):
    """One LARS step written out (float64), with one usual mistake switched on; the defaults are the reference."""
    d = grad + weight_decay * w if decay_in_gradient else grad
    w_norm, g_norm = w.norm().item(), grad.norm().item()
    if denominator == "norms":
        below = g_norm + (weight_decay * w_norm if decay_in_denominator else 0.0)
    else:  # the norm of the decayed gradient
        below = (grad + weight_decay * w).norm().item()
    trust = eta * w_norm / (below + 1e-8)
    scale = trust / lr if divide_by_lr else trust
    scale = min(scale, 1.0) if clip else scale
    if plain_step_at_zero and (w_norm == 0 or g_norm == 0):
        scale = 1.0
    if momentum_first:  # the buffer collects raw gradients, the trust ratio scales the whole buffer
        new_buffer = d if buffer is None else momentum * buffer + d
        return w - sign * lr * scale * new_buffer, new_buffer
    new_buffer = scale * d if buffer is None else momentum * buffer + scale * d
    return w - sign * lr * new_buffer, new_buffer


_LARS_MISTAKES = [  # (variant, hint)
    (dict(clip=False, divide_by_lr=False), "this is LARS without the clip (local rate lr·trust): the course's LARS "
     "(solo-learn's, clip=True) scales d by min(trust / lr, 1), so the rate is min(trust, lr), never more than lr."),
    (dict(clip=False), "the trust ratio is not clipped: scale d by min(trust / lr, 1), so that a layer with a small "
     "gradient takes at most a plain SGD step."),
    (dict(divide_by_lr=False), "compare the trust ratio with the learning rate: scale = min(trust / lr, 1), so that "
     "the step lr·scale·d is trust·d when the trust ratio binds."),
    (dict(decay_in_denominator=False), "weight decay is missing from the denominator: trust = eta·‖w‖ / (‖grad‖ + "
     "weight_decay·‖w‖ + eps)."),
    (dict(denominator="decayed"), "you divided by ‖grad + weight_decay·w‖: the course's LARS (and solo-learn's) "
     "divides by ‖grad‖ + weight_decay·‖w‖ (+ eps)."),
    (dict(decay_in_gradient=False), "add the weight decay to the gradient first: d = grad + weight_decay·w."),
    (dict(momentum_first=True), "you applied the momentum before the trust ratio. Scale each step's own d first, "
     "then accumulate: buffer = momentum·buffer + scale·d (on the first step, buffer = scale·d)."),
    (dict(plain_step_at_zero=False), "a zero weight has trust ratio 0 and would never move: when ‖w‖ or ‖grad‖ is 0, "
     "take a plain step (scale 1), as the optimiser does for a fresh zero-initialised layer."),
    (dict(sign=-1.0), "you stepped up the gradient: new_w = w − lr·buffer."),
]


def _lars_cases() -> list:
    g = torch.Generator().manual_seed(4)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    usual = dict(momentum=0.9, weight_decay=1e-4, eta=0.02)
    cases = [("the first step (momentum_buffer=None), an 8×4 weight, lr=0.3", rnd(8, 4), 0.1 * rnd(8, 4), None,
              dict(lr=0.3, **usual))]
    w, buffer, run = 0.2 * rnd(16, 3, 3, 3), None, dict(lr=0.5, **usual)
    for step in range(1, 5):  # a short run; each step starts where the reference's last one ended
        grad = 0.05 * rnd(16, 3, 3, 3)
        cases.append((f"step {step} of a run on a 16×3×3×3 weight, lr=0.5", w, grad, buffer, run))
        w, buffer = _lars_reference(w, grad, buffer, **run)
    cases += [
        ("a small gradient, so that trust/lr > 1 and the clip binds (scale 1), lr=0.1", rnd(10, 10),
         1e-3 * rnd(10, 10), 0.01 * rnd(10, 10), dict(lr=0.1, **usual)),
        ("a huge gradient (norm about 5e4): the first step moves w by at most eta·‖w‖, lr=1.0", rnd(6, 5),
         1e4 * rnd(6, 5), None, dict(lr=1.0, **usual)),
        ("a zero-initialised 5×3 weight: a plain step (scale 1), lr=0.2", torch.zeros(5, 3, dtype=torch.float64),
         rnd(5, 3), None, dict(lr=0.2, **usual)),
        ("a large learning rate, lr=3.2 (batch 2048), with 1 < trust < lr", rnd(12, 6), 0.01 * rnd(12, 6),
         0.1 * rnd(12, 6), dict(lr=3.2, **usual)),
        ("a vector of 10 weights, momentum=0.5, weight_decay=5e-3, eta=0.001, lr=0.05", rnd(10), rnd(10), rnd(10),
         dict(lr=0.05, momentum=0.5, weight_decay=5e-3, eta=0.001)),
    ]
    return cases


def _lars_matches(out, w, grad, buffer, hyper, mistake) -> bool:
    return all(_close(a, b, 1e-5, 1e-10) for a, b in zip(out, _lars_variant(w, grad, buffer, **hyper, **mistake)))


def _lars_hint(student_fn, cases, failing, out):
    """The hint of the mistake that reproduces the student's step on the failing case; when several do, the one
    that also reproduces the student's steps on the later cases."""
    name, w, grad, buffer, hyper = cases[failing]
    found = [(mistake, hint) for mistake, hint in _LARS_MISTAKES if _lars_matches(out, w, grad, buffer, hyper, mistake)]
    if len(found) > 1:
        def explains(mistake):
            for name, w, grad, buffer, hyper in cases[failing + 1:]:
                later, message = _call(student_fn, name, w.clone(), grad.clone(),
                                       None if buffer is None else buffer.clone(), **hyper)
                valid = not message and isinstance(later, (tuple, list)) and len(later) == 2 and all(
                    isinstance(t, torch.Tensor) and t.shape == w.shape for t in later)
                if valid and not _lars_matches(later, w, grad, buffer, hyper, mistake):
                    return False
            return True

        found = [(mistake, hint) for mistake, hint in found if explains(mistake)] or found
    return found[0][1] if found else None


@_never_raises
def check_lars_update(student_fn) -> bool:
    """Check a student's ``my_lars_update(w, grad, momentum_buffer, *, lr, momentum, weight_decay, eta)``.

    One LARS step for ONE weight tensor, exactly as ``course_utils.train.LARS`` takes it for a group with
    lars=True and clip=True (the course's CIFAR-10 recipe):

        d = grad + weight_decay·w
        trust = eta·‖w‖ / (‖grad‖ + weight_decay·‖w‖ + 1e-8);   scale = min(trust / lr, 1)
        scale = 1 when ‖w‖ = 0 or ‖grad‖ = 0                    (a plain step)
        buffer = scale·d on the first step (momentum_buffer None), else momentum·buffer + scale·d
        new_w = w − lr·buffer

    w, grad, momentum_buffer: tensors of one shape (momentum_buffer may be None); returns (new_w, new_buffer),
    new tensors: the inputs must not be modified. Cases: a first step, a four-step run (each step from the
    reference's state), a small gradient (the clip binds), a huge one (the step stays within eta·‖w‖), a zero
    weight, a learning rate above 1, other hyperparameters. Prints PASS, or FAIL with the first failing case and
    a hint; returns True/False. Never raises.
    """
    cases = _lars_cases()
    for number, (name, w, grad, buffer, hyper) in enumerate(cases):
        given = [w.clone(), grad.clone(), None if buffer is None else buffer.clone()]
        out, message = _call(student_fn, name, *given, **hyper)
        if message:
            print(message)
            return False
        if not all(a is b is None or torch.equal(a, b) for a, b in zip(given, (w, grad, buffer))):
            return _fail(name, "it modified w, grad or momentum_buffer in place: return new tensors "
                               "(new_w = w - lr * buffer, not w.sub_(...) or w -= ...).")
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            return _fail(name, "return two tensors, (new_w, new_buffer).")
        new_w, new_buffer = out
        if not isinstance(new_w, torch.Tensor) or not isinstance(new_buffer, torch.Tensor):
            return _fail(name, f"it returned ({type(new_w).__name__}, {type(new_buffer).__name__}): return two "
                               "tensors, the new weight and the new momentum buffer (on the first step: scale·d).")
        if new_w.shape != w.shape or new_buffer.shape != w.shape:
            return _fail(name, f"the new weight and buffer must have the weight's shape {tuple(w.shape)}, got "
                               f"{tuple(new_w.shape)} and {tuple(new_buffer.shape)}.")
        expected_w, expected_buffer = _lars_reference(w, grad, buffer, **hyper)
        if _close(new_w, expected_w, rtol=1e-5, atol=1e-10) and _close(new_buffer, expected_buffer, 1e-5, 1e-10):
            continue
        step, bound = (new_w.double() - w).norm().item(), hyper["eta"] * w.norm().item()
        hint = _lars_hint(student_fn, cases, number, out)
        if hint is None and _close(new_w, -hyper["lr"] * expected_buffer, 1e-5, 1e-10):
            hint = "you returned the step −lr·buffer: return the new weight, w − lr·buffer."
        elif hint is None and _close(new_w, expected_w, 1e-5, 1e-10):
            hint = ("the new weight is right but the buffer is not: return buffer = momentum·buffer + scale·d (on the "
                    "first step, scale·d), the tensor you subtracted lr times.")
        elif hint is None and buffer is None and 0 < bound < step / (1 + 1e-6):  # a first step is at most eta·‖w‖
            hint = (f"your first step moved w by {step:.3g}, more than eta·‖w‖ = {bound:.3g}: scale d by the trust "
                    "ratio, min(trust / lr, 1).")
        elif hint is None:
            hint = "write the five lines of the docstring one by one and compare each with the chapter's equation."
        off_w, off_buffer = ((a.double() - b).abs().max().item() for a, b in zip(out, (expected_w, expected_buffer)))
        return _fail(name, f"new_w is off by up to {off_w:.3g} and new_buffer by up to {off_buffer:.3g}. Hint: {hint}")
    print(f"PASS: your LARS step matches course_utils.train.LARS on {len(cases)} cases (a first step, a run with "
          "momentum, the clip binding, a huge gradient, a zero weight, lr > 1, other hyperparameters).")
    return True
