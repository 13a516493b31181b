"""Overrides and regrade requests: a TA sets one student's score of a question or a check, with a reason.

    python -m autograder override OUT --scores overrides.csv

``overrides.csv`` has the columns ``student,question,score,reason,by``;
``question`` is a question id (``C4``) or a check id as ``results.json``
numbers its tests (``C4.3``, the third check of C4), in any case; ``score``
is digits with at most two decimals (``escape.parse_score``). As with
``merge``, every problem — an unknown student, question or check, a score
that is no such number or outside 0…max, a second row for the same item, a
missing reason, a malformed file — is reported at once and nothing is written.

Accepted overrides are kept in ``OUT/overrides.csv``, merged with the ones
kept before (a new row for the same student and item replaces the kept
one), and every later ``grade`` applies them again. A check's override sets
that check's points (its question's score follows); a question's override
sets the question's score, after any override of its checks.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

from autograder.contract import BY_ID
from autograder.escape import clip, csv_text, csv_value, parse_score
from autograder.grading import Graded
from autograder.out_files import OVERRIDES as STORE
from autograder.problems import InputProblems
from autograder.reports.amendments import OverrideNote

COLUMNS = ("student", "question", "score", "reason", "by")
REASON_CHARS = 500
BY_CHARS = 80
MAX_FILE_BYTES = 4 * 2**20


class OverrideError(InputProblems):
    """The overrides cannot be applied; ``problems`` lists every reason. Nothing was written."""


@dataclass(frozen=True)
class Override:
    """``student``'s score of ``item`` (``C4``, or check ``C4.3``) set to ``score`` by ``by``, because ``reason``."""

    student: str
    item: str
    score: float
    reason: str
    by: str

    @property
    def qid(self) -> str:
        return self.item.split(".")[0]

    @property
    def key(self) -> tuple[str, str]:
        return (self.student, self.item)


def check_ids(graded: Graded) -> dict[str, int]:
    """Each check's id as ``results.json`` numbers its tests (``C4.3``) → its index in ``graded.checks``."""
    ids: dict[str, int] = {}
    counters: dict[str, int] = {}
    for index, r in enumerate(graded.checks):
        counters[r.qid] = counters.get(r.qid, 0) + 1
        ids[f"{r.qid}.{counters[r.qid]}"] = index
    return ids


def _canonical(item: str) -> str:
    return item.strip().upper()


def problem(override: Override, records: dict[str, Graded | None]) -> str | None:
    """Why ``override`` cannot apply to the graded ``records`` (None: a student whose record cannot be read)."""
    if override.student not in records:
        return f"unknown student {clip(override.student, 80)!r}"
    graded = records[override.student]
    if graded is None:
        return f"the graded record of {clip(override.student, 80)!r} cannot be read: grade that submission again"
    item = override.item
    if "." in item:
        index = check_ids(graded).get(item)
        if index is None:
            return f"unknown check {clip(item, 20)!r} (check ids are numbered as in results.json: C4.1, C4.2, …)"
        top = graded.checks[index].max_points
    elif item in graded.scores:
        top = BY_ID[item].points
    else:
        return f"unknown question {clip(item, 20)!r}"
    if not 0 <= override.score <= top:
        return f"score {override.score:g} is outside 0…{top:g} for {item}"
    return None


def _rows(text: str, name: str) -> list[tuple[int, list[str]]]:
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True))
    except csv.Error as exc:
        raise OverrideError([f"{name}: cannot be read as CSV ({exc})"]) from None
    if not rows or tuple(c.strip().lower() for c in rows[0]) != COLUMNS:
        raise OverrideError([f"{name}: the first line must be {','.join(COLUMNS)}"])
    return [(line, row) for line, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]


def _override(row: list[str]) -> Override | str:
    """The override of one row, or the problem with it."""
    if len(row) != len(COLUMNS):
        return f"expected {len(COLUMNS)} fields, found {len(row)}"
    student, item, raw, reason, by = (csv_value(c.strip()) for c in row)
    score = parse_score(raw)
    if isinstance(score, str):
        return score
    if not reason.strip():
        return "an override needs a reason"
    return Override(student, _canonical(item), score, clip(reason, REASON_CHARS), clip(by, BY_CHARS))


def parse(text: str, records: dict[str, Graded | None], name: str = "overrides.csv") -> list[Override]:
    """The validated overrides of CSV ``text`` against the graded ``records``; raises ``OverrideError``."""
    problems: list[str] = []
    found: dict[tuple[str, str], Override] = {}
    for line, row in _rows(text, name):
        override = _override(row)
        why = override if isinstance(override, str) else problem(override, records)
        if why is None and override.key in found:
            why = f"a second row for {clip(override.student, 80)} {override.item}"
        if why is not None:
            problems.append(f"line {line}: {why}")
        else:
            found[override.key] = override
    if problems:
        raise OverrideError(problems)
    return list(found.values())


def read_file(path: Path, records: dict[str, Graded | None]) -> list[Override]:
    """``parse`` of the file at ``path``."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise OverrideError([f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MiB"])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OverrideError([f"{path.name} cannot be read ({exc.__class__.__name__})"]) from None
    return parse(text, records, path.name)


def read_overrides(out: Path) -> list[Override]:
    """The overrides kept in ``OUT/overrides.csv`` (total: a missing or unreadable file has none, a bad row
    is left out). For the class report, and for ``grade`` to apply them again."""
    path = out / STORE
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return []
        rows = _rows(path.read_text(encoding="utf-8"), STORE)
    except (OSError, UnicodeDecodeError, OverrideError):
        return []
    kept = {}
    for _, row in rows:
        override = _override(row)
        if isinstance(override, Override):
            kept[override.key] = override
    return sorted(kept.values(), key=lambda o: o.key)


def combine(kept: list[Override], new: list[Override]) -> tuple[list[Override], list[tuple[Override, Override]]]:
    """``kept`` updated by ``new``, sorted; and each (kept, new) pair where the new override replaced one."""
    merged = {o.key: o for o in kept}
    replaced = [(merged[o.key], o) for o in new if o.key in merged and merged[o.key] != o]
    merged.update({o.key: o for o in new})
    return sorted(merged.values(), key=lambda o: o.key), replaced


def render_store(overrides: list[Override]) -> str:
    """``OUT/overrides.csv``: the columns of the input, cells a spreadsheet shows and never evaluates."""
    return csv_text([COLUMNS, *([o.student, o.item, f"{o.score:g}", o.reason, o.by] for o in overrides)])


def apply(graded: Graded, mine: list[Override]) -> tuple[Graded, tuple[OverrideNote, ...]]:
    """``graded`` with one student's valid overrides applied (checks first, then questions), and their notes.

    An override that does not fit ``graded`` (see ``problem``) is left out by the caller."""
    checks = list(graded.checks)
    scores = dict(graded.scores)
    notes = []
    ids = check_ids(graded)
    for o in sorted((o for o in mine if "." in o.item), key=lambda o: ids[o.item]):
        r = checks[ids[o.item]]
        notes.append(OverrideNote(o.item, f"{o.item} {r.check}", o.score, r.max_points, r.points, o.by, o.reason))
        checks[ids[o.item]] = dataclasses.replace(r, points=o.score)
        scores[r.qid] = round(sum(c.points for c in checks if c.qid == r.qid), 2)
    for o in sorted((o for o in mine if "." not in o.item), key=lambda o: list(scores).index(o.item)):
        notes.append(OverrideNote(o.item, o.item, o.score, BY_ID[o.item].points, graded.scores[o.item], o.by, o.reason))
        scores[o.item] = o.score
    return dataclasses.replace(graded, checks=tuple(checks), scores=scores), tuple(notes)
