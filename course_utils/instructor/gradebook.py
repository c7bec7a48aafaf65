"""The grader's results: one ``Result`` per notebook, the journal that records them as they come, and the
gradebook written from them (CSV, and a self-contained HTML page).

The journal (``grades.jsonl`` beside ``grades.csv``) is the record of a grading run: one JSON line per event,
appended and flushed to disk at once, so that a run stopped at student 180 keeps 179 results and
``python -m course_utils.instructor.grade ... --resume`` grades only the rest. The CSV and the HTML are written from the
results at the end of every run.
"""

from __future__ import annotations

import csv
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

STOPPED = "grader stopped it"  # its grading process was killed, or overran: the notebook was stopped


@dataclass
class Result:
    """What grading one notebook gave: a status, the seconds it took, a result and a message per check."""
    status: str
    seconds: float = 0.0
    checks: dict[str, tuple[str, str]] = field(default_factory=dict)  # check -> (result, message)
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        return {"status": self.status, "seconds": self.seconds,
                "checks": {k: list(v) for k, v in self.checks.items()}, "notes": list(self.notes)}

    @classmethod
    def from_record(cls, record: dict) -> Result:
        return cls(record["status"], record.get("seconds", 0.0),
                   {k: (v[0], v[1]) for k, v in record.get("checks", {}).items()}, list(record.get("notes", [])))


class Journal:
    """A JSON-lines file of the grading's events, appended and flushed to disk as they happen.

    A kernel runs as the same user as the grader and could write to this file while it runs. The grader keeps
    what it wrote: before every append, and at the end, it compares the file with that and, if something else
    changed it, says so (``append``/``verify`` return True) and writes its own content back.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.content = self.path.read_bytes() if self.path.is_file() else b""
        if self.content and not self.content.endswith(b"\n"):  # a line cut short by a crash: drop it
            self.content = self.content[: self.content.rfind(b"\n") + 1]
            self._rewrite()

    def records(self) -> list[dict]:
        records = []
        for line in self.content.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def append(self, record: dict) -> bool:
        """Append ``record``; True if the file had been changed by something else (and was restored first)."""
        tampered = self.verify()
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.content += line
        return tampered

    def verify(self) -> bool:
        """True if the file is not what the grader wrote; it is then written again, as the grader wrote it."""
        try:
            if self.path.is_file() and not self.path.is_symlink() and self.path.read_bytes() == self.content:
                return False
        except OSError:
            pass
        if not self.content and not os.path.lexists(self.path):
            return False
        self._rewrite()
        return True

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(self.content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # replaces a link put in its place too, not what the link points to


# --- The gradebook ----------------------------------------------------------------------------------

def gradebook(results: dict[tuple[str, str], Result], chapters) -> tuple[list[str], list[dict]]:
    """``(columns, rows)``: one row per student, for ``results`` keyed by (student, chapter name); ``chapters``
    (objects with ``.name`` and ``.checks``, each with ``.check``) give the columns.

    Per chapter: "<chapter>/status", "/seconds", one column per check, "/notes", "/messages".
    """
    columns = ["student"]
    for chapter in chapters:
        columns += [f"{chapter.name}/status", f"{chapter.name}/seconds"]
        columns += [f"{chapter.name}/{c.check}" for c in chapter.checks]
        columns += [f"{chapter.name}/notes", f"{chapter.name}/messages"]
    rows = []
    for student in sorted({s for s, _ in results}, key=str.lower):
        row = {"student": student}
        for chapter in chapters:
            result = results.get((student, chapter.name))
            if result is None:
                result = Result("not submitted", checks={c.check: ("not run", "") for c in chapter.checks})
            row[f"{chapter.name}/status"] = result.status
            row[f"{chapter.name}/seconds"] = result.seconds if result.status != "not submitted" else ""
            for check in chapter.checks:
                row[f"{chapter.name}/{check.check}"] = result.checks.get(check.check, ("not run", ""))[0]
            row[f"{chapter.name}/notes"] = "; ".join(result.notes)
            row[f"{chapter.name}/messages"] = " | ".join(
                f"{check}: {message}" for check, (verdict, message) in result.checks.items()
                if verdict != "PASS" and message)
        rows.append(row)
    return columns, rows


def write_csv(path: str | Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


_COLOURS = {"PASS": "#c8e6c9", "ok": "#c8e6c9", "FAIL": "#ffcdd2", "crashed": "#ffcdd2",
            "not implemented": "#fff9c4", "missing": "#ffe0b2", "timed out": "#ffe0b2", "flagged": "#b3e5fc",
            "kernel died": "#e1bee7", "unreadable": "#e1bee7", STOPPED: "#e1bee7", "not run": "#eeeeee",
            "not submitted": "#eeeeee"}


def write_html(path: str | Path, columns: list[str], rows: list[dict], title: str = "Gradebook",
               skipped=(), incidents=()) -> None:
    """A self-contained HTML table: a colour per result and status, each check's message on hover; then the
    notebooks that were ``skipped`` (objects with ``.path`` and ``.reason``) and the ``incidents`` (tampering
    with the grading), when there are any."""
    def cell(row: dict, column: str) -> str:
        value = str(row.get(column, ""))
        colour = next((c for key, c in _COLOURS.items() if value.startswith(key)), None)
        style = f' style="background:{colour}"' if colour else ""
        chapter, _, name = column.partition("/")
        message = next((m.split(": ", 1)[1] for m in str(row.get(f"{chapter}/messages", "")).split(" | ")
                        if m.startswith(f"{name}: ")), "")
        hover = f' title="{html.escape(message)}"' if message else ""
        klass = ' class="text"' if name in ("notes", "messages") else ""
        return f"<td{style}{hover}{klass}>{html.escape(value)}</td>"

    head = "".join(f"<th>{html.escape(c).replace('/', '/<br>')}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(cell(r, c) for c in columns) + "</tr>" for r in rows)
    legend = " ".join(f'<span style="background:{c};padding:2px 6px">{html.escape(k)}</span>'
                      for k, c in _COLOURS.items())
    extra = ""
    if skipped:
        items = "".join(f"<li><code>{html.escape(s.path)}</code>: {html.escape(s.reason)}</li>" for s in skipped)
        extra += f'<h2 id="skipped">Skipped: {len(skipped)} not graded</h2>\n<ul>{items}</ul>\n'
    if incidents:
        items = "".join(f"<li>{html.escape(i)}</li>" for i in incidents)
        extra += f'<h2 id="incidents">Tampering with the grading</h2>\n<ul>{items}</ul>\n'
    Path(path).write_text(f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #bbb; padding: 4px 6px; vertical-align: top; }}
th {{ background: #f5f5f5; position: sticky; top: 0; }}
td.text {{ max-width: 32em; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{legend}</p>
<p>Hover over a result to see the check's message; the messages column holds the hints.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table>
{extra}</body></html>
""", encoding="utf-8")
