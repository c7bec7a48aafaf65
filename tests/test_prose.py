"""Every chapter is one sitting (at most MAX_PROSE_WORDS words of prose), shows no stray glued value, and the book
names one repository.

What counts as prose (``prose_words``): the Markdown cells a student reads, without

- the cells of a solution (tagged "solution": they are hidden in a dropdown, and gone from student copies),
- fenced code blocks (a shell command, a SLURM script),
- math: display ``$$...$$``, ``\\begin{..}...\\end{..}`` environments and inline ``$...$``,
- markup that is not words: directive fences and their options (```` ```{exercise} ````, ``:label: ...``),
  a target line ``(name)=``, list bullets, table rules and lone symbols (a word has a letter or a digit).

A MyST role such as ``{glue:text}`name``` counts as one word, as the number it becomes does.

    python tests/test_prose.py    # prints the words per chapter and the longest prose cells
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from course_utils.instructor import labs  # noqa: E402

MAX_PROSE_WORDS = 2500  # about 12 minutes of reading at a study pace; the rest of a sitting runs the cells
CHAPTERS = labs.chapter_notebooks(ROOT)

_SOLUTION_BLOCK = re.compile(r"^```\{solution\}.*?^```[ \t]*$", re.S | re.M)
_CODE_BLOCK = re.compile(r"^(`{3,}|~{3,})(?!\{)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
_MARKUP_LINE = re.compile(r"^(`{3,}(\{[\w-]+\})?|:[\w-]+:.*|\([\w-]+\)=)[ \t]*$", re.M)
_MATH = [re.compile(r"\$\$.*?\$\$", re.S), re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S),
         re.compile(r"(?<![\\$])\$[^$]+?\$", re.S)]
_WORD = re.compile(r"[A-Za-z0-9]")


def prose_words(markdown: str) -> int:
    """The number of words of prose in one Markdown cell (see the module's docstring)."""
    text = _SOLUTION_BLOCK.sub(" ", markdown)
    text = _CODE_BLOCK.sub(" ", text)
    for math in _MATH:
        text = math.sub(" ", text)
    # A directive's title is prose ("```{exercise} Build the projection head"): drop only the fence itself.
    text = re.sub(r"^`{3,}\{[\w-]+\}", " ", text, flags=re.M)
    text = _MARKUP_LINE.sub(" ", text)
    return sum(1 for word in text.split() if _WORD.search(word))


def chapter_prose(path: Path) -> list[tuple[int, int]]:
    """``(cell index, words)`` for every Markdown cell of a chapter that a student reads (no solutions)."""
    nb = nbformat.read(path, as_version=4)
    return [(i, prose_words(c.source)) for i, c in enumerate(nb.cells)
            if c.cell_type == "markdown" and "solution" not in labs.tags(c)]


def test_prose_words_counts_what_a_reader_reads():
    text = "\n".join([
        "## Two views", "", "- a bullet with $x_i$ math, `code` and {glue:text}`ch2_probe:.1%`", "",
        "$$", "\\ell_i = -\\log p_{ij}", "$$", "", "```bash", "make test   # five words here", "```", "",
        "```{exercise} Build it", ":label: ex-02-demo", "Write $f$ — now.", "```",
        "```{solution} ex-02-demo", ":class: dropdown", "Hidden words do not count.", "```",
        "(a-target)=", "| a | b |", "| --- | --- |",
        "\\begin{align}", "a &= b", "\\end{align}",
    ])
    # Two views | a bullet with math, `code` and {glue} | Build it | Write now. | a b
    assert prose_words(text) == 2 + 7 + 2 + 2 + 2


def test_prose_words_keeps_a_dollar_amount_apart_from_math():
    assert prose_words("costs $5 and $6 each") == 3  # "costs" "and" "each": the span between is read as math
    assert prose_words("no math here") == 3


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_is_one_sitting(path):
    cells = chapter_prose(path)
    total = sum(words for _, words in cells)
    longest = sorted(cells, key=lambda c: -c[1])[:5]
    assert total <= MAX_PROSE_WORDS, (
        f"{path.name}: {total:,} words of prose, more than {MAX_PROSE_WORDS:,} for one sitting. Tighten it, or move "
        f"material a chapter does not need to a page of its own. Longest cells (index, words): {longest}")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_cell_ends_with_a_bare_glue_call(path):
    """glue() returns its value, so a cell whose last statement is a glue call shows a stray number in the book."""
    stray = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "code" or cell.source.lstrip().startswith("%"):
            continue
        body = ast.parse(cell.source).body
        last = body[-1] if body else None
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and getattr(last.value.func, "id", "") == "glue":
            after = cell.source.splitlines()[last.end_lineno - 1][last.end_col_offset:]
            if not after.lstrip().startswith(";"):
                stray.append(i)
    assert not stray, f"{path.name}: cells {stray} end with glue(...) and would show its value: end the line with ';'"


def test_every_install_url_in_the_pages_names_the_repository_of_config():
    """README and the book's pages show pip commands with the repository's URL: the one of _config.yml."""
    org, repo, branch = labs.repository(ROOT)
    expected = labs.install_url(org, repo, branch)
    pages = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
    found = {page.name: re.findall(r"git\+https://github\.com/[^\s\"'`)]+", page.read_text()) for page in pages}
    wrong = {name: urls for name, urls in found.items() if any(url != expected for url in urls)}
    assert not wrong, f"install URLs that are not {expected} (from _config.yml): {wrong}"


if __name__ == "__main__":
    for path in CHAPTERS:
        cells = chapter_prose(path)
        top = ", ".join(f"[{i}] {w}" for i, w in sorted(cells, key=lambda c: -c[1])[:6])
        print(f"{path.stem:28s} {sum(w for _, w in cells):6,d}   longest cells: {top}")
