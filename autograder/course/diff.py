"""What changed between two grading runs of a class: every moved score, by question and check, and why.

    python -m autograder diff OLD_OUT NEW_OUT      → prints a table, writes NEW_OUT/changes.csv

Reads only what the runs wrote (``gradebook.csv`` and each student's
``results.json``), so it compares any two runs, e.g. before and after a
check was fixed, before releasing the new grades.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from autograder.contract import QUESTION_IDS
from autograder.escape import csv_text, csv_value
from autograder.reports import reread


class DiffError(Exception):
    """A run folder that cannot be read (the message says which file)."""


@dataclass(frozen=True)
class Change:
    """One moved score: ``item`` is a question id, a check (``C4: <check name>``) or ``total``."""

    student: str
    item: str
    old: str
    new: str
    why: str


@dataclass(frozen=True)
class _Run:
    rows: dict[str, dict[str, str]]
    results: dict[str, dict]


def _read_run(out: Path) -> _Run:
    from autograder.discovery import student_dir

    try:
        text = (out / "gradebook.csv").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiffError(f"cannot read {out / 'gradebook.csv'}: {exc}") from None
    try:
        rows = {csv_value(r["student"]): r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))}
    except (csv.Error, KeyError, AttributeError) as exc:
        raise DiffError(f"{out / 'gradebook.csv'} is not a gradebook written by `grade` ({exc!r})") from None
    results = {}
    for student in rows:
        doc = reread.read_json(student_dir(out, student) / "results.json")
        results[student] = doc if isinstance(doc, dict) else {}
    return _Run(rows, results)


def _checks(doc: dict) -> dict[str, float]:
    found = {}
    for test in doc.get("tests", []) if isinstance(doc.get("tests"), list) else []:
        if isinstance(test, dict) and isinstance(test.get("name"), str):
            found[test["name"]] = test.get("score")
    return found


def _score(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300:
        return f"{value:g}"
    return "" if value is None else str(value)[:20]


def _why(old: dict, new: dict) -> str:
    o, n = (doc.get("extra_data") if isinstance(doc.get("extra_data"), dict) else {} for doc in (old, new))
    reasons = []
    if o.get("notebook") != n.get("notebook"):
        reasons.append("notebook changed")
    if o.get("grader_version") != n.get("grader_version"):
        reasons.append(f"grader version changed ({o.get('grader_version')} → {n.get('grader_version')})")
    if o.get("seed") != n.get("seed"):
        reasons.append("grading seed changed")
    if o.get("overrides") != n.get("overrides"):
        reasons.append(_overrides_changed(o.get("overrides"), n.get("overrides")))
    if _penalty(o) != _penalty(n):
        reasons.append("late penalty changed")
    return "; ".join(reasons) or "written scores or merge"


def _penalty(extra: dict) -> object:
    late = extra.get("lateness")
    return late.get("penalty") if isinstance(late, dict) else None


def _overrides_changed(old: object, new: object) -> str:
    """Which items' overrides a TA set, changed or removed between two runs (``extra_data.overrides``)."""
    def items(value: object) -> dict[str, object]:
        rows = value if isinstance(value, list) else []
        return {str(r.get("item"))[:20]: r for r in rows if isinstance(r, dict)}
    a, b = items(old), items(new)
    moved = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return "override " + ", ".join(moved[:10]) if moved else "overrides changed"


def diff(old_out: Path, new_out: Path) -> list[Change]:
    """Every score that differs between the runs in ``old_out`` and ``new_out``."""
    old, new = _read_run(old_out), _read_run(new_out)
    changes = []
    for student in sorted(set(old.rows) | set(new.rows)):
        if student not in new.rows:
            changes.append(Change(student, "total", old.rows[student].get("total", ""), "", "no longer submitted"))
            continue
        if student not in old.rows:
            changes.append(Change(student, "total", "", new.rows[student].get("total", ""), "new submission"))
            continue
        a, b = old.rows[student], new.rows[student]
        why = _why(old.results[student], new.results[student])
        for item in (*QUESTION_IDS, "total", "grand_total", "final"):
            if a.get(item, "") != b.get(item, ""):
                changes.append(Change(student, item, a.get(item, ""), b.get(item, ""), why))
        ca, cb = _checks(old.results[student]), _checks(new.results[student])
        for name in sorted(set(ca) | set(cb)):
            if ca.get(name) != cb.get(name):
                changes.append(Change(student, name, _score(ca.get(name)), _score(cb.get(name)), why))
    return changes


def render_changes(changes: list[Change]) -> str:
    """``changes.csv``: student, item, old, new, why."""
    return csv_text([["student", "item", "old", "new", "why"],
                     *([c.student, c.item, c.old, c.new, c.why] for c in changes)])


def write_changes(old_out: Path, new_out: Path) -> tuple[Path, list[Change]]:
    """``NEW_OUT/changes.csv`` of ``diff(old_out, new_out)``, written atomically."""
    from autograder.reports import write_atomic

    changes = diff(old_out, new_out)
    target = new_out / "changes.csv"
    write_atomic(target, render_changes(changes))
    return target, changes
