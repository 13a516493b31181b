"""Read a submitted ``.ipynb``: its code cells (to run) and its written answers (to collect).

Parsed as plain JSON (no Jupyter import on the grading path). Outputs are
ignored. IPython syntax that is not Python is never run: a cell magic
(``%%bash``) drops its cell, a line magic or shell escape (``%pip``,
``!ls``) becomes ``pass``; the cell's note says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

MAX_NOTEBOOK_BYTES = 256 * 2**20
MAX_CODE_CHARS = 2 * 2**20

ANSWER_TAG = "answer:"
_HEADING = re.compile(r"\*\*Answer\s+(W\d{3}-[\w.]+)\*\*")
_MAGIC_LINE = re.compile(r"^(\s*)[!%].*$")


class NotebookError(ValueError):
    """The submission cannot be graded at all; ``reason`` is the gradebook status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CodeCell:
    """A code cell as it will run: ``index`` counts code cells from 0."""

    index: int
    source: str
    note: str | None = None


@dataclass(frozen=True)
class Answer:
    """A written answer; ``found_by`` is ``"tag"`` or ``"heading"``."""

    qid: str
    text: str
    found_by: str


@dataclass(frozen=True)
class Notebook:
    code_cells: tuple[CodeCell, ...]
    answers: dict[str, Answer] = field(default_factory=dict)


def _text(source: object) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    raise NotebookError("notebook does not parse (a cell's source is not text)")


def _strip_magics(source: str) -> tuple[str, str | None]:
    stripped = source.lstrip()
    if stripped.startswith("%%"):
        magic = stripped.split(None, 1)[0]
        return "", f"cell magic {magic} was not run"
    lines, removed = [], 0
    for line in source.splitlines():
        m = _MAGIC_LINE.match(line)
        if m:
            lines.append(f"{m.group(1)}pass")
            removed += 1
        else:
            lines.append(line)
    note = f"{removed} shell escape or magic line(s) were not run" if removed else None
    return "\n".join(lines), note


def read_notebook(data: bytes) -> Notebook:
    """Parse notebook bytes; raise ``NotebookError`` with a one-line reason if it cannot be graded."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    try:
        nb = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise NotebookError("notebook does not parse (not valid JSON)") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError("notebook does not parse (no list of cells)")
    if nb.get("nbformat") != 4:
        raise NotebookError(f"notebook format {nb.get('nbformat')!r:.20} is not supported (need 4)")
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    language = (meta.get("kernelspec") or {}).get("language") or (meta.get("language_info") or {}).get("name")
    if isinstance(language, str) and language.lower() != "python":
        raise NotebookError(f"not a Python notebook (kernel language: {language[:30]})")
    code: list[CodeCell] = []
    answers: dict[str, Answer] = {}
    pending_heading: str | None = None
    total = 0
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            raise NotebookError("notebook does not parse (a cell is not an object)")
        kind, text = cell.get("cell_type"), _text(cell.get("source", ""))
        if kind == "code":
            total += len(text)
            if total > MAX_CODE_CHARS:
                raise NotebookError(f"code cells hold more than {MAX_CODE_CHARS // 2**20} M characters")
            source, note = _strip_magics(text)
            code.append(CodeCell(len(code), source, note))
        elif kind == "markdown":
            tags = (cell.get("metadata") or {}).get("tags") or []
            tagged = [t[len(ANSWER_TAG):] for t in tags if isinstance(t, str) and t.startswith(ANSWER_TAG)]
            if tagged:
                answers[tagged[0]] = Answer(tagged[0], text, "tag")
                pending_heading = None
                continue
            if pending_heading and pending_heading not in answers:
                answers[pending_heading] = Answer(pending_heading, text, "heading")
            heading = _HEADING.search(text)
            pending_heading = heading.group(1) if heading else None
    return Notebook(tuple(code), answers)
