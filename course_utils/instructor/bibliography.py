"""The book's references (book/references.bib) as plain Markdown, for the student copies.

The book cites with sphinxcontrib-bibtex in its ``author_year`` style: ``{cite}`chen2020simclr``` shows as
"[Chen *et al.*, 2020]", several keys as "[Chen *et al.*, 2020, Google Research, 2020]", sorted as its
bibliography sorts them (pybtex's ``author_year_title``). Colab and Jupyter do not run Sphinx, so the student
copies get the same text written out, and a short reference list of what the notebook cites:

    bib = Bibliography.load("book/references.bib")
    bib.cite(["chen2020simclr"])              # '\\[Chen *et al.*, 2020\\]' (escaped: never a Markdown link)
    bib.reference_list(["chen2020simclr"])    # '- \\[Chen *et al.*, 2020\\] Ting Chen, ... 2020. arXiv:2002.05709.'

A key that is not in the file, or an entry without an author, a title or a year, is an error that names the
key; so is an entry that does not parse. Needs pybtex (installed with sphinxcontrib-bibtex, and in the
``instructor`` extra).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_ENTRY_START = re.compile(r"^@(?P<type>\w+)\s*[{(]\s*(?P<key>[^,\s]*)", re.MULTILINE)
_URL = re.compile(r"\\url\{([^}]*)\}")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>])")


class BibliographyError(ValueError):
    """references.bib lacks a key, or an entry is malformed; the message names the key."""


@lru_cache(maxsize=None)
def _latex_to_text(latex: str) -> str:
    """``Doll{\\'a}r`` -> ``Dollár``, ``{UMAP}`` -> ``UMAP``, ``1--6`` -> ``1–6`` (pybtex's LaTeX reader)."""
    from pybtex.backends.plaintext import Backend  # imported, not looked up: pybtex's plugin search is slow
    from pybtex.richtext import Text

    return Text.from_latex(latex).render(Backend())


def _markdown(latex: str) -> str:
    """A field as Markdown: LaTeX decoded and escaped, ``\\url{...}`` as an autolink."""
    parts, last = [], 0
    for match in _URL.finditer(latex):
        parts.append(_MARKDOWN_SPECIAL.sub(r"\\\1", _latex_to_text(latex[last:match.start()])))
        parts.append(f"<{match[1]}>")
        last = match.end()
    parts.append(_MARKDOWN_SPECIAL.sub(r"\\\1", _latex_to_text(latex[last:])))
    return "".join(parts).strip()


class Bibliography:
    """The entries of a .bib file, read strictly."""

    def __init__(self, entries: dict, source: str = "references.bib"):
        self.entries, self.source = entries, source

    @classmethod
    def load(cls, path: str | Path) -> Bibliography:
        path = Path(path)
        if not path.is_file():
            raise BibliographyError(f"{path} does not exist: the student copies take their references from it.")
        text = path.read_text(encoding="utf-8")
        return cls(_parse(text, path.name), path.name)

    # --- one entry --------------------------------------------------------------------------------

    def entry(self, key: str):
        """The entry of ``key``, checked: it has an author (or editor), a title and a year."""
        if key not in self.entries:
            raise BibliographyError(f"the citation key {key!r} is not in {self.source}: add the entry, or fix the key.")
        entry = self.entries[key]
        missing = [field for field in ("title", "year") if not entry.fields.get(field, "").strip()]
        if not (entry.persons.get("author") or entry.persons.get("editor")):
            missing.insert(0, "author")
        if missing:
            raise BibliographyError(f"the entry {key!r} in {self.source} has no {' or '.join(missing)}: the student "
                                    "copies cite it as 'Author, year' and list it with its title.")
        return entry

    def _people(self, key: str) -> list:
        entry = self.entry(key)
        return entry.persons.get("author") or entry.persons.get("editor")

    def author_text(self, key: str) -> str:
        """Last names as the book shows them: "Kuhn", "Ioffe and Szegedy", "Chen *et al.*"."""
        people = self._people(key)
        names = [_markdown(" ".join(p.prelast_names + p.last_names)) for p in people]
        others = str(people[-1]) == "others"
        if len(names) >= 3 or (others and len(names) == 2):
            return f"{names[0]} *et al.*"
        return " and ".join(names)

    def year(self, key: str) -> str:
        return _markdown(self.entry(key).fields["year"])

    # --- citations --------------------------------------------------------------------------------

    def sorted_keys(self, keys) -> list[str]:
        """``keys`` in the order of the book's bibliography (pybtex's author_year_title sorting), duplicates dropped."""
        from pybtex.style.sorting.author_year_title import SortingStyle

        unique = list(dict.fromkeys(keys))
        for key in unique:
            self.entry(key)
        sorter = SortingStyle()
        return [entry.key for entry in sorter.sort([self.entries[key] for key in unique])]

    def cite(self, keys, textual: bool = False) -> str:
        """The text of ``{cite}`` (parenthetical: "[A, 2020, B, 2019]") or ``{cite:t}`` (textual: "A [2020]").

        The brackets are escaped, so that no Markdown renderer takes "[...]" followed by "(...)" for a link."""
        keys = self.sorted_keys(keys)
        if textual:
            return ", ".join(f"{self.author_text(k)} \\[{self.year(k)}\\]" for k in keys)
        return "\\[" + ", ".join(f"{self.author_text(k)}, {self.year(k)}" for k in keys) + "\\]"

    # --- the reference list -------------------------------------------------------------------------

    def reference(self, key: str) -> str:
        """One entry as a Markdown line: citation label, authors, title, where, year, note."""
        entry = self.entry(key)
        f = entry.fields
        people = [_markdown(" ".join(p.first_names + p.middle_names + p.prelast_names + p.last_names))
                  for p in self._people(key)]
        authors = people[0] if len(people) == 1 else (" and ".join(people) if len(people) == 2
                                                      else ", ".join(people[:-1]) + ", and " + people[-1])
        where = []
        if f.get("booktitle"):
            where.append(f"In *{_markdown(f['booktitle'])}*")
        if f.get("journal"):
            journal = f"*{_markdown(f['journal'])}*"
            volume = _markdown(f.get("volume", "")) + (f"({_markdown(f['number'])})" if f.get("number") else "")
            where.append(journal + (f", {volume}" if volume else "") + (f":{_markdown(f['pages'])}" if f.get("pages") else ""))
        elif f.get("pages"):
            where.append(f"pp. {_markdown(f['pages'])}")
        if f.get("institution"):
            where.append(f"Technical report, {_markdown(f['institution'])}")
        if f.get("howpublished"):
            where.append(_markdown(f["howpublished"]))
        parts = [authors, _markdown(f["title"]), ", ".join([*where, self.year(key)])]
        if f.get("note"):
            parts.append(_markdown(f["note"]))
        body = ". ".join(p.rstrip(".") for p in parts) + "."
        return f"- {self.cite([key])} {body}"

    def reference_list(self, keys) -> str:
        """The Markdown list of ``keys``' entries, in the bibliography's order."""
        return "\n".join(self.reference(key) for key in self.sorted_keys(keys))


def _parse(text: str, name: str) -> dict:
    """{key: pybtex Entry}. A syntax error names the entry it is in; a repeated key is an error."""
    from pybtex.database import parse_string
    from pybtex.exceptions import PybtexError

    try:
        return dict(parse_string(text, "bibtex").entries)
    except PybtexError as error:
        starts = [(m.start(), m["type"], m["key"], text.count("\n", 0, m.start()) + 1)
                  for m in _ENTRY_START.finditer(text)]
        for index, (start, kind, key, line) in enumerate(starts):
            end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
            if kind.lower() in ("comment", "preamble", "string"):
                continue
            if not key:
                raise BibliographyError(f"{name}, line {line}: an @{kind} entry without a key.") from error
            try:
                parse_string(text[start:end], "bibtex")
            except PybtexError as inner:
                raise BibliographyError(f"{name}: the entry {key!r} (line {line}) is malformed: {inner}. "
                                        "Fix its braces, commas and quotes.") from error
        raise BibliographyError(f"{name} does not parse: {error}") from error
