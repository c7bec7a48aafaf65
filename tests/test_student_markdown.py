"""MyST -> plain Markdown for the student copies (course_utils.instructor: student_markdown, bibliography).

Each test converts a small Markdown cell the way `make labs` converts the chapters, and checks what a student
sees in Colab: citations as the book writes them, glued numbers printed by a cell of the student's run, exercises
as numbered headings, admonitions as block quotes, links into the published book, and errors that name the
notebook, the cell and the role for anything that has no plain form.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.instructor.bibliography import Bibliography, BibliographyError
from course_utils.instructor.student_markdown import Book, MystError, book_url, convert_notebook, leftover_myst
from course_utils.report import GLUED, glue, show_glued

BIB = r"""
@inproceedings{chen2020simclr,
  title     = {A Simple Framework for Contrastive Learning of Visual Representations},
  author    = {Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, Geoffrey},
  booktitle = {Proceedings of the 37th International Conference on Machine Learning (ICML)},
  year      = {2020}
}
@article{oord2018cpc,
  title   = {Representation Learning with Contrastive Predictive Coding},
  author  = {van den Oord, Aaron and Li, Yazhe and Vinyals, Oriol},
  journal = {arXiv preprint arXiv:1807.03748},
  year    = {2018}
}
@inproceedings{ioffe2015batchnorm,
  title     = {Batch Normalization},
  author    = {Ioffe, Sergey and Szegedy, Christian},
  booktitle = {ICML},
  year      = {2015}
}
@misc{lippe2022uvadlc,
  title        = {{UvA} Deep Learning Tutorials},
  author       = {Lippe, Phillip},
  year         = {2022},
  howpublished = {\url{https://uvadlc-notebooks.readthedocs.io/en/latest/}}
}
@article{kuhn1955hungarian,
  title   = {The {H}ungarian Method},
  author  = {Kuhn, Harold W.},
  journal = {Naval Research Logistics Quarterly},
  volume  = {2},
  number  = {1--2},
  pages   = {83--97},
  year    = {1955}
}
"""

URL = "https://acme.github.io/course/"


@pytest.fixture
def bib(tmp_path) -> Bibliography:
    (tmp_path / "references.bib").write_text(BIB)
    return Bibliography.load(tmp_path / "references.bib")


@pytest.fixture
def book(bib) -> Book:
    book = Book(url=URL, bibliography=bib)
    book.add_page("book/results", ["# Results\n\n(results-mnist)=\n## MNIST, three seeds\n"])
    book.add_page("notebooks/05_eval", ["# 5. Linear evaluation", "```{exercise} Standardise\n:label: ex-05-std\nx\n```"])
    book.add_page("notebooks/02_demo", ["# 2. Demo", "(ch2-search)=\n## How the recipe was found",
                                        "```{exercise} First\n:label: ex-02-first\nx\n```",
                                        "```{exercise} Fit the probe on views\n:label: ex-02-views\ny\n```"])
    return book


def convert(book, *markdown: str, code: str | None = None):
    """Convert a chapter "02_demo" made of a title cell, ``markdown`` cells and (optionally) one code cell."""
    cells = [new_markdown_cell("# 2. Demo")] + [new_markdown_cell(m) for m in markdown]
    if code is not None:
        cells.insert(1, new_code_cell(code))
    nb = new_notebook(cells=cells)
    convert_notebook(nb, "02_demo.ipynb", book)
    nbformat.validate(nb)
    return nb


# --- Citations and the reference list -------------------------------------------------------------------

def test_citations_read_as_in_the_book(bib):
    assert bib.cite(["chen2020simclr"]) == r"\[Chen *et al.*, 2020\]"
    assert bib.cite(["ioffe2015batchnorm"]) == r"\[Ioffe and Szegedy, 2015\]"
    assert bib.cite(["kuhn1955hungarian"]) == r"\[Kuhn, 1955\]"
    # several keys: in the bibliography's order (sphinxcontrib-bibtex sorts them so), "von" parts kept
    assert bib.cite(["oord2018cpc", "chen2020simclr"]) == r"\[Chen *et al.*, 2020, van den Oord *et al.*, 2018\]"
    assert bib.cite(["chen2020simclr"], textual=True) == r"Chen *et al.* \[2020\]"


def test_reference_entries_decode_latex_and_link_urls(bib):
    assert bib.reference("kuhn1955hungarian") == (r"- \[Kuhn, 1955\] Harold W. Kuhn. The Hungarian Method. "
                                                  "*Naval Research Logistics Quarterly*, 2(1–2):83–97, 1955.")
    assert bib.reference("lippe2022uvadlc").endswith(
        "UvA Deep Learning Tutorials. <https://uvadlc-notebooks.readthedocs.io/en/latest/>, 2022.")


def test_a_cited_key_missing_from_the_bib_is_an_error_naming_it(book):
    with pytest.raises(MystError, match=r"02_demo.ipynb, cell 1: .*'chen2021' is not in references.bib"):
        convert(book, "As shown {cite}`chen2020simclr,chen2021`.")


@pytest.mark.parametrize("entry, message", [
    ("@article{nodate,\n title = {T},\n author = {A, B}\n}", r"entry 'nodate' .* has no year"),
    ("@article{noauthor,\n title = {T},\n year = {2020}\n}", r"entry 'noauthor' .* has no author"),
])
def test_an_incomplete_entry_is_an_error_naming_its_key(tmp_path, entry, message):
    (tmp_path / "r.bib").write_text(BIB + entry)
    bib = Bibliography.load(tmp_path / "r.bib")
    bib.cite(["chen2020simclr"])  # the others are fine
    with pytest.raises(BibliographyError, match=message):
        bib.cite([re.search(r"\{(\w+),", entry)[1]])


@pytest.mark.parametrize("broken, key", [
    ("@article{unbalanced,\n title = {T,\n author = {A, B},\n year = {2020}\n}\n", "unbalanced"),
    ("@article{nocomma,\n title = {T}\n author = {A, B}\n}\n", "nocomma"),
])
def test_a_malformed_entry_is_an_error_naming_its_key(tmp_path, broken, key):
    (tmp_path / "r.bib").write_text(BIB + broken + "@misc{after,\n title = {X},\n year = {2001}\n}\n")
    with pytest.raises(BibliographyError, match=rf"r.bib: the entry '{key}' \(line \d+\) is malformed"):
        Bibliography.load(tmp_path / "r.bib")


def test_the_notebook_ends_with_the_works_it_cites(book):
    nb = convert(book, "SimCLR {cite}`chen2020simclr`.", "CPC {cite}`oord2018cpc`; SimCLR again {cite}`chen2020simclr`.")
    assert nb.cells[1].source == r"SimCLR \[Chen *et al.*, 2020\]."
    works = nb.cells[-1]
    assert works.metadata["tags"] == ["reference-list"] and works.source.startswith("### Works cited in this chapter")
    labels = [line.split(" ", 1)[1].split("\\]")[0] for line in works.source.splitlines()[2:]]
    assert labels == [r"\[Chen *et al.*, 2020", r"\[van den Oord *et al.*, 2018"]  # each once, in the bib's order


# --- Glued numbers -------------------------------------------------------------------------------------

def test_glued_values_point_at_a_cell_that_prints_them(book):
    nb = convert(book, "Accuracy {glue:text}`ch2_acc:.1%` after {glue:text}`ch2_steps:,d` steps; {glue:text}`ch2_acc:.1%` again.",
                 "No numbers here.", code="x = 1")
    sources = [c.source for c in nb.cells]
    assert sources[2] == "Accuracy **`acc`** after **`steps`** steps; **`acc`** again."
    shown = nb.cells[3]
    assert shown.cell_type == "code" and shown.metadata["tags"] == ["glued-values"]
    assert shown.source.splitlines()[-1] == 'show_glued("ch2_acc:.1%", "ch2_steps:,d")'  # once each, in order
    assert nb.cells[4].source == "No numbers here." and len(nb.cells) == 5  # no cell for a paragraph without numbers


def test_a_value_glued_after_the_text_is_printed_under_the_cell_that_glues_it(book):
    nb = new_notebook(cells=[new_markdown_cell("# 2. Demo"),
                             new_code_cell('glue("ch2_a", 1.0)'),
                             new_markdown_cell("A {glue:text}`ch2_a:.1f`, B {glue:text}`ch2_b:.0%`, C {glue:text}`ch2_c`."),
                             new_code_cell('x = 2'),
                             new_code_cell('glue("ch2_b", 0.5)\nfor k in "c":\n    glue(f"ch2_{k}", k)')])
    convert_notebook(nb, "02_demo.ipynb", book)
    calls = [(i, c.source.splitlines()[-1]) for i, c in enumerate(nb.cells) if "glued-values" in c.metadata.get("tags", [])]
    # ch2_b is glued two cells further down, by name; ch2_c by a name made at run time, so before, as far as we know
    assert calls == [(3, 'show_glued("ch2_a:.1f", "ch2_c")'), (6, 'show_glued("ch2_b:.0%")')]
    assert nb.cells[5].source.startswith('glue("ch2_b"')


def test_show_glued_prints_the_runs_values_in_the_prose_formats(capsys):
    GLUED.clear()
    glue("ch9_acc", 0.91234)
    glue("ch9_steps", 12345)
    glue("ch9_verdict", "ahead of")
    show_glued("ch9_acc:.1%", "ch9_steps:,d", "ch9_verdict", "ch9_later:.2f")
    assert capsys.readouterr().out.splitlines() == [
        "The numbers in the text above, from your run:",
        "  acc     = 91.2%",
        "  steps   = 12,345",
        "  verdict = ahead of",
        "  later   = not computed yet: run the cells above",
    ]


def test_glued_cell_runs_the_show_glued_it_names(book, capsys):
    nb = convert(book, "Loss {glue:text}`ch2_loss:.3f`.")
    GLUED.clear()
    glue("ch2_loss", 1.23456)
    exec(nb.cells[2].source, {})
    assert "loss = 1.235" in capsys.readouterr().out


def test_a_glue_from_another_notebook_is_refused(book):
    with pytest.raises(MystError, match="cell 1: .*another notebook"):
        convert(book, "{glue:text}`../notebooks/03_x.ipynb::ch3_loss:.2f`")


def test_a_paste_from_another_page_is_shown_when_this_notebook_glues_the_name_too(book):
    """The chapters' Time paragraphs paste from the guide's page (it keeps them current); the chapter glues the
    same names in its header cell, so the student copy prints them from there."""
    nb = convert(book, "Runs in {glue:text}`../book/instructors.md::ch2_time_cpu:s`.",
                 code='glue("ch2_time_cpu", "9 minutes")')
    assert nb.cells[2].source == "Runs in **`time_cpu`**."
    assert 'show_glued("ch2_time_cpu:s")' in nb.cells[3].source  # under the paragraph: the glue is above it


# --- Exercises, admonitions, labels, links --------------------------------------------------------------

def test_exercises_become_numbered_headings(book):
    nb = convert(book, "```{exercise} First\n:label: ex-02-first\n\nDo $x^2$.\n```",
                 "````{exercise}\n:label: ex-02-views\nWith code:\n```python\nf({cite}`x`)\n```\n````")
    assert nb.cells[1].source == "### Exercise 2.1: First\n\nDo $x^2$."
    assert nb.cells[2].source == "### Exercise 2.2\n\nWith code:\n```python\nf({cite}`x`)\n```"  # code is code


@pytest.mark.parametrize("directive, title", [("{note}", "Note"), ("{warning}", "Warning"),
                                              ("{admonition} Misconceptions about $z$\n:class: warning", "Misconceptions about $z$")])
def test_admonitions_become_block_quotes_with_a_bold_title(book, directive, title):
    nb = convert(book, f"Before.\n\n```{directive}\nFirst line {{cite}}`chen2020simclr`.\n\nSecond.\n```\nAfter.")
    assert nb.cells[1].source == (f"Before.\n\n> **{title}**\n>\n> First line \\[Chen *et al.*, 2020\\].\n>\n"
                                  "> Second.\nAfter.")


def test_colon_fences_and_nested_directives(book):
    nb = convert(book, ":::{tip}\n```{note}\ninner\n```\n:::")
    assert nb.cells[1].source == "> **Tip**\n>\n> > **Note**\n> >\n> > inner"


def test_labels_disappear_and_refs_link_into_the_book(book):
    nb = convert(book, "(ch2-search)=\n## How the recipe was found\n\nText.",
                 "See {ref}`ch2-search`, {ref}`the MNIST table <results-mnist>`, {doc}`/book/results`, "
                 "{doc}`results page </book/results>` and {ref}`ex-05-std`.")
    assert nb.cells[1].source == "## How the recipe was found\n\nText."
    assert nb.cells[2].source == (
        f"See [How the recipe was found]({URL}notebooks/02_demo.html#ch2-search), "
        f"[the MNIST table]({URL}book/results.html#results-mnist), [Results]({URL}book/results.html), "
        f"[results page]({URL}book/results.html) and [Exercise 5.1 (*Standardise*)]({URL}notebooks/05_eval.html#ex-05-std).")


def test_a_ref_to_an_exercise_of_the_same_chapter_names_it_without_a_link(book):
    nb = convert(book, "Exercise {ref}`ex-02-views` runs it; so does {ref}`ex-02-first`.")
    assert nb.cells[1].source == "Exercise 2.2 (*Fit the probe on views*) runs it; so does Exercise 2.1 (*First*)."


def test_math_and_code_are_left_alone(book):
    text = ("$\\mathbb{R}^{128}$ and $$\\sum_{k \\ne i} e^{s_{ik}}$$, `` {cite}`x` `` in code, \\$5 and "
            "{cite}`chen2020simclr`.")
    nb = convert(book, text)
    assert nb.cells[1].source == text.replace("{cite}`chen2020simclr`", "\\[Chen *et al.*, 2020\\]")


@pytest.mark.parametrize("markdown, message", [
    ("See {numref}`fig-1`.", r"cell 1: the role \{numref\}`fig-1` has no plain-Markdown form"),
    ("```{figure} a.png\nCaption\n```", r"cell 1: the directive \{figure\} has no plain-Markdown form"),
    ("```{exercise} T\n:label: ex-02-first\n:dropdown:\nx\n```", r"cell 1: the \{exercise\} directive has options \['dropdown'\]"),
    ("```{solution} ex-02-first\nx\n```", r"cell 1: a \{solution\} directive in a cell that is not tagged 'solution'"),
    ("See {ref}`nowhere`.", r"cell 1: \{ref\}`nowhere` points at the label 'nowhere'"),
    ("See {doc}`/book/missing`.", r"cell 1: \{doc\}`/book/missing` points at 'book/missing'"),
    ("```{admonition}\nno title\n```", r"cell 1: an \{admonition\} needs a title"),
])
def test_myst_without_a_plain_form_is_an_error_naming_the_cell(book, markdown, message):
    with pytest.raises(MystError, match=rf"02_demo.ipynb, {message}"):
        convert(book, markdown)


def test_leftover_detector():
    assert leftover_myst("a {cite}`x` b\n(lab)=\n:label: y\n```{note}\n```") == \
        ["(lab)=", ":label: y", "```{note}", "{cite}`"]
    assert leftover_myst("$\\{a\\}$ and `{cite}` and\n```python\n{cite}`x`\n```") == []


def test_book_url_from_the_repository():
    assert book_url("acme", "course") == "https://acme.github.io/course/"
    assert book_url("acme", "acme.github.io") == "https://acme.github.io/"
