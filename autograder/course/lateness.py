"""Late submissions: an optional ``policy.toml`` and when each student submitted → late days and penalty.

    deadline = 2026-12-01T23:59:00+01:00   # a date and time with its UTC offset
    grace_minutes = 15                      # up to 15 minutes after the deadline is on time
    penalty = 0.1                           # a fraction of the score per started day late …
    # [penalty]                             # … or a table: days late → fraction (a day past the
    # 1 = 0.1                               #     table's end takes its last step)
    # 3 = 0.5
    cap = 0.5                               # the penalty never exceeds this (default 1)
    [extensions]                            # per student: a new deadline, or a number of days more
    ada = 2026-12-03T23:59:00+01:00
    bob = 2

Late days are started days after the (extended) deadline, counted from the
deadline once the grace period is over: 16 minutes late with 15 minutes'
grace is one day late. The submission times come from a CSV
(``student,timestamp``, ISO-8601 with an offset) or from the
``created_at`` of Gradescope's ``submission_metadata.json``. A policy that
cannot be used is a ``PolicyError`` (every problem listed); a time that
cannot be used costs only that student: "lateness unknown: …", no penalty.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from autograder.escape import clip, csv_value
from autograder.problems import InputProblems
from autograder.reports.amendments import LateNote

DAY = dt.timedelta(days=1)
SETTINGS = ("deadline", "grace_minutes", "penalty", "cap", "extensions")
TIME_COLUMNS = ("student", "timestamp")
MAX_FILE_BYTES = 4 * 2**20
MIN_YEAR, MAX_YEAR = 1970, 9000
#: A student's submission time, or why it is unknown.
When = dt.datetime | str


class PolicyError(InputProblems):
    """A policy or times file that cannot be used at all; ``problems`` lists every reason."""


@dataclass(frozen=True)
class Policy:
    """Due at ``deadline`` (or the student's extension) plus ``grace``; then ``per_day`` × days or ``table``."""

    deadline: dt.datetime
    grace: dt.timedelta
    per_day: Fraction | None  # None: the table
    table: tuple[tuple[int, Fraction], ...]  # (days, fraction), days increasing
    cap: Fraction
    extensions: tuple[tuple[str, dt.datetime], ...]

    def due(self, student: str) -> dt.datetime:
        return dict(self.extensions).get(student, self.deadline)

    def penalty(self, days: int) -> Fraction:
        """The fraction of the score taken for ``days`` started days late."""
        if days <= 0:
            return Fraction(0)
        if self.per_day is not None:
            raw = self.per_day * days
        else:
            raw = max((f for d, f in self.table if d <= days), default=Fraction(0))
        return min(raw, self.cap)

    def rule(self, student: str) -> str:
        """The rule applied to ``student``, in words."""
        extended = " (your extension)" if student in dict(self.extensions) else ""
        grace = f" with {_minutes(self.grace)} minutes' grace" if self.grace else ""
        if self.per_day is not None:
            steps = f"{_percent(self.per_day)} of the score per started day late"
        else:
            steps = ", ".join(f"{_percent(f)} from day {d}" for d, f in self.table) + " late"
        return f"due {self.due(student).isoformat()}{extended}{grace}; then {steps}, at most {_percent(self.cap)}"


def late_days(policy: Policy, student: str, submitted: dt.datetime) -> int:
    """Started days late: 0 up to the end of the grace period, then counted from the deadline."""
    due = policy.due(student)
    if submitted <= due + policy.grace:
        return 0
    return -((due - submitted) // DAY)  # a ceiling: 1 minute after the grace is day 1


def late_note(policy: Policy, student: str, submitted: When | None) -> LateNote:
    """What the policy does to ``student``'s submission (unknown time: no penalty, and a note saying why)."""
    rule = policy.rule(student)
    if not isinstance(submitted, dt.datetime):
        why = submitted or "no submission time for this student"
        return LateNote(None, 0.0, rule, f"lateness unknown: {why}")
    days = late_days(policy, student, submitted)
    penalty = policy.penalty(days)
    when = f"submitted {submitted.isoformat()}"
    if days == 0:
        text = f"{when}: on time" if submitted <= policy.due(student) else f"{when}: within the grace period"
    else:
        text = f"{when}: {days} day{'s' if days > 1 else ''} late, penalty {_percent(penalty)}"
    return LateNote(days, float(penalty), rule, text)


def read_policy(path: Path) -> Policy:
    """``policy.toml``; raises ``PolicyError`` listing every problem."""
    return parse_policy(_text(path), path.name)


def parse_policy(text: str, name: str = "policy.toml") -> Policy:
    """The policy of TOML ``text``; raises ``PolicyError`` listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"{name} is not valid TOML: {exc}"]) from None
    except RecursionError:
        raise PolicyError([f"{name} is not valid TOML: its arrays or tables are nested too deeply"]) from None
    except ValueError:  # tomllib lets int()'s digit limit through: ``cap = 1000…0`` with 5000 digits
        raise PolicyError([f"{name} is not valid TOML: it has a number with too many digits"]) from None
    problems = [f"unknown setting {k!r} (known: {', '.join(SETTINGS)})" for k in data if k not in SETTINGS]
    deadline = _aware(data.get("deadline"), "deadline", problems)
    grace = data.get("grace_minutes", 0)
    if not _is_int(grace) or not 0 <= grace <= 7 * 24 * 60:
        problems.append("grace_minutes must be a whole number of minutes, 0 to 10080")
        grace = 0
    per_day, table = _penalty(data.get("penalty"), problems)
    cap = _fraction(data.get("cap", 1), "cap", problems)
    extensions = _extensions(data.get("extensions", {}), deadline, problems)
    if problems or deadline is None:
        raise PolicyError(problems or ["deadline is missing"])
    return Policy(deadline, dt.timedelta(minutes=grace), per_day, table, cap, extensions)


def read_times(path: Path) -> dict[str, When]:
    """``student,timestamp`` rows → each student's submission time, or why it cannot be used.

    A file that cannot be read as such a CSV is a ``PolicyError``; a bad row costs its student only."""
    try:
        rows = list(csv.reader(io.StringIO(_text(path).lstrip("\ufeff"), newline=""), strict=True))
    except csv.Error as exc:
        raise PolicyError([f"{path.name}: cannot be read as CSV ({exc})"]) from None
    if not rows or tuple(c.strip().lower() for c in rows[0]) != TIME_COLUMNS:
        raise PolicyError([f"{path.name}: the first line must be {','.join(TIME_COLUMNS)}"])
    found: dict[str, When] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not csv_value(row[0].strip()):
            continue  # a blank line, or a row naming nobody
        student = csv_value(row[0].strip())
        when = _row_time(row, line)
        if student in found and found[student] != when:
            when = f"line {line}: a second, different time for this student"
        found[student] = when
    return found


def gradescope_time(metadata: Path) -> When:
    """``created_at`` of Gradescope's ``submission_metadata.json``, or why it cannot be used."""
    try:
        value = json.loads(_text(metadata)).get("created_at")
    except PolicyError as exc:
        return exc.problems[0]
    except (ValueError, RecursionError, AttributeError):
        return f"{metadata.name} is not the JSON Gradescope writes"
    problems: list[str] = []
    when = _aware(value, "created_at", problems)
    return when if when is not None else problems[0]


def _text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PolicyError([f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MiB"])
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"{path.name} cannot be read ({exc.__class__.__name__})"]) from None


def _row_time(row: list[str], line: int) -> When:
    if len(row) != len(TIME_COLUMNS):
        return f"line {line}: expected {len(TIME_COLUMNS)} fields, found {len(row)}"
    problems: list[str] = []
    when = _aware(csv_value(row[1].strip()), f"line {line}: timestamp", problems)
    return when if when is not None else problems[0]


def _aware(value: object, what: str, problems: list[str]) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            problems.append(f"{what} {clip(value, 40)!r} is not an ISO-8601 date and time")
            return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        problems.append(f"{what} must be a date and time with its UTC offset, e.g. 2026-12-01T23:59:00+01:00")
        return None
    if not MIN_YEAR <= value.year <= MAX_YEAR:  # a deadline plus grace or extension days must stay a date
        problems.append(f"{what} must be in the years {MIN_YEAR} to {MAX_YEAR}")
        return None
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fraction(value: object, what: str, problems: list[str]) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        problems.append(f"{what} must be a fraction of the score, 0 to 1 (0.1 is 10%)")
        return Fraction(0)
    return Fraction(repr(value))


def _penalty(value: object, problems: list[str]) -> tuple[Fraction | None, tuple[tuple[int, Fraction], ...]]:
    if value is None:
        problems.append("penalty is missing: a fraction per started day (0.1), or a table [penalty] of days = fraction")
        return Fraction(0), ()
    if not isinstance(value, dict):
        return _fraction(value, "penalty", problems), ()
    table: dict[int, Fraction] = {}
    for days, fraction in value.items():
        # "²".isdigit() but int("²") fails; a 5000-digit day would fail int() too
        if not (days.isascii() and days.isdigit() and len(days) <= 3) or not 1 <= int(days) <= 366:
            problems.append(f"penalty table: {clip(days, 20)!r} is not a number of days, 1 to 366")
            continue
        if int(days) in table:  # "1" and "01": which applied would depend on the order
            problems.append(f"penalty table: day {int(days)} is given twice")
            continue
        table[int(days)] = _fraction(fraction, f"penalty for day {days}", problems)
    if not table:
        problems.append("the penalty table is empty")
    return None, tuple(sorted(table.items()))


def _extensions(value: object, deadline: dt.datetime | None,
                problems: list[str]) -> tuple[tuple[str, dt.datetime], ...]:
    if not isinstance(value, dict):
        problems.append("[extensions] must be a table of student = new deadline, or = a number of days")
        return ()
    found = []
    for student, extension in value.items():
        if _is_int(extension) and 0 <= extension <= 366:
            if deadline is not None:
                found.append((student, deadline + extension * DAY))
            continue
        when = _aware(extension, f"the extension of {clip(student, 40)!r}", problems)
        if when is not None:
            found.append((student, when))
    return tuple(sorted(found))


def _percent(fraction: Fraction) -> str:
    return f"{float(fraction * 100):g}%"


def _minutes(delta: dt.timedelta) -> str:
    return f"{delta // dt.timedelta(minutes=1)}"
