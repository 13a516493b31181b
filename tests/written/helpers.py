"""A small graded output folder to merge into, and reading back what a merge wrote."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from autograder.contract import QUESTION_IDS
from autograder.grading import Graded, submission_key
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.runner import write_reports
from autograder.written.codes import assign_codes, read_key, write_key
from autograder.written.rubric import load_rubric

RUBRIC = load_rubric()
STUDENTS = ("alice", "bob", "carol")


def notebook(text: str) -> bytes:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "**Answer W004-3.5** (5 points)"},
             {"cell_type": "markdown", "metadata": {"tags": ["answer:W004-3.5"]}, "source": text}]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


def graded_out(tmp_path: Path, scores: dict[str, float] | None = None) -> tuple[Path, Path]:
    """``(submissions, out)``: every student of ``STUDENTS`` graded (``scores``, else 1 point a question),
    with the real job keys (so ``grade`` resumes every student) and a key of codes, as ``review`` leaves it."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    mine = scores or {q: 1.0 for q in QUESTION_IDS}
    rows = []
    for i, student in enumerate(STUDENTS):
        data = notebook(f"answer of student {i}")
        (subs / f"{student}.ipynb").write_bytes(data)
        write_reports(out, student, Graded(submission_key(data, 0), "ok", mine, (), (), True))
        rows.append(GradebookRow(student, mine, "ok"))
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    write_key(out, "salt", {c: s for s, c in assign_codes("salt", list(STUDENTS), {}).items()})
    return subs, out


def codes(out: Path) -> dict[str, str]:
    return {student: code for code, student in read_key(out)[1].items()}


def scores_file(path: Path, rows: list[list[str]], bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        csv.writer(f).writerows([["student_code", "question", "score", "comment"], *rows])
    return path


def snapshot(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def gradebook(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}
