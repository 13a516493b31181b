"""The TAs' ``scores.csv``: its columns, and reading it back, every problem at once.

The columns are ``SCORE_COLUMNS``: the student's code, the question's id,
title and maximum (to read, not to fill), the score and a comment. A file
whose first line names at least ``REQUIRED`` (any order, each once, no other
column) is read; a spreadsheet's byte-order mark and blank lines are fine.
A score is digits with at most two decimals (``escape.parse_score``). An
unknown code or question id, a score that is not such a number or is above
the question's points, a duplicate row or a malformed file is reported;
nothing is merged unless every row is right.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from autograder.escape import csv_text, csv_value, parse_score
from autograder.problems import InputProblems
from autograder.reports.totals import number
from autograder.written.rubric import WrittenQuestion

SCORE_COLUMNS = ("student_code", "question", "title", "max", "score", "comment")
REQUIRED = ("student_code", "question", "score", "comment")


class MergeError(InputProblems):
    """The scores file cannot be merged; ``problems`` lists every reason. Nothing was written."""


@dataclass(frozen=True)
class WrittenScore:
    """A TA's score of one answer (None: not scored yet) and comment."""

    score: float | None
    comment: str


def scores_csv(questions: dict[str, WrittenQuestion], rows: list[tuple[str, str, WrittenScore]]) -> str:
    """``scores.csv`` text of ``(code, question id, score)`` rows."""
    return csv_text([SCORE_COLUMNS, *((code, qid, questions[qid].title, questions[qid].points,
                                       "" if s.score is None else number(s.score), s.comment)
                                      for code, qid, s in rows)])


def _columns(header: list[str], name: str) -> dict[str, int]:
    names = [cell.strip().lower() for cell in header]
    unknown = sorted(set(names) - set(SCORE_COLUMNS))
    if unknown or len(set(names)) != len(names) or not set(REQUIRED) <= set(names):
        raise MergeError([f"{name}: the first line must be {','.join(SCORE_COLUMNS)} "
                          f"(at least {','.join(REQUIRED)}, each once, no other column)"])
    return {n: i for i, n in enumerate(names)}


def _score(raw: str, q: WrittenQuestion) -> float | str | None:
    """The score of a cell, None when blank, or the problem with it."""
    if not raw:
        return None
    score = parse_score(raw)
    if isinstance(score, float) and score > q.points:
        return f"score {number(score)} is outside 0…{q.points} for {q.qid}"
    return score


def read_scores(path: Path, questions: dict[str, WrittenQuestion], codes: set[str]) -> dict[tuple[str, str], WrittenScore]:
    """Validated scores by (student code, question id); raises ``MergeError`` listing every problem."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, strict=True))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MergeError([f"{path.name}: cannot be read as CSV ({exc})"]) from None
    column = _columns(rows[0] if rows else [], path.name)
    problems: list[str] = []
    found: dict[tuple[str, str], WrittenScore] = {}
    by_folded = {q.casefold(): q for q in questions}  # a question id is typed in any case
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) != len(column):
            problems.append(f"line {line}: expected {len(column)} fields, found {len(row)}")
            continue
        code, qid, raw, comment = (csv_value(row[column[c]].strip()) for c in REQUIRED)
        code, qid = code.upper(), by_folded.get(qid.casefold(), qid)
        if code not in codes:
            problems.append(f"line {line}: unknown student code {code!r}")
        if qid not in questions:
            problems.append(f"line {line}: unknown question id {qid!r}")
            continue
        if (code, qid) in found:
            problems.append(f"line {line}: a second row for {code} {qid}")
            continue
        score = _score(raw, questions[qid])
        if isinstance(score, str):
            problems.append(f"line {line}: {score}")
            continue
        found[(code, qid)] = WrittenScore(score, comment)
    if problems:
        raise MergeError(problems)
    return found


#: The last merged scores, validated (``grade`` merges them again after rewriting the reports).
MERGED = "merged_scores.csv"


def merged_path(out: Path) -> Path:
    return out / "review" / MERGED
