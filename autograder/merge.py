"""Fold the TAs' scores of the written answers into the gradebook and each student's reports.

    python -m autograder merge OUT --scores scores.csv

``scores.csv`` has the columns ``student_code,question,score,comment`` (as
written by ``review``). Every problem in it — an unknown code or question id,
a score below 0 or above the question's points, a duplicate row, a malformed
file — is reported at once and nothing is written. Missing scores are
listed and leave their cells empty. The merge rewrites the written part of
each report from scratch, so merging an updated file gives the same result
as merging it once.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from autograder.contract import QUESTION_IDS
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.review import RUBRIC, SCORE_COLUMNS, WrittenQuestion, load_rubric, read_key
from autograder.runner import student_dir

WRITTEN_MARKER = "<!-- written answers: merged by `python -m autograder merge` -->"


class MergeError(ValueError):
    """The scores file cannot be merged; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class WrittenScore:
    score: float | None
    comment: str


def read_scores(path: Path, questions: dict[str, WrittenQuestion], codes: set[str]) -> dict[tuple[str, str], WrittenScore]:
    """Validated scores by (student code, question id); raises ``MergeError`` listing every problem."""
    problems: list[str] = []
    found: dict[tuple[str, str], WrittenScore] = {}
    try:
        rows = list(csv.reader(path.open(encoding="utf-8", newline=""), strict=True))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MergeError([f"{path.name}: cannot be read as CSV ({exc})"]) from None
    if not rows or tuple(rows[0]) != SCORE_COLUMNS:
        raise MergeError([f"{path.name}: the first line must be {','.join(SCORE_COLUMNS)}"])
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(SCORE_COLUMNS):
            problems.append(f"line {line}: expected {len(SCORE_COLUMNS)} fields, found {len(row)}")
            continue
        code, qid, raw, comment = (field.strip() for field in row)
        if code not in codes:
            problems.append(f"line {line}: unknown student code {code!r}")
        if qid not in questions:
            problems.append(f"line {line}: unknown question id {qid!r}")
            continue
        if (code, qid) in found:
            problems.append(f"line {line}: a second row for {code} {qid}")
            continue
        score = None
        if raw:
            try:
                score = float(raw)
            except ValueError:
                problems.append(f"line {line}: score {raw!r} is not a number")
                continue
            if not math.isfinite(score) or not 0 <= score <= questions[qid].points:
                problems.append(f"line {line}: score {raw} is outside 0…{questions[qid].points} for {qid}")
                continue
        found[(code, qid)] = WrittenScore(score, comment)
    if problems:
        raise MergeError(problems)
    return found


def _auto_rows(gradebook: Path) -> list[GradebookRow]:
    """The automatically graded part of an existing gradebook."""
    rows = []
    for r in csv.DictReader(gradebook.open(encoding="utf-8")):
        rows.append(GradebookRow(r["student"], {q: float(r[q]) for q in QUESTION_IDS}, r["status"]))
    return rows


def _feedback_section(questions: dict[str, WrittenQuestion], mine: dict[str, WrittenScore]) -> str:
    lines = [WRITTEN_MARKER, "", "## Written answers (graded by TAs)", "",
             "| Question | Score | Max | Comment |", "|---|---:|---:|---|"]
    for qid, q in questions.items():
        s = mine.get(qid, WrittenScore(None, ""))
        score = "not graded yet" if s.score is None else f"{s.score:g}"
        lines.append(f"| {qid} {q.title} | {score} | {q.points} | {s.comment.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _merge_results(path: Path, questions: dict[str, WrittenQuestion], mine: dict[str, WrittenScore]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    tests = [t for t in doc["tests"] if "written" not in t.get("tags", [])]
    auto = round(sum(doc["extra_data"]["scores"].values()), 2)
    for qid, q in questions.items():
        s = mine.get(qid)
        if s is None or s.score is None:
            continue
        tests.append({"name": f"{qid} {q.title} (graded by a TA)", "number": qid, "score": s.score,
                      "max_score": q.points, "status": "passed" if s.score == q.points else "failed",
                      "output": s.comment, "visibility": "after_published", "tags": ["written", qid]})
    doc["tests"] = tests
    doc["score"] = round(auto + sum(s.score or 0.0 for s in mine.values()), 2)
    doc["extra_data"]["written"] = {qid: s.score for qid, s in mine.items()}
    write_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def merge(out: Path, scores: Path, rubric: Path = RUBRIC) -> list[tuple[str, str]]:
    """Merge ``scores`` into ``out``; returns the (student, question) pairs still without a score."""
    questions = load_rubric(rubric)
    _, key = read_key(out / "review")
    if not key:
        raise MergeError([f"{out / 'review' / 'key.csv'} is missing: run `python -m autograder review` first"])
    found = read_scores(scores, questions, set(key))
    by_student = {student: {q: found[(code, q)] for q in questions if (code, q) in found} for code, student in key.items()}
    missing = [(s, q) for s, mine in sorted(by_student.items()) for q in questions
               if mine.get(q, WrittenScore(None, "")).score is None]
    rows = _auto_rows(out / "gradebook.csv")
    absent = [str(student_dir(out, r.student) / name) for r in rows for name in ("results.json", "feedback.md")
              if not (student_dir(out, r.student) / name).is_file()]
    if absent:
        raise MergeError([f"{path} is missing: grade before merging" for path in absent])
    written = {s: {q: m.score for q, m in mine.items()} for s, mine in by_student.items()}
    for row in rows:
        folder = student_dir(out, row.student)
        mine = by_student.get(row.student, {})
        _merge_results(folder / "results.json", questions, mine)
        feedback = (folder / "feedback.md").read_text(encoding="utf-8").split(WRITTEN_MARKER)[0].rstrip("\n")
        write_atomic(folder / "feedback.md", feedback + "\n\n" + _feedback_section(questions, mine))
    write_atomic(out / "gradebook.csv", render_gradebook(rows, written=written, written_ids=tuple(questions)))
    return missing
