"""Re-render a run's reports from the stored records, with the kept overrides and the late policy applied.

``grade`` (after its jobs wrote their reports) and ``override`` (``course.regrade``) call
``refresh``: each student's ``feedback.md`` and ``results.json`` are
rendered again from ``graded.json`` (no regrading) and ``gradebook.csv`` is
written with the amended scores; then they merge the written scores merged
earlier again, and, with a late policy, ``add_late_columns`` gives the
gradebook ``late_days``, ``penalty`` and ``final``. The policy's outcome for each student is kept in
``OUT/lateness.json`` so that a later ``override`` keeps it; a ``grade``
without a policy removes it. Without overrides or a policy every file is
what grading alone writes, byte for byte.

Total for each student: a record that cannot be read, an override that no
longer fits it, a report that cannot be rendered leave that student's
files as they are and come back as one warning each.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from autograder.contract import QUESTION_IDS
from autograder.course.overrides import Override, OverrideError, apply, problem, read_overrides
from autograder.discovery import student_dir
from autograder.escape import clip, csv_text, csv_value
from autograder.out_files import LATENESS
from autograder.reports import GradebookRow, render_feedback, render_gradebook, render_results, write_atomic
from autograder.reports.amendments import Amendments, LateNote
from autograder.reports.graded_record import load_graded

LATE_COLUMNS = ("late_days", "penalty", "final")


def refresh(out: Path, rows: list[GradebookRow],
            lateness: dict[str, LateNote] | None) -> tuple[list[GradebookRow], list[str]]:
    """Re-render every student of ``rows`` with the overrides kept in ``out`` and ``lateness``; rewrite the gradebook.

    ``lateness`` (None: no late policy) is kept in ``OUT/lateness.json`` (``read_lateness``) for later
    commands. Returns the amended rows and one warning per thing that could not be amended."""
    if lateness is None:
        (out / LATENESS).unlink(missing_ok=True)
    else:
        write_atomic(out / LATENESS, render_lateness(lateness))
    overrides = read_overrides(out)
    warnings: list[str] = []
    amended = [_student(out, row, overrides, lateness or {}, warnings) for row in rows]
    known = {r.student for r in rows}
    warnings += [f"overrides.csv: {_named(o)} is not applied: no such student in this run"
                 for o in overrides if o.student not in known]
    write_atomic(out / "gradebook.csv", render_gradebook(amended))
    return amended, warnings


def _student(out: Path, row: GradebookRow, overrides: list[Override], lateness: dict[str, LateNote],
             warnings: list[str]) -> GradebookRow:
    folder = student_dir(out, row.student)
    mine = [o for o in overrides if o.student == row.student]
    graded = load_graded(folder)
    if graded is None:
        if mine or row.student in lateness:
            warnings.append(f"{row.student}: {folder / 'graded.json'} cannot be read: grade this submission "
                            "again for its overrides and lateness to show")
        return row
    fitting = []
    for o in mine:
        why = problem(o, {row.student: graded})
        if why is None:
            fitting.append(o)
        else:
            warnings.append(f"overrides.csv: {_named(o)} is not applied: {why}")
    amended, notes = apply(graded, fitting)
    amendments = Amendments(notes, lateness.get(row.student))
    try:
        feedback = render_feedback(row.student, amended, amendments)
        results = render_results(amended, amendments=amendments)
    except Exception as exc:  # noqa: BLE001 - a report bug costs this student's amendments, not the run
        warnings.append(f"{row.student}: the amended reports could not be rendered ({type(exc).__name__}); "
                        "they are left as graded")
        return row
    _write_changed(folder / "feedback.md", feedback)
    _write_changed(folder / "results.json", results)  # last, as when graded
    return GradebookRow(row.student, amended.scores, row.status)


def _write_changed(path: Path, text: str) -> None:
    """``write_atomic`` unless ``path`` holds ``text`` already (a report nothing changed is not even touched)."""
    try:
        if path.read_bytes() == text.encode():
            return
    except OSError:
        pass
    write_atomic(path, text)


def _named(o: Override) -> str:
    return f"{clip(o.student, 80)} {clip(o.item, 20)}"


def gradebook_rows(out: Path) -> list[GradebookRow]:
    """The students, scores and statuses of ``OUT/gradebook.csv``; raises ``OverrideError`` if there is none."""
    path = out / "gradebook.csv"
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return [GradebookRow(csv_value(r["student"]), {q: float(r[q]) for q in QUESTION_IDS},
                                 csv_value(r["status"])) for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise OverrideError([f"{path} is missing: grade first"]) from None
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise OverrideError([f"{path} is not a gradebook written by `grade` ({exc!r})"]) from None


def render_lateness(lateness: dict[str, LateNote]) -> str:
    """``OUT/lateness.json``: the late policy's outcome for each student."""
    doc = {s: {"late_days": n.late_days, "penalty": n.penalty, "rule": n.rule, "text": n.text}
           for s, n in sorted(lateness.items())}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def read_lateness(out: Path) -> dict[str, LateNote] | None:
    """``OUT/lateness.json`` read back; None without one (total: anything but what ``render_lateness`` wrote
    counts as no policy)."""
    try:
        doc = json.loads((out / LATENESS).read_text(encoding="utf-8"))
        found = {}
        for student, n in doc.items():
            days, penalty = n["late_days"], n["penalty"]
            if not (days is None or (type(days) is int and days >= 0)) or type(penalty) not in (int, float) \
                    or not 0 <= penalty <= 1 or not isinstance(n["rule"], str) or not isinstance(n["text"], str):
                return None
            found[student] = LateNote(days, float(penalty), n["rule"], n["text"])
        return found
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, TypeError, KeyError, AttributeError):
        return None


def add_late_columns(out: Path, lateness: dict[str, LateNote] | None) -> None:
    """``late_days``, ``penalty`` and ``final`` appended to ``gradebook.csv`` (whatever columns it has).

    ``final`` is ``grand_total`` (``total`` before a merge) less the penalty; an unknown lateness leaves
    ``late_days`` and ``penalty`` empty and ``final`` unpenalised (the student's feedback says why)."""
    if lateness is None:
        return
    path = out / "gradebook.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = [[csv_value(c) for c in row] for row in csv.reader(f)]
    header = rows[0]
    if any(c in header for c in LATE_COLUMNS):
        return
    source = header.index("grand_total" if "grand_total" in header else "total")
    lines = [[*header, *LATE_COLUMNS]]
    for row in rows[1:]:
        note = lateness.get(row[0])
        score = _number(row[source]) if source < len(row) else None
        if note is None or score is None:
            lines.append([*row, "", "", ""])
            continue
        days = "" if note.late_days is None else note.late_days
        lines.append([*row, days, "" if note.late_days is None else f"{note.penalty:g}", f"{note.final(score):g}"])
    write_atomic(path, csv_text(lines))


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None

