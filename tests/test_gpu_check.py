"""`make gpu-check`: on a CPU it refuses clearly; its reading of chapter 4's glued figures is right."""

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402


def test_without_a_gpu_it_says_so_and_exits_with_2(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "No CUDA GPU here" in err and "make test" in err


def test_glued_values_are_read_back_from_an_executed_notebook(monkeypatch):
    pytest.importorskip("myst_nb")
    from myst_nb import glue
    from IPython.core.interactiveshell import InteractiveShell

    # What glue() writes, captured as a display output of a cell.
    shell = InteractiveShell.instance()
    outputs = []
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, metadata=None, **kw: outputs.append((data, metadata)))
    glue("ch4_knn_end", 0.4375, display=False)
    data, metadata = outputs[-1]
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data, metadata=metadata)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert gpu_check.glued(nb, "ch4_knn_end") == 0.4375
    assert gpu_check.glued(nb, "missing") is None
