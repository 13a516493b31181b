"""``feedback.md``: what a student reads — scores, then one block per lost point."""

from __future__ import annotations

from autograder.contract import BY_ID, MAX_TOTAL
from autograder.grading import Graded

HEADER = """# Feedback for {student}

**Score: {total:g} / {max_total}** — status: {status}

| Question | Function | Score | Max |
|---|---|---:|---:|
"""


def render_feedback(student: str, graded: Graded) -> str:
    """The feedback page of one student, in Markdown."""
    out = [HEADER.format(student=student, total=graded.total, max_total=MAX_TOTAL, status=graded.status)]
    for qid, score in graded.scores.items():
        out.append(f"| {qid} | `{BY_ID[qid].name}` | {score:g} | {BY_ID[qid].points} |\n")
    notes = [c for c in graded.cells if c.status != "ok" or c.note]
    if notes:
        out.append("\n## Your notebook\n\n")
        for c in notes:
            what = c.error if c.status != "ok" else ""
            note = f" ({c.note})" if c.note else ""
            label = {"ok": "ran", "error": "raised", "timeout": "", "crash": "", "broken": "", "skipped": "was not run:"}
            out.append(f"- code cell {c.index + 1} {label[c.status]} {what}{note}".replace("  ", " ").rstrip() + "\n")
    lost = [r for r in graded.checks if r.status != "passed"]
    if lost:
        out.append("\n## Points lost\n")
        current = None
        for r in lost:
            if r.qid != current:
                current = r.qid
                out.append(f"\n### {r.qid} `{BY_ID[r.qid].name}` — {graded.scores[r.qid]:g} / {BY_ID[r.qid].points}\n\n")
            body = r.message if r.status != "skipped" else f"{r.check}: {r.message}"
            out.append(f"```text\n{body}\n```\n(−{r.max_points:g} points)\n\n")
    else:
        out.append("\nEvery check passed.\n")
    return "".join(out)
