"""Text that a student or a TA controls, made safe for the place it lands in.

Every value from outside (exception text, returned values, file names, cell
errors, TA comments) passes through one of these on its way out, once, where
it is written:

* ``clip``: valid Unicode (a lone surrogate becomes ``\\udXXX``) of at most
  ``limit`` characters — every field is bounded before any report sees it;
* ``printable``: control characters, escape sequences and bidirectional
  overrides shown escaped (``\\x1b``, ``\\u202e``), newlines kept on request;
* ``terminal``: ``printable`` text with rich markup escaped (the CLI);
* ``md_text`` / ``md_code``: Markdown that renders as the literal text — one
  line, each character that can start inline markup backslash-escaped (no
  HTML, heading, link, image, emphasis or table cell can come from it), or a
  fenced block whose fence is longer than any backtick run inside;
* ``html_text``: escaped HTML text;
* ``csv_text`` / ``csv_cell`` / ``csv_value``: spreadsheet formulas neutralised as OWASP
  describes (a leading ``'`` before ``= + - @``, tab or CR, and before a
  leading ``'`` so that ``csv_value`` gives the original back exactly);
  numbers stay numbers.

The module imports nothing of the grader, so every layer (checks, reports,
CLI) can use it.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
import unicodedata
from collections.abc import Iterable

#: Characters of one reported field (expected, got, detail, call, …).
FIELD_CHARS = 2_000

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20'")
#: What can start inline Markdown or HTML: code, emphasis, links and images, autolinks and raw HTML,
#: entities, table cells, strike-through, math, a heading's closing ``#``s; and the escape itself.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&$])")
_JOINER = "\u2060"  # word joiner: invisible, and no renderer links across it
_AUTOLINK = re.compile(r"(?i)\b(?:https?|ftp|file)(?=:)|\bwww(?=\.)|(?=@)")


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clip(text: str, limit: int = FIELD_CHARS) -> str:
    """``text`` as valid Unicode of at most about ``limit`` characters (the cut is said)."""
    if not isinstance(text, str):
        text = str(text)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = "".join(_escaped(ch) if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def _unsafe(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch == "\ufeff"


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every control character, escape sequence start and bidi override shown escaped."""
    text = clip(text, len(text)) if isinstance(text, str) else clip(str(text))
    keep = "\n" if keep_newlines else ""
    return "".join(_escaped(ch) if _unsafe(ch) and ch not in keep else ch for ch in text)


def terminal(text: str, keep_newlines: bool = False) -> str:
    """``text`` for a rich console: printable, with rich markup escaped."""
    from rich.markup import escape

    return escape(printable(text, keep_newlines))


def md_text(text: str, limit: int = FIELD_CHARS) -> str:
    """``text`` as inline Markdown that renders exactly as the (one-line, printable) text.

    Renderers that link bare addresses (GitHub's ``http://…``, ``www.…``,
    ``a@b.c``) find none: a word joiner (U+2060, invisible) splits each trigger.
    """
    text = _MD_SPECIAL.sub(r"\\\1", printable(clip(" ".join(str(text).split()), limit)))
    return _AUTOLINK.sub(lambda m: m.group(0) + _JOINER, text)


def md_code(text: str, info: str = "text") -> str:
    """``text`` as a fenced code block that nothing inside can close."""
    body = printable(text, keep_newlines=True)
    runs = [len(m) for m in re.findall(r"`+", body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{info}\n{body}\n{fence}\n"


def html_text(text: str, limit: int = FIELD_CHARS) -> str:
    """``text`` as escaped HTML text (quotes included), printable, bounded."""
    return html.escape(printable(clip(text, limit), keep_newlines=True), quote=True)


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell)) and cell.strip() == cell and not cell.startswith("'")
    except ValueError:
        return False


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text, never evaluates; numbers stay numbers."""
    text = clip(value if isinstance(value, str) else str(value), 10 * FIELD_CHARS)
    if text[:1] in _FORMULA_START and not _is_number(text):
        return "'" + text
    return text


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """CSV text of ``rows``, every cell through ``csv_cell``, lines ending in ``\\n``.

    A cell holding a CR or LF is quoted (the csv module quotes only the
    characters of its line terminator, and a bare CR would split the row).
    """
    lines = []
    for row in rows:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow([csv_cell(cell) for cell in row])
        lines.append(buf.getvalue()[:-2] + "\n")
    return "".join(lines)


def csv_value(cell: str) -> str:
    """The value ``csv_cell`` wrote (a cell without its neutralising ``'``)."""
    if cell.startswith("'") and cell[1:2] and cell[1:2] in _FORMULA_START:
        return cell[1:]
    return cell
