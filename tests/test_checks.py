"""Specification of the exercise self-checks (course_utils.checks): PASS for right answers, a useful
hint for the usual wrong ones, and never an exception from a student's mistake."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import check_nt_xent
from course_utils.losses import nt_xent, nt_xent_naive


def student_nt_xent(z1, z2, temperature=0.5, mask_diagonal=True, normalise=True, targets="other view",
                    scale=1.0):
    """How a student typically writes it: cross-entropy over the 2N×2N similarity matrix."""
    n = len(z1)
    z = torch.cat([z1, z2])
    z = F.normalize(z, dim=1) if normalise else z
    sim = z @ z.T / temperature
    if mask_diagonal:
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    if targets == "other view":
        labels = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    else:
        labels = torch.arange(2 * n)
    return scale * F.cross_entropy(sim, labels)


def run(fn, capsys):
    passed = check_nt_xent(fn)
    return passed, capsys.readouterr().out


@pytest.mark.parametrize("fn", [nt_xent, nt_xent_naive, student_nt_xent], ids=["reference", "naive", "student"])
def test_correct_implementations_pass(fn, capsys):
    passed, out = run(fn, capsys)
    assert passed is True and out.startswith("PASS")


@pytest.mark.parametrize("mistake, hint", [
    (dict(mask_diagonal=False), "did you mask the self-similarities"),
    (dict(normalise=False), "L2-normalising"),
    (dict(targets="self", mask_diagonal=False), "the target of anchor i is i itself"),
    (dict(scale=2.0), "off by a factor of 2: average over all 2N anchors"),
])
def test_common_mistakes_fail_with_a_hint(mistake, hint, capsys):
    passed, out = run(lambda z1, z2, temperature: student_nt_xent(z1, z2, temperature, **mistake), capsys)
    assert passed is False and out.startswith("FAIL") and hint in out


def test_ignoring_the_temperature_is_recognised(capsys):
    passed, out = run(lambda z1, z2, temperature: student_nt_xent(z1, z2, 1.0), capsys)
    assert passed is False and "ignore the temperature" in out


def test_clip_style_loss_is_not_nt_xent(capsys):
    def clip_style(z1, z2, temperature):
        sim = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature
        labels = torch.arange(len(z1))
        return (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2

    passed, out = run(clip_style, capsys)
    assert passed is False and "as in CLIP" in out


def test_not_implemented_yet(capsys):
    def todo(z1, z2, temperature=0.5):
        raise NotImplementedError

    passed, out = run(todo, capsys)
    assert passed is False and "not implemented yet" in out


def test_a_crash_in_student_code_is_reported_not_raised(capsys):
    passed, out = run(lambda z1, z2, temperature: torch.cat([z1, z2], dim=2).sum(), capsys)  # no dim 2
    assert passed is False and "FAIL" in out and "IndexError" in out


@pytest.mark.parametrize("fn, hint", [
    (lambda z1, z2, temperature: student_nt_xent(z1, z2, temperature).item(), "return a torch tensor"),
    (lambda z1, z2, temperature: student_nt_xent(z1, z2, temperature).detach(), "detached"),
    (lambda z1, z2, temperature: F.cross_entropy(torch.cat([z1, z2]) @ torch.cat([z1, z2]).T,
                                                 torch.arange(2 * len(z1)), reduction="none"), "one loss per anchor"),
])
def test_results_that_cannot_train_a_model_fail(fn, hint, capsys):
    passed, out = run(fn, capsys)
    assert passed is False and hint in out


def test_in_place_changes_to_the_inputs_fail(capsys):
    def in_place(z1, z2, temperature):
        with torch.no_grad():
            z1 /= z1.norm(dim=1, keepdim=True)
        return nt_xent(z1, z2, temperature)

    passed, out = run(in_place, capsys)
    assert passed is False and "in place" in out
