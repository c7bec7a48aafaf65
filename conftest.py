"""Repository-wide pytest hooks: keep the notebooks that nbval executed, for the book check to build from.

`make test` runs nbval on notebooks/ first, then tests/. Every code cell that nbval runs leaves its outputs on
the pytest item (``item.test_outputs``); this hook writes them back into the notebook, and a notebook whose
every code cell passed is kept, executed, in ``config.stash[EXECUTED]`` ({path: notebook}). tests/test_book.py
puts those into the book build's execution cache, so the book shows the very outputs nbval checked and no
chapter is executed twice.

With pytest-xdist (``make test`` runs ``-n 2``), the nbval cells and the book check form one work unit (the
scheduler below): one worker runs every chapter in order and then builds the book from their outputs, while
the other worker starts on the longest test module, the run-as-Colab check; the rest go to whichever is free.
"""

import copy
from pathlib import Path

import pytest

EXECUTED = pytest.StashKey[dict]()
_PASSED = pytest.StashKey[dict]()


NOTEBOOK_GROUP = "notebooks, then the book"


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: the chapters' nbval cells and the book check share one, in that order;
    every other test module is a unit of its own."""
    path = nodeid.split("::", 1)[0]
    return NOTEBOOK_GROUP if path.endswith((".ipynb", "tests/test_book.py")) else path


# The longest test modules, measured in make test: the run-as-Colab check (~140 s), grading (~33 s) and the
# two-process tests (~32 s); the attacks on the grader took ~55 s alone on a busy 2-core machine. They are
# handed out first, right after the chapters' unit (~140 s with the book).
LONG_FIRST = ("tests/test_colab.py", "tests/test_grade_attacks.py", "tests/test_grade.py", "tests/test_distributed.py")


def pytest_collection_modifyitems(config, items):
    """The chapters (then the book check) first, then the longest modules, then the rest in their usual order.

    xdist hands out work units in this order, so the two longest units start at once on the two workers and
    the short ones fill the gaps at the end (handed out by size instead, the Colab check started last, and
    one worker idled for 85 s). The book check stays right after the chapters; no other test depends on what
    ran before it, so a plain pytest run checks the same things in this order.
    """
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        if work_unit(item.nodeid) == NOTEBOOK_GROUP:
            return 0
        return 1 + LONG_FIRST.index(path) if path in LONG_FIRST else 1 + len(LONG_FIRST)

    items.sort(key=rank)  # stable: each module keeps its own order


@pytest.hookimpl(optionalhook=True)  # only called when pytest-xdist runs the session (make test: -n 2)
def pytest_xdist_make_scheduler(config, log):
    """Work units for the xdist workers: every test module is one unit, and the nbval cells of all the chapters
    together with the book check are one more, run in collection order by one worker. Cells share a kernel,
    and the book builds from the outputs stashed in the process that ran them. Units go out in collection order
    (see pytest_collection_modifyitems), not xdist's default of the most tests first."""
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksThenBook(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return NotebooksThenBook(config, log)


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
