"""The lab tooling (course_utils.instructor.labs) and the chapter skeleton every notebook follows.

Four parts:
- the tool on small notebooks made here: student versions, `sync`, `strip`, the command line;
- every real chapter in notebooks/: follows the skeleton, is in sync with _config.yml, has no outputs;
- _toc.yml and notebooks/ agree;
- the committed student copies in labs/: what `make labs` writes now, opened by every badge.
The MyST -> Markdown conversion of the student copies is tested in tests/test_student_markdown.py.

The student copies are EXECUTED in tests/test_colab.py, not here: that test runs each student copy alone,
as Colab would, and asserts that it runs top to bottom and that its self-checks say "not implemented yet".
One execution serves both checks (each smoke notebook already runs in nbval and in the book build).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils.instructor import labs

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = labs.chapter_notebooks(ROOT)
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BIB = """@inproceedings{chen2020simclr,
  title  = {A Simple Framework for Contrastive Learning of Visual Representations},
  author = {Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, Geoffrey},
  booktitle = {ICML},
  year   = {2020}
}
"""


# --- A small notebook that follows the skeleton --------------------------------------------------

def skeleton(name="01_demo.ipynb", org="simclr-from-scratch", repo="simclr-from-scratch", branch="main"):
    """A two-exercise chapter in the course's skeleton (one conceptual, one gated coding exercise)."""
    badge = labs.badges(org, repo, branch, name)
    setup = ("import importlib.util, os, subprocess, sys\n"
             "if importlib.util.find_spec(\"course_utils\") is None:\n"
             f"    source = os.environ.get(\"COURSE_UTILS_SOURCE\", \"{labs.install_url(org, repo, branch)}\")\n"
             "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", source], check=True)\n")

    def tagged(cell, tag):
        cell.metadata["tags"] = [tag]
        return cell

    ex = f"ex-{Path(name).stem}"  # labels are unique in a book
    cells = [
        tagged(new_markdown_cell(f"# 1. Demo\n\n{badge}"), "colab-badge"),
        new_markdown_cell("**Learning objectives**\n\n- one"),
        tagged(new_code_cell(setup), "setup"),
        new_code_cell("x = 1", execution_count=3, outputs=[new_output("stream", name="stdout", text="hi\n")]),
        new_markdown_cell("## Summary\n\n- a"),
        new_markdown_cell("## Exercises"),
        new_markdown_cell(f"```{{exercise}} Why\n:label: {ex}-why\nWhy?\n```"),
        tagged(new_markdown_cell(f"```{{solution}} {ex}-why\n:class: dropdown\nBecause.\n```"), "solution"),
        new_markdown_cell(f"```{{exercise}} Code it\n:label: {ex}-code\nWrite f.\n```"),
        tagged(new_code_cell("def f(x):\n    raise NotImplementedError(\"Exercise: write f\")"), "exercise-stub"),
        tagged(new_markdown_cell(f"```{{solution-start}} {ex}-code\n:class: dropdown\n```"), "solution"),
        tagged(new_code_cell("def f(x):\n    return 2 * x"), "solution"),
        tagged(new_markdown_cell("```{solution-end}\n```"), "solution"),
        tagged(new_code_cell("check(f)"), "self-check"),
        new_markdown_cell("## References\n\n{cite}`chen2020simclr`"),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def make_repo(root: Path, url="https://github.com/simclr-from-scratch/simclr-from-scratch", branch="main",
              names=("01_demo.ipynb", "02_more.ipynb")) -> Path:
    """A repository with _config.yml, _toc.yml, book/references.bib and skeleton chapters ``names``."""
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "book" / "references.bib").write_text(BIB)
    (root / "book" / "intro.md").write_text("# Intro\n")
    write_config(root, url, branch)
    toc = {"format": "jb-book", "root": "book/intro", "chapters": [{"file": f"notebooks/{Path(n).stem}"} for n in names]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    for name in names:
        nbformat.write(skeleton(name), root / "notebooks" / name)
    return root


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path / "repo")


def student(nb, repo: Path, name="01_demo.ipynb"):
    """The student version of ``nb`` as if it were ``repo/notebooks/<name>``."""
    return labs.student_version(nb, repo / "notebooks" / name)


def write_config(root: Path, url: str, branch: str | None) -> None:
    config = {"title": "x", "repository": {"url": url, "path_to_book": ""}}
    if branch is not None:
        config["repository"]["branch"] = branch
    (root / "_config.yml").write_text(yaml.safe_dump(config))


def tags_of(nb) -> list[list[str]]:
    return [labs.tags(cell) for cell in nb.cells]


# --- Student versions -------------------------------------------------------------------------------

def test_student_version_removes_exactly_the_solution_cells(repo):
    nb = skeleton()
    copy, removed = student(nb, repo)
    expected = [c for c in nb.cells if "solution" not in labs.tags(c)]
    assert removed == 4 == len(nb.cells) - len(expected)
    # The same cells in the same order, and one more at the end: the list of the works cited.
    assert [c.id for c in copy.cells] == [c.id for c in expected] + ["works-cited"]
    code = [c.source for c in expected if c.cell_type == "code"]
    assert [c.source for c in copy.cells if c.cell_type == "code"] == code  # code is never rewritten
    assert not any("{solution" in c.source for c in copy.cells)
    assert ["exercise-stub"] in tags_of(copy) and ["self-check"] in tags_of(copy)
    assert len(nb.cells) == 15 and nb.cells[6].source.startswith("```{exercise}"), "the original must not change"


def test_student_version_is_in_plain_markdown(repo):
    copy, _ = student(skeleton(), repo)
    markdown = {c.id: c.source for c in copy.cells if c.cell_type == "markdown"}
    text = "\n".join(markdown.values())
    assert "### Exercise 1.1: Why\n\nWhy?" in text and "### Exercise 1.2: Code it\n\nWrite f." in text
    assert "## References\n\n\\[Chen *et al.*, 2020\\]" in text
    assert markdown["works-cited"].startswith("### Works cited in this chapter\n\n- \\[Chen *et al.*, 2020\\] Ting Chen")
    assert not re.search(r"\{\w+\}`|```\{|:label:|:class:", text)


def test_student_version_is_titled_clears_outputs_and_drops_the_badges(repo):
    copy, _ = student(skeleton(), repo)
    title = copy.cells[0].source
    assert title.splitlines()[0] == "# 1. Demo (student version)"
    assert "student version of [chapter 1 of the book](https://simclr-from-scratch.github.io/simclr-from-scratch/" \
           "notebooks/01_demo.html)" in title
    assert "colab.research.google.com" not in title and "kaggle.com" not in title
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == "code")
    nbformat.validate(copy)


@pytest.mark.parametrize("index", [7, 11, 12])  # the {solution}, the solution's code, the {solution-end}
def test_an_untagged_solution_cell_is_refused(index, repo):
    nb = skeleton()
    nb.cells[index].metadata["tags"] = []
    with pytest.raises(ValueError, match=f"cell {index}.*not tagged 'solution'"):
        student(nb, repo)


def test_make_labs_stops_on_a_bad_notebook_and_writes_nothing(repo, tmp_path, capsys):
    path = repo / "notebooks" / "02_more.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[4].source += "\n\nSee {numref}`fig-views`."  # a role the student copies cannot show
    nbformat.write(nb, path)
    assert labs.main(["--root", str(repo), "students", str(repo / "notebooks"), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "02_more.ipynb, cell 4" in error and "{numref}`fig-views`" in error
    assert not (tmp_path / "out").exists(), "no student copy is written when one chapter fails"


def test_make_student_versions_writes_every_notebook(tmp_path, capsys):
    make_repo(tmp_path / "repo")
    written = labs.make_student_versions(tmp_path / "repo" / "notebooks", tmp_path / "labs", verbose=True)
    assert [p.name for p in written] == ["01_demo.ipynb", "02_more.ipynb"]
    assert all(p.parent == tmp_path / "labs" for p in written)
    for path in written:
        nb = nbformat.read(path, as_version=4)
        assert ["solution"] not in tags_of(nb) and "(student version)" in nb.cells[0].source
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"{name}: removed 4 solution cells -> {tmp_path / 'labs' / name}"
                     for name in ("01_demo.ipynb", "02_more.ipynb")]
    with pytest.raises(ValueError, match="overwrite"):
        labs.make_student_versions(tmp_path / "labs", tmp_path / "labs")


def test_students_command_uses_notebooks_and_labs_by_default(tmp_path, monkeypatch, capsys):
    make_repo(tmp_path)
    monkeypatch.chdir(tmp_path / "notebooks")  # the root is found from _config.yml
    assert labs.main(["students"]) == 0
    assert sorted(p.name for p in (tmp_path / "labs").iterdir()) == ["01_demo.ipynb", "02_more.ipynb"]
    assert capsys.readouterr().out.count("removed 4 solution cells") == 2


# --- The repository, and sync -----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://github.com/acme/course", "https://github.com/acme/course.git",
                                 "https://github.com/acme/course/"])
def test_repository_reads_config(tmp_path, url):
    write_config(tmp_path, url, "dev")
    assert labs.repository(tmp_path) == ("acme", "course", "dev")


@pytest.mark.parametrize("url, branch, message", [("https://gitlab.com/a/b", "main", "repository.url"),
                                                  (None, "main", "repository.url"),
                                                  ("https://github.com/a/b", None, "repository.branch")])
def test_repository_errors_say_what_to_set(tmp_path, url, branch, message):
    write_config(tmp_path, url, branch)
    with pytest.raises(ValueError, match=message):
        labs.repository(tmp_path)


def test_sync_rewrites_a_changed_repository_and_check_detects_drift(tmp_path, capsys):
    root = make_repo(tmp_path)
    assert labs.sync_notebooks(root, check=True) == []
    write_config(root, "https://github.com/acme/course", "dev")
    before = {p: p.read_bytes() for p in labs.chapter_notebooks(root)}

    stale = labs.sync_notebooks(root, check=True)
    assert stale == labs.chapter_notebooks(root)
    assert {p: p.read_bytes() for p in stale} == before, "--check must not write"
    assert labs.main(["--root", str(root), "sync", "--check"]) == 1
    assert "01_demo.ipynb: out of date" in capsys.readouterr().out

    assert labs.sync_notebooks(root) == stale
    nb = nbformat.read(root / "notebooks" / "02_more.ipynb", as_version=4)
    assert nb.cells[0].source == (
        "# 1. Demo\n\n"
        f"[![Open In Colab]({BADGE_IMAGE})](https://colab.research.google.com/github/acme/course/blob/dev/labs/02_more.ipynb) "
        "[![Open In Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]"
        "(https://kaggle.com/kernels/welcome?src=https://github.com/acme/course/blob/dev/labs/02_more.ipynb)")
    assert '"git+https://github.com/acme/course@dev"' in nb.cells[2].source
    assert "simclr-from-scratch" not in nb.cells[0].source + nb.cells[2].source
    assert labs.sync_notebooks(root, check=True) == []
    assert labs.main(["--root", str(root), "sync", "--check"]) == 0


def test_sync_fixes_a_badge_pointing_at_another_file(tmp_path):
    root = make_repo(tmp_path, names=("03_copy.ipynb",))
    path = root / "notebooks" / "03_copy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("03_copy.ipynb", "01_demo.ipynb")  # copy-paste slip
    nbformat.write(nb, path)
    assert labs.sync_notebooks(root) == [path]
    title = nbformat.read(path, as_version=4).cells[0].source
    assert title.count("labs/03_copy.ipynb)") == 2 and "01_demo" not in title


def test_sync_adds_the_kaggle_badge_and_keeps_the_rest_of_the_title_cell(tmp_path):
    root = make_repo(tmp_path, names=("01_demo.ipynb",))
    path = root / "notebooks" / "01_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    old = f"[![Open In Colab]({BADGE_IMAGE})](https://colab.research.google.com/github/a/b/blob/main/notebooks/01_demo.ipynb)"
    nb.cells[0].source = f"# 1. Demo\n\n{old}\n\nA line of text."  # the badge line before Kaggle's badge existed
    nbformat.write(nb, path)
    assert labs.sync_notebooks(root) == [path]
    assert nbformat.read(path, as_version=4).cells[0].source == \
        f"# 1. Demo\n\n{labs.badges('simclr-from-scratch', 'simclr-from-scratch', 'main', '01_demo.ipynb')}\n\nA line of text."


def test_sync_rewrites_the_readme_badges(tmp_path, capsys):
    root = make_repo(tmp_path)
    old = f"[![Open In Colab]({BADGE_IMAGE})](https://colab.research.google.com/github/a/b/blob/main/notebooks/02_more.ipynb)"
    (root / "README.md").write_text(f"| 2 | [More](notebooks/02_more.ipynb) {old} | x |\n")
    assert labs.sync_notebooks(root, check=True) == [root / "README.md"]
    assert labs.sync_notebooks(root) == [root / "README.md"]
    badges = labs.badges("simclr-from-scratch", "simclr-from-scratch", "main", "02_more.ipynb")
    assert (root / "README.md").read_text() == f"| 2 | [More](notebooks/02_more.ipynb) {badges} | x |\n"
    (root / "README.md").write_text(old.replace("02_more", "09_gone"))
    with pytest.raises(ValueError, match="README.md: the badge .* opens no chapter"):
        labs.sync_notebooks(root)


def test_sync_refuses_a_notebook_without_the_tagged_cells(tmp_path):
    root = make_repo(tmp_path, names=("01_demo.ipynb",))
    path = root / "notebooks" / "01_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].metadata["tags"] = []
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="no cell is tagged 'setup'"):
        labs.sync_notebooks(root, check=True)
    assert labs.main(["--root", str(root), "sync"]) == 2


def test_strip_clears_outputs(tmp_path):
    root = make_repo(tmp_path, names=("01_demo.ipynb",))
    path = root / "notebooks" / "01_demo.ipynb"
    assert labs.strip_notebooks([path], check=True) == [path]
    assert labs.main(["--root", str(root), "strip", "--check"]) == 1
    assert labs.main(["--root", str(root), "strip"]) == 0
    nb = nbformat.read(path, as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert labs.strip_notebooks([path]) == []


# --- The real chapters ------------------------------------------------------------------------------

needs_chapters = pytest.mark.skipif(not CHAPTERS, reason="no chapter notebooks in notebooks/ yet")
chapter = pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])


def markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


@needs_chapters
def test_chapters_are_in_sync_with_config():
    stale = labs.sync_notebooks(ROOT, check=True)
    assert not stale, (f"run `python -m course_utils.instructor.labs sync`: {[p.name for p in stale]} name another "
                       "repository")


@needs_chapters
@chapter
def test_chapter_opens_with_title_badge_and_setup(path):
    nb = nbformat.read(path, as_version=4)
    org, repo, branch = labs.repository(ROOT)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "colab-badge" in labs.tags(first), "cell 1 must be the title, tagged colab-badge"
    assert re.match(r"# \d+\. \S", first.source), f"title line must be '# N. Title', got {first.source[:60]!r}"
    assert first.source.splitlines()[2] == labs.badges(org, repo, branch, path.name), "the badge line, from sync"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "setup" in labs.tags(code[0]), "the first code cell must be the setup cell, tagged setup"
    setup = code[0].source
    assert f'"{labs.install_url(org, repo, branch)}"' in setup and "COURSE_UTILS_SOURCE" in setup
    assert 'find_spec("course_utils") is None' in setup, "install only when course_utils is missing"
    # Colab's and Kaggle's own torch builds stay: pip gets their installed versions as requirements, never --upgrade.
    assert '("torch", "torchvision")' in setup and "importlib.metadata.version(name)" in setup and "*keep" in setup
    assert "--upgrade" not in setup and "-U" not in setup.split()
    assert "Internet on" in setup, "say how to let pip reach GitHub on Kaggle"
    assert "get_profile()" in setup and "seed_everything" in setup and "banner(" in setup
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@needs_chapters
@chapter
def test_chapter_has_the_closing_sections_and_exercises(path):
    nb = nbformat.read(path, as_version=4)
    text = markdown(nb)
    headings = re.findall(r"^## (.+?)\s*$", text, flags=re.MULTILINE)
    for section in ("Summary", "Exercises", "References"):
        assert section in headings, f"missing '## {section}'"
    assert headings.index("Summary") < headings.index("Exercises") < headings.index("References")
    exercises = re.findall(r"```\{exercise\}[^\n]*\n:label: (\S+)", text)
    assert exercises, "at least one {exercise} with a :label:"
    solved = re.findall(r"```\{solution(?:-start)?\} (\S+)", text)
    assert set(solved) <= set(exercises), f"solutions for unknown exercises: {set(solved) - set(exercises)}"
    assert re.search(r":class: dropdown", text), "solutions are hidden in dropdowns"
    stubs = [i for i, c in enumerate(nb.cells) if "exercise-stub" in labs.tags(c)]
    checks = [i for i, c in enumerate(nb.cells) if "self-check" in labs.tags(c)]
    assert stubs, "at least one coding exercise (a cell tagged exercise-stub)"
    for i in stubs:
        assert nb.cells[i].cell_type == "code" and "NotImplementedError" in nb.cells[i].source
        assert any(j > i for j in checks), f"the exercise stub in cell {i} has no self-check cell after it"


@needs_chapters
@chapter
def test_chapter_solutions_are_tagged_and_leave_a_runnable_student_version(path):
    nb = nbformat.read(path, as_version=4)
    student, removed = labs.student_version(nb, path)  # raises if a solution cell is untagged
    assert removed > 0
    assert not re.search(r"\{solution", markdown(student))
    for tag in ("exercise-stub", "self-check", "setup"):
        assert sum(tag in t for t in tags_of(student)) == sum(tag in t for t in tags_of(nb))


@needs_chapters
@chapter
def test_chapter_code_never_branches_on_the_profile_and_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    branch = re.compile(r"\b(if|elif|while)\b[^\n]*\bprofile\.name\b|\bprofile\.name\s*(==|!=|\bin\b|\bnot in\b)")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not branch.search(cell.source), f"cell {i} branches on profile.name: size things with profile fields"
        assert cell.outputs == [] and cell.execution_count is None, \
            f"cell {i} has stored outputs: run `python -m course_utils.instructor.labs strip`"


# --- The table of contents ----------------------------------------------------------------------------

def toc_files(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["file"]] if "file" in node else []
        found += [node["root"]] if "root" in node else []
        return found + [f for value in node.values() for f in toc_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in toc_files(item)]
    return []


def test_toc_and_notebooks_agree():
    files = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    assert files, "_toc.yml lists no pages"
    missing = [f for f in files if not any((ROOT / f).with_suffix(s).is_file() for s in (".md", ".ipynb"))]
    listed = {f for f in files if f.startswith("notebooks/")}
    on_disk = {f"notebooks/{p.stem}" for p in CHAPTERS}
    if not CHAPTERS:  # while the chapters are being written, only the book/ pages must exist
        missing = [f for f in missing if not f.startswith("notebooks/")]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"
    if CHAPTERS:
        assert on_disk <= listed, f"notebooks missing from _toc.yml: {sorted(on_disk - listed)}"


# --- Student copies that do not hand out the answers ------------------------------------------------------

def used_names(source: str) -> set[str]:
    """Every name a cell imports (``from m import a``), refers to, or reaches as an attribute (``m.a``)."""
    import ast

    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(part for alias in node.names for part in alias.name.split("."))
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


@needs_chapters
@chapter
def test_the_registry_of_exercises_matches_the_self_check_cells(path):
    from course_utils.checks import EXERCISES

    nb = nbformat.read(path, as_version=4)
    calls = [re.search(r"(check_\w+)\((my_\w+)\)", c.source).groups() for c in nb.cells if "self-check" in labs.tags(c)]
    assert sorted(calls) == sorted(EXERCISES.get(path.stem, [])), \
        "course_utils.checks.EXERCISES must list the chapter's self-checks (the grader reads it)"


@needs_chapters
@chapter
def test_a_student_copy_never_uses_the_reference_of_an_exercise(path):
    """Calling the course's own version would pass the self-check: the student copy must not reach it."""
    from course_utils.checks import EXERCISES, REFERENCES

    student, _ = labs.student_version(nbformat.read(path, as_version=4), path)
    forbidden = {name for check, _ in EXERCISES.get(path.stem, []) for name in REFERENCES[check]}
    for i, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            leaked = used_names(cell.source) & forbidden
            assert not leaked, f"cell {i} of the student copy uses {sorted(leaked)}, the answer to an exercise"


def test_the_reference_check_finds_a_leak():
    assert "random_grayscale" in used_names("from course_utils import augment as A\nA.random_grayscale(x, p=1.0)")
    assert "knn_predict" in used_names("from course_utils.evaluate import knn_predict as kp")
    assert "_nt_xent_from_ids" in used_names("%time\nimport course_utils.losses\ncourse_utils.losses._nt_xent_from_ids")


# --- The committed student copies (labs/) and the badges that open them -----------------------------------

LABS = ROOT / labs.STUDENT_FOLDER
REGENERATE = ("run `make labs` (or `python -m course_utils.instructor.labs students`) and commit labs/: the student "
              "copies are generated from notebooks/, and the badges open the committed ones")


@needs_chapters
def test_committed_student_copies_are_what_make_labs_writes(tmp_path):
    written = labs.make_student_versions(ROOT / "notebooks", tmp_path)
    committed = sorted(p.name for p in LABS.glob("*.ipynb"))
    assert committed == [p.name for p in written], f"labs/ holds {committed}: {REGENERATE}"
    stale = [p.name for p in written if p.read_bytes() != (LABS / p.name).read_bytes()]
    assert not stale, f"labs/ is out of date for {stale}: {REGENERATE}"


def render(markdown: str) -> str:
    """HTML, as a CommonMark renderer with tables (markdown-it-py, which myst-parser uses too) renders it."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(markdown)


def myst_left_in(html: str) -> list[str]:
    """MyST that a plain Markdown renderer left as it was: roles, directive fences, labels, directive options."""
    found = re.findall(r"\{[A-Za-z][\w:.+-]*\}<code>[^<]*</code>", html)  # {role}`x` -> {role}<code>x</code>
    found += re.findall(r'<code class="language-\{[^"]*\}', html)  # ```{directive}
    found += re.findall(r"(?:^|<p>|\n):::\{[^\n<]*", html)
    text = re.sub(r"<pre>.*?</pre>", "", html, flags=re.DOTALL)
    found += re.findall(r"(?:^|>|\n)\s*\([\w:.-]+\)=\s*(?=$|<|\n)", text)  # (label)=
    found += re.findall(r"(?:^|>|\n)\s*:(?:label|class|name|nonumber):[^\n<]*", text)
    return found


def test_the_myst_detector_finds_what_it_must_and_not_math():
    leftovers = myst_left_in(render("See {cite}`a`.\n\n```{note}\nx\n```\n\n(sec-x)=\n# T\n\n:::{tip}\ny\n:::\n"))
    assert len(leftovers) == 4, leftovers
    assert len(myst_left_in(render(":label: ex-1\n"))) == 1
    clean = "$\\mathbb{R}^{128}$, $$\\sum_{k \\ne i} x$$, `{cite}` in code, (a, b)= 3\n\n```python\n(x)=\n```\n"
    assert myst_left_in(render(clean)) == []


@needs_chapters
@pytest.mark.parametrize("path", sorted(LABS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_student_copy_markdown_renders_without_myst(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            leftovers = myst_left_in(render(cell.source))
            assert not leftovers, f"{path.name}, cell {i}: MyST that Colab would show raw: {leftovers}"
    glued = [c for c in nb.cells if "glued-values" in labs.tags(c)]
    pointers = sum(len(re.findall(r"\*\*`\w+`\*\*", c.source)) for c in nb.cells if c.cell_type == "markdown")
    if pointers:
        assert glued, "the text quotes glued values, and no cell prints them"


def badge_links(text: str) -> list[str]:
    """Every Colab or Kaggle link that opens a notebook from GitHub (not a pattern such as .../<org>/<repo>/...)."""
    links = re.findall(r"https://(?:colab\.research\.google\.com/github|(?:www\.)?kaggle\.com/kernels/welcome\?src=)"
                       r"[^\s)\"'\]`]+", text)
    return [link for link in links if "<" not in link]


@needs_chapters
def test_every_badge_opens_a_committed_student_copy():
    org, repo, branch = labs.repository(ROOT)
    prefix = f"github/{org}/{repo}/blob/{branch}/labs/", f"github.com/{org}/{repo}/blob/{branch}/labs/"
    sources = {p: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]}
    sources.update({p: markdown(nbformat.read(p, as_version=4)) for p in CHAPTERS})
    found = 0
    for path, text in sources.items():
        for link in badge_links(text):
            found += 1
            assert any(p in link for p in prefix), f"{path.name}: {link} does not open a student copy in labs/"
            assert (LABS / link.rsplit("/", 1)[1]).is_file(), f"{path.name}: {link} opens a file that labs/ lacks"
    assert found >= 4 * len(CHAPTERS), "each chapter has a Colab and a Kaggle badge, in its title and in the README"
