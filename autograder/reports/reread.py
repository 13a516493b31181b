"""Reading back what the grader wrote into OUT (``results.json``, ``graded.json``, ``run.json``): total.

OUT is the grader's, but a TA may edit it, a disk may fill, a student's text
inside may be anything, and a file may be swapped for a link. Every reader of
OUT goes through here, so each one handles one answer for all of that: None,
"cannot read" — never an exception. The structure of what was read is each
caller's to check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: No file the grader writes into OUT is larger (reports are bounded well below it).
MAX_BYTES = 32 * 2**20


class _NotOurs(ValueError):
    """A constant (``NaN``, ``Infinity``) the grader never writes."""


def read_text(path: Path, max_bytes: int = MAX_BYTES) -> str | None:
    """``path``'s UTF-8 text, or None: missing, a link, not a regular file, larger than ``max_bytes``,
    unreadable or not UTF-8."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > max_bytes:
            return None
        return path.read_bytes()[: max_bytes + 1].decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def parse_json(text: str) -> Any | None:
    """The JSON value of ``text``, or None: not JSON, nested too deep, an integer of thousands of digits,
    or ``NaN``/``Infinity``."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # _NotOurs is a ValueError
        return None


def read_json(path: Path, max_bytes: int = MAX_BYTES) -> Any | None:
    """``parse_json`` of ``read_text(path)``; None when either is."""
    text = read_text(path, max_bytes)
    return None if text is None else parse_json(text)


def _no_constant(name: str) -> None:
    raise _NotOurs(f"{name} is not a number the grader writes")
