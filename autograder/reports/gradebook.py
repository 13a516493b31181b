"""``gradebook.csv``: a row per student, a column per question id."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from autograder.contract import MAX_TOTAL, QUESTION_IDS

COLUMNS = ("student", "total", "max_total", *QUESTION_IDS, "status")


@dataclass(frozen=True)
class GradebookRow:
    student: str
    scores: dict[str, float]
    status: str

    @property
    def total(self) -> float:
        return round(sum(self.scores.values()), 2)


def _num(x: float) -> str:
    return f"{x:g}"


def render_gradebook(rows: Iterable[GradebookRow]) -> str:
    """CSV text, rows sorted by student id."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in sorted(rows, key=lambda r: r.student):
        writer.writerow([row.student, _num(row.total), MAX_TOTAL, *(_num(row.scores.get(q, 0.0)) for q in QUESTION_IDS), row.status])
    return buf.getvalue()
