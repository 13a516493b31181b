"""Grades in the layout an LMS gradebook imports: Canvas or Moodle, matched to the LMS's own roster.

The roster is the LMS's gradebook export (Canvas: ``Student, ID, SIS User
ID, SIS Login ID, Section``, with its "Points Possible" row; Moodle: ``First
name, Last name, ID number, Email address``, ``Username`` when exported) or
any CSV with some of the columns ``name, login, sis_id, email``. A
submission id (its file or folder name) matches the roster row whose login,
SIS id or e-mail equals it, ASCII letters in any case (other characters
exactly: a look-alike such as KELVIN SIGN for ``K`` matches nobody). Nothing
is written when the roster names one person twice; a submission that matches
a row another submission also matches, or a row only as a look-alike, is
left out and listed, and everyone else is exported.

Canvas imports a CSV with the roster's identifying columns and one column per
assignment, named as in Canvas (``Name (id)`` updates that assignment, a new
name creates one). Moodle imports a CSV with an identifying column (mapped
to e-mail, ID number or username in its import form) and one per grade item.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from autograder.escape import clip, csv_text, csv_value
from autograder.out_files import LMS
from autograder.problems import InputProblems

_COLUMNS = {  # our field → the headers (lower case) LMS exports use for it
    "name": ("student", "name", "full name"),
    "first": ("first name",),
    "last": ("last name", "surname"),
    "lms_id": ("id",),
    "sis_id": ("sis user id", "id number", "sis_id", "student id"),
    "login": ("sis login id", "login", "login id", "username", "user name"),
    "email": ("email", "email address", "e-mail", "e-mail address"),
    "section": ("section", "group"),
}
MAX_ROSTER_BYTES = 16 * 2**20
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class ExportError(InputProblems):
    """The roster or the gradebook cannot be used; ``problems`` lists every reason (nothing was written)."""


@dataclass(frozen=True)
class Person:
    """One roster row, as the LMS exported it."""

    row: int
    name: str
    first: str
    last: str
    lms_id: str
    sis_id: str
    login: str
    email: str
    section: str

    def keys(self) -> set[str]:
        """What a submission id may equal to be this person's (``folded``)."""
        return {folded(k) for k in (self.login, self.sis_id, self.email) if k.strip()}

    def named(self) -> str:
        return clip(self.name or self.login or self.email or self.sis_id, 80)


@dataclass(frozen=True)
class Matched:
    """The export: each roster person with a score, who could not be matched either way, and each
    submission left out for a reason of its own (``(submission id, why)``)."""

    scores: tuple[tuple[Person, str], ...]
    no_submission: tuple[Person, ...]
    no_roster_entry: tuple[str, ...]
    not_exported: tuple[tuple[str, str], ...] = ()


def folded(key: str) -> str:
    """``key`` stripped, with ASCII letters in lower case and every other character as it is.

    ``str.lower`` would map KELVIN SIGN ``\\u212aim`` to ``kim`` (and ``casefold``/NFKC many more
    look-alikes: ``ſ``, fullwidth letters) and so give a classmate's row to a look-alike id.
    """
    return key.strip().translate(_ASCII_LOWER)


def _look_alike(student: str, owner: dict[str, Person]) -> Person | None:
    """The person whose key ``student`` equals only through Unicode case mapping or compatibility forms."""
    return owner.get(unicodedata.normalize("NFKC", student.strip()).casefold())


def read_roster(text: str) -> list[Person]:
    """The people of a roster CSV (a byte-order mark, blank lines and a "Points Possible" row are skipped)."""
    if len(text) > MAX_ROSTER_BYTES:
        raise ExportError([f"the roster is larger than {MAX_ROSTER_BYTES // 2**20} MB"])
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    except csv.Error as exc:
        raise ExportError([f"the roster is not valid CSV: {exc}"]) from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ExportError(["the roster is empty"])
    header = [csv_value(h).strip().lower() for h in rows[0]]
    where = {field: next((header.index(h) for h in names if h in header), None) for field, names in _COLUMNS.items()}
    if all(where[f] is None for f in ("login", "sis_id", "email")):
        raise ExportError(["the roster has no column of logins, SIS ids or e-mails "
                           f"(its header: {', '.join(rows[0])[:200]})"])
    people = []
    for number, row in enumerate(rows[1:], start=2):
        cell = {f: (csv_value(row[i]).strip() if i is not None and i < len(row) else "") for f, i in where.items()}
        if cell["name"].lower().startswith("points possible") or cell["name"].lower() == "test student":
            continue
        people.append(Person(number, cell["name"] or f"{cell['first']} {cell['last']}".strip(), cell["first"],
                             cell["last"], cell["lms_id"], cell["sis_id"], cell["login"], cell["email"],
                             cell["section"]))
    return people


def _owners(people: list[Person]) -> dict[str, Person]:
    """Each key to its roster person; raises ``ExportError`` when the roster (TA data) names one key twice."""
    problems, owner = [], {}
    for person in people:
        for key in person.keys():
            if key in owner and owner[key] is not person:
                problems.append(f"roster rows {owner[key].row} and {person.row} both name {clip(key, 80)!r}")
            owner[key] = person
    if problems:
        raise ExportError(sorted(set(problems)))
    return owner


def match(people: list[Person], scores: dict[str, str]) -> Matched:
    """Each submission's score to its roster person; raises ``ExportError`` when the roster is ambiguous.

    A submission id costs only itself: ids that match the same row are all left out (``not_exported``),
    and so is an id that matches a row only as a look-alike (``\\u212aim`` for ``kim``)."""
    owner = _owners(people)
    claims: dict[int, list[str]] = {}
    missing, left_out = [], []
    for student in sorted(scores):
        person = owner.get(folded(student))
        if person is not None:
            claims.setdefault(person.row, []).append(student)
        elif (twin := _look_alike(student, owner)) is not None:
            left_out.append((student, f"looks like an id of roster row {twin.row} ({twin.named()}) "
                                      "but is spelled with other characters"))
        else:
            missing.append(student)
    by_row = {p.row: p for p in people}
    for row, students in claims.items():
        if len(students) > 1:
            names = " and ".join(repr(clip(s, 80)) for s in students)
            clash = f"{names} {'both' if len(students) == 2 else 'all'} match roster row {row} ({by_row[row].named()})"
            left_out += [(s, clash) for s in students]
    ordered = tuple((p, scores[claims[p.row][0]]) for p in people if len(claims.get(p.row, ())) == 1)
    return Matched(ordered, tuple(p for p in people if p.row not in claims), tuple(missing), tuple(sorted(left_out)))


def render(lms: str, matched: Matched, assignment: str) -> str:
    """The CSV the LMS imports: one row per matched person."""
    if lms == "canvas":
        rows = [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", assignment]]
        rows += [[p.name, p.lms_id, p.sis_id, p.login, p.section, score] for p, score in matched.scores]
    elif lms == "moodle":
        rows = [["First name", "Last name", "ID number", "Username", "Email address", assignment]]
        rows += [[p.first or p.name, p.last, p.sis_id, p.login, p.email, score] for p, score in matched.scores]
    else:
        raise ExportError([f"unknown LMS {lms!r}: choose one of {', '.join(LMS)}"])
    return csv_text(rows)


def gradebook_scores(gradebook: str) -> dict[str, str]:
    """Each student's score to export from ``gradebook.csv``: ``final`` (lateness), else ``grand_total``, else ``total``."""
    rows = list(csv.DictReader(io.StringIO(gradebook.lstrip("\ufeff"), newline="")))
    if not rows:
        raise ExportError(["the gradebook has no students"])
    column = next((c for c in ("final", "grand_total", "total") if c in rows[0]), None)
    if column is None:
        raise ExportError(["the gradebook has no total column"])
    return {csv_value(r["student"]): r[column] for r in rows}


def export(out: Path, lms: str, roster: Path, assignment: str) -> tuple[Path, Matched]:
    """Write ``OUT/<lms>.csv`` from ``OUT/gradebook.csv`` and ``roster``; nothing is written on any problem."""
    from autograder.reports import write_atomic

    if lms not in LMS:
        raise ExportError([f"unknown LMS {lms!r}: choose one of {', '.join(LMS)}"])
    try:
        gradebook = (out / "gradebook.csv").read_text(encoding="utf-8")
        roster_text = roster.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError([f"cannot read {exc.filename or 'a file'}: {exc}"]) from None
    matched = match(read_roster(roster_text), gradebook_scores(gradebook))
    target = out / f"{lms}.csv"
    write_atomic(target, render(lms, matched, assignment))
    return target, matched
