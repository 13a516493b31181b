"""Fold the TAs' scores of the written answers into the gradebook and each student's reports.

    python -m autograder merge OUT --scores scores.csv

``scores.csv`` has the columns ``student_code,question,score,comment`` (as
written by ``review``; a spreadsheet's byte-order mark and blank lines are
fine). Every problem in it — an unknown code or question id, a score below 0
or above the question's points, a duplicate row, a malformed file — is
reported at once and nothing is written. So is an output folder that cannot
take the merge (no ``key.csv``, ``gradebook.csv``, or a student's
``results.json`` or ``feedback.md`` missing or unreadable): every new file is
computed before the first one is written, and each is written atomically.
Missing scores are listed and leave their cells empty.

The merge rewrites the written part of each report from scratch, so merging
an updated file gives the same result as merging it once. The validated
scores are kept in ``OUT/review/merged_scores.csv``: ``grade`` rewrites
``gradebook.csv`` (and the reports of a notebook it grades again) without
the written part, and :func:`reapply` — or ``merge`` run again — puts it back.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from autograder.contract import QUESTION_IDS
from autograder.escape import FIELD_CHARS, clip, csv_text, csv_value, md_text
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.review import RUBRIC, SCORE_COLUMNS, WrittenQuestion, load_rubric, read_key
from autograder.discovery import student_dir

WRITTEN_MARKER = "<!-- written answers: merged by `python -m autograder merge` -->"
MERGED = "merged_scores.csv"


class MergeError(ValueError):
    """The scores file cannot be merged; ``problems`` lists every reason. Nothing was written."""

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
    by_folded = {q.casefold(): q for q in questions}  # a question id is typed in any case
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, strict=True))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MergeError([f"{path.name}: cannot be read as CSV ({exc})"]) from None
    if not rows or tuple(cell.strip() for cell in rows[0]) != SCORE_COLUMNS:
        raise MergeError([f"{path.name}: the first line must be {','.join(SCORE_COLUMNS)}"])
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) != len(SCORE_COLUMNS):
            problems.append(f"line {line}: expected {len(SCORE_COLUMNS)} fields, found {len(row)}")
            continue
        code, qid, raw, comment = (csv_value(field.strip()) for field in row)
        code, qid = code.upper(), by_folded.get(qid.casefold(), qid)
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
    try:
        with gradebook.open(encoding="utf-8", newline="") as f:
            return [GradebookRow(csv_value(r["student"]), {q: float(r[q]) for q in QUESTION_IDS}, csv_value(r["status"]))
                    for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise MergeError([f"{gradebook} is missing: grade before merging"]) from None
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise MergeError([f"{gradebook} is not a gradebook written by `grade` ({exc!r})"]) from None


def _feedback_section(questions: dict[str, WrittenQuestion], mine: dict[str, WrittenScore]) -> str:
    lines = [WRITTEN_MARKER, "", "## Written answers (graded by TAs)", "",
             "| Question | Score | Max | Comment |", "|---|---:|---:|---|"]
    for qid, q in questions.items():
        s = mine.get(qid, WrittenScore(None, ""))
        score = "not graded yet" if s.score is None else f"{s.score:g}"
        lines.append(f"| {md_text(f'{qid} {q.title}')} | {score} | {q.points} | {md_text(s.comment)} |")
    return "\n".join(lines) + "\n"


def _merged_results(text: str, questions: dict[str, WrittenQuestion], mine: dict[str, WrittenScore]) -> str:
    """``results.json`` text with its manual tests replaced by ``mine``."""
    doc = json.loads(text)
    tests = [t for t in doc["tests"] if "written" not in t.get("tags", [])]
    auto = round(sum(doc["extra_data"]["scores"].values()), 2)
    for qid, q in questions.items():
        s = mine.get(qid)
        if s is None or s.score is None:
            continue
        tests.append({"name": f"{qid} {q.title} (graded by a TA)", "number": qid, "score": s.score,
                      "max_score": q.points, "status": "passed" if s.score == q.points else "failed",
                      "output": clip(s.comment, FIELD_CHARS), "output_format": "text", "visibility": "after_published",
                      "tags": ["written", qid]})
    doc["tests"] = tests
    doc["score"] = round(auto + sum(s.score or 0.0 for s in mine.values()), 2)
    doc["extra_data"]["written"] = {qid: s.score for qid, s in mine.items()}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _merged_copy(found: dict[tuple[str, str], WrittenScore]) -> str:
    rows = [(code, qid, "" if s.score is None else f"{s.score:g}", s.comment) for (code, qid), s in sorted(found.items())]
    return csv_text([SCORE_COLUMNS, *rows])


def merge(out: Path, scores: Path, rubric: Path = RUBRIC) -> list[tuple[str, str]]:
    """Merge ``scores`` into ``out``; returns the (student, question) pairs still without a score."""
    questions = load_rubric(rubric)
    try:
        _, key = read_key(out / "review")
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise MergeError([str(exc)]) from None
    if not key:
        raise MergeError([f"{out / 'review' / 'key.csv'} is missing: run `python -m autograder review` first"])
    rows = _auto_rows(out / "gradebook.csv")
    found = read_scores(scores, questions, set(key))
    by_student = {student: {q: found[(code, q)] for q in questions if (code, q) in found} for code, student in key.items()}
    graded = {r.student for r in rows}
    problems = [f"{code} ({student}) has scores but no row in gradebook.csv: grade that submission first"
                for code, student in sorted(key.items()) if by_student[student] and student not in graded]
    files: dict[Path, str] = {}
    for row in rows:
        folder = student_dir(out, row.student)
        mine = by_student.get(row.student, {})
        try:
            results = _merged_results((folder / "results.json").read_text(encoding="utf-8"), questions, mine)
            feedback = (folder / "feedback.md").read_text(encoding="utf-8").split(WRITTEN_MARKER)[0].rstrip("\n")
        except FileNotFoundError as exc:
            problems.append(f"{exc.filename} is missing: grade before merging")
            continue
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"{folder} holds a report `grade` did not write ({exc!r}): grade it again")
            continue
        files[folder / "results.json"] = results
        files[folder / "feedback.md"] = feedback + "\n\n" + _feedback_section(questions, mine)
    if problems:
        raise MergeError(problems)
    written = {s: {q: m.score for q, m in mine.items()} for s, mine in by_student.items()}
    files[out / "gradebook.csv"] = render_gradebook(rows, written=written, written_ids=tuple(questions))
    files[out / "review" / MERGED] = _merged_copy(found)
    for path, text in files.items():
        write_atomic(path, text)
    students = sorted(graded | set(by_student))
    return [(s, q) for s in students for q in questions
            if by_student.get(s, {}).get(q, WrittenScore(None, "")).score is None]


def reapply(out: Path, rubric: Path = RUBRIC) -> list[tuple[str, str]] | None:
    """Merge the last merged scores again (after ``grade`` rewrote the reports); None if none were merged."""
    merged = out / "review" / MERGED
    return merge(out, merged, rubric) if merged.is_file() else None
