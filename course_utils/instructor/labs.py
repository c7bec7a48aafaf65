"""Lab tooling for instructors and maintainers: student versions, repository sync, output stripping.

Every chapter notebook follows one skeleton, and these commands rely on its cell tags:

    "colab-badge"    the title cell: "# N. Title", then the "Open in Colab" and "Open in Kaggle" badges
    "setup"          the install cell: pip-installs course_utils from git+https://github.com/{org}/{repo}@{branch}
    "exercise-stub"  a function for the student to write (raises NotImplementedError)
    "solution"       the cells of a solution (a {solution} directive, or solution-start / code / solution-end)
    "self-check"     calls a check from course_utils.checks; prints "not implemented yet" for a stub

Run from the repository root:

    python -m course_utils.instructor.labs students [SRC] [DST]  # notebooks/ -> labs/: no solutions, plain Markdown
    python -m course_utils.instructor.labs sync [--check]        # badges (chapters, README), install cells: _config.yml
    python -m course_utils.instructor.labs strip [--check] [NB]  # clear outputs and execution counts before committing

The student copies are committed in labs/, and every badge opens them: Colab's and Kaggle's
``.../blob/{branch}/labs/NN_name.ipynb`` (the book's own launch button keeps opening the full chapter in
notebooks/). Their Markdown is plain Jupyter Markdown (``course_utils.instructor.student_markdown``); a test checks
that labs/ is what ``students`` writes now, so after editing a chapter run ``make labs`` and commit labs/.

_config.yml is the one place that names the GitHub repository (``repository.url`` and
``repository.branch``): Jupyter Book's launch buttons read it, ``sync`` writes it into the notebooks and the
README, and the student copies link to the book at its GitHub Pages address, derived from it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import nbformat
except ImportError as error:  # students do not need this module; instructors install its extra
    raise ImportError("course_utils.instructor.labs is a tool for instructors and maintainers and needs nbformat, "
                      "pyyaml and pybtex: pip install -e '.[instructor]' in a clone of the course's repository (it is "
                      "not on PyPI)") from error

from .student_markdown import Book, book_url, chapter_number, convert_notebook

STUDENT_FOLDER = "labs"  # where the student copies are committed, and what every badge opens
GITHUB_FILE = "https://github.com/{org}/{repo}/blob/{branch}/{folder}/{file}"
COLAB_URL = "https://colab.research.google.com/github/{org}/{repo}/blob/{branch}/{folder}/{file}"
KAGGLE_URL = "https://kaggle.com/kernels/welcome?src=" + GITHUB_FILE  # Kaggle imports a public GitHub notebook
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"
INSTALL_URL = "git+https://github.com/{org}/{repo}@{branch}"
STUDENT_NOTE = ("*This is the student version of [chapter {number} of the book]({url}): the solutions are removed. "
                "Write your code in the exercise cells, then run the self-check cell below each one: it prints PASS, "
                "or FAIL with a hint. Where the text quotes a number that the cells measure, it shows the number's "
                "name, like **`name`**, and the cell under that paragraph prints the value from your own run.*\n\n"
                "*On Kaggle, first open the notebook's settings: turn Internet on (the first code cell installs the "
                "course's package from GitHub) and choose a GPU accelerator.*")

# A badge: "[![Open In Colab](image)](link)" or "[![Open In Kaggle](image)](link)", and a line of them.
_BADGE = r"\[!\[Open [Ii]n (?:Colab|Kaggle)\]\([^)\s]*\)\]\([^)\s]*\)"
_BADGES = re.compile(rf"{_BADGE}(?:[ \t]*{_BADGE})*")
_BADGE_LINE = re.compile(rf"^[ \t]*{_BADGES.pattern}[ \t]*$", re.MULTILINE)
_BADGE_FILE = re.compile(r"/(?P<file>[^/\s)]+\.ipynb)\)")
_INSTALL_LINK = re.compile(r"git\+https://github\.com/[^\s\"'@]+(?:@[^\s\"']+)?")
_GITHUB = re.compile(r"^https?://github\.com/(?P<org>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?/?$")


# --- Reading the notebooks -----------------------------------------------------------------------

def find_root(start: str | Path = ".") -> Path:
    """The repository root: the nearest folder at or above ``start`` that holds _config.yml."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / "_config.yml").is_file():
            return folder
    raise FileNotFoundError(f"No _config.yml in {start} or any folder above it: run this from the repository, "
                            "or pass the repository root.")


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def chapter_notebooks(root: str | Path = ".") -> list[Path]:
    """The chapter notebooks, ``notebooks/*.ipynb`` under ``root``, in file-name order."""
    return sorted((Path(root) / "notebooks").glob("*.ipynb"))


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _write(nb, path: Path) -> None:
    nbformat.validate(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _tagged(nb, tag: str, path: Path):
    cells = [c for c in nb.cells if tag in tags(c)]
    if not cells:
        raise ValueError(f"{path.name}: no cell is tagged {tag!r}. Every chapter follows the skeleton in "
                         "course_utils/instructor/labs.py; add the tag to the right cell (View > Cell toolbar > "
                         "Tags).")
    return cells


# --- The repository, from _config.yml ------------------------------------------------------------

def repository(root: str | Path = ".") -> tuple[str, str, str]:
    """``(org, repo, branch)`` from ``repository.url`` and ``repository.branch`` in ``root/_config.yml``."""
    import yaml

    config_path = Path(root) / "_config.yml"
    config = yaml.safe_load(config_path.read_text()) or {}
    repo_config = config.get("repository") or {}
    url, branch = repo_config.get("url"), repo_config.get("branch")
    match = _GITHUB.match(str(url or "").strip())
    if not match:
        raise ValueError(f"{config_path}: repository.url is {url!r}; set it to https://github.com/<org>/<repo>.")
    if not branch:
        raise ValueError(f"{config_path}: set repository.branch (Jupyter Book's launch buttons default to "
                         "'master'; the course uses 'main').")
    return match["org"], match["repo"], str(branch)


def colab_url(org: str, repo: str, branch: str, notebook: str, folder: str = STUDENT_FOLDER) -> str:
    """The Colab link of the student copy ``labs/<notebook>`` (a file name such as ``01_augmentations.ipynb``);
    ``folder="notebooks"`` gives the full chapter's, which the book's launch button opens."""
    return COLAB_URL.format(org=org, repo=repo, branch=branch, folder=folder, file=notebook)


def kaggle_url(org: str, repo: str, branch: str, notebook: str, folder: str = STUDENT_FOLDER) -> str:
    """The "Open in Kaggle" link of the student copy ``labs/<notebook>``: Kaggle imports it from GitHub."""
    return KAGGLE_URL.format(org=org, repo=repo, branch=branch, folder=folder, file=notebook)


def badges(org: str, repo: str, branch: str, notebook: str) -> str:
    """The badge line of a chapter: Colab and Kaggle, both opening its student copy."""
    return (f"[![Open In Colab]({COLAB_BADGE})]({colab_url(org, repo, branch, notebook)}) "
            f"[![Open In Kaggle]({KAGGLE_BADGE})]({kaggle_url(org, repo, branch, notebook)})")


def install_url(org: str, repo: str, branch: str) -> str:
    """What the setup cell pip-installs when course_utils is missing (on Colab)."""
    return INSTALL_URL.format(org=org, repo=repo, branch=branch)


# --- sync ---------------------------------------------------------------------------------------

def _sync_one(nb, path: Path, org: str, repo: str, branch: str) -> bool:
    """Rewrite the badges and the install URL of one notebook in place; True when something changed.

    The title cell gets exactly one badge line, right under the title: Colab's and Kaggle's, both opening the
    chapter's student copy."""
    changed = False
    title = _tagged(nb, "colab-badge", path)[0]
    lines = _BADGE_LINE.sub("", title.source).strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"{path.name}: the cell tagged 'colab-badge' must start with the title line '# N. Title'.")
    rest = "\n".join(lines[1:]).strip()
    new = f"{lines[0]}\n\n{badges(org, repo, branch, path.name)}" + (f"\n\n{rest}" if rest else "")
    if new != title.source:
        title.source, changed = new, True
    url = install_url(org, repo, branch)
    found = False
    for cell in _tagged(nb, "setup", path):
        new, count = _INSTALL_LINK.subn(url, cell.source)
        found = found or count > 0
        if new != cell.source:
            cell.source, changed = new, True
    if not found:
        raise ValueError(f"{path.name}: the cell tagged 'setup' has no URL like {url!r} to rewrite; "
                         "restore it from the chapter skeleton.")
    return changed


def sync_readme(text: str, org: str, repo: str, branch: str, chapters: list[str]) -> str:
    """``text`` (the README) with every group of badges rewritten: Colab's and Kaggle's, for the student copy of the
    chapter that the group's first link names. A badge for a file that is not a chapter is an error."""
    def rewrite(match: re.Match) -> str:
        name = _BADGE_FILE.search(match[0])
        if not name or name["file"] not in chapters:
            raise ValueError(f"README.md: the badge {match[0][:120]!r} opens no chapter of notebooks/ "
                             f"({', '.join(chapters)}): fix or remove it.")
        return badges(org, repo, branch, name["file"])

    return _BADGES.sub(rewrite, text)


def sync_notebooks(root: str | Path = ".", check: bool = False) -> list[Path]:
    """Write the repository named in _config.yml into every chapter's badges and install cell, and into the
    README's badges.

    Returns the files that were out of date (rewritten, unless ``check`` is true).
    """
    root = Path(root)
    org, repo, branch = repository(root)
    stale = []
    chapters = chapter_notebooks(root)
    for path in chapters:
        nb = _read(path)
        if _sync_one(nb, path, org, repo, branch):
            stale.append(path)
            if not check:
                _write(nb, path)
    readme = root / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        new = sync_readme(text, org, repo, branch, [p.name for p in chapters])
        if new != text:
            stale.append(readme)
            if not check:
                readme.write_text(new, encoding="utf-8")
    return stale


# --- students -------------------------------------------------------------------------------------

def _check_solutions_tagged(nb, path: Path) -> None:
    """Refuse a notebook whose solution would leak into the student version (an untagged solution cell)."""
    inside = False
    for i, cell in enumerate(nb.cells):
        tagged = "solution" in tags(cell)
        source = cell.source
        starts = cell.cell_type == "markdown" and "{solution-start}" in source
        if (cell.cell_type == "markdown" and re.search(r"\{solution(-start|-end)?\}", source) or inside) \
                and not tagged:
            raise ValueError(f"{path.name}, cell {i}: this cell belongs to a solution but is not tagged "
                             "'solution', so it would stay in the student version. Tag it 'solution'.")
        if starts:
            inside = True
        if cell.cell_type == "markdown" and "{solution-end}" in source:
            inside = False
    if inside:
        raise ValueError(f"{path.name}: a {{solution-start}} has no matching {{solution-end}} cell.")


def student_book(root: str | Path) -> Book:
    """What a student copy needs to know about the book at ``root``: its address (GitHub Pages, from
    _config.yml's repository), its pages and labels (_toc.yml), and its references (book/references.bib)."""
    org, repo, _ = repository(root)
    return Book.from_root(root, book_url(org, repo))


def student_version(nb, path: Path | str = "notebook.ipynb", book: Book | None = None):
    """A copy of ``nb`` for students: the cells tagged "solution" removed, outputs cleared, plain Markdown.

    Returns ``(student_nb, removed)`` where ``removed`` is the number of solution cells taken out. The title
    says "(student version)" and links to the chapter's page in the book; the badges are dropped (they open
    this very copy). Every other Markdown cell is rewritten from MyST to plain Markdown, a cell that prints the
    glued numbers goes under each paragraph that quotes them, and a list of the works cited ends the notebook
    (``course_utils.instructor.student_markdown``). ``book``: read from the repository that holds ``path`` when not
    given.
    """
    path = Path(path)
    _check_solutions_tagged(nb, path)
    try:
        root = find_root(path.resolve().parent)
    except FileNotFoundError:
        if book is None:
            raise
        root = path.resolve().parent
    book = book or student_book(root)
    student = nbformat.from_dict(nb)  # a deep copy
    _strip(student)
    title = _tagged(student, "colab-badge", path)[0]
    lines = _BADGE_LINE.sub("", title.source).strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"{path.name}: the cell tagged 'colab-badge' must start with the title line '# N. Title'.")
    number = chapter_number(lines[0])
    page = path.resolve().relative_to(root).with_suffix("").as_posix() if path.resolve().is_relative_to(root) \
        else f"notebooks/{path.stem}"
    lines[0] = lines[0].rstrip() + " (student version)"
    note = STUDENT_NOTE.format(number=number, url=book.page_url(page))
    if number is None:
        note = note.replace("chapter None of the book", "this chapter in the book")
    title.source = "\n".join([*lines, "", note]).replace("\n\n\n", "\n\n")
    convert_notebook(student, path.name, book, page=page, skip=lambda cell: "solution" in tags(cell))
    kept = [c for c in student.cells if "solution" not in tags(c)]
    removed = len(student.cells) - len(kept)
    student.cells = kept
    return student, removed


def make_student_versions(src: str | Path = "notebooks", dst: str | Path = "labs", verbose: bool = False) -> list[Path]:
    """Write the student version of every ``src/*.ipynb`` to ``dst/`` (same file names); return their paths.

    Every notebook is converted before any is written: a notebook that cannot be (an untagged solution, a
    MyST role with no plain form, a missing reference) stops the command with its name and cell, and leaves
    ``dst`` as it was."""
    src, dst = Path(src), Path(dst)
    sources = sorted(src.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"No notebooks in {src}.")
    if src.resolve() == dst.resolve():
        raise ValueError("The student versions would overwrite the chapters: choose another output folder.")
    book = student_book(find_root(src))
    converted = [(path, *student_version(_read(path), path, book)) for path in sources]
    written = []
    for path, student, removed in converted:
        out = dst / path.name
        _write(student, out)
        written.append(out)
        if verbose:
            print(f"{path.name}: removed {removed} solution cells -> {out}")
    return written


# --- strip ----------------------------------------------------------------------------------------

def _strip(nb) -> bool:
    """Clear outputs, execution counts and per-cell execution metadata in place; True when anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                cell.outputs, cell.execution_count, changed = [], None, True
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            if key in cell.get("metadata", {}):
                del cell.metadata[key]
                changed = True
    if "widgets" in nb.metadata:
        del nb.metadata["widgets"]
        changed = True
    return changed


def strip_notebooks(paths, check: bool = False) -> list[Path]:
    """Clear the outputs of the notebooks at ``paths``; return those that had any (rewritten unless ``check``)."""
    dirty = []
    for path in map(Path, paths):
        nb = _read(path)
        if _strip(nb):
            dirty.append(path)
            if not check:
                _write(nb, path)
    return dirty


# --- command line ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.instructor.labs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from here)")
    commands = parser.add_subparsers(dest="command", required=True)
    students = commands.add_parser("students", help="write the student versions (solutions removed)")
    students.add_argument("src", nargs="?", type=Path, help="chapters (default: notebooks/)")
    students.add_argument("dst", nargs="?", type=Path, help="output folder (default: labs/)")
    sync = commands.add_parser("sync", help="write _config.yml's repository into badges and install cells")
    sync.add_argument("--check", action="store_true", help="only list out-of-date notebooks; exit 1 if any")
    strip = commands.add_parser("strip", help="clear outputs and execution counts")
    strip.add_argument("--check", action="store_true", help="only list notebooks with outputs; exit 1 if any")
    strip.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)

    try:
        root = args.root or find_root()
        if args.command == "students":
            make_student_versions(args.src or root / "notebooks", args.dst or root / "labs", verbose=True)
        elif args.command == "sync":
            stale = sync_notebooks(root, check=args.check)
            org, repo, branch = repository(root)
            verb = "out of date with" if args.check else "updated from"
            for path in stale:
                print(f"{path}: {verb} _config.yml ({org}/{repo}@{branch})")
            if args.check and stale:
                print("Run `python -m course_utils.instructor.labs sync` to update them.")
                return 1
            if not stale:
                print(f"All notebooks name {org}/{repo}@{branch}.")
        else:
            paths = args.notebooks or chapter_notebooks(root)
            dirty = strip_notebooks(paths, check=args.check)
            for path in dirty:
                print(f"{path}: {'has outputs' if args.check else 'outputs cleared'}")
            if args.check and dirty:
                return 1
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
