"""Self-checks for the exercises: run a student's function against the reference implementation.

Each check prints PASS, or FAIL with what went wrong and a hint, and returns True or False. A wrong
answer never raises: the cell that calls the check always finishes, so Run-all keeps going.

    from course_utils.checks import check_lars_update
    check_lars_update(my_lars_update)   # prints "PASS: ..." or "FAIL on <case>: ... Hint: ..."

The checks recognise the usual mistakes by computing them: each check carries deliberately wrong
variants of the reference (a forgotten normalisation, a missing clip, ...) and names the one that the
student's output matches. ``EXERCISES`` lists every chapter's coding exercises, and ``REFERENCES`` the
names whose import would hand out an exercise's answer: a student version of a chapter must not import
them (the checks themselves compare with those references, inside this module).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .augment import to_float
from .losses import _nt_xent_from_ids, nt_xent

# --- The exercises of each chapter, and what must not be imported for them ---------------------------

# chapter notebook (file stem) -> [(check in this module, the function the student writes)], in order.
EXERCISES = {
    "01_augmentations": [("check_grayscale", "my_grayscale")],
    "02_simclr_mnist": [("check_projection_head", "my_projection_head")],
    "03_nt_xent": [("check_multiview_nt_xent", "my_multiview_nt_xent"), ("check_anchor_grad_z", "my_anchor_grad_z")],
    "04_resnet18_cifar10": [("check_lars_update", "my_lars_update")],
    "05_linear_evaluation": [("check_standardize", "my_standardize"), ("check_knn_predict", "my_knn_predict")],
    "06_baselines": [("check_lloyd", "my_lloyd")],
    "07_many_gpus": [("check_local_anchor_loss", "my_local_anchor_loss")],
}

# check -> names that hand out its answer (or the half of it that is not on the page) when imported, from
# course_utils or from a library the course installs. A chapter's student version imports none of them.
REFERENCES = {
    # torchvision's function and transforms; course_utils.augment's random_grayscale(x, p=1.0) is the answer.
    "check_grayscale": ["rgb_to_grayscale", "random_grayscale", "Grayscale", "RandomGrayscale"],
    "check_projection_head": ["ProjectionHead"],
    # _nt_xent_from_ids IS the multi-view loss (nt_xent_views: the name a public version of it would take).
    "check_multiview_nt_xent": ["_nt_xent_from_ids", "nt_xent_views"],
    # the gradient with respect to u: with it, only the chain rule through the normalisation is left.
    "check_anchor_grad_z": ["nt_xent_anchor_grad"],
    "check_lars_update": ["LARS"],
    "check_standardize": ["StandardScaler"],
    # knn_accuracy answers "is class c right for this query?", which is a prediction by trial.
    "check_knn_predict": ["knn_predict", "knn_accuracy", "KNeighborsClassifier"],
    # scikit-learn's KMeans(init=centroids, n_init=1, max_iter=...) and SciPy's kmeans2(..., minit="matrix")
    # run Lloyd's iterations from given centroids; lloyd_reference is this module's own.
    "check_lloyd": ["KMeans", "k_means", "kmeans2", "lloyd_reference"],
    "check_local_anchor_loss": ["local_anchor_loss"],
}

# --- Running a student's function -------------------------------------------------------------------

_NOT_IMPLEMENTED = "not implemented yet: replace `raise NotImplementedError` with your code and run the cell again."


def _call(student_fn, name, *args, what="function", **kwargs):
    """Run a student's function; return (output, None) or (None, message) without ever raising."""
    try:
        return student_fn(*args, **kwargs), None
    except NotImplementedError:
        return None, _NOT_IMPLEMENTED
    except Exception as error:  # a bug in the student's code: report it, don't crash the notebook
        return None, f"FAIL on {name}: your {what} raised {type(error).__name__}: {error}"


def _call_number(student_fn, name, what, *args):
    """Like ``_call``, for a function that must return one number (``what``): (float, None) or (None, message)."""
    got, message = _call(student_fn, name, *args)
    if message:
        return None, message
    try:
        return float(got), None
    except (TypeError, ValueError):
        return None, f"FAIL on {name}: it returned a {type(got).__name__}; return {what}."


def _fail(name: str, problem: str) -> bool:
    print(f"FAIL on {name}: {problem}")
    return False


def _close(a, b, rtol=1e-5, atol=1e-8) -> bool:
    """Same shape and allclose, in float64 (a student may compute in float32); False for what is not numbers."""
    try:
        a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    except (TypeError, ValueError, RuntimeError):
        return False
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)


def _never_raises(check):
    """The last line of defence of a check: a result so odd that the check itself trips on it is a FAIL too."""
    @functools.wraps(check)
    def guarded(student_fn) -> bool:
        try:
            return check(student_fn)
        except Exception as error:  # the check choked on what the student's function returned
            print(f"FAIL: the check could not use what your function returned ({type(error).__name__}: {error}). "
                  "Return what the exercise asks for: see the docstring of the stub.")
            return False
    return guarded


# --- Chapter 1: grayscale --------------------------------------------------------------------------

@_never_raises
def check_grayscale(student_fn) -> bool:
    """Check a student's `grayscale(batch)`: N×3×H×W float in [0, 1] -> N×3×H×W, every channel equal to
    the ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B (as torchvision's rgb_to_grayscale).

    Prints PASS, or FAIL with the first failing case and a hint; returns True/False.
    """
    g = torch.Generator().manual_seed(0)
    cases = [("a random batch 4×3×8×8", torch.rand(4, 3, 8, 8, generator=g)),
             ("one image 1×3×5×7 (not square)", torch.rand(1, 3, 5, 7, generator=g)),
             ("pure red, green and blue images", torch.eye(3).view(3, 3, 1, 1).expand(3, 3, 2, 2).clone())]
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for name, x in cases:
        original = x.clone()
        out, message = _call(student_fn, name, x)
        if message:
            print(message)
            return False
        expected = (x * weights).sum(1, keepdim=True).expand_as(x)
        problem = None
        if not isinstance(out, torch.Tensor):
            problem = f"it returned a {type(out).__name__}; return a torch tensor."
        elif not torch.equal(x, original):
            problem = "it changed the input batch in place: build a new tensor instead."
        elif out.shape == (x.shape[0], 1, *x.shape[2:]):
            problem = ("it returned one channel (N×1×H×W): broadcast the grey value back to 3 channels "
                       "(e.g. .expand(-1, 3, -1, -1) or .repeat(1, 3, 1, 1)), so the network still sees RGB.")
        elif out.shape != x.shape:
            problem = f"expected shape {tuple(x.shape)}, got {tuple(out.shape)}."
        elif not out.is_floating_point():
            problem = f"it returned {out.dtype}: keep the result a float tensor in [0, 1]."
        elif not torch.allclose(out.float(), expected, atol=1e-3):  # torchvision uses 0.2989 for red
            mean = x.mean(1, keepdim=True).expand_as(x)
            bgr = (x * weights.flip(1)).sum(1, keepdim=True).expand_as(x)
            if torch.allclose(out.float(), mean, atol=1e-5):
                hint = ("you averaged the channels equally; the eye is most sensitive to green, so use the "
                        "weights 0.299, 0.587, 0.114 for R, G, B.")
            elif torch.allclose(out.float(), bgr, atol=1e-5):
                hint = "the weights are reversed (BGR order): channel 0 is red and gets 0.299."
            elif not torch.allclose(out[:, 0], out[:, 1], atol=1e-6) or not torch.allclose(out[:, 0], out[:, 2], atol=1e-6):
                hint = "the three output channels differ: a grey image has the same value in R, G and B."
            else:
                hint = "each output pixel is 0.299·R + 0.587·G + 0.114·B of the same input pixel."
            problem = f"max difference {(out.float() - expected).abs().max().item():.4f}. Hint: {hint}"
        if problem:
            print(f"FAIL on {name}: {problem}")
            return False
    print(f"PASS: your grayscale matches 0.299 R + 0.587 G + 0.114 B on {len(cases)} cases.")
    return True


# --- Chapter 2: the projection head ------------------------------------------------------------------

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
    from .models import ProjectionHead

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


# --- Chapter 4: one LARS step ------------------------------------------------------------------------

def _lars_reference(w, grad, buffer, *, lr, momentum, weight_decay, eta):
    """(new_w, new_buffer) of one step of course_utils.train.LARS (a group with lars=True, clip=True)."""
    from .train import LARS

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
    from .evaluate import knn_predict

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


# --- Chapter 6: Lloyd's k-means iterations -------------------------------------------------------------

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


# --- Chapter 7: one rank's share of the loss ---------------------------------------------------------------

@_never_raises
def check_local_anchor_loss(student_fn) -> bool:
    """Chapter 7's check, ``course_utils.distributed.check_local_anchor_loss`` (it lives with the code it checks;
    here so that every chapter's checks are found in this module, as the grading tool looks for them)."""
    from .distributed import check_local_anchor_loss as check

    return check(student_fn)


# === Retired exercises ===============================================================================
# No chapter asks for these any more (their answers were on the page); the grading tool and older student
# copies still call them, so they stay, with their tests (tests/test_checks_retired.py).

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
    from .train import warmup_cosine

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
    from .evaluate import cluster_accuracy

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
    from .models import ProjectionHead, SimCLRModel, SmallCNN

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
