"""Specification of chapter 2's self-check, check_projection_head: SimCLR's MLP head passes, however it is
written; each usual mistake fails with a hint that names it; a student's exception never escapes the check."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.checks import check_projection_head
from course_utils.models import ProjectionHead


def student_head(in_dim, hidden_dim, out_dim, num_layers=2, *, bias_before_bn=False, blocks=None, order="bn-relu",
                 final_bias=True, after_last=(), swap=False, norm=nn.BatchNorm1d):
    """The head as a student writes it, an nn.Sequential, with one usual mistake switched on at a time."""
    if swap:
        hidden_dim, out_dim = out_dim, hidden_dim
    layers, dim = [], in_dim
    for _ in range(num_layers - 1 if blocks is None else blocks):
        block = {"bn-relu": [norm(hidden_dim), nn.ReLU()], "relu-bn": [nn.ReLU(), norm(hidden_dim)],
                 "no relu": [norm(hidden_dim)], "no bn": [nn.ReLU()]}[order]
        layers += [nn.Linear(dim, hidden_dim, bias=bias_before_bn), *block]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=final_bias))
    layers += [make(out_dim) for make in after_last]
    return nn.Sequential(*layers)


class FunctionalHead(nn.Module):
    """A correct head with the ReLU in forward() instead of a module."""

    def __init__(self, in_dim, hidden_dim, out_dim, num_layers=2):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        self.hidden = nn.ModuleList(nn.Sequential(nn.Linear(a, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim))
                                    for a in dims[:-1])
        self.last = nn.Linear(dims[-1], out_dim)

    def forward(self, h):
        for block in self.hidden:
            h = F.relu(block(h))
        return self.last(h)


def run(fn, capsys):
    passed = check_projection_head(fn)
    return passed, capsys.readouterr().out


@pytest.mark.parametrize("fn", [ProjectionHead, student_head, FunctionalHead], ids=["reference", "sequential",
                                                                                      "functional relu"])
def test_simclrs_head_passes_however_it_is_written(fn, capsys):
    passed, out = run(fn, capsys)
    assert passed is True and out.startswith("PASS")


def test_the_check_leaves_the_global_random_state_alone(capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_projection_head(student_head)
    assert torch.equal(torch.rand(3), expected)


def mistake(**kwargs):
    return lambda in_dim, hidden_dim, out_dim, num_layers=2: student_head(in_dim, hidden_dim, out_dim, num_layers,
                                                                            **kwargs)


# Each usual mistake, and the phrases its hint must contain.
MISTAKES = {
    "final ReLU": (dict(after_last=[lambda n: nn.ReLU()]), ["final ReLU"]),
    "BN after the last layer": (dict(after_last=[nn.BatchNorm1d]), ["BatchNorm1d after the last Linear"]),
    "one block too many": (dict(blocks=2), ["counts the Linear layers", "Yours has 3"]),
    "num_layers ignored": (dict(blocks=1), ["num_layers=3 counts the Linear layers"]),
    "bias before BN": (dict(bias_before_bn=True), ["has a bias", "cancels a constant bias", "bias=False",
                                                   "Parameters: yours 426, SimCLR's 406"]),
    "hidden and out swapped": (dict(swap=True), ["swap hidden_dim and out_dim"]),
    "no ReLU": (dict(order="no relu"), ["there is no ReLU"]),
    "ReLU before BN": (dict(order="relu-bn"), ["the ReLU comes before the batch norm"]),
    "no BN": (dict(order="no bn"), ["no BatchNorm1d"]),
    "no bias in the final Linear": (dict(final_bias=False), ["final Linear keeps its bias"]),
    "LayerNorm for BatchNorm": (dict(norm=nn.LayerNorm), ["no BatchNorm1d"]),
    "BN without running statistics": (dict(norm=lambda n: nn.BatchNorm1d(n, track_running_stats=False)),
                                      ["running statistics"]),
}


@pytest.mark.parametrize("kwargs, phrases", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_usual_mistake_fails_with_a_hint_that_names_it(kwargs, phrases, capsys):
    passed, out = run(mistake(**kwargs), capsys)
    assert passed is False and out.startswith("FAIL")
    for phrase in phrases:
        assert phrase in out


def test_extra_layers_fail(capsys):
    passed, out = run(lambda *args: nn.Sequential(student_head(*args), nn.Dropout(0.5)), capsys)
    assert passed is False and "dropout" in out
    passed, out = run(lambda *args: nn.Sequential(student_head(*args), nn.PReLU()), capsys)
    assert passed is False and "it has parameters outside them" in out
    passed, out = run(mistake(norm=lambda n: nn.BatchNorm1d(n, affine=False)), capsys)
    assert passed is False and "affine=True" in out


def test_batch_statistics_in_eval_mode_fail(capsys):
    class AlwaysBatchStatistics(FunctionalHead):
        def forward(self, h):
            for block in self.hidden:
                linear, bn = block
                h = F.relu(F.batch_norm(linear(h), None, None, bn.weight, bn.bias, training=True))
            return self.last(h)

    passed, out = run(AlwaysBatchStatistics, capsys)
    assert passed is False and "eval mode" in out and "running statistics" in out


def test_results_that_are_not_a_module_or_a_tensor_fail(capsys):
    passed, out = run(lambda *args: student_head(*args).forward, capsys)
    assert passed is False and "return an nn.Module" in out

    class ReturnsTuple(FunctionalHead):
        def forward(self, h):
            return h, super().forward(h)

    passed, out = run(ReturnsTuple, capsys)
    assert passed is False and "return the tensor z" in out


def test_an_in_place_change_of_the_input_fails(capsys):
    class InPlace(FunctionalHead):
        def forward(self, h):
            return super().forward(h.relu_())

    passed, out = run(InPlace, capsys)
    assert passed is False and "changed its input in place" in out


def test_not_implemented_and_exceptions_are_reported_not_raised(capsys):
    def stub(in_dim, hidden_dim, out_dim, num_layers=2):
        raise NotImplementedError("Exercise")

    passed, out = run(stub, capsys)
    assert passed is False and "not implemented yet" in out
    passed, out = run(lambda *args: nn.Linear("a", 2), capsys)  # a TypeError in the student's code
    assert passed is False and "your function raised TypeError" in out

    class Crashes(FunctionalHead):
        def forward(self, h):
            return self.last(h)  # the wrong width: a shape error in forward

    passed, out = run(Crashes, capsys)
    assert passed is False and "your module raised RuntimeError" in out
