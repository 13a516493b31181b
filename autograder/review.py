"""Review sheets for the written answers: one self-contained HTML page per question.

    python -m autograder review SUBMISSIONS --out OUT

Writes ``OUT/review/<question>.html`` (question, rubric and model answer at
the top, then every student's answer under an anonymous code, each with a
blank score and comment row), ``OUT/review/scores.csv`` for the TAs to fill
and ``OUT/review/key.csv`` mapping codes to students (keep it from the TAs
to grade blind). Codes are stable: they are derived from the student id and
a salt kept in ``key.csv``.

How answers are found: a markdown cell tagged ``answer:<id>``; failing that,
the first markdown cell after a cell containing the heading ``**Answer <id>**``
(so an answer whose tag was deleted is still collected).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from autograder.notebook import Answer, NotebookError, read_notebook
from autograder.reports.atomic import write_atomic
from autograder.reports.markdown import render_markdown
from autograder.runner import discover

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "student_template" / "rubric.toml"
SOLUTION = ROOT / "examples" / "submissions" / "solution.ipynb"
PLACEHOLDER = "*Write your answer here.*"
SCORE_COLUMNS = ("student_code", "question", "score", "comment")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{qid} — {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
header {{ border-bottom: 2px solid #333; margin-bottom: 1.5rem; }}
section.student {{ border: 1px solid #ccc; border-radius: 6px; padding: 0.5rem 1rem; margin: 1rem 0; }}
section.student h3 {{ margin: 0.2rem 0; font-family: monospace; }}
.missing {{ color: #a00; font-style: italic; }}
.note {{ color: #666; font-size: 0.9em; }}
table.score {{ width: 100%; border-collapse: collapse; margin-top: 0.5rem; }}
table.score td {{ border: 1px solid #999; padding: 0.4rem; height: 1.6rem; }}
.model {{ background: #f4f8ff; padding: 0.5rem 1rem; border-left: 4px solid #36c; }}
code.latex {{ background: #eee; }}
</style></head><body>
<header><h1>{qid} — {title} ({points} points)</h1>
<p>{prompt}</p>
<h2>Rubric</h2><ul>{rubric}</ul>
<h2>Model answer</h2><div class="model">{model}</div>
<p class="note">{count} students, shown by anonymous code. Enter scores in scores.csv (student_code, question, score, comment).</p>
</header>
{students}
</body></html>
"""

STUDENT = """<section class="student" id="{code}"><h3>{code}</h3>
{body}
<table class="score"><tr><td style="width: 25%">score: &nbsp;&nbsp;&nbsp;&nbsp; / {points}</td><td>comment:</td></tr></table>
</section>"""


@dataclass(frozen=True)
class WrittenQuestion:
    """A written question: id, points, and what the review page shows at the top."""

    qid: str
    points: int
    title: str
    prompt: str
    rubric: tuple[str, ...]


def load_rubric(path: Path = RUBRIC) -> dict[str, WrittenQuestion]:
    """The written questions of ``rubric.toml``, in file order."""
    tables = tomllib.loads(path.read_text(encoding="utf-8"))["question"]
    return {t["id"]: WrittenQuestion(t["id"], int(t["points"]), t["title"], t["prompt"], tuple(t["rubric"])) for t in tables}


def student_code(salt: str, student: str) -> str:
    """A stable anonymous code for ``student``."""
    return "S-" + hashlib.sha256(f"{salt}:{student}".encode()).hexdigest()[:6].upper()


def read_key(review_dir: Path) -> tuple[str, dict[str, str]]:
    """``(salt, code → student)`` from ``key.csv``; a new salt when there is none yet."""
    path = review_dir / "key.csv"
    if not path.is_file():
        return secrets.token_hex(8), {}
    rows = list(csv.reader(path.open(encoding="utf-8")))
    salt = rows[0][1]
    return salt, {code: student for code, student in rows[2:]}


def collect_answers(submissions: Path) -> dict[str, dict[str, Answer]]:
    """Written answers per student (an unreadable notebook gives none)."""
    out: dict[str, dict[str, Answer]] = {}
    for sub in discover(submissions):
        try:
            out[sub.student] = read_notebook(sub.path.read_bytes()).answers if sub.path else {}
        except NotebookError:
            out[sub.student] = {}
    return out


def _answer_html(answer: Answer | None) -> str:
    if answer is None:
        return '<p class="missing">No answer (no cell with this answer\'s tag or heading).</p>'
    text = answer.text.strip()
    if not text or text == PLACEHOLDER:
        return '<p class="missing">Empty answer (the placeholder was left as it is).</p>'
    note = '<p class="note">found by its heading (the cell\'s tag was deleted)</p>' if answer.found_by == "heading" else ""
    return render_markdown(text) + note


def review_page(question: WrittenQuestion, model: Answer | None, answers: dict[str, Answer | None]) -> str:
    """The HTML review sheet of one question; ``answers`` maps student code → answer."""
    students = "\n".join(
        STUDENT.format(code=code, body=_answer_html(answers[code]), points=question.points) for code in sorted(answers)
    )
    return PAGE.format(
        qid=question.qid,
        title=html.escape(question.title),
        points=question.points,
        prompt=html.escape(question.prompt),
        rubric="".join(f"<li>{render_markdown(item).strip().removeprefix('<p>').removesuffix('</p>')}</li>" for item in question.rubric),
        model=render_markdown(model.text) if model else '<p class="missing">no model answer</p>',
        count=len(answers),
        students=students,
    )


def _csv(rows: list[tuple[str, ...]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_review(submissions: Path, out: Path, rubric: Path = RUBRIC, solution: Path = SOLUTION) -> Path:
    """Write the review sheets, ``scores.csv`` (unless the TAs already have one) and ``key.csv``."""
    review_dir = out / "review"
    questions = load_rubric(rubric)
    model = read_notebook(solution.read_bytes()).answers
    answers = collect_answers(submissions)
    salt, _ = read_key(review_dir)
    codes = {student: student_code(salt, student) for student in answers}
    for q in questions.values():
        by_code = {codes[s]: a.get(q.qid) for s, a in answers.items()}
        write_atomic(review_dir / f"{q.qid}.html", review_page(q, model.get(q.qid), by_code))
    key_rows = [("salt", salt), ("student_code", "student"), *sorted((c, s) for s, c in codes.items())]
    write_atomic(review_dir / "key.csv", _csv(key_rows))
    scores = review_dir / "scores.csv"
    if not scores.is_file():
        rows = [SCORE_COLUMNS, *((codes[s], q, "", "") for s in sorted(answers, key=codes.get) for q in questions)]
        write_atomic(scores, _csv(rows))
    return review_dir
