"""Review sheets, merging TA scores (round trip and every bad input), and the class report."""

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.contract import QUESTION_IDS
from autograder.grading import Graded
from autograder.written.merge import MergeError, merge
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.reports.class_report import render_class_report, render_timing
from autograder.written.codes import read_key
from autograder.written.review import write_review
from autograder.written.rubric import load_rubric
from autograder.runner import write_reports
from tests.reports.answers import answer_cells

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"
RUBRIC = load_rubric()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self.tags: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)


def _parse(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    return parser


def _notebook(answers: dict[str, str | None], untag: set[str] = frozenset()) -> bytes:
    """A notebook with answer cells as the template lays them out (heading cell, then answer cell)."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": answer_cells(answers, untag)}).encode()


@pytest.fixture
def graded_class(tmp_path):
    """A class folder with three students' written answers and a fake auto-graded output folder."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.ipynb").write_bytes(_notebook({"W004-3.5": "The entropy is $\\frac{1}{2}\\sum_j (1 + \\log 2\\pi\\tilde\\sigma_j^2)$."}))
    (subs / "bob.ipynb").write_bytes(_notebook({"W004-3.5": "*Write your answer here.*"}))
    (subs / "carol.ipynb").write_bytes(_notebook({"W004-3.5": "Untagged but under its heading."}, untag={"W004-3.5"}))
    out = tmp_path / "out"
    rows = []
    for student in ("alice", "bob", "carol"):
        scores = {q: 1.0 for q in QUESTION_IDS}
        graded = Graded("k", "ok", scores, (), (), True)
        write_reports(out, student, graded)
        rows.append(GradebookRow(student, scores, "ok"))
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    write_review(subs, out)
    return subs, out


def _codes(out: Path) -> dict[str, str]:
    _, key = read_key(out)
    return {student: code for code, student in key.items()}


def _scores_file(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["student_code", "question", "score", "comment"], *rows])
    return path


def test_one_self_contained_sheet_per_written_question(graded_class):
    _, out = graded_class
    sheets = sorted(p.stem for p in (out / "review").glob("*.html") if p.stem != "index")
    assert sheets == sorted(RUBRIC)
    page = (out / "review" / "W004-3.5.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org/1998/Math/MathML", "") and "<script" not in page
    parsed = _parse(page)
    text = " ".join(parsed.chunks)
    assert RUBRIC["W004-3.5"].rubric[0][:30] in text and "Model answer" in text
    assert "math" in parsed.tags  # LaTeX rendered as MathML
    codes = _codes(out)
    assert all(code in text for code in codes.values()) and "alice" not in text
    assert "Empty answer" in text and "found by its heading" in text and text.count("score:") == 3


def test_codes_are_stable_across_runs(graded_class):
    subs, out = graded_class
    before = _codes(out)
    write_review(subs, out)
    assert _codes(out) == before


def test_missing_answers_show_as_missing(graded_class):
    _, out = graded_class
    text = " ".join(_parse((out / "review" / "W000-1.2.html").read_text()).chunks)
    assert text.count("No answer") == 3


def test_merge_round_trip_is_idempotent(graded_class, tmp_path):
    _, out = graded_class
    codes = _codes(out)
    scores = _scores_file(tmp_path / "s.csv", [[codes["alice"], "W004-3.5", "4", "good; missing the 2pi cancellation"],
                                               [codes["bob"], "W004-3.5", "0", "no answer"]])
    missing = merge(out, scores)
    assert ("carol", "W004-3.5") in missing and ("alice", "W004-3.5") not in missing
    once = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix in (".csv", ".json", ".md")}
    merge(out, scores)
    assert {p: p.read_bytes() for p in once} == once
    rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert rows["alice"]["W004-3.5"] == "4" and rows["alice"]["written_total"] == "4"
    assert rows["alice"]["grand_total"] == str(len(QUESTION_IDS) + 4) and rows["carol"]["W004-3.5"] == ""
    doc = json.loads((out / "alice" / "results.json").read_text())
    manual = [t for t in doc["tests"] if "written" in t["tags"]]
    assert manual[0]["score"] == 4 and "2pi" in manual[0]["output"] and doc["score"] == len(QUESTION_IDS) + 4
    assert "## Written answers (graded by TAs)" in (out / "alice" / "feedback.md").read_text()


def test_an_updated_file_replaces_the_previous_merge(graded_class, tmp_path):
    _, out = graded_class
    code = _codes(out)["alice"]
    merge(out, _scores_file(tmp_path / "a.csv", [[code, "W004-3.5", "2", ""]]))
    merge(out, _scores_file(tmp_path / "b.csv", [[code, "W004-3.5", "5", "regraded"]]))
    doc = json.loads((out / "alice" / "results.json").read_text())
    assert [t["score"] for t in doc["tests"] if "written" in t["tags"]] == [5]
    assert (out / "alice" / "feedback.md").read_text().count("## Written answers") == 1


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["S-NOBODY", "W004-3.5", "1", ""]], "unknown student code 'S-NOBODY'"),
        ([["{alice}", "W999-1", "1", ""]], "unknown question id 'W999-1'"),
        ([["{alice}", "W004-3.5", "6", ""]], "score 6 is outside 0…5 for W004-3.5"),
        ([["{alice}", "W004-3.5", "-1", ""]], "score '-1' has a minus sign"),
        ([["{alice}", "W004-3.5", "-0", ""]], "score '-0' has a minus sign"),
        ([["{alice}", "W004-3.5", "four", ""]], "score 'four' is not a number"),
        *(([["{alice}", "W004-3.5", cell, ""]], f"score {cell!r} is not a number")
          for cell in ("1_0", "0_1", "\uff11", "\u0663", "1e0", "inf", "1.234", "+1", "1,5")),
        ([["{alice}", "W004-3.5", "1", ""], ["{alice}", "W004-3.5", "2", ""]], "a second row for"),
        ([["{alice}", "W004-3.5", "1"]], "expected 4 fields, found 3"),
    ],
)
def test_bad_input_is_rejected_and_nothing_is_written(graded_class, tmp_path, rows, message):
    _, out = graded_class
    alice = _codes(out)["alice"]
    rows = [[cell.format(alice=alice) for cell in row] for row in rows]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(MergeError) as info:
        merge(out, _scores_file(tmp_path / "bad.csv", rows))
    assert any(message in p for p in info.value.problems), info.value.problems
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_malformed_csv_is_rejected(graded_class, tmp_path):
    _, out = graded_class
    bad = tmp_path / "bad.csv"
    bad.write_text("student_code;question;score;comment\n")
    with pytest.raises(MergeError, match="the first line must be"):
        merge(out, bad)


def test_the_class_report_lists_statuses_and_failures_and_keeps_timings_apart(graded_class):
    _, out = graded_class
    rows = [GradebookRow("alice", {q: 1.0 for q in QUESTION_IDS}, "ok"),
            GradebookRow("bob", {q: 0.0 for q in QUESTION_IDS}, "code cell 3 timed out after 60 s")]
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    page = render_class_report(out, {"alice": out / "alice", "bob": out / "bob"})
    parsed = _parse(page)
    text = " ".join(parsed.chunks)
    assert "code cell 3 timed out after 60 s" in text and "timing.csv" in text
    assert "img" in parsed.tags and "data:image/png;base64," in page
    assert "seconds" not in text  # nothing timed: the same class gives the same report however it was graded
    timing = render_timing(out, {"alice": out / "alice", "bob": out / "bob"})
    assert timing.splitlines()[0] == "student,seconds,student_cpu_seconds,grader_seconds" and {r.split(",")[0] for r in timing.splitlines()[1:]} == {"alice", "bob"}
