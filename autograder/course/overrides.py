"""Overrides of autograded scores: a TA sets a question's or a check's score for one student, with a reason.

    python -m autograder override OUT --scores overrides.csv

``overrides.csv``: ``student, item, score, reason, by`` where ``item`` is a
question id (``C4``), or a check as numbered in ``results.json``
(``C4.3``). The accepted overrides are kept in ``OUT/overrides.csv``; every
later ``grade`` and ``merge`` applies them again, so a rerun never drops
one. A new row for the same student and item replaces the old one. Bad input
is refused as a whole, nothing written, every problem listed.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from autograder.contract import BY_ID, QUESTION_IDS
from autograder.escape import clip, csv_text, csv_value

HEADER = ["student", "item", "score", "reason", "by"]
STORE = "overrides.csv"
_ITEM = re.compile(r"^([A-Ea-e][1-6])(?:\.(\d{1,3}))?$")


class OverrideError(Exception):
    """Overrides that cannot be applied; ``problems`` lists every reason (nothing was written)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Override:
    """``score`` for ``qid`` (``check`` None) or for its ``check``-th check (1-based), with why and by whom."""

    student: str
    qid: str
    check: int | None
    score: float
    reason: str
    by: str

    @property
    def item(self) -> str:
        return self.qid if self.check is None else f"{self.qid}.{self.check}"


def parse(text: str, students: dict[str, dict[str, list[float]]]) -> list[Override]:
    """Overrides from CSV ``text``; ``students`` maps each known student to the maximum points of each check
    of each question (in ``results.json`` order)."""
    problems: list[str] = []
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) if any(c.strip() for c in r)]
    if not rows or [csv_value(c).strip().lower() for c in rows[0][:5]] != HEADER:
        raise OverrideError([f"the first row must be the header {','.join(HEADER)}"])
    found: dict[tuple[str, str], Override] = {}
    for number, row in enumerate(rows[1:], start=2):
        cells = [csv_value(c).strip() for c in row] + [""] * (5 - len(row))
        student, item, score_text, reason, by = cells[:5]
        where = f"row {number}"
        match = _ITEM.match(item)
        if student not in students:
            problems.append(f"{where}: unknown student {clip(student, 80)!r}")
            continue
        if match is None or match.group(1).upper() not in BY_ID:
            problems.append(f"{where}: {clip(item, 40)!r} is neither a question id ({QUESTION_IDS[0]}…) "
                            "nor a check number (C4.3)")
            continue
        qid, check = match.group(1).upper(), int(match.group(2)) if match.group(2) else None
        maxima = students[student].get(qid, [])
        if check is not None and not 1 <= check <= len(maxima):
            problems.append(f"{where}: {qid} has no check {check} for {clip(student, 80)!r}")
            continue
        try:
            score = float(score_text)
        except ValueError:
            problems.append(f"{where}: score {clip(score_text, 20)!r} is not a number")
            continue
        top = BY_ID[qid].points if check is None else maxima[check - 1]
        if not 0 <= score <= top:
            problems.append(f"{where}: score {score:g} is outside 0…{top:g} of {qid if check is None else item}")
            continue
        if not reason:
            problems.append(f"{where}: an override needs a reason")
            continue
        key = (student, f"{qid}.{check}" if check else qid)
        if key in found:
            problems.append(f"{where}: a second override of {key[1]} for {clip(student, 80)!r}")
            continue
        found[key] = Override(student, qid, check, score, clip(reason, 500), clip(by, 80))
    if problems:
        raise OverrideError(problems)
    return list(found.values())


def render(overrides: list[Override]) -> str:
    """The store's CSV text, sorted by student and item."""
    rows = sorted(overrides, key=lambda o: (o.student, o.qid, o.check or 0))
    return csv_text([HEADER, *([o.student, o.item, f"{o.score:g}", o.reason, o.by] for o in rows)])


def load(out: Path, students: dict[str, dict[str, list[float]]]) -> list[Override]:
    """The overrides kept in ``OUT/overrides.csv`` (none if there is no such file)."""
    try:
        text = (out / STORE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return parse(text, students)


def combine(kept: list[Override], new: list[Override]) -> list[Override]:
    """``kept`` with each new override replacing an old one of the same student and item."""
    merged = {(o.student, o.item): o for o in kept}
    merged.update({(o.student, o.item): o for o in new})
    return list(merged.values())


def apply(scores: dict[str, float], check_points: dict[str, list[float]], mine: list[Override]) -> dict[str, float]:
    """Question scores after ``mine`` (one student's overrides): a check's points replaced, or a question's score set.

    ``check_points[qid]`` lists the points each check of ``qid`` earned, in ``results.json`` order.
    """
    points = {q: list(v) for q, v in check_points.items()}
    for o in mine:
        if o.check is not None:
            points[o.qid][o.check - 1] = o.score
    result = dict(scores)
    for qid in {o.qid for o in mine if o.check is not None}:
        result[qid] = round(sum(points[qid]), 2)
    for o in mine:
        if o.check is None:
            result[o.qid] = o.score
    return result
