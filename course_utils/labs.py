"""Lab tooling for instructors and maintainers: student versions, repository sync, output stripping.

Every chapter notebook follows one skeleton, and these commands rely on its cell tags:

    "colab-badge"    the title cell, with the "Open in Colab" badge
    "setup"          the install cell: pip-installs course_utils from git+https://github.com/{org}/{repo}@{branch}
    "exercise-stub"  a function for the student to write (raises NotImplementedError)
    "solution"       the cells of a solution (a {solution} directive, or solution-start / code / solution-end)
    "self-check"     calls a check from course_utils.checks; prints "not implemented yet" for a stub

Run from the repository root:

    python -m course_utils.labs students [SRC] [DST]   # notebooks/ -> labs/, the "solution" cells removed
    python -m course_utils.labs sync [--check]         # Colab badges and install cells from _config.yml
    python -m course_utils.labs strip [--check] [NB]   # clear outputs and execution counts before committing

_config.yml is the one place that names the GitHub repository (``repository.url`` and
``repository.branch``): Jupyter Book's launch buttons read it, and ``sync`` writes it into the notebooks.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import nbformat
except ImportError as error:  # students do not need this module; instructors install its extra
    raise ImportError("course_utils.labs is a tool for instructors and maintainers and needs nbformat and pyyaml: "
                      "pip install -e '.[instructor]' in a clone of the course's repository (not on PyPI)") from error

COLAB_URL = "https://colab.research.google.com/github/{org}/{repo}/blob/{branch}/notebooks/{file}"
INSTALL_URL = "git+https://github.com/{org}/{repo}@{branch}"
STUDENT_NOTE = ("*Student version: the solutions are removed. Write your code in the exercise cells, then run "
                "the self-check cell below each one: it prints PASS, or FAIL with a hint.*")

# The link target of the badge (not the badge image, which lives under /assets/).
_COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"'\]]+")
_INSTALL_LINK = re.compile(r"git\+https://github\.com/[^\s\"'@]+(?:@[^\s\"']+)?")
_BADGE_LINE = re.compile(r"^\s*\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\s*$", re.MULTILINE)
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
                         f"course_utils/labs.py; add the tag to the right cell (View > Cell toolbar > Tags).")
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


def colab_url(org: str, repo: str, branch: str, notebook: str) -> str:
    """The Colab link of ``notebooks/<notebook>`` (a file name such as ``01_augmentations.ipynb``)."""
    return COLAB_URL.format(org=org, repo=repo, branch=branch, file=notebook)


def install_url(org: str, repo: str, branch: str) -> str:
    """What the setup cell pip-installs when course_utils is missing (on Colab)."""
    return INSTALL_URL.format(org=org, repo=repo, branch=branch)


# --- sync ---------------------------------------------------------------------------------------

def _sync_one(nb, path: Path, org: str, repo: str, branch: str) -> bool:
    """Rewrite the badge and install URLs of one notebook in place; True when something changed."""
    changed = False
    for tag, pattern, url in (("colab-badge", _COLAB_LINK, colab_url(org, repo, branch, path.name)),
                              ("setup", _INSTALL_LINK, install_url(org, repo, branch))):
        found = False
        for cell in _tagged(nb, tag, path):
            new, count = pattern.subn(url, cell.source)
            found = found or count > 0
            if new != cell.source:
                cell.source, changed = new, True
        if not found:
            raise ValueError(f"{path.name}: the cell tagged {tag!r} has no URL like {url!r} to rewrite; "
                             "restore it from the chapter skeleton.")
    return changed


def sync_notebooks(root: str | Path = ".", check: bool = False) -> list[Path]:
    """Write the repository named in _config.yml into every chapter's Colab badge and install cell.

    Returns the notebooks that were out of date (rewritten, unless ``check`` is true).
    """
    root = Path(root)
    org, repo, branch = repository(root)
    stale = []
    for path in chapter_notebooks(root):
        nb = _read(path)
        if _sync_one(nb, path, org, repo, branch):
            stale.append(path)
            if not check:
                _write(nb, path)
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


def student_version(nb, path: Path | str = "notebook.ipynb"):
    """A copy of ``nb`` without the cells tagged "solution", outputs cleared, titled "student version".

    Returns ``(student_nb, removed)`` where ``removed`` is the number of cells taken out. The Colab badge
    is dropped from the title cell (it opens the full chapter, solutions included).
    """
    path = Path(path)
    _check_solutions_tagged(nb, path)
    student = nbformat.from_dict(nb)  # a deep copy
    kept = [c for c in student.cells if "solution" not in tags(c)]
    removed = len(student.cells) - len(kept)
    student.cells = kept
    _strip(student)
    title = _tagged(student, "colab-badge", path)[0]
    lines = _BADGE_LINE.sub("", title.source).strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"{path.name}: the cell tagged 'colab-badge' must start with the title line '# N. Title'.")
    lines[0] = lines[0].rstrip() + " (student version)"
    title.source = "\n".join([*lines, "", STUDENT_NOTE]).replace("\n\n\n", "\n\n")
    return student, removed


def make_student_versions(src: str | Path = "notebooks", dst: str | Path = "labs", verbose: bool = False) -> list[Path]:
    """Write the student version of every ``src/*.ipynb`` to ``dst/`` (same file names); return their paths."""
    src, dst = Path(src), Path(dst)
    sources = sorted(src.glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"No notebooks in {src}.")
    if src.resolve() == dst.resolve():
        raise ValueError("The student versions would overwrite the chapters: choose another output folder.")
    written = []
    for path in sources:
        student, removed = student_version(_read(path), path)
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
    parser = argparse.ArgumentParser(prog="python -m course_utils.labs", description=__doc__.split("\n")[0])
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
                print("Run `python -m course_utils.labs sync` to update them.")
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
