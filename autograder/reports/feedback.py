"""``feedback.md``: what a student reads — scores, then one block per lost point.

Inert and bounded: every student-controlled text (name, status, cell errors)
is Markdown-escaped text, and every failure is a fenced block nothing inside
can close (``autograder.escape``), so the only headings, links and HTML are
the renderer's own. The page stays under ``MAX_FEEDBACK_BYTES``: fields are
shortened further when the full ones would not fit, and at most
``MAX_CELL_NOTES`` notebook cells are listed. ``Amendments`` (a TA's
overrides, the late policy) add their own sections; without them the page is
what grading alone gives.
"""

from __future__ import annotations

from autograder.checks.framework import CheckResult, Status
from autograder.contract import BY_ID, MAX_TOTAL
from autograder.escape import md_code, md_text
from autograder.grading import Graded, carried_note
from autograder.reports.amendments import NONE, Amendments
from autograder.reports.layout import FIT_LIMITS, plain_text, reason
from autograder.sandbox.session import CellStatus

MAX_FEEDBACK_BYTES = 256 * 1024
MAX_CELL_NOTES = 50
NAME_CHARS = 200

HEADER = """# Feedback for {student}

**Score: {total:g} / {max_total}** — status: {status}

| Question | Function | Score | Max |
|---|---|---:|---:|
"""

#: how a cell that ended so is told; a timeout, crash or broken protocol is said by its error text alone
_LABEL = {CellStatus.OK: "ran", CellStatus.ERROR: "raised", CellStatus.SKIPPED: "was not run:"}


def _notes(graded: Graded) -> list[str]:
    notes = [c for c in graded.cells if c.status != CellStatus.OK or c.note]
    out = []
    for c in notes[:MAX_CELL_NOTES]:
        what = (c.error or "") if c.status != CellStatus.OK else ""
        note = f" ({c.note})" if c.note else ""
        label = _LABEL.get(c.status, "")
        out.append(f"- {md_text(f'code cell {c.index + 1} {label} {what}{note}')}\n")
    if len(notes) > MAX_CELL_NOTES:
        out.append(f"- … and {len(notes) - MAX_CELL_NOTES} more cells with an error or a note\n")
    return out


def _amended(graded: Graded, amendments: Amendments, limit: int) -> list[str]:
    out = []
    if amendments.overrides:
        out.append("\n## Changed by your teacher\n\n")
        out += [f"- {md_text(note.line(), limit)}\n" for note in amendments.overrides]
    late = amendments.lateness
    if late is not None:
        out.append(f"\n## Deadline\n\n- {md_text(late.text, limit)}\n- rule: {md_text(late.rule, limit)}\n")
        if late.penalty:
            out.append(f"- score after the late penalty: {late.final(graded.total):g} / {MAX_TOTAL} "
                       f"(before it: {graded.total:g})\n")
    return out


def _lost(r: CheckResult) -> str:
    lost = r.max_points - r.points
    return f"(−{lost:g} points)" if lost else "(no points lost: your teacher's override)"


def _render(student: str, graded: Graded, limit: int, amendments: Amendments = NONE) -> str:
    late = amendments.lateness
    total = late.final(graded.total) if late is not None and late.penalty else graded.total
    out = [HEADER.format(student=md_text(student, NAME_CHARS), total=total, max_total=MAX_TOTAL,
                         status=md_text(graded.status))]
    for qid, score in graded.scores.items():
        out.append(f"| {qid} | `{BY_ID[qid].name}` | {score:g} | {BY_ID[qid].points} |\n")
    out += _amended(graded, amendments, limit)
    if graded.carried:
        out.append("\n## Error carried forward\n\n")
        out += [f"- {md_text(carried_note(q, d), limit)}\n" for q, d in graded.carried]
    notes = _notes(graded)
    if notes:
        out.append("\n## Your notebook\n\n")
        out += notes
    lost = [r for r in graded.checks if r.status != Status.PASSED]
    if lost:
        out.append("\n## Points lost\n")
        current = None
        for r in lost:
            if r.qid != current:
                current = r.qid
                out.append(f"\n### {r.qid} `{BY_ID[r.qid].name}` — {graded.scores[r.qid]:g} / {BY_ID[r.qid].points}\n\n")
            body = plain_text(r, limit) if r.status != Status.SKIPPED else f"{r.check}: {reason(r, limit)}"
            out.append(f"{md_code(body)}{_lost(r)}\n\n")
    else:
        out.append("\nEvery check passed.\n")
    return "".join(out)


def render_feedback(student: str, graded: Graded, amendments: Amendments = NONE) -> str:
    """The feedback page of one student, in Markdown, at most ``MAX_FEEDBACK_BYTES`` long
    (``graded`` with the overrides of ``amendments`` already applied: ``course.overrides.apply``)."""
    for limit in FIT_LIMITS:
        page = _render(student, graded, limit, amendments)
        if len(page.encode()) <= MAX_FEEDBACK_BYTES:
            return page
    cut = page.encode()[: MAX_FEEDBACK_BYTES - 100].decode(errors="ignore")
    return cut + "\n\n(the rest of this feedback was cut: it is too long)\n"
