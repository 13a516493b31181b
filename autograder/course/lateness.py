"""Late submissions: an optional ``policy.toml`` and when each student submitted → late days, penalty, final.

    deadline = 2026-12-01T23:59:00+01:00     # an offset-aware TOML datetime
    grace_minutes = 15                        # submissions within the grace period are on time
    per_day = 10                              # percent of the score per started day late …
    # table = [10, 25, 50]                    # … or a percent for day 1, 2, 3 (the last one after that)
    cap = 100                                 # at most this percent
    [extensions]                              # per-student deadlines (student id = "datetime")
    ada = 2026-12-03T23:59:00+01:00

When each student submitted comes from a CSV (``student,submitted_at`` with
ISO-8601 timestamps that carry an offset) or from Gradescope's
``submission_metadata.json`` (``created_at``). No policy: no penalty, and the
gradebook has no lateness columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from autograder.escape import csv_value

DAY = dt.timedelta(days=1)


class PolicyError(Exception):
    """A policy or submission-time file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Policy:
    """The rule: ``deadline`` (+ ``grace``), then ``per_day`` percent or ``table[day - 1]``, at most ``cap``."""

    deadline: dt.datetime
    grace: dt.timedelta = dt.timedelta(0)
    per_day: float = 0.0
    table: tuple[float, ...] = ()
    cap: float = 100.0
    extensions: dict[str, dt.datetime] = field(default_factory=dict)

    def describe(self, student: str) -> str:
        """The rule applied to ``student``, in words (for feedback)."""
        due = self.extensions.get(student, self.deadline)
        steps = (f"{', '.join(f'{p:g}%' for p in self.table)} for day 1, 2, …" if self.table
                 else f"{self.per_day:g}% per started day")
        grace = f" (grace {self.grace.total_seconds() / 60:g} min)" if self.grace else ""
        extended = " (your extension)" if student in self.extensions else ""
        return f"due {due.isoformat()}{extended}{grace}; late penalty {steps}, at most {self.cap:g}% of the score"


@dataclass(frozen=True)
class Lateness:
    """One student's lateness: days late (0 on time), penalty in percent, and the final score."""

    late_days: int
    penalty_percent: float
    final: float


def _aware(value: object, what: str, problems: list[str]) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{what}: {value[:40]!r} is not an ISO-8601 date and time")
            return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        problems.append(f"{what} must be a date and time with a UTC offset (e.g. 2026-12-01T23:59:00+01:00)")
        return None
    return value


def _percent(value: object, what: str, problems: list[str]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        problems.append(f"{what} must be a number of percent between 0 and 100")
        return 0.0
    return float(value)


def read_policy(text: str) -> Policy:
    """A ``policy.toml``; raises ``PolicyError`` listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"policy.toml is not valid TOML: {exc}"]) from None
    problems: list[str] = []
    known = {"deadline", "grace_minutes", "per_day", "table", "cap", "extensions"}
    problems += [f"unknown setting {k!r} (known: {', '.join(sorted(known))})" for k in sorted(set(data) - known)]
    deadline = _aware(data.get("deadline"), "deadline", problems)
    grace = data.get("grace_minutes", 0)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        problems.append("grace_minutes must be a non-negative number")
        grace = 0
    per_day = _percent(data.get("per_day", 0), "per_day", problems)
    table = data.get("table", [])
    if not isinstance(table, list):
        problems.append("table must be a list of percents")
        table = []
    table = tuple(_percent(p, f"table[{i}]", problems) for i, p in enumerate(table))
    if per_day and table:
        problems.append("give per_day or table, not both")
    cap = _percent(data.get("cap", 100), "cap", problems)
    extensions_raw = data.get("extensions", {})
    if not isinstance(extensions_raw, dict):
        problems.append("[extensions] must be a table of student = datetime")
        extensions_raw = {}
    extensions = {str(k): _aware(v, f"extension of {k}", problems) for k, v in extensions_raw.items()}
    if problems or deadline is None:
        raise PolicyError(problems or ["no deadline"])
    return Policy(deadline, dt.timedelta(minutes=grace), per_day, table, cap, extensions)  # type: ignore[arg-type]


def read_submitted_at(text: str) -> dict[str, dt.datetime]:
    """``student,submitted_at`` rows (a header row, ISO-8601 with offsets); raises ``PolicyError``."""
    problems: list[str] = []
    found: dict[str, dt.datetime] = {}
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")) if any(c.strip() for c in r)]
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["student", "submitted_at"]:
        raise PolicyError(["the submission times file must start with the header student,submitted_at"])
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            problems.append(f"row {number}: needs a student and a time")
            continue
        student = csv_value(row[0].strip())
        when = _aware(row[1], f"row {number}", problems)
        if student in found:
            problems.append(f"row {number}: {student!r} appears twice")
        elif when is not None:
            found[student] = when
    if problems:
        raise PolicyError(problems)
    return found


def gradescope_submitted_at(metadata: Path) -> dt.datetime | None:
    """``created_at`` of Gradescope's ``submission_metadata.json``, or None when it is absent or unreadable."""
    try:
        value = json.loads(metadata.read_text(encoding="utf-8")).get("created_at")
        return _aware(value, "created_at", [])
    except (OSError, ValueError, AttributeError):
        return None


def lateness(policy: Policy, student: str, submitted: dt.datetime | None, score: float) -> Lateness:
    """``student``'s late days, penalty and final score; unknown submission time counts as on time."""
    due = policy.extensions.get(student, policy.deadline) + policy.grace
    if submitted is None or submitted <= due:
        return Lateness(0, 0.0, score)
    days = math.ceil((submitted - due) / DAY)
    if policy.table:
        percent = policy.table[min(days, len(policy.table)) - 1]
    else:
        percent = policy.per_day * days
    percent = min(percent, policy.cap)
    return Lateness(days, percent, round(score * (1 - percent / 100), 2))
