"""``gradebook.csv``: a row per student, a column per question id.

Text cells (student id, status) are written with ``escape.csv_cell``: a
spreadsheet shows them, never evaluates them; ``escape.csv_value`` reads the
original id back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autograder.contract import MAX_TOTAL, QUESTION_IDS
from autograder.escape import csv_text
from autograder.reports.totals import number, totals

COLUMNS = ("student", "total", "max_total", *QUESTION_IDS, "status")
#: After a merge, following the written ids: the written total (blank while none is scored), its maximum,
#: autograded plus written, its maximum, and how many written answers that grand total still leaves out.
WRITTEN_COLUMNS = ("written_total", "written_max", "grand_total", "grand_max", "written_unscored")


@dataclass(frozen=True)
class GradebookRow:
    student: str
    scores: dict[str, float]
    status: str

    @property
    def total(self) -> float:
        return round(sum(self.scores.values()), 2)


def render_gradebook(
    rows: Iterable[GradebookRow],
    written: dict[str, dict[str, float | None]] | None = None,
    written_points: dict[str, float] | None = None,
) -> str:
    """CSV text, rows sorted by student id.

    With ``written`` (TA scores by student) and ``written_points`` (each
    written question's maximum, in column order), a column per written id,
    then ``WRITTEN_COLUMNS``, follow — from :class:`~autograder.reports.totals.Totals`,
    as in the student's reports; a score not given yet leaves its cell empty.
    """
    points = written_points or {}
    extra = (*points, *WRITTEN_COLUMNS) if written is not None else ()
    lines: list[list[object]] = [[*COLUMNS, *extra]]
    for row in sorted(rows, key=lambda r: r.student):
        cells: list[object] = [row.student, number(row.total), MAX_TOTAL,
                               *(number(row.scores.get(q, 0.0)) for q in QUESTION_IDS), row.status]
        if written is not None:
            t = totals(row.total, written.get(row.student, {}), points)
            cells += ["" if s is None else number(s) for s in t.written.values()]
            cells += ["" if t.written_total is None else number(t.written_total), number(t.written_max),
                      number(t.grand), number(t.grand_max), t.unscored]
        lines.append(cells)
    return csv_text(lines)
