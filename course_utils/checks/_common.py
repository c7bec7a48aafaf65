"""What every self-check shares: run a student's function so that nothing it does can stop the notebook.

A check calls the student's function through ``_call`` (or ``_call_number`` for one that returns a number):
the ``NotImplementedError`` of an untouched stub becomes ``_NOT_IMPLEMENTED``, the "not implemented yet" line
that the grading tool and the run-as-Colab test look for, and any other exception a FAIL that names it. It
reports with ``_fail``, compares tensors with ``_close`` (same shape, allclose in float64, False for what is not
numbers), and is wrapped in ``_never_raises``: a result so odd that the check itself trips on it is a FAIL too,
so the cell that calls a check always finishes and Run-all keeps going.
"""

from __future__ import annotations

import functools

import torch


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
