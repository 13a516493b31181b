"""Gradescope's autograder ``results.json`` (one per student), and reading it back to resume.

Format: https://gradescope-autograders.readthedocs.io/en/latest/specs/ — a
test per check with ``score``, ``max_score``, ``name``, ``number``,
``output``, ``status`` and ``visibility`` (public checks ``visible``, hidden
ones ``after_published``); the top-level ``output`` says in words how many
public checks passed and how many hidden ones there are.

Re-grading the same notebook in a class (``grade``) gives the same bytes:
nothing time-dependent goes in. Only a job of its own (``job``, one
Gradescope container: ``runner.grade_submission``) adds Gradescope's
``execution_time``, the seconds its grading took, which no rerun repeats.

``Amendments`` (a TA's overrides, the late policy) change the tests' scores
and outputs they concern, the total, and add ``extra_data`` entries
``overrides`` and ``lateness``; without them nothing changes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from autograder.checks.framework import Status
from autograder.contract import BY_ID
from autograder.escape import FIELD_CHARS, clip
from autograder.grading import Graded, carried_note, grader_version
from autograder.reports.amendments import NONE, Amendments, OverrideNote
from autograder.reports import reread
from autograder.reports.layout import FIT_LIMITS, plain_text

VISIBILITY = {"public": "visible", "hidden": "after_published"}
#: PrairieLearn refuses a larger results.json; Gradescope shows outputs as plain text ("output_format").
MAX_RESULTS_BYTES = 2**20


SUMMARY = "Public checks: {passed}/{public} passed."
HIDDEN = "{hidden} graded after the deadline; your score counts both."


def summary(graded: Graded) -> str:
    """The top-level ``output``: the status when not ok, then the public and hidden totals in words."""
    public = [r for r in graded.checks if r.visibility == "public"]
    hidden = len(graded.checks) - len(public)
    words = [] if graded.status == "ok" else [f"Status: {clip(graded.status, FIELD_CHARS)}."]
    words.append(SUMMARY.format(passed=sum(r.status == Status.PASSED for r in public), public=len(public)))
    if hidden:
        words.append(HIDDEN.format(hidden="1 hidden check is" if hidden == 1 else f"{hidden} hidden checks are"))
    return " ".join(words)


def _said(notes: list[OverrideNote], text: str, limit: int) -> str:
    """``text`` after the lines of the overrides that concern it."""
    return "\n".join([*(clip(n.line(), limit) for n in notes), text]) if notes else text


def _amended(doc: dict[str, Any], graded: Graded, amendments: Amendments, limit: int) -> dict[str, Any]:
    extra = doc["extra_data"]
    if graded.carried:  # error carried forward: said where the student reads the total, and kept as data
        doc["output"] += "".join(f"\n{carried_note(q, d)}." for q, d in graded.carried)
        extra["carried"] = [{"question": q, "dependency": d} for q, d in graded.carried]
    if amendments.overrides:
        doc["output"] = _said(list(amendments.overrides), doc["output"], limit)
        extra["overrides"] = [{"item": n.item, "score": n.score, "max_score": n.max_points,
                               "autograded": n.autograded, "by": clip(n.by, limit), "reason": clip(n.reason, limit)}
                              for n in amendments.overrides]
    late = amendments.lateness
    if late is not None:
        doc["score"] = late.final(graded.total)
        doc["output"] += f"\n{clip(late.text, limit)} (rule: {clip(late.rule, limit)})"
        extra["lateness"] = {"late_days": late.late_days, "penalty": late.penalty, "before_penalty": graded.total,
                             "text": clip(late.text, limit), "rule": clip(late.rule, limit)}
    return doc


def _document(graded: Graded, limit: int, amendments: Amendments = NONE) -> dict[str, Any]:
    status = clip(graded.status, FIELD_CHARS)
    tests = []
    counters: dict[str, int] = {}
    for r in graded.checks:
        counters[r.qid] = counters.get(r.qid, 0) + 1
        number = f"{r.qid}.{counters[r.qid]}"
        notes = [n for n in amendments.overrides if n.item in (r.qid, number)]
        tests.append({
            "name": f"{r.qid} {BY_ID[r.qid].name}: {r.check}",
            "number": number,
            "score": r.points,
            "max_score": r.max_points,
            "status": "passed" if r.status == Status.PASSED else "failed",
            "output": _said(notes, plain_text(r, limit), limit),
            "output_format": "text",
            "visibility": VISIBILITY[r.visibility],
            "tags": [r.qid, r.visibility],
            "extra_data": {"qid": r.qid, "check": r.check, "status": str(r.status),
                           "hint": r.failure.hint[:limit] if r.failure else ""},
        })
    return _amended({
        "score": graded.total,
        "output": summary(graded),
        "output_format": "text",
        "test_output_format": "text",
        "visibility": "after_published",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "key": graded.key,
            "grader_version": grader_version(),
            "notebook": graded.notebook,  # sha256 of the notebook's bytes: `diff` tells a changed notebook apart
            "seed": graded.seed,
            "status": status,
            "gradable": graded.gradable,
            "scores": graded.scores,
        },
    }, graded, amendments, limit)


def render_results(graded: Graded, *, timed: bool = False, amendments: Amendments = NONE) -> str:
    """The ``results.json`` text of one graded submission, at most ``MAX_RESULTS_BYTES`` long.

    With ``timed`` (a job of its own, never a class) it holds ``execution_time``; ``graded`` has the
    overrides of ``amendments`` already applied (``course.overrides.apply``).
    Outputs are shortened (``layout.FIT_LIMITS``) until the document fits.
    """
    timing = {"execution_time": round(graded.seconds, 2)} if timed else {}
    for limit in FIT_LIMITS:
        text = json.dumps({**_document(graded, limit, amendments), **timing}, indent=2, ensure_ascii=False) + "\n"
        if len(text.encode()) <= MAX_RESULTS_BYTES:
            break
    return text


def read_summary(text: str) -> dict[str, Any] | None:
    """``extra_data`` of a results.json written by this grader, or None if unreadable (total: deep nesting,
    an integer of 5000 digits, a field of another type read as None too)."""
    doc = reread.parse_json(text)
    extra = doc.get("extra_data") if isinstance(doc, dict) else None
    if not isinstance(extra, dict):
        return None
    scores = extra.get("scores")
    if not isinstance(scores, dict) or not isinstance(extra.get("key"), str) or not isinstance(extra.get("status"), str) \
            or not all(type(v) is float and math.isfinite(v) or type(v) is int and abs(v) < 2**53
                       for v in scores.values()):
        return None
    return extra
