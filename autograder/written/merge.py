"""Fold the TAs' scores of the written answers into the gradebook and each student's reports.

    python -m autograder merge OUT --scores scores.csv

``scores.csv`` is read as :mod:`autograder.written.scores` describes; every
problem in it is reported at once and nothing is written. So is an output
folder that cannot take the merge (no key, no ``gradebook.csv``, or a
student's ``results.json`` or ``feedback.md`` missing or unreadable): every
new file is computed before the first one is written, and each is written
atomically. Missing scores are listed and leave their cells empty.

Every report then shows the same autograded, written and grand totals
(:class:`autograder.reports.totals.Totals`): ``feedback.md`` a table of the
written scores and of the totals, ``results.json`` its ``score`` and a
sentence in its ``output``, ``gradebook.csv`` the written columns. The
overrides of ``override`` are in the gradebook and reports a merge starts
from; the late penalty ``grade`` applied to a student's ``results.json``
(its ``extra_data.lateness``) applies to the grand total, as the gradebook's
``final`` that ``grade``, ``override`` and the ``merge`` command add after it.

The merge rewrites the written part of each report from scratch, so merging
an updated file gives the same result as merging it once. The validated
scores are kept in ``OUT/review/merged_scores.csv``: ``grade`` rewrites
``gradebook.csv`` (and the reports of a notebook it grades again) without
the written part, and :func:`reapply` — or ``merge`` run again — puts it back.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from autograder.contract import QUESTION_IDS
from autograder.discovery import student_dir
from autograder.escape import FIELD_CHARS, clip, csv_value, md_text
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.reports.amendments import LateNote
from autograder.reports.totals import Totals, number, totals
from autograder.written.codes import key_dir, read_key
from autograder.written.index import render_index
from autograder.written.rubric import RUBRIC, WrittenQuestion, load_rubric, maxima
from autograder.written.scores import MergeError, WrittenScore, merged_path, read_scores, scores_csv

WRITTEN_MARKER = "<!-- written answers: merged by `python -m autograder merge` -->"
#: Where ``results.json`` keeps the ``output`` that ``grade`` wrote, so that a merge again replaces its own sentence.
AUTOGRADED_OUTPUT = "autograded_output"
NOT_SCORED = WrittenScore(None, "")


def _auto_rows(gradebook: Path) -> list[GradebookRow]:
    """The automatically graded part of an existing gradebook (the autograded totals of every report)."""
    try:
        with gradebook.open(encoding="utf-8", newline="") as f:
            return [GradebookRow(csv_value(r["student"]), {q: float(r[q]) for q in QUESTION_IDS}, csv_value(r["status"]))
                    for r in csv.DictReader(f)]
    except FileNotFoundError:
        raise MergeError([f"{gradebook} is missing: grade before merging"]) from None
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise MergeError([f"{gradebook} is not a gradebook written by `grade` ({exc!r})"]) from None


def _feedback_section(questions: dict[str, WrittenQuestion], mine: dict[str, WrittenScore], t: Totals) -> str:
    lines = [WRITTEN_MARKER, "", "## Written answers (graded by TAs)", "",
             "| Question | Score | Max | Comment |", "|---|---:|---:|---|"]
    for qid, q in questions.items():
        s = mine.get(qid, NOT_SCORED)
        score = "not scored yet" if s.score is None else number(s.score)
        lines.append(f"| {md_text(f'{qid} {q.title}')} | {score} | {q.points} | {md_text(s.comment)} |")
    lines += ["", "## Totals", "", "| Part | Score | Max |", "|---|---:|---:|",
              f"| Autograded | {number(t.auto)} | {number(t.auto_max)} |",
              f"| Written answers | {'not scored yet' if t.written_total is None else number(t.written_total)} "
              f"| {number(t.written_max)} |",
              f"| **Total** | **{number(t.grand)}** | {number(t.grand_max)} |"]
    if t.penalised:
        lines.append(f"| Total after the late penalty | {number(t.final)} | {number(t.grand_max)} |")
    if t.unscored:
        lines += ["", f"The total is partial: {t.unscored} of {len(questions)} written answers are not scored yet."]
    return "\n".join(lines) + "\n"


def _late_note(doc: dict) -> LateNote | None:
    """The late policy's outcome ``grade`` wrote into ``results.json`` (None: no policy)."""
    late = doc["extra_data"].get("lateness")
    if late is None:
        return None
    days, penalty = late["late_days"], late["penalty"]
    if not (days is None or type(days) is int) or type(penalty) not in (int, float) or not 0 <= penalty <= 1:
        raise ValueError("extra_data.lateness is not what `grade` writes")
    return LateNote(days, float(penalty), str(late["rule"]), str(late["text"]))


def _merged_results(doc: dict, questions: dict[str, WrittenQuestion], mine: dict[str, WrittenScore], t: Totals) -> str:
    """``results.json`` text with its manual tests replaced by ``mine`` and its score and output by ``t``'s."""
    extra = doc["extra_data"]
    autograded = extra.setdefault(AUTOGRADED_OUTPUT, doc["output"])
    if not isinstance(autograded, str):
        raise TypeError(f"extra_data.{AUTOGRADED_OUTPUT} is not text")
    tests = [test for test in doc["tests"] if "written" not in test.get("tags", [])]
    for qid, q in questions.items():
        s = mine.get(qid, NOT_SCORED)
        if s.score is None:
            continue
        tests.append({"name": f"{qid} {q.title} (graded by a TA)", "number": qid, "score": s.score,
                      "max_score": q.points, "status": "passed" if s.score == q.points else "failed",
                      "output": clip(s.comment, FIELD_CHARS), "output_format": "text", "visibility": "after_published",
                      "tags": ["written", qid]})
    doc["tests"] = tests
    doc["score"] = t.final
    doc["output"] = f"{autograded}\n\n{t.sentence()}"
    extra["written"] = t.written
    extra["totals"] = {"autograded": t.auto, "autograded_max": t.auto_max, "written": t.written_total,
                       "written_max": t.written_max, "total": t.grand, "total_max": t.grand_max,
                       "written_unscored": t.unscored, "final": t.final}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def merge(out: Path, scores: Path, rubric: Path = RUBRIC) -> list[tuple[str, str]]:
    """Merge ``scores`` into ``out``; returns the (student, question) pairs still without a score."""
    questions = load_rubric(rubric)
    try:
        _, key = read_key(out)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise MergeError([str(exc)]) from None
    if not key:
        raise MergeError([f"{key_dir(out) / 'key.csv'} is missing: run `python -m autograder review` first"])
    rows = _auto_rows(out / "gradebook.csv")
    found = read_scores(scores, questions, set(key))
    by_student = {student: {q: found[(code, q)] for q in questions if (code, q) in found} for code, student in key.items()}
    graded = {r.student for r in rows}
    problems = [f"{code} ({student}) has scores but no row in gradebook.csv: grade that submission first"
                for code, student in sorted(key.items()) if by_student[student] and student not in graded]
    written = {s: {q: m.score for q, m in mine.items()} for s, mine in by_student.items()}
    files: dict[Path, str] = {}
    for row in rows:
        folder = student_dir(out, row.student)
        mine = by_student.get(row.student, {})
        try:
            doc = json.loads((folder / "results.json").read_text(encoding="utf-8"))
            t = totals(row.total, written.get(row.student, {}), maxima(questions), _late_note(doc))
            results = _merged_results(doc, questions, mine, t)
            feedback = (folder / "feedback.md").read_text(encoding="utf-8").split(WRITTEN_MARKER)[0].rstrip("\n")
        except FileNotFoundError as exc:
            problems.append(f"{exc.filename} is missing: grade before merging")
            continue
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            problems.append(f"{folder} holds a report `grade` did not write ({exc!r}): grade it again")
            continue
        files[folder / "results.json"] = results
        files[folder / "feedback.md"] = feedback + "\n\n" + _feedback_section(questions, mine, t)
    if problems:
        raise MergeError(problems)
    files[out / "gradebook.csv"] = render_gradebook(rows, written=written, written_points=maxima(questions))
    files[merged_path(out)] = scores_csv(questions, [(code, qid, s) for (code, qid), s in sorted(found.items())])
    on_sheets = {code for code, student in key.items() if student in graded}
    files[out / "review" / "index.html"] = render_index(questions, on_sheets, found)
    for path, text in files.items():
        write_atomic(path, text)
    students = sorted(graded | set(by_student))
    return [(s, q) for s in students for q in questions if by_student.get(s, {}).get(q, NOT_SCORED).score is None]


def reapply(out: Path, rubric: Path = RUBRIC) -> list[tuple[str, str]] | None:
    """Merge the last merged scores again (after ``grade`` rewrote the reports); None if none were merged."""
    merged = merged_path(out)
    return merge(out, merged, rubric) if merged.is_file() else None
