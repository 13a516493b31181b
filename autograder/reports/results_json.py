"""Gradescope's autograder ``results.json`` (one per student), and reading it back to resume.

Format: https://gradescope-autograders.readthedocs.io/en/latest/specs/ — a
test per check with ``score``, ``max_score``, ``name``, ``number``,
``output``, ``status`` and ``visibility`` (public checks ``visible``, hidden
ones ``after_published``). Nothing time-dependent goes in, so re-grading the
same notebook gives the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from autograder.grading import grader_version
from autograder.contract import BY_ID, MAX_TOTAL
from autograder.grading import Graded

VISIBILITY = {"public": "visible", "hidden": "after_published"}


def render_results(graded: Graded) -> str:
    """The ``results.json`` text of one graded submission."""
    tests = []
    counters: dict[str, int] = {}
    for r in graded.checks:
        counters[r.qid] = counters.get(r.qid, 0) + 1
        tests.append({
            "name": f"{r.qid} {BY_ID[r.qid].name}: {r.check}",
            "number": f"{r.qid}.{counters[r.qid]}",
            "score": r.points,
            "max_score": r.max_points,
            "status": "passed" if r.status == "passed" else "failed",
            "output": "" if r.status == "passed" else r.message,
            "visibility": VISIBILITY[r.visibility],
            "tags": [r.qid, r.visibility],
        })
    document: dict[str, Any] = {
        "score": graded.total,
        "output": f"Status: {graded.status}. Score {graded.total:g} / {MAX_TOTAL}.",
        "visibility": "after_published",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "key": graded.key,
            "grader_version": grader_version(),
            "status": graded.status,
            "gradable": graded.gradable,
            "scores": graded.scores,
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def read_summary(text: str) -> dict[str, Any] | None:
    """``extra_data`` of a results.json written by this grader, or None if unreadable."""
    try:
        extra = json.loads(text)["extra_data"]
        if not isinstance(extra["scores"], dict) or not isinstance(extra["key"], str):
            return None
        return extra
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
