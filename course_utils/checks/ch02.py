"""Chapter 2's self-check, ``check_projection_head``: the MLP g(·) that maps the features h to the z of the loss.

``my_projection_head(in_dim, hidden_dim, out_dim, num_layers)`` builds the course's ``models.ProjectionHead``:
num_layers − 1 blocks Linear(bias=False) → BatchNorm1d → ReLU, then a final Linear with a bias. For four sizes
(1 to 3 layers) the check compares the Linear and BatchNorm1d layers and the parameter count with the
reference's, then the output, in train and in eval mode, with Linear → BN → ReLU → ... → Linear computed from
the student's own layers (``_head_forward``, so the initialisation is free). It names a wrong number of
layers, a batch norm after the last Linear, a bias before a batch norm, swapped hidden_dim and out_dim, a final
ReLU, a missing ReLU or one before the batch norm, an in-place ReLU on the input, and batch norms that keep no
running statistics or ignore them in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._common import _call, _close, _fail, _never_raises


_HEAD_CASES = [(12, 20, 6, 2), (10, 24, 7, 3), (128, 512, 128, 2), (9, 16, 5, 1)]  # in, hidden, out, num_layers


def _head_layers(module: nn.Module) -> list:
    """The Linear and BatchNorm1d layers of ``module``, in the order it creates them."""
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))]


def _describe(layer) -> str:
    if isinstance(layer, nn.Linear):
        return f"Linear({layer.in_features}→{layer.out_features}{'' if layer.bias is not None else ', bias=False'})"
    return f"BatchNorm1d({layer.num_features})"


def _head_forward(layers, x, training: bool, *, order="bn-relu"):
    """What Linear → BN → ReLU → ... → Linear computes with ``layers`` (functional: the running statistics are
    read in eval mode, never updated). ``order`` "relu-bn" or "none" computes a usual mistake instead."""
    *blocks, last = layers
    for linear, bn in zip(blocks[::2], blocks[1::2]):
        x = F.linear(x, linear.weight, linear.bias)
        if order == "relu-bn":
            x = F.relu(x)
        x = F.batch_norm(x, None if training else bn.running_mean, None if training else bn.running_var,
                         bn.weight, bn.bias, training=training, eps=bn.eps)
        if order == "bn-relu":
            x = F.relu(x)
    return F.linear(x, last.weight, last.bias)


def _head_structure_problem(layers, reference_layers, num_layers: int) -> str | None:
    got, want = [_describe(m) for m in layers], [_describe(m) for m in reference_layers]
    if got == want:
        return None
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    if len(linears) != num_layers:
        hint = (f"num_layers={num_layers} counts the Linear layers: {num_layers - 1} Linear-BatchNorm1d-ReLU "
                f"block(s), then one final Linear. Yours has {len(linears)} Linear layer(s).")
    elif isinstance(layers[-1], nn.BatchNorm1d):
        hint = ("there is a BatchNorm1d after the last Linear: the head ends with a plain Linear (with a bias), "
                "and its output z goes to the loss as it is.")
    elif any(isinstance(a, nn.Linear) and a.bias is not None and isinstance(b, nn.BatchNorm1d)
             for a, b in zip(layers, layers[1:])):
        hint = ("a Linear before a BatchNorm1d has a bias. The batch norm subtracts the batch mean of every unit, "
                "which cancels a constant bias exactly (its gradient is 0: a wasted parameter), and the batch "
                "norm's own shift β does that job. Use nn.Linear(..., bias=False) before a batch norm.")
    elif num_layers > 1 and not any(isinstance(m, nn.BatchNorm1d) for m in layers):
        hint = "there is no BatchNorm1d: each hidden Linear is followed by BatchNorm1d(hidden_dim), then a ReLU."
    elif linears[-1].bias is None:
        hint = "the final Linear keeps its bias: no batch norm follows it to provide a shift."
    else:
        hint = "the hidden Linear layers map to hidden_dim features and the last one to out_dim, in that order."
    return f"{hint} (Expected {', '.join(want)}; yours, in the order your module creates them: {', '.join(got)}.)"


@_never_raises
def check_projection_head(student_fn) -> bool:
    """Check a student's ``my_projection_head(in_dim, hidden_dim, out_dim, num_layers=2) -> nn.Module``.

    The head must be the course's version of SimCLR's MLP, ``course_utils.models.ProjectionHead`` (SimCLR's
    reference code also puts a batch norm after the last Linear; the course leaves it out): ``num_layers - 1``
    blocks Linear(bias=False) → BatchNorm1d → ReLU (the first from in_dim, the others from hidden_dim, all to
    hidden_dim), then a final Linear(→ out_dim) with a bias and nothing after it; ``num_layers=1`` is one
    Linear(in_dim → out_dim). Input (N, in_dim), output (N, out_dim).

    For four sizes (1, 2 and 3 layers), on an 8×in_dim batch: the output shape; the Linear and BatchNorm1d
    layers (sizes, biases, order) and the parameter count against the reference's; the output in train mode
    against Linear → BN → ReLU → ... → Linear computed with the student's own layers (a final ReLU or a wrong
    order shows here); eval mode, on the batch and on a single row, with the running statistics. The
    student's initialisation is not checked, and the notebook's random state is left alone.
    Prints PASS, or FAIL with the first failing case and a hint; returns True/False. Never raises.
    """
    from ..models import ProjectionHead

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for in_dim, hidden_dim, out_dim, num_layers in _HEAD_CASES:
            name = f"in_dim={in_dim}, hidden_dim={hidden_dim}, out_dim={out_dim}, num_layers={num_layers}"
            if not _head_case_passes(student_fn, ProjectionHead, name, in_dim, hidden_dim, out_dim, num_layers):
                return False
    print(f"PASS: your projection head has the course head's layers and parameter count, and computes Linear → BN "
          f"→ ReLU → ... → Linear in train and eval mode, for {len(_HEAD_CASES)} sizes (1 to 3 layers).")
    return True


def _head_case_passes(student_fn, reference_class, name, in_dim, hidden_dim, out_dim, num_layers) -> bool:
    head, message = _call(student_fn, name, in_dim, hidden_dim, out_dim, num_layers)
    if message:
        print(message)
        return False
    if not isinstance(head, nn.Module):
        return _fail(name, f"it returned a {type(head).__name__}; return an nn.Module (e.g. an nn.Sequential).")
    x = torch.randn(8, in_dim)
    original = x.clone()
    head.train()
    z, message = _call(head, name + " (forward pass in train mode)", x, what="module")
    if message:
        print(message)
        return False
    if not isinstance(z, torch.Tensor):
        return _fail(name, f"the forward pass returned a {type(z).__name__}; return the tensor z.")
    if not torch.equal(x, original):
        return _fail(name, "the forward pass changed its input in place (an in-place ReLU on h?).")
    if tuple(z.shape) != (8, out_dim):
        hint = f"expected z of shape (8, {out_dim}), got {tuple(z.shape)}."
        if tuple(z.shape) == (8, hidden_dim):
            hint += (" z has hidden_dim columns: the hidden layers are hidden_dim wide and the LAST Linear maps to "
                     "out_dim. Did you swap hidden_dim and out_dim?")
        return _fail(name, hint)

    layers, reference = _head_layers(head), reference_class(in_dim, hidden_dim, out_dim, num_layers)
    n_params, n_reference = (sum(p.numel() for p in m.parameters()) for m in (head, reference))
    problem = _head_structure_problem(layers, _head_layers(reference), num_layers)
    if problem:
        return _fail(name, f"{problem} Parameters: yours {n_params:,}, SimCLR's {n_reference:,}.")
    if n_params != n_reference:
        why = ("it has parameters outside them: use only Linear, BatchNorm1d and ReLU layers." if n_params > n_reference
               else "keep the batch norms' scale and shift (affine=True, the default).")
        return _fail(name, f"your head has {n_params:,} parameters, SimCLR's {n_reference:,}, although its Linear and "
                           f"BatchNorm1d layers are the right ones: {why}")
    if any(m.running_mean is None for m in layers if isinstance(m, nn.BatchNorm1d)):
        return _fail(name, "a BatchNorm1d keeps no running statistics (track_running_stats=False): in eval mode the "
                           "head must work on any batch, even one image. Use the default BatchNorm1d(hidden_dim).")

    with torch.no_grad():
        expected = _head_forward(layers, x, training=True)
        if not _close(z, expected, rtol=1e-4, atol=1e-5):
            if _close(z, F.relu(expected), rtol=1e-4, atol=1e-5) or bool((z >= 0).all()):
                hint = ("z went through a final ReLU: it is never negative, so its directions are confined to one "
                        "orthant and no two z can have a negative cosine. The head ends with the last Linear.")
            elif _close(z, _head_forward(layers, x, True, order="none"), rtol=1e-4, atol=1e-5):
                hint = ("there is no ReLU: without it the head is one linear map however many layers it has. Put a "
                        "ReLU after each batch norm.")
            elif _close(z, _head_forward(layers, x, True, order="relu-bn"), rtol=1e-4, atol=1e-5):
                hint = "the ReLU comes before the batch norm: the order is Linear → BatchNorm1d → ReLU."
            else:
                hint = ("z differs from Linear → BatchNorm1d → ReLU → ... → Linear computed with your own layers: "
                        "check the forward pass (dropout, or the layers used in another order?).")
            difference = (z - expected).abs().max().item()
            return _fail(name + " (train mode)", f"max difference {difference:.2e}. Hint: {hint}")

        head.eval()
        expected = _head_forward(layers, x, training=False)  # with the running statistics of one training batch
        for rows, what in ((8, "a batch of 8"), (1, "a single row")):
            z, message = _call(head, f"{name} (eval mode, {what})", x[:rows], what="module")
            if message:
                print(message)
                return False
            if not (isinstance(z, torch.Tensor) and _close(z, expected[:rows], rtol=1e-4, atol=1e-5)):
                return _fail(f"{name} (eval mode, {what})", "in eval mode the batch norms must use their running "
                             "statistics: call the BatchNorm1d modules (they switch by themselves with "
                             ".train()/.eval()) rather than computing batch statistics yourself.")
    return True
