"""What a TA changed after grading, as the reports show it: overrides of scores, and the late penalty.

Plain records, built by ``autograder.course.overrides`` and
``autograder.course.lateness``; ``feedback.md``, ``results.json`` and
``gradebook.csv`` render them. No amendments: the reports are byte for byte
what grading alone writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class OverrideNote:
    """A score a TA set: ``item`` (``C4`` or check ``C4.3``) now ``score`` of ``max_points`` (was ``autograded``)."""

    item: str
    label: str  # the item as the student reads it: "C4" or "C4.3 <check name>"
    score: float
    max_points: float
    autograded: float
    by: str
    reason: str

    def line(self) -> str:
        """``C4: 11/11 (override by TA Kim: reason; autograded 7/11)`` (plain text, escaped by each writer)."""
        by = f" by {self.by}" if self.by else ""
        return (f"{self.label}: {self.score:g}/{self.max_points:g} (override{by}: {self.reason}; "
                f"autograded {self.autograded:g}/{self.max_points:g})")


@dataclass(frozen=True)
class LateNote:
    """The late policy applied to one submission: ``penalty`` is a fraction of the score, 0 when on time.

    ``late_days`` is None when the lateness is unknown (``text`` says why; no penalty is applied)."""

    late_days: int | None
    penalty: float
    rule: str  # the rule, in words
    text: str  # what happened to this submission, in words

    def final(self, score: float) -> float:
        """``score`` after the penalty, rounded to 0.01 (exact decimal arithmetic: 80 less 10% is 72)."""
        return float(round(Fraction(repr(score)) * (1 - Fraction(repr(self.penalty))), 2))


@dataclass(frozen=True)
class Amendments:
    overrides: tuple[OverrideNote, ...] = ()
    lateness: LateNote | None = None


NONE = Amendments()
