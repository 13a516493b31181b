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
* ``csv_text`` / ``csv_cell`` / ``csv_value``: the one way a CSV file is written and read back.
  A cell shows control characters, bidi overrides and the like escaped (as
  ``printable``; a backslash that would read as an escape is doubled), and a
  spreadsheet formula is neutralised as OWASP describes (a leading ``'``
  before ``= + - @``, tab or CR, and before a leading ``'``); numbers stay
  numbers, and ``csv_value(csv_cell(text)) == text`` for every text;
* ``parse_score``: a TA's score cell read strictly (ASCII digits, at most
  two decimals), never a different number than the one typed.

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


def printable(text: str, keep_newlines: bool = False, keep: str = "") -> str:
    """``text`` with every control character, escape sequence start and bidi override shown escaped
    (but newlines with ``keep_newlines``, and the characters of ``keep``)."""
    text = clip(text, len(text)) if isinstance(text, str) else clip(str(text))
    keep += "\n" if keep_newlines else ""
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


#: A score as a TA types it: ASCII digits (``re``'s ``[0-9]``, not ``\d``), four before the point and at
#: most two decimals (then only zeros, as a spreadsheet may pad: ``5.000``), so ``reports.totals.number``
#: (six significant digits) shows it exactly.
_SCORE = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,2}0*)?")


def parse_score(raw: str) -> float | str:
    """The points of a TA's score cell (``2``, `` 2.5 ``, ``0.25``), or the problem with it.

    Stricter than ``float``, which also reads ``-0`` (shown as "-0"), ``1_0`` (10), ``1e0``,
    ``inf`` and any script's digits (fullwidth ``１``, Arabic-Indic ``٣``): a mistyped cell is
    refused, never read as another score.
    """
    text = raw.strip()
    if _SCORE.fullmatch(text):
        return float(text)
    if text.startswith("-") and _SCORE.fullmatch(text[1:]):
        return f"score {clip(text, 20)!r} has a minus sign: a score is 0 or more"
    return f"score {clip(text, 20)!r} is not a number (digits 0-9, at most two decimals: 2.5)"


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell)) and cell.strip() == cell and not cell.startswith("'")
    except ValueError:
        return False


def _canonical(ch: str) -> str:
    """The escape ``csv_cell`` writes for an unsafe character (``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``)."""
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


_CSV_ESCAPE = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def _escape_at(text: str, i: int) -> str | None:
    """The unsafe character a canonical escape at ``text[i]`` stands for, or ``None``."""
    found = _CSV_ESCAPE.match(text, i)
    if found is None:
        return None
    ch = chr(int(found.group(0)[2:], 16)) if int(found.group(0)[2:], 16) <= 0x10FFFF else ""
    return ch if ch and _unsafe(ch) and _canonical(ch) == found.group(0) else None


def _csv_escaped(text: str) -> str:
    """``text`` with unsafe characters escaped, reversibly: a backslash is doubled where it would read as one."""
    out = []
    for i, ch in enumerate(text):
        if _unsafe(ch):
            out.append(_canonical(ch))
        elif ch == "\\" and (text[i + 1:i + 2] == "\\" or (text[i + 1:i + 2] and _unsafe(text[i + 1]))
                               or _escape_at("\\" + text[i + 1:i + 10], 0) is not None):
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)


def _csv_unescaped(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            if text[i + 1:i + 2] == "\\":
                out.append("\\")
                i += 2
                continue
            ch = _escape_at(text, i)
            if ch is not None:
                out.append(ch)
                i += len(_canonical(ch))
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as printable text, never evaluates; numbers stay numbers. Total."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a value that cannot be printed still gets a cell
        text = "<a value that could not be printed>"
    limit = 10 * FIELD_CHARS
    cut = f"… ({len(text) - limit} more characters)" if len(text) > limit else ""
    formula = text[:1] in _FORMULA_START and not _is_number(text)  # judged on the text, before escaping
    text = _csv_escaped(text[:limit]) + cut
    return "'" + text if formula else text


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """CSV text of ``rows``, every cell through ``csv_cell``, lines ending in ``\\n``.

    No cell holds a raw CR or LF (``csv_cell`` escapes them), so one row is one line.
    """
    lines = []
    for row in rows:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([csv_cell(cell) for cell in row])
        lines.append(buf.getvalue())
    return "".join(lines)


def csv_value(cell: str) -> str:
    """The text ``csv_cell`` was given, from the cell it wrote (a cell of another writer mostly as it is)."""
    text = _csv_unescaped(cell) if "\\" in cell else cell
    if text.startswith("'") and text[1:2] and text[1:2] in _FORMULA_START:
        return text[1:]
    return text
