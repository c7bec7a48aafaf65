"""MyST -> plain Jupyter Markdown, for the student copies that Colab, Kaggle and JupyterLab show as they are.

The book is written in MyST: Sphinx turns its roles and directives into citations, numbers, links and boxes.
Colab and Jupyter do not run Sphinx and would show them raw, so the student copies (``course_utils.instructor.labs``)
get every Markdown cell rewritten here:

    {cite}`chen2020simclr`              ->  \\[Chen *et al.*, 2020\\]  (and a reference list at the end)
    {glue:text}`ch2_lab_both:.1%`        ->  **`lab_both`**, and below the cell: show_glued("ch2_lab_both:.1%")
    {ref}`ch2-recipe-search`            ->  [How the recipe was found](https://ORG.github.io/REPO/notebooks/02_...html#ch2-recipe-search)
    {doc}`results page </book/results>` ->  [results page](https://ORG.github.io/REPO/book/results.html)
    ```{exercise} Title + :label:      ->  ### Exercise 2.1: Title
    ```{note} / {admonition} Title     ->  > **Note** / > **Title**, a block quote
    (label)=                            ->  (removed)

Code spans, fenced code and math ($...$, $$...$$) are copied untouched. Anything else that looks like MyST (a
role or a directive this module does not know) is an error naming the notebook, the cell and the role, so that
``make labs`` stops instead of writing a copy that shows raw markup. The book itself is not changed: it still
renders from notebooks/ with its roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .bibliography import Bibliography, BibliographyError

GLUED_TAG = "glued-values"        # the code cell under a paragraph that quotes glued numbers
REFERENCES_TAG = "reference-list"  # the Markdown cell at the end that lists the works cited

ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "warning": "Warning",
               "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
               "seealso": "See also", "admonition": None}  # {admonition} takes its title from the argument
ROLES = ("cite", "cite:p", "cite:t", "glue:text", "ref", "doc")
DIRECTIVES = ("exercise", *ADMONITIONS)

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<argument>.*)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
_LABEL = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")
_ROLE = re.compile(r"\{(?P<name>[A-Za-z][\w:.+-]*)\}(?P<ticks>`+)(?P<content>.+?)(?P=ticks)(?!`)", re.DOTALL)
_EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
_TITLE = re.compile(r"^#\s+(?P<number>\d+)\.\s")


class MystError(ValueError):
    """A notebook uses MyST that the student copy cannot express; the message names the cell."""


# --- The book: where it is published, what its labels point at ----------------------------------------

@dataclass
class Target:
    """What a label points at: a section (its heading) or an exercise (its number and title) on a page."""

    page: str                    # the page's docname, e.g. "notebooks/02_simclr_mnist"
    title: str                   # the section's heading, or the exercise's title (may be "")
    exercise: str | None = None  # "2.1" for an exercise

    def text(self) -> str:
        """How a {ref} to it reads: the heading, or "Exercise 2.1 (*Title*)"."""
        if self.exercise is None:
            return self.title
        return f"Exercise {self.exercise}" + (f" (*{self.title}*)" if self.title else "")


@dataclass
class Book:
    """What the conversion needs from the repository: the published book's URL, its pages and labels, the .bib."""

    url: str                                                   # ends with "/"
    pages: dict[str, str] = field(default_factory=dict)        # docname -> title
    labels: dict[str, Target] = field(default_factory=dict)
    bibliography: Bibliography | None = None

    def page_url(self, page: str, anchor: str = "") -> str:
        return f"{self.url}{page}.html" + (f"#{anchor}" if anchor else "")

    @classmethod
    def from_root(cls, root: str | Path, url: str) -> Book:
        """Read the pages of ``root/_toc.yml`` (their titles, ``(label)=`` targets and exercise labels) and
        ``book/references.bib``."""
        import nbformat
        import yaml

        root = Path(root)
        book = cls(url=url)
        toc = yaml.safe_load((root / "_toc.yml").read_text()) if (root / "_toc.yml").is_file() else {}
        for page in _toc_pages(toc):
            path = next((root / f"{page}{s}" for s in (".ipynb", ".md") if (root / f"{page}{s}").is_file()), None)
            if path is None:
                continue
            if path.suffix == ".ipynb":
                cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
            else:
                cells = [path.read_text(encoding="utf-8")]
            book.add_page(page, cells)
        bib = root / "book" / "references.bib"
        if bib.is_file():
            book.bibliography = Bibliography.load(bib)
        return book

    def add_page(self, page: str, markdown_cells: list[str]) -> None:
        """Index one page: its title (first "# " heading), section labels, and numbered exercise labels."""
        text = "\n".join(markdown_cells)
        title = re.search(r"^#\s+(.+?)\s*$", text, re.MULTILINE)
        self.pages[page] = title[1] if title else page
        lines = text.splitlines()
        for i, line in enumerate(lines):
            match = _LABEL.match(line)
            if match:
                heading = next((re.sub(r"^#+\s*", "", l) for l in lines[i + 1:] if l.strip()), match["label"])
                self._add_label(match["label"], Target(page, heading.strip()))
        number = chapter_number(markdown_cells[0]) if markdown_cells else None
        for label, k, exercise_title in exercises(text):
            ex = f"{number}.{k}" if number else str(k)
            if label:
                self._add_label(label, Target(page, exercise_title, exercise=ex))

    def _add_label(self, label: str, target: Target) -> None:
        if label in self.labels and self.labels[label] != target:
            raise MystError(f"the label {label!r} is defined twice: in {self.labels[label].page} and in {target.page}.")
        self.labels[label] = target


def _toc_pages(node) -> list[str]:
    if isinstance(node, dict):
        found = [node[k] for k in ("root", "file") if k in node]
        return found + [p for key, value in node.items() if key not in ("root", "file") for p in _toc_pages(value)]
    if isinstance(node, list):
        return [p for item in node for p in _toc_pages(item)]
    return []


def book_url(org: str, repo: str) -> str:
    """The book's address on GitHub Pages, from the repository (named once, in _config.yml)."""
    if repo.lower() == f"{org.lower()}.github.io":
        return f"https://{repo}/"
    return f"https://{org}.github.io/{repo}/"


def chapter_number(title_cell: str) -> str | None:
    """"2" for a title cell that starts "# 2. SimCLR on MNIST"."""
    match = _TITLE.match(title_cell.lstrip())
    return match["number"] if match else None


def exercises(text: str) -> list[tuple[str | None, int, str]]:
    """(label, k, title) of every {exercise} directive in ``text``, numbered 1, 2, ... in order."""
    found = []
    for match in re.finditer(r"^ {0,3}(`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)\n(?P<options>(?::[\w-]+:[^\n]*\n)*)",
                             text, re.MULTILINE):
        label = re.search(r"^:label:\s*(\S+)", match["options"], re.MULTILINE)
        found.append((label[1] if label else None, len(found) + 1, match["title"].strip()))
    return found


# --- One notebook -------------------------------------------------------------------------------------

@dataclass
class _Cell:
    """What converting one cell found: the glued values it quotes and the keys it cites."""
    where: str
    page: str
    chapter: str | None
    glued: list[str] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)


class Converter:
    """Converts the Markdown cells of one notebook; ``exercise_count`` runs over the whole notebook."""

    def __init__(self, book: Book, page: str, name: str, chapter: str | None, local: frozenset = frozenset()):
        self.book, self.page, self.name, self.chapter = book, page, name, chapter
        self.local = local  # the names this notebook's own cells glue (written out in the glue call)
        self.exercise_count = 0
        self.cited: list[str] = []

    def cell(self, source: str, index: int) -> tuple[str, list[str]]:
        """(Markdown, glued specs) of the Markdown cell ``index``."""
        state = _Cell(f"{self.name}, cell {index}", self.page, self.chapter)
        text = "\n".join(self._blocks(source.splitlines(), state)).strip("\n")
        text = re.sub(r"\n{3,}", "\n\n", text)
        self.cited += state.cited
        return text, list(dict.fromkeys(state.glued))

    # --- blocks: fences, directives, labels ---

    def _blocks(self, lines: list[str], state: _Cell) -> list[str]:
        out, run, i = [], [], 0
        while i < len(lines):
            fence = _FENCE.match(lines[i])
            if not fence:
                if not _LABEL.match(lines[i]):  # "(name)=" targets exist for Sphinx only
                    run.append(lines[i])
                i += 1
                continue
            if run:
                out.append(self._inline("\n".join(run), state))
                run = []
            marker, info = fence["fence"], fence["info"].strip()
            end = next((j for j in range(i + 1, len(lines))
                        if re.match(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$", lines[j])), len(lines))
            directive = _DIRECTIVE.match(info)
            if directive:
                out += self._directive(directive["name"], directive["argument"].strip(), lines[i + 1:end], state)
            elif marker[0] == ":":
                raise MystError(f"{state.where}: a ':::' fence without a {{directive}}: {lines[i]!r}.")
            else:
                out += lines[i:end + 1]  # a code block, copied as it is
            i = end + 1
        if run:
            out.append(self._inline("\n".join(run), state))
        return out

    def _directive(self, name: str, argument: str, body: list[str], state: _Cell) -> list[str]:
        options = {}
        while body and _OPTION.match(body[0]):
            option = _OPTION.match(body[0])
            options[option["key"]] = option["value"]
            body = body[1:]
        allowed = {"exercise": {"label", "class", "nonumber", "hidden"}}.get(name, {"class", "name"})
        if name not in DIRECTIVES:
            if name.startswith("solution"):
                raise MystError(f"{state.where}: a {{{name}}} directive in a cell that is not tagged 'solution'.")
            raise MystError(f"{state.where}: the directive {{{name}}} has no plain-Markdown form in the student "
                            f"copies (known: {', '.join(DIRECTIVES)}). Use one of those, or teach "
                            "course_utils/instructor/student_markdown.py the new one.")
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise MystError(f"{state.where}: the {{{name}}} directive has options {unknown} that the student copy "
                            f"cannot show (known: {sorted(allowed)}).")
        inner = self._blocks(body, state)
        if name == "exercise":
            self.exercise_count += 1
            number = f"{state.chapter}.{self.exercise_count}" if state.chapter else str(self.exercise_count)
            title = self._inline(argument, state)
            return [f"### Exercise {number}" + (f": {title}" if title else ""), "", *inner]
        title = self._inline(argument, state) if name == "admonition" else ADMONITIONS[name]
        if not title:
            raise MystError(f"{state.where}: an {{admonition}} needs a title after the directive name.")
        quoted = "\n".join([f"**{title}**", "", *inner]).strip("\n").splitlines()
        return [f"> {line}" if line.strip() else ">" for line in quoted]

    # --- inline: roles, outside code spans and math ---

    def _inline(self, text: str, state: _Cell) -> str:
        out, i = [], 0
        while i < len(text):
            char = text[i]
            if char == "\\":
                out.append(text[i:i + 2])
                i += 2
            elif char == "`":  # a code span: copied up to the run of backticks that closes it
                ticks = re.match(r"`+", text[i:])[0]
                close = re.compile(rf"(?<!`){ticks}(?!`)").search(text, i + len(ticks))
                end = close.end() if close else i + len(ticks)
                out.append(text[i:end])
                i = end
            elif char == "$":  # math, $$...$$ or $...$ (not across a blank line), is MathJax's
                delimiter = "$$" if text.startswith("$$", i) else "$"
                close = text.find(delimiter, i + len(delimiter))
                if close < 0 or (delimiter == "$" and "\n\n" in text[i:close]):
                    out.append(char)
                    i += 1
                else:
                    out.append(text[i:close + len(delimiter)])
                    i = close + len(delimiter)
            elif char == "{" and _ROLE.match(text, i):
                role = _ROLE.match(text, i)
                replacement = self._role(role["name"], role["content"], state)
                if role["name"] == "ref" and replacement.startswith("Exercise "):
                    # "exercise {ref}`ex-02-x`" would read "exercise Exercise 2.3 (...)": keep one of the two
                    out = [re.sub(r"(?i)\bexercise\s+$", "", "".join(out))]
                out.append(replacement)
                i = role.end()
            else:
                out.append(char)
                i += 1
        return "".join(out)

    def _role(self, name: str, content: str, state: _Cell) -> str:
        if name in ("cite", "cite:p", "cite:t"):
            keys = [k.strip() for k in content.split(",") if k.strip()]
            if self.book.bibliography is None:
                raise MystError(f"{state.where}: {{{name}}}`{content}` cites, and there is no book/references.bib.")
            try:
                text = self.book.bibliography.cite(keys, textual=name == "cite:t")
            except BibliographyError as error:
                raise MystError(f"{state.where}: {{{name}}}`{content}`: {error}") from None
            state.cited += keys
            return text
        if name == "glue:text":
            if "::" in content:  # pasted from another page: fine when this notebook glues the same name itself
                pasted = content.partition("::")[2]
                if pasted.split(":")[0] not in self.local:
                    raise MystError(f"{state.where}: {{glue:text}}`{content}` pastes a value from another notebook; "
                                    "a student copy can only show the values its own cells glue (glue the same "
                                    "name in this notebook too, with the name written out).")
                content = pasted
            state.glued.append(content)
            from ..report import glued_label

            return f"**`{glued_label(content.split(':')[0])}`**"
        if name == "ref":
            return self._ref(content, state)
        if name == "doc":
            return self._doc(content, state)
        raise MystError(f"{state.where}: the role {{{name}}}`{content}` has no plain-Markdown form in the student "
                        f"copies (known: {', '.join(ROLES)}). Use one of those, or teach "
                        "course_utils/instructor/student_markdown.py the new one.")

    def _ref(self, content: str, state: _Cell) -> str:
        explicit = _EXPLICIT.match(content)
        text, label = (explicit["text"], explicit["target"]) if explicit else (None, content.strip())
        target = self.book.labels.get(label)
        if target is None:
            raise MystError(f"{state.where}: {{ref}}`{content}` points at the label {label!r}, which no page of "
                            "_toc.yml defines.")
        if target.exercise and target.page == state.page and not text:
            return target.text()  # an exercise of this notebook: its heading is right here (the book's shows the solution)
        return f"[{text or target.text()}]({self.book.page_url(target.page, label)})"

    def _doc(self, content: str, state: _Cell) -> str:
        explicit = _EXPLICIT.match(content)
        text, path = (explicit["text"], explicit["target"]) if explicit else (None, content.strip())
        page = path.lstrip("/") if path.startswith("/") else str(Path(state.page).parent / path)
        page = re.sub(r"\.(md|ipynb)$", "", page)
        if page not in self.book.pages:
            raise MystError(f"{state.where}: {{doc}}`{content}` points at {page!r}, which is not a page of _toc.yml.")
        return f"[{text or self.book.pages[page]}]({self.book.page_url(page)})"


def glued_values_cell(specs: list[str], after_id: str | None):
    """The code cell under a paragraph that quotes glued values: it prints them from the student's run.

    Colab shows only its title (a "form" cell), JupyterLab folds its source; both show what it prints."""
    from nbformat.v4 import new_code_cell

    arguments = ", ".join(f'"{spec}"' for spec in specs)
    call = f"show_glued({arguments})"
    if len(call) > 100:
        call = "show_glued(\n" + "".join(f'    "{spec}",\n' for spec in specs) + ")"
    source = f"# @title The numbers quoted above, from your run\nfrom course_utils.report import show_glued\n\n{call}"
    cell = new_code_cell(source, metadata={"tags": [GLUED_TAG], "cellView": "form", "jupyter": {"source_hidden": True}})
    if after_id:
        cell.id = f"{after_id}-glued"[-64:]
    return cell


_GLUE_CALL = re.compile(r"""\bglue\(\s*["']([^"'{}]+)["']""")  # glue("name", ...): a literal name


def convert_notebook(nb, name: str, book: Book, page: str | None = None, skip=lambda cell: False) -> list[str]:
    """Rewrite every Markdown cell of ``nb`` in place as plain Markdown (cells for which ``skip(cell)`` is true are
    left as they are: the solutions, which the caller removes), put a ``show_glued`` cell under each one that
    quotes glued values, and end the notebook with the list of the works it cites. Errors name ``name`` and the
    cell's index in ``nb``. Returns the keys cited.

    A value pasted from another page (``{glue:text}`../book/instructors.md::ch1_time_cpu:s```, which keeps the
    book's header current without executing the chapter again) is shown like a local one when this notebook glues
    the same name itself. A value that the text quotes before the cell that glues it (the book does not mind the
    order) is printed under that cell instead, when its name is written out in the ``glue("name", ...)`` call; a name made at run
    time (``glue(f"ch2_{x}", ...)``) is taken to be glued before the text that quotes it.
    """
    from nbformat.v4 import new_markdown_cell

    page = page or f"notebooks/{Path(name).stem}"
    chapter = chapter_number(nb.cells[0].source) if nb.cells and nb.cells[0].cell_type == "markdown" else None
    glued_in: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and not skip(cell):
            for glued_name in _GLUE_CALL.findall(cell.source):
                glued_in.setdefault(glued_name, []).append(index)
    converter = Converter(book, page, name, chapter, frozenset(glued_in))
    later: dict[int, list[str]] = {}  # code cell index -> the specs to print under it
    cells = []
    for index, cell in enumerate(nb.cells):
        cells.append(cell)
        if index in later:
            cells.append(glued_values_cell(list(dict.fromkeys(later.pop(index))), cell.get("id")))
        if cell.cell_type != "markdown" or skip(cell):
            continue
        cell.source, glued = converter.cell(cell.source, index)
        leftover = leftover_myst(cell.source)
        if leftover:
            raise MystError(f"{name}, cell {index}: MyST left after the conversion: {leftover}.")
        now = []
        for spec in glued:
            where = glued_in.get(spec.split(":")[0], [])
            if where and all(i > index for i in where):  # glued only further down: print it there
                later.setdefault(where[0], []).append(spec)
            else:
                now.append(spec)
        if now:
            cells.append(glued_values_cell(now, cell.get("id")))
    cited = list(dict.fromkeys(converter.cited))
    if cited:
        listing = book.bibliography.reference_list(cited)
        cells.append(new_markdown_cell(f"### Works cited in this chapter\n\n{listing}",
                                       metadata={"tags": [REFERENCES_TAG]}))
        cells[-1].id = "works-cited"
    nb.cells = cells
    return cited


def leftover_myst(markdown: str) -> list[str]:
    """MyST syntax left in ``markdown`` outside code and math: roles, directive fences, labels, option lines.

    The converter's own last check; tests/test_labs.py checks the rendered HTML independently."""
    found = []
    for line in markdown.splitlines():
        if re.match(r"^\s*(`{3,}|~{3,}|:{3,})\s*\{", line) or _LABEL.match(line) or \
                re.match(r"^\s*>?\s*:(label|class|name):", line):
            found.append(line.strip())
    prose = re.sub(r"(`{3,}|~{3,})[^\n]*\n.*?\n\s*\1", "", markdown, flags=re.DOTALL)  # fenced code
    prose = re.sub(r"\$\$.+?\$\$|\$[^$]+\$", "", prose, flags=re.DOTALL)  # math
    prose = re.sub(r"(?<![`}])(`+)(?!`).+?(?<!`)\1(?!`)", "", prose, flags=re.DOTALL)  # code spans, not a role's
    found += [m[0] for m in re.finditer(r"\{[A-Za-z][\w:.+-]*\}`", prose)]
    return found
