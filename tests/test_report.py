"""Glued numbers reach the book as numbers it can format; comparisons in words follow the numbers."""

import numpy as np
import pytest
import torch

from course_utils.report import compare, glue


@pytest.mark.parametrize("value, expected", [(np.float64(0.5), 0.5), (torch.tensor(0.25), 0.25), (np.int64(3), 3),
                                             ("ahead of", "ahead of"), (0.125, 0.125)])
def test_scalars_are_glued_as_plain_python_numbers(value, expected):
    glued = glue("key", value)
    assert glued == expected and type(glued) is type(expected)  # so "{glue:text}`key:.1%`" can format it


def test_glue_prints_the_value_that_myst_nb_stores(capsys):
    pytest.importorskip("myst_nb")
    glue("shown", np.float64(0.25), display=True)
    out = capsys.readouterr().out
    assert "0.25" in out and "np.float64" not in out


def test_comparisons_in_words_follow_the_numbers_with_a_tolerance():
    assert compare(0.91, 0.80) == "ahead of"
    assert compare(0.80, 0.91) == "behind"
    assert compare(0.801, 0.80) == "level with"  # within half a point: no claim either way
    assert compare(0.80, 0.70, tolerance=0.2, better="above") == "level with"
