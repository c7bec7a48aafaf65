"""The book builds without warnings in the smoke profile, and its HTML has what a reader needs.

The book is built ONCE per test session (module fixture), executing every chapter in the smoke profile:

    COURSE_PROFILE=smoke jupyter-book build <repo> --path-output <tmp> -W -n --keep-going --all

into a fresh temporary folder (so jupyter-cache never hides an execution), unless COURSE_BOOK_OUTPUT names
a folder to reuse between local runs. Then the HTML is checked page by page with BeautifulSoup.

MPLBACKEND is removed from the build's environment on purpose: when it is set (the Makefile exports
MPLBACKEND=Agg), ipykernel keeps that backend instead of the inline one, plt.show() draws nothing and the
book has no figures. PYTHONPATH puts this checkout's course_utils first for the kernels.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from course_utils.instructor import labs

bs4 = pytest.importorskip("bs4")

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
CHAPTERS = labs.chapter_notebooks(ROOT)
chapter = pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])


def toc_files() -> list[str]:
    def walk(node):
        if isinstance(node, dict):
            own = [node[k] for k in ("root", "file") if k in node]
            return own + [f for v in node.values() for f in walk(v)]
        if isinstance(node, list):
            return [f for item in node for f in walk(item)]
        return []
    return walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))


def seed_execution_cache(output: Path, executed: dict) -> list[str]:
    """Put the notebooks nbval executed in this session into the build's jupyter-cache; return their names.

    With ``execute_notebooks: cache`` the build then takes their outputs instead of running them again.
    Only a chapter that nbval ran completely is used; the others the build executes itself.
    """
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(output / "_build" / ".jupyter_cache")
    seeded = []
    for path in CHAPTERS:
        nb = executed.get(path.resolve())
        if nb is None:
            continue
        nbformat.validate(nb)
        cache.cache_notebook_bundle(CacheBundleIn(nb, str(path)), check_validity=False, overwrite=True)
        seeded.append(path.stem)
    return seeded


@pytest.fixture(scope="module")
def build(tmp_path_factory, nbval_executed):
    """Build the book once; return (html folder, exit code, log).

    The chapters that nbval executed in this pytest session are not executed again: their outputs go into
    the build's execution cache (see conftest.py at the repository root).
    """
    if not JUPYTER_BOOK.exists():
        pytest.skip(f"{JUPYTER_BOOK} not found: install the book extras (pip install -e '.[book]')")
    if not CHAPTERS:
        pytest.skip("no chapter notebooks in notebooks/ yet")
    output = Path(os.environ.get("COURSE_BOOK_OUTPUT") or tmp_path_factory.mktemp("book"))
    seeded = seed_execution_cache(output, nbval_executed)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(COURSE_PROFILE="smoke", COURSE_HOME=str(tmp_path_factory.mktemp("course_home")), TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [str(JUPYTER_BOOK), "build", str(ROOT), "--path-output", str(output), "-W", "-n", "--keep-going", "--all"]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    (output / "build.log").write_text(log)
    executed = re.findall(r"(\S+\.ipynb): Executed notebook in ([0-9.]+) seconds", re.sub(r"\x1b\[[0-9;]*m", "", log))
    print(f"book build: exit code {result.returncode} in {time.perf_counter() - start:.0f} s (log: {output / 'build.log'}); "
          f"outputs from nbval: {', '.join(seeded) or 'none'}; executed here: "
          + ", ".join(f"{Path(nb).stem} {float(s):.0f} s" for nb, s in executed))
    return output / "_build" / "html", result.returncode, log


def page(build, docname: str):
    html, _, _ = build
    path = html / f"{docname}.html"
    assert path.is_file(), f"{path} was not built"
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def warnings_in(log: str) -> list[str]:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log)
    return [line for line in plain.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)
            and "Kernel is running over TCP" not in line]


def test_book_builds_without_warnings(build):
    html, code, log = build
    reports = "".join(f"\n--- {p.name} ---\n{p.read_text()[-3000:]}" for p in sorted(html.glob("reports/**/*.err.log")))
    assert code == 0, "jupyter-book build -W -n failed; warnings and errors:\n" + "\n".join(warnings_in(log)[:50]) \
        + reports + "\n--- end of the build log ---\n" + log[-2000:]


def test_every_page_in_the_toc_was_built_and_search_exists(build):
    html, _, _ = build
    missing = [f for f in toc_files() if not (html / f"{f}.html").is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"
    assert (html / "search.html").is_file() and (html / "searchindex.js").is_file()


def test_bibliography_has_entries(build):
    bib = [f for f in toc_files() if Path(f).name == "bibliography"]
    assert bib, "_toc.yml has no bibliography page"
    entries = page(build, bib[0]).select(".citation")
    cited = set()
    for f in toc_files():
        source = next((ROOT / f).with_suffix(s) for s in (".md", ".ipynb") if (ROOT / f).with_suffix(s).is_file())
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", source.read_text(encoding="utf-8")):
            cited.update(k.strip() for k in keys.split(","))
    assert len(entries) >= max(1, len(cited)), f"the bibliography lists {len(entries)} entries; {len(cited)} keys are cited"


@chapter
def test_chapter_launch_button_opens_the_chapter_and_badges_the_student_copy(build, path):
    """The book's own launch button (the rocket) opens the full chapter, solutions included; the badges in the page
    open the student copy in labs/, on Colab and on Kaggle (course_utils.instructor.labs, from _config.yml)."""
    org, repo, branch = labs.repository(ROOT)
    chapter = labs.colab_url(org, repo, branch, path.name, folder="notebooks")
    soup = page(build, f"notebooks/{path.stem}")
    launch = [a["href"] for a in soup.select(".dropdown-launch-buttons a[href]") if "colab" in a["href"]]
    assert launch == [chapter], f"launch button: {launch}, expected {chapter} (from _config.yml)"
    article = soup.select_one(".bd-article") or soup
    for alt, url in (("Open In Colab", labs.colab_url(org, repo, branch, path.name)),
                     ("Open In Kaggle", labs.kaggle_url(org, repo, branch, path.name))):
        badge = [a["href"] for a in article.find_all("a", href=True) if a.find("img", alt=alt)]
        assert badge == [url], f"in-notebook {alt} badge: {badge}, expected {url}"


@chapter
def test_chapter_shows_figures_and_no_errors(build, path):
    soup = page(build, f"notebooks/{path.stem}")
    nb = nbformat.read(path, as_version=4)
    plots = any(re.search(r"\bplots\.|\bplt\.|\bshow_\w+\(", c.source) for c in nb.cells if c.cell_type == "code")
    figures = soup.select(".cell_output img")
    if plots:
        assert figures, "the chapter plots, but no figure reached the page (is MPLBACKEND set in the build?)"
    assert not soup.select(".output.traceback, .output.error"), "a cell error is in the page"
    assert "Traceback (most recent call last)" not in soup.get_text()
    for stderr in soup.select(".output.stderr"):
        assert not re.search(r"Traceback|\b[A-Z]\w*Error\b", stderr.get_text()), stderr.get_text()[:500]


@chapter
def test_chapter_exercises_and_hidden_solutions(build, path):
    soup = page(build, f"notebooks/{path.stem}")
    nb = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert soup.select(".exercise"), "no rendered exercise"
    solutions = soup.select(".solution")
    assert len(solutions) == len(re.findall(r"```\{solution(?:-start)?\}", source))
    shown = [s.get("id") for s in solutions if "dropdown" not in s.get("class", [])]
    assert not shown, f"solutions not hidden in a dropdown: {shown}"


def test_math_renders_on_the_nt_xent_chapter(build):
    chapter3 = [p for p in CHAPTERS if p.name.startswith("03")]
    if not chapter3:
        pytest.skip("chapter 3 not written yet")
    soup = page(build, f"notebooks/{chapter3[0].stem}")
    assert any("mathjax" in (s.get("src") or "").lower() for s in soup.find_all("script")), "no MathJax script"
    math = soup.select(".math")
    assert any(r"\(" in m.get_text() for m in math), "no inline math"
    assert any(m.name == "div" for m in math), "no display math"


def test_math_renders_offline_from_the_books_own_mathjax(build):
    """A reader without a network (a train, a classroom) still sees equations, not raw TeX: every page that loads
    MathJax loads the copy inside the book (sphinx-mathjax-offline), with its fonts; no page asks a CDN for math."""
    html, _, _ = build
    loaded = {}
    for path in sorted(html.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[^\"' ]*mathjax", text, re.I), f"{path.relative_to(html)} loads MathJax " \
            "from the network"
        for script in bs4.BeautifulSoup(text, "html.parser").find_all("script", src=True):
            if "mathjax" in script["src"].lower():
                loaded[path.relative_to(html)] = (path.parent / script["src"].split("?")[0]).resolve()
    chapter3 = [p for p in CHAPTERS if p.name.startswith("03")]
    if chapter3:
        assert Path("notebooks", f"{chapter3[0].stem}.html") in loaded, "the NT-Xent chapter loads no MathJax"
    assert loaded, "no page loads MathJax"
    for page_path, script in loaded.items():
        assert script.is_file() and html.resolve() in script.parents, f"{page_path}: {script} is not in the book"
    fonts = next(iter(loaded.values())).parent / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("*.woff")), f"MathJax's fonts are missing from {fonts}"
