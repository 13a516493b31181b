"""The totals a student's reports show once the written answers are merged, computed in one place.

``feedback.md``, ``results.json`` (its ``score`` and the sentence of its
``output``) and ``gradebook.csv`` all take their autograded, written and
grand totals from one :class:`Totals`, so they cannot disagree. A written
answer not scored yet is ``None`` — a blank cell, never a 0 — and a grand
total that leaves such answers out says it is partial. With a late policy,
the penalty applies to the grand total (``LateNote.final``, as the
gradebook's ``final``).
"""

from __future__ import annotations

from dataclasses import dataclass

from autograder.contract import MAX_TOTAL
from autograder.reports.amendments import LateNote


def number(x: float) -> str:
    """A score as every report prints it."""
    return f"{x:g}"


@dataclass(frozen=True)
class Totals:
    """One student's totals: ``written`` maps each written question id to its score (None: not scored yet)."""

    auto: float
    written: dict[str, float | None]
    written_max: float
    auto_max: float = MAX_TOTAL
    late: LateNote | None = None

    @property
    def penalised(self) -> bool:
        return self.late is not None and bool(self.late.penalty)

    @property
    def written_total(self) -> float | None:
        """The sum of the scored written answers; None while none is scored."""
        scored = [s for s in self.written.values() if s is not None]
        return round(sum(scored), 2) if scored else None

    @property
    def unscored(self) -> int:
        return sum(s is None for s in self.written.values())

    @property
    def grand(self) -> float:
        """Autograded plus scored written points (partial while ``unscored``)."""
        return round(self.auto + (self.written_total or 0.0), 2)

    @property
    def grand_max(self) -> float:
        return self.auto_max + self.written_max

    @property
    def final(self) -> float:
        """The grand total after the late penalty (the grand total without one)."""
        return self.late.final(self.grand) if self.late is not None and self.penalised else self.grand

    def written_text(self) -> str:
        if self.written_total is None:
            return "not scored yet"
        return f"{number(self.written_total)} / {number(self.written_max)}"

    def grand_text(self) -> str:
        text = f"{number(self.grand)} / {number(self.grand_max)}"
        if self.unscored:
            answers = "answer" if self.unscored == 1 else "answers"
            text += f" (partial: {self.unscored} written {answers} not scored yet)"
        return text

    def sentence(self) -> str:
        """The totals in words, for ``results.json``'s ``output``."""
        late = f" After the late penalty: {number(self.final)} / {number(self.grand_max)}." if self.penalised else ""
        return (f"Autograded: {number(self.auto)} / {number(self.auto_max)}. "
                f"Written answers: {self.written_text()}. Total: {self.grand_text()}.{late}")


def totals(auto: float, written: dict[str, float | None], points: dict[str, float], late: LateNote | None = None) -> Totals:
    """The totals of a student with autograded total ``auto``, scores ``written`` of the questions ``points``
    and the late policy's outcome ``late`` (None: no policy)."""
    return Totals(round(auto, 2), {q: written.get(q) for q in points}, sum(points.values()), late=late)
