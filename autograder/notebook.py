"""Read a submitted ``.ipynb``: its code cells (to run) and its written answers (to collect).

Parsed as plain JSON (no Jupyter import on the grading path) and total over
any bytes: a notebook either reads or raises ``NotebookError`` with a one-line
reason (wrong types anywhere, huge integers, deep nesting, more than
``MAX_CODE_CELLS`` code cells or ``MAX_CODE_CHARS`` of code). Strings are made
valid where they enter (a lone surrogate becomes its backslash escape).
Outputs are ignored. IPython syntax that is not Python is never run: a cell
magic (``%%bash``) drops its cell; a line magic or shell escape (``%pip``,
``!ls``) that starts a logical line becomes ``pass`` (found with ``tokenize``:
continuation lines and string contents are never touched); the cell's note
says so.
"""

from __future__ import annotations

import ast
import functools
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field

from autograder.sandbox.runtime.frames import loads

MAX_NOTEBOOK_BYTES = 256 * 2**20
MAX_CODE_CHARS = 2 * 2**20
MAX_CODE_CELLS = 1000
MAX_CELLS = 10_000

ANSWER_TAG = "answer:"
_HEADING = re.compile(r"\*\*Answer\s+(W\d{3}-[\w.]+)\*\*")
_MAYBE_MAGIC = re.compile(r"^[ \t\f]*[!%](?!=)", re.M)  # "!=" or "%=" starts no magic
_DEF_LINE = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+(\w+)|^(\w+)[ \t]*(?::[^=\n]*)?=(?!=)", re.M)


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


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _shown(text: str, limit: int = 30) -> str:
    text = text[:limit]
    return text if text.isprintable() else ascii(text)


def _magic_lines(lines: list[str]) -> Iterator[int]:
    """Indices of the lines that start a logical line with ``!`` or ``%`` (tokenized, so strings,
    brackets and backslash continuations are understood). Linear: after a magic line the
    tokenizer restarts on the next one. Leading whitespace is dropped for the tokenizer, which
    needs no indentation to find logical lines (and so cannot fail on it)."""
    start = 0
    while start < len(lines):
        feed = (lines[i].lstrip(" \t\f") + "\n" for i in range(start, len(lines)))
        at_start, found = True, None
        try:
            for tok in tokenize.generate_tokens(lambda: next(feed, "")):
                if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                    continue
                if tok.type == tokenize.NEWLINE:
                    at_start = True
                    continue
                if at_start and tok.string in ("!", "%") and tok.type in (tokenize.OP, tokenize.ERRORTOKEN):
                    found = start + tok.start[0] - 1
                    break
                at_start = False
        except (tokenize.TokenError, SyntaxError):
            pass  # an unclosed bracket or string: what follows is not at a line start (Python will say why)
        if found is None:
            return
        yield found
        start = found + 1


def _strip_magics(source: str) -> tuple[str, str | None]:
    stripped = source.lstrip()
    if stripped.startswith("%%"):
        magic = stripped.split(None, 1)[0]
        return "", f"cell magic {_shown(magic)} was not run"
    if not _MAYBE_MAGIC.search(source):
        return source, None
    lines = source.split("\n")  # as Python's tokenizer splits lines (str.splitlines knows more separators)
    magic = list(_magic_lines(lines))
    for i in magic:
        lines[i] = lines[i][: len(lines[i]) - len(lines[i].lstrip(" \t\f"))] + "pass"
    note = f"{len(magic)} shell escape or magic line(s) were not run" if magic else None
    return "\n".join(lines), note


@functools.lru_cache(maxsize=1024)
def defined_names(source: str) -> frozenset[str]:
    """The names a cell binds at module level (``def``, ``class``, assignment, import), from its ``ast``;
    for a cell that does not parse, from the lines that start with such a binding."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset(a or b for a, b in _DEF_LINE.findall(source))
    names: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        else:  # if / for / while / try / with at module level: their bodies run at module level too
            for name in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, name, None)
                if isinstance(block, list):
                    stack.extend(block)
    return frozenset(names)


def _parse(data: bytes) -> dict:
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    try:
        nb = loads(data)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, an integer of over 4300 digits, deep nesting
        raise NotebookError("notebook does not parse (not valid JSON)") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError("notebook does not parse (no list of cells)")
    if nb.get("nbformat") != 4:
        shown = _shown(repr(nb.get("nbformat")), 20)
        raise NotebookError(f"notebook format {shown} is not supported (need 4)")
    if len(nb["cells"]) > MAX_CELLS:
        raise NotebookError(f"notebook has {len(nb['cells'])} cells, more than the {MAX_CELLS} allowed")
    return nb


def read_notebook(data: bytes) -> Notebook:
    """Parse notebook bytes; raise ``NotebookError`` with a one-line reason if it cannot be graded."""
    nb = _parse(data)
    meta = _dict(nb.get("metadata"))
    language = _dict(meta.get("kernelspec")).get("language") or _dict(meta.get("language_info")).get("name")
    if isinstance(language, str) and language.lower() != "python":
        raise NotebookError(f"not a Python notebook (kernel language: {_shown(language)})")
    cells = [c for c in nb["cells"] if not isinstance(c, dict) or c.get("cell_type") in ("code", "markdown")]
    if any(not isinstance(c, dict) for c in cells):
        raise NotebookError("notebook does not parse (a cell is not an object)")
    code_count = sum(c.get("cell_type") == "code" for c in cells)
    if code_count > MAX_CODE_CELLS:
        raise NotebookError(f"notebook has {code_count} code cells, more than the {MAX_CODE_CELLS} allowed")
    code: list[CodeCell] = []
    answers: dict[str, Answer] = {}
    pending_heading: str | None = None
    total = 0
    for cell in cells:
        kind, text = cell.get("cell_type"), _text(cell.get("source", ""))
        if kind == "code":
            total += len(text)
            if total > MAX_CODE_CHARS:
                raise NotebookError(f"code cells hold more than {MAX_CODE_CHARS // 2**20} M characters")
            source, note = _strip_magics(text)
            code.append(CodeCell(len(code), source, note))
            continue
        tags = _dict(cell.get("metadata")).get("tags")
        tagged = [t[len(ANSWER_TAG):] for t in tags if isinstance(t, str) and t.startswith(ANSWER_TAG)] \
            if isinstance(tags, list) else []
        if tagged:
            answers[tagged[0]] = Answer(tagged[0], text, "tag")
            pending_heading = None
            continue
        if pending_heading and pending_heading not in answers:
            answers[pending_heading] = Answer(pending_heading, text, "heading")
        heading = _HEADING.search(text)
        pending_heading = heading.group(1) if heading else None
    return Notebook(tuple(code), answers)
