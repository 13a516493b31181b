"""Review sheets for the written answers: one self-contained HTML page per question.

    python -m autograder review SUBMISSIONS --out OUT

Writes, for the graders, ``OUT/review/``: ``<question>.html`` (the question
as the notebook asks it, the rubric and the model answer at the top, then
every student's answer under an anonymous code, each with a blank score and
comment row), ``scores.csv`` to fill (unless the TAs already have one) and
``index.html`` linking every sheet with its count of answers still to score.
The key from codes to students goes elsewhere, ``OUT/review-key/`` (see
:mod:`autograder.written.codes`): keep it from the graders to grade blind.

How answers are found: a markdown cell tagged ``answer:<id>``; failing that,
the first markdown cell after a cell containing the heading ``**Answer <id>**``
(so an answer whose tag was deleted is still collected) — unless that cell is
the assignment's own text, which means the answer cell itself was deleted.

A page loads nothing: no script, no stylesheet, no external image, no link
out of the page (see :mod:`autograder.reports.markdown`); the figure a model
answer refers to is embedded. A student's answer sits in a marked box with its
headings below the sheet's own, so no answer can pass for another student's
entry (a ``### S-…`` heading and a score table of its own stay in the box).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from autograder.discovery import SubmissionError, discover, read_submission
from autograder.escape import html_text
from autograder.notebook import Answer, NotebookError, read_notebook
from autograder.reports.atomic import write_atomic
from autograder.reports.markdown import render_markdown
from autograder.written.codes import assign_codes, read_key, write_key
from autograder.written.index import write_index
from autograder.written.rubric import ROOT, RUBRIC, SOLUTION, TEMPLATE, WrittenQuestion, load_rubric
from autograder.written.scores import WrittenScore, scores_csv

PLACEHOLDER = "*Write your answer here.*"
#: The sheet's own headings are h1 to h3 (a student's code is an h3): an answer's ``#`` starts below them.
ANSWER_HEADING = 4
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{qid} — {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
header {{ border-bottom: 2px solid #333; margin-bottom: 1.5rem; }}
section.student {{ border: 1px solid #ccc; border-radius: 6px; padding: 0.5rem 1rem; margin: 1rem 0; }}
section.student > h3 {{ margin: 0.2rem 0; font-family: monospace; }}
.answer {{ border-left: 4px solid #c90; background: #fffbf2; padding: 0.1rem 0.8rem; }}
.answer h4, .answer h5, .answer h6 {{ font-size: 1em; font-style: italic; margin: 0.6rem 0 0.2rem; }}
.missing {{ color: #a00; font-style: italic; }}
.note, .omitted, .url {{ color: #666; font-size: 0.9em; }}
.link {{ text-decoration: underline; }}
img {{ max-width: 100%; }}
table.score {{ width: 100%; border-collapse: collapse; margin-top: 0.5rem; }}
table.score td {{ border: 1px solid #999; padding: 0.4rem; height: 1.6rem; }}
.question {{ background: #f6f6f6; padding: 0.5rem 1rem; border-left: 4px solid #999; }}
.model {{ background: #f4f8ff; padding: 0.5rem 1rem; border-left: 4px solid #36c; }}
code.latex {{ background: #eee; }}
</style></head><body>
<header><h1>{qid} — {title} ({points} points)</h1>
<h2>Question</h2><div class="question">{question}</div>
<h2>Rubric</h2><ul>{rubric}</ul>
<h2>Model answer</h2><div class="model">{model}</div>
<p class="note">{count} students, shown by anonymous code. Enter each score in the <code>score</code> column of scores.csv, next to the code and question id.</p>
</header>
{students}
</body></html>
"""

STUDENT = """<section class="student" id="{code}"><h3>{code}</h3>
{body}
<table class="score"><tr><td style="width: 25%">score: &nbsp;&nbsp;&nbsp;&nbsp; / {points}</td><td>comment:</td></tr></table>
</section>"""


def collect_answers(submissions: Path) -> dict[str, dict[str, Answer]]:
    """Written answers per student (an unreadable notebook gives none)."""
    out: dict[str, dict[str, Answer]] = {}
    for sub in discover(submissions):
        try:  # read as ``grade`` reads it: bounded, a regular file, no link followed
            out[sub.student] = read_notebook(read_submission(sub.path, submissions)).answers if sub.path else {}
        except (NotebookError, SubmissionError):
            out[sub.student] = {}
    return out


def template_markdown(template: Path = TEMPLATE) -> list[str | None]:
    """The student template's cells in order: a markdown cell's text, None for any other cell.

    Empty without a template (the assignment's own text is then unknown).
    """
    if not template.is_file():
        return []
    cells = json.loads(template.read_text(encoding="utf-8"))["cells"]
    return [("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            if c["cell_type"] == "markdown" and not (c.get("metadata") or {}).get("tags") else None
            for c in cells]


def question_text(qid: str, template_cells: list[str | None]) -> str | None:
    """The question ``qid`` as the notebook asks it: its ``**Answer <id>**`` cell and the prose right before it."""
    for i, cell in enumerate(template_cells):
        if cell is not None and f"**Answer {qid}**" in cell:
            start = i
            while start > 0 and template_cells[start - 1] is not None:
                start -= 1
            return "\n\n".join(template_cells[start:i + 1])
    return None


def embed_local_image(base: Path, root: Path = ROOT):
    """An image resolver for trusted text: a relative path under ``root`` becomes a ``data:`` URI."""

    def resolve(src: str) -> str | None:
        try:
            path = (base / src).resolve()
            kind = _IMAGE_TYPES.get(path.suffix.lower())
            if ":" in src or kind is None or not path.is_relative_to(root.resolve()) or not path.is_file():
                return None
            return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"
        except (OSError, ValueError):
            return None

    return resolve


def _answer_html(answer: Answer | None, template_cells: frozenset[str] = frozenset()) -> str:
    if answer is None:
        return '<p class="missing">No answer (no cell with this answer\'s tag or heading).</p>'
    text = answer.text.strip()
    if not text or text == PLACEHOLDER:
        return '<p class="missing">Empty answer (the placeholder was left as it is).</p>'
    if answer.found_by == "heading" and text in template_cells:
        return ('<p class="missing">No answer (the answer cell was deleted: the cell after the heading '
                'is the assignment\'s own text).</p>')
    note = '<p class="note">found by its heading (the cell\'s tag was deleted)</p>' if answer.found_by == "heading" else ""
    return f'<div class="answer">{render_markdown(text, first_heading=ANSWER_HEADING)}</div>{note}'


def review_page(
    question: WrittenQuestion,
    model: Answer | None,
    answers: dict[str, Answer | None],
    *,
    asked: str | None = None,
    template_cells: frozenset[str] = frozenset(),
    model_images=None,
) -> str:
    """The HTML review sheet of one question; ``answers`` maps student code → answer.

    ``asked`` is the question as the notebook words it (the rubric's prompt
    otherwise); ``model_images`` resolves the images of the model answer.
    """
    students = "\n".join(
        STUDENT.format(code=html_text(code), body=_answer_html(answers[code], template_cells), points=question.points)
        for code in sorted(answers)
    )
    return PAGE.format(
        qid=html_text(question.qid),
        title=html_text(question.title),
        points=question.points,
        question=render_markdown(asked) if asked else f"<p>{html_text(question.prompt)}</p>",
        rubric="".join(f"<li>{render_markdown(item).strip().removeprefix('<p>').removesuffix('</p>')}</li>" for item in question.rubric),
        model=render_markdown(model.text, model_images) if model else '<p class="missing">no model answer</p>',
        count=len(answers),
        students=students,
    )


@dataclass(frozen=True)
class ReviewFiles:
    """Where ``review`` wrote: the graders' folder, its scores file and index, and the key's folder (kept apart)."""

    sheets: Path
    scores: Path
    index: Path
    key: Path


def write_review(
    submissions: Path, out: Path, rubric: Path = RUBRIC, solution: Path = SOLUTION, template: Path = TEMPLATE
) -> ReviewFiles:
    """Write the review sheets, ``scores.csv`` (unless the TAs already have one), ``index.html`` and the key."""
    review_dir = out / "review"
    questions = load_rubric(rubric)
    model = read_notebook(solution.read_bytes()).answers
    answers = collect_answers(submissions)
    salt, key = read_key(out)
    codes = assign_codes(salt, list(answers), {student: code for code, student in key.items()})
    cells = template_markdown(template)
    images = embed_local_image(solution.parent)
    for q in questions.values():
        by_code = {codes[s]: a.get(q.qid) for s, a in answers.items()}
        page = review_page(q, model.get(q.qid), by_code, asked=question_text(q.qid, cells),
                           template_cells=frozenset(c.strip() for c in cells if c is not None), model_images=images)
        write_atomic(review_dir / f"{q.qid}.html", page)
    everyone = {**key, **{c: s for s, c in codes.items()}}  # students of earlier runs keep their codes
    key_folder = write_key(out, salt, everyone)
    scores = review_dir / "scores.csv"
    if not scores.is_file():
        blank = WrittenScore(None, "")
        write_atomic(scores, scores_csv(questions, [(codes[s], q, blank) for s in sorted(answers, key=codes.get) for q in questions]))
    index = write_index(out, questions, set(codes.values()), set(everyone))
    return ReviewFiles(review_dir, scores, index, key_folder)
