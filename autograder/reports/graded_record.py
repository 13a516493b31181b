"""``graded.json``: the typed ``Graded`` record of one student, kept so reports re-render without regrading.

``override``, ``merge`` and the lateness policy re-render ``feedback.md``,
``results.json`` and ``gradebook.csv`` from it. The file is plain JSON of the
frozen dataclasses (``dataclasses.asdict``), read back field by field as the
dataclasses' type hints say (so a field added to ``Graded``, ``CheckResult``
or ``CellRun`` is kept with no change here). Reading it back is total: a
file that is missing, corrupt, too large or holds anything but what this
module writes reads as None — "cannot read: regrade" — never an exception.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from autograder.contract import BY_ID
from autograder.reports import reread
from autograder.grading import Graded

RECORD = "graded.json"
VISIBILITIES = ("public", "hidden")


class _Bad(Exception):
    """The record is not one this module wrote."""


def render_graded(graded: Graded) -> str:
    """The record's JSON text (deterministic: the same ``Graded`` gives the same bytes).

    ASCII with escapes: a lone surrogate in student text (``\\ud800``) is written and read back as it was."""
    return json.dumps(dataclasses.asdict(graded), allow_nan=False, sort_keys=True) + "\n"


def read_graded(text: str) -> Graded | None:
    """The ``Graded`` record of ``text``, or None if it is not a record this module wrote."""
    value = reread.parse_json(text)
    try:
        return None if value is None else _graded(value)
    except (_Bad, ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None  # OverflowError: an integer too large for a float field


def load_graded(folder: Path) -> Graded | None:
    """``folder/graded.json`` read back, or None (missing, unreadable, too large or not a record)."""
    text = reread.read_text(folder / RECORD)
    return None if text is None else read_graded(text)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(tp: Any, value: Any) -> Any:
    """``value`` (parsed JSON) as the type ``tp`` of a field of the record, or ``_Bad``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        if not isinstance(value, dict) or set(value) != set(hints):
            raise _Bad(f"not a {tp.__name__}")
        return tp(**{name: _decode(hints[name], value[name]) for name in hints})
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise _Bad(f"no decoding of {tp}")
        return _decode(rest[0], value)
    if origin is tuple:
        kinds = [args[0]] * len(value) if args[1:] == (...,) and isinstance(value, list) else list(args)
        if not isinstance(value, list) or len(kinds) != len(value):
            raise _Bad("not a tuple of the record")
        return tuple(_decode(kind, v) for kind, v in zip(kinds, value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Bad("not a table")
        return {_decode(args[0], k): _decode(args[1], v) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if tp is float and not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if tp in (str, int, bool) and type(value) is tp:
        return value
    raise _Bad(f"not a {tp}")


def _graded(value: Any) -> Graded:
    graded = _decode(Graded, value)
    if any(q not in BY_ID for q in graded.scores):
        raise _Bad("a score of no question")
    for c in graded.checks:
        if c.qid not in graded.scores or c.visibility not in VISIBILITIES or not 0 <= c.points <= c.max_points:
            raise _Bad("not a check result of this record")
    if any(q not in graded.scores or d not in graded.scores for q, d in graded.carried):
        raise _Bad("an error carried forward of no question")
    return graded
