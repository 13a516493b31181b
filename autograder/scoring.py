"""Pure scoring: check results → question scores → totals."""

from __future__ import annotations

from collections.abc import Iterable

from autograder.checks.framework import CheckResult


def question_scores(results: Iterable[CheckResult], qids: Iterable[str]) -> dict[str, float]:
    """Points earned per question id (sum of passed checks, rounded to 0.01)."""
    scores = {q: 0.0 for q in qids}
    for r in results:
        scores[r.qid] += r.points
    return {q: round(v, 2) for q, v in scores.items()}
