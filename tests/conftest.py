"""Shared test set-up: every test runs with its own course home, so nothing touches ~/.cache."""

import os

import matplotlib
import pytest
import torch

# Agg for the tests' own figures, set in this process only: an MPLBACKEND variable would reach the notebook
# kernels that nbval starts, and figures would no longer show in their outputs (nor in the book built from them).
matplotlib.use("Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
# At most 2 CPU threads for the tests, whatever the machine: small models gain nothing from more. make test
# gives each process 1 (OMP_NUM_THREADS=1, two xdist workers on two cores), and that is kept.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def isolated_course_home(tmp_path_factory, monkeypatch):
    """A per-session course home (stand-in caches are shared between tests; checkpoints are not)."""
    home = tmp_path_factory.getbasetemp() / "course-home"
    monkeypatch.setenv("COURSE_HOME", str(home))
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.delenv("COURSE_CHECKPOINTS", raising=False)
    return home
