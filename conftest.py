"""Repository-wide pytest hooks: keep the notebooks that nbval executed, for the book check to build from.

`make test` runs nbval on notebooks/ first, then tests/. Every code cell that nbval runs leaves its outputs on
the pytest item (``item.test_outputs``); this hook writes them back into the notebook, and a notebook whose
every code cell passed is kept, executed, in ``config.stash[EXECUTED]`` ({path: notebook}). tests/test_book.py
puts those into the book build's execution cache, so the book shows the very outputs nbval checked and no
chapter is executed twice.
"""

import copy
from pathlib import Path

import pytest

EXECUTED = pytest.StashKey[dict]()
_PASSED = pytest.StashKey[dict]()


def pytest_configure(config):
    config.stash[EXECUTED] = {}
    config.stash[_PASSED] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when != "call" or not hasattr(item, "test_outputs") or not hasattr(item, "cell"):
        return  # not an nbval cell
    report = outcome.get_result()
    notebook = item.parent
    path = Path(str(notebook.fspath)).resolve()
    passed = item.config.stash[_PASSED].setdefault(path, 0)
    if not report.passed:
        item.config.stash[_PASSED][path] = -(10**9)  # never complete
        return
    item.cell.outputs = [copy.deepcopy(out) for out in item.test_outputs]
    item.cell.execution_count = passed + 1
    item.config.stash[_PASSED][path] = passed + 1
    code_cells = sum(cell.cell_type == "code" for cell in notebook.nb.cells)
    if passed + 1 == code_cells:
        item.config.stash[EXECUTED][path] = copy.deepcopy(notebook.nb)


@pytest.fixture(scope="session")
def nbval_executed(request) -> dict:
    """{resolved notebook path: executed notebook} of the chapters nbval ran completely in this session."""
    return request.config.stash[EXECUTED]
