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


def render_gradebook(
    rows: Iterable[GradebookRow],
    written: dict[str, dict[str, float | None]] | None = None,
    written_ids: tuple[str, ...] = (),
) -> str:
    """CSV text, rows sorted by student id; with ``written`` (TA scores), a column per written id,
    ``written_total`` and ``grand_total`` follow (a missing score leaves its cell empty)."""
    extra = (*written_ids, "written_total", "grand_total") if written is not None else ()
    lines: list[list[object]] = [[*COLUMNS, *extra]]
    for row in sorted(rows, key=lambda r: r.student):
        cells: list[object] = [row.student, _num(row.total), MAX_TOTAL,
                               *(_num(row.scores.get(q, 0.0)) for q in QUESTION_IDS), row.status]
        if written is not None:
            mine = written.get(row.student, {})
            scores = [mine.get(w) for w in written_ids]
            written_total = sum(s for s in scores if s is not None)
            cells += ["" if s is None else _num(s) for s in scores]
            cells += [_num(written_total), _num(round(row.total + written_total, 2))]
        lines.append(cells)
    return csv_text(lines)
