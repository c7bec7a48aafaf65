"""Specification of chapter 1's self-check `check_grayscale`: PASS for the right answer, a specific hint
for the usual mistakes, and never an exception from a student's code."""

import pytest
import torch

from course_utils.checks import check_grayscale

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def run(fn, capsys):
    return check_grayscale(fn), capsys.readouterr().out


@pytest.mark.parametrize("fn", [
    lambda x: (x * LUMA).sum(1, keepdim=True).expand(-1, 3, -1, -1),
    lambda x: (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1).repeat(1, 3, 1, 1),
    lambda x: torch.einsum("c,nchw->nhw", LUMA.flatten(), x)[:, None].expand_as(x).clone(),
], ids=["broadcast", "channels", "einsum"])
def test_correct_grayscale_passes(fn, capsys):
    passed, out = run(fn, capsys)
    assert passed is True and out.startswith("PASS")


def test_matches_torchvision_so_the_reference_is_right(capsys):
    from torchvision.transforms.functional import rgb_to_grayscale
    passed, out = run(lambda x: rgb_to_grayscale(x, num_output_channels=3), capsys)
    assert passed is True


@pytest.mark.parametrize("fn, hint", [
    (lambda x: x.mean(1, keepdim=True).expand_as(x), "averaged the channels equally"),
    (lambda x: (x * LUMA.flip(1)).sum(1, keepdim=True).expand_as(x), "BGR"),
    (lambda x: (x * LUMA).sum(1, keepdim=True), "broadcast the grey value back to 3 channels"),
    (lambda x: x * LUMA, "the three output channels differ"),
    (lambda x: (x * LUMA).sum(1, keepdim=True).expand_as(x).mul(255).to(torch.uint8), "float"),
    (lambda x: (x * LUMA).sum(1).tolist(), "return a torch tensor"),
])
def test_common_mistakes_fail_with_a_hint(fn, hint, capsys):
    passed, out = run(fn, capsys)
    assert passed is False and out.startswith("FAIL") and hint in out


def test_in_place_change_of_the_input_fails(capsys):
    def in_place(x):
        x[:] = (x * LUMA).sum(1, keepdim=True)
        return x
    passed, out = run(in_place, capsys)
    assert passed is False and "in place" in out


def test_not_implemented_and_crashes_are_reported_not_raised(capsys):
    def todo(x):
        raise NotImplementedError("Exercise")
    passed, out = run(todo, capsys)
    assert passed is False and "not implemented yet" in out
    passed, out = run(lambda x: x[:, 5], capsys)
    assert passed is False and "IndexError" in out
