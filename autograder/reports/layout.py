"""How a check's failure record reads as text: one layout for the console, feedback.md and results.json.

The text is plain (no escaping): each writer escapes it for its own format
(``autograder.escape``). ``limit`` shortens every field further, so a writer
can fit a report into its size budget.
"""

from __future__ import annotations

from autograder.checks.framework import CheckResult
from autograder.checks.records import FailureRecord, Status
from autograder.contract import BY_ID
from autograder.escape import FIELD_CHARS, clip

FAILURE_TEMPLATE = """{qid} {name} — {kind} "{check}" failed ({visibility})
  call     : {call}{shrunk}
  expected : {expected}
  got      : {got}{detail}
  hint     : {hint}"""

#: Field lengths a writer tries, longest first, until its report fits its size budget.
FIT_LIMITS = (FIELD_CHARS, 500, 100, 20)


def reason(result: CheckResult, limit: int = FIELD_CHARS) -> str:
    """One sentence on why ``result`` did not pass: a wrong answer's summary (and detail), else what came back."""
    f = result.failure
    if f is None or result.status == Status.SKIPPED:  # passed, or not run (the summary says why)
        return "" if f is None else clip(f.summary, limit)
    return clip(_detail(result.status, f) or f"got {f.got}", limit)


def _detail(status: Status, f: FailureRecord) -> str:
    if status in (Status.FAILED, Status.GRADER_ERROR):  # the summary says what was wrong
        return f"{f.summary}; {f.detail}" if f.detail else f.summary
    return f.detail


def plain_text(result: CheckResult, limit: int = FIELD_CHARS) -> str:
    """The failure of ``result`` laid out as text ("" when it passed; a skipped check: its reason)."""
    f = result.failure
    if f is None or result.status == Status.SKIPPED:
        return "" if f is None else clip(f.summary, limit)
    detail = _detail(result.status, f)
    return FAILURE_TEMPLATE.format(
        qid=result.qid,
        name=BY_ID[result.qid].name,
        kind=f.kind,
        check=result.check,
        visibility=result.visibility,
        call=clip(f.call, limit) or "(before any call)",
        shrunk="  (shrunk)" if f.shrunk else "",
        expected=clip(f.expected, limit) or "—",
        got=clip(f.got, limit) or "—",
        detail=f"\n  detail   : {clip(detail, limit)}" if detail else "",
        hint=clip(f.hint, limit),
    )
