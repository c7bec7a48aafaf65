"""Chapter 1's self-check, ``check_grayscale``: the student's grayscale conversion of a batch of images.

``my_grayscale(batch)`` maps an N×3×H×W float batch in [0, 1] to the ITU-R BT.601 luma 0.299 R + 0.587 G +
0.114 B, the same value in all three channels (torchvision's ``rgb_to_grayscale``, the chapter's random
grayscale at p = 1). Three batches: random, not square, pure red, green and blue. The check names the usual
mistakes: one channel returned instead of three, the input changed in place, a result that is not a float
tensor, the channels averaged with equal weights, the weights in BGR order, output channels that differ.
"""

from __future__ import annotations

import torch

from ._common import _call, _never_raises


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
