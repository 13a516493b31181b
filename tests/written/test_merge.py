"""Merging TA scores: tolerant of spreadsheets, all-or-nothing, readable feedback, and a grade rerun after it."""

import csv
import json
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from autograder.cli import main
from autograder.contract import MAX_TOTAL, QUESTION_IDS
from autograder.grading import Graded
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.runner import grade_class, write_reports
from autograder.written.merge import MergeError, merge, reapply
from autograder.written.rubric import RUBRIC as RUBRIC_PATH
from autograder.written.scores import merged_path
from tests.written import helpers
from tests.written.helpers import RUBRIC, STUDENTS



def test_a_spreadsheet_export_is_accepted(graded, tmp_path):
    _, out = graded
    code = helpers.codes(out)["alice"]
    path = helpers.scores_file(tmp_path / "s.csv", [[code.lower(), "W004-3.5", " 4.5 ", "ok"], ["", "", "", ""]], bom=True)
    path.write_text(path.read_text(encoding="utf-8") + "\n\n", encoding="utf-8")  # trailing blank lines
    merge(out, path)
    assert helpers.gradebook(out)["alice"]["W004-3.5"] == "4.5"


def test_the_gradebook_has_a_column_per_written_id_and_totals(graded, tmp_path):
    _, out = graded
    codes = helpers.codes(out)
    merge(out, helpers.scores_file(tmp_path / "s.csv", [[codes["alice"], "W004-3.5", "4", ""], [codes["alice"], "W000-1.2", "2.5", ""]]))
    header = next(csv.reader((out / "gradebook.csv").open()))
    assert header == ["student", "total", "max_total", *QUESTION_IDS, "status", *RUBRIC,
                      "written_total", "written_max", "grand_total", "grand_max", "written_unscored"]
    row = helpers.gradebook(out)["alice"]
    written_max = sum(q.points for q in RUBRIC.values())
    assert (row["total"], row["max_total"]) == (str(len(QUESTION_IDS)), str(MAX_TOTAL))
    assert (row["written_total"], row["written_max"], row["grand_total"], row["grand_max"], row["written_unscored"]) == (
        "6.5", str(written_max), str(len(QUESTION_IDS) + 6.5), str(MAX_TOTAL + written_max), str(len(RUBRIC) - 2))
    bob = helpers.gradebook(out)["bob"]  # nothing scored: blank, not 0, and the grand total is the autograded one
    assert bob["written_total"] == "" and bob["W004-3.5"] == "" and bob["grand_total"] == bob["total"]
    assert bob["written_unscored"] == str(len(RUBRIC))


def test_a_broken_report_stops_the_merge_before_anything_is_written(graded, tmp_path):
    _, out = graded
    codes = helpers.codes(out)
    (out / "carol" / "results.json").write_text("{ not json")  # the last student: the others would be written first
    before = helpers.snapshot(out)
    with pytest.raises(MergeError) as info:
        merge(out, helpers.scores_file(tmp_path / "s.csv", [[codes[s], "W004-3.5", "3", ""] for s in STUDENTS]))
    assert any("carol" in p and "grade it again" in p for p in info.value.problems), info.value.problems
    assert helpers.snapshot(out) == before


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "gradebook.csv").unlink(), "gradebook.csv is missing: grade before merging"),
    (lambda out: (out / "gradebook.csv").write_text("name,points\nx,1\n"), "is not a gradebook written by `grade`"),
    (lambda out: (out / "bob" / "feedback.md").unlink(), "feedback.md is missing: grade before merging"),
    (lambda out: (out / "review-key" / "key.csv").write_text("hello\n"), "is not a key written by"),
    (lambda out: (out / "review-key" / "key.csv").unlink(), "run `python -m autograder review` first"),
])
def test_an_output_folder_that_cannot_take_the_merge_is_refused(graded, tmp_path, damage, message):
    _, out = graded
    scores = helpers.scores_file(tmp_path / "s.csv", [[helpers.codes(out)["alice"], "W004-3.5", "3", ""]])
    damage(out)
    before = helpers.snapshot(out)
    with pytest.raises(MergeError) as info:
        merge(out, scores)
    assert any(message in p for p in info.value.problems), info.value.problems
    assert helpers.snapshot(out) == before


def test_scores_of_a_student_missing_from_the_gradebook_are_refused(graded, tmp_path):
    _, out = graded
    codes = helpers.codes(out)
    rows = [GradebookRow(s, {q: 1.0 for q in QUESTION_IDS}, "ok") for s in ("alice", "bob")]
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    with pytest.raises(MergeError, match="no row in gradebook.csv"):
        merge(out, helpers.scores_file(tmp_path / "s.csv", [[codes["carol"], "W004-3.5", "3", ""]]))


def test_every_missing_score_is_listed_even_for_a_student_without_a_code(graded, tmp_path):
    _, out = graded
    rows = [GradebookRow(s, {q: 1.0 for q in QUESTION_IDS}, "ok") for s in (*STUDENTS, "late")]
    write_reports(out, "late", Graded("k", "ok", rows[-1].scores, (), (), True))
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    codes = helpers.codes(out)
    missing = merge(out, helpers.scores_file(tmp_path / "s.csv", [[codes["alice"], q, "1", ""] for q in RUBRIC]))
    assert {s for s, _ in missing} == {"bob", "carol", "late"} and len(missing) == 3 * len(RUBRIC)
    assert helpers.gradebook(out)["late"]["written_total"] == ""


def _table(feedback: str, heading: str) -> list[list[str]]:
    """The cells of the table under ``heading``, as a Markdown renderer reads them."""
    section = feedback.split(heading, 1)[1].split("\n## ", 1)[0]
    tokens = MarkdownIt("commonmark").enable("table").parse(section)
    rows, row = [], []
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type == "inline":
            row.append(t.content)
        elif t.type == "tr_close":
            rows.append(row)
    return rows


def test_a_comment_with_newlines_and_pipes_keeps_the_feedback_table_whole(graded, tmp_path):
    _, out = graded
    code = helpers.codes(out)["alice"]
    comment = "good start | but:\nthe 2pi terms\n\ndo not cancel"
    merge(out, helpers.scores_file(tmp_path / "s.csv", [[code, "W004-3.5", "3", comment]]))
    rows = _table((out / "alice" / "feedback.md").read_text(), "## Written answers")
    assert [len(r) for r in rows] == [4] * (len(RUBRIC) + 1)
    (row,) = [r for r in rows if r[0].startswith("W004-3.5")]
    assert row[1:] == ["3", "5", "good start | but: the 2pi terms do not cancel"]  # one cell, pipe escaped
    doc = json.loads((out / "alice" / "results.json").read_text())
    assert [t["output"] for t in doc["tests"] if "written" in t["tags"]] == [comment]  # the TA's words, verbatim


def test_a_title_with_a_pipe_keeps_the_feedback_table_whole(graded, tmp_path):
    _, out = graded
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(RUBRIC_PATH.read_text().replace('title = "GMVAE ELBO in closed form"', 'title = "ELBO of q(z | x)"'))
    merge(out, helpers.scores_file(tmp_path / "s.csv", [[helpers.codes(out)["alice"], "W004-3.5", "3", ""]]), rubric=rubric)
    rows = _table((out / "alice" / "feedback.md").read_text(), "## Written answers")
    assert ["W004-3.5 ELBO of q(z | x)", "3", "5", ""] in rows  # an unescaped pipe shifts the score out of its column


def test_the_command_refuses_bad_input_with_exit_code_2_and_writes_nothing(graded, tmp_path, capsys):
    _, out = graded
    before = helpers.snapshot(out)
    bad = helpers.scores_file(tmp_path / "s.csv", [["S-NOBODY", "W004-3.5", "9", ""]])
    assert main(["merge", str(out), "--scores", str(bad)]) == 2
    printed = " ".join(capsys.readouterr().out.split())
    assert "nothing was written" in printed and "unknown student code 'S-NOBODY'" in printed
    assert helpers.snapshot(out) == before


# ---------------------------------------------------------------- a grade run after the merge


def _merged(graded, tmp_path) -> tuple[Path, Path, dict[Path, bytes]]:
    subs, out = graded
    codes = helpers.codes(out)
    merge(out, helpers.scores_file(tmp_path / "s.csv", [[codes["alice"], "W004-3.5", "4", "fine"], [codes["bob"], "W004-3.5", "2", ""]]))
    keep = {p: b for p, b in helpers.snapshot(out).items()  # what a merge writes
            if p.name in ("results.json", "feedback.md", "gradebook.csv") or p.parent.name in ("review", "review-key")}
    return subs, out, keep


def test_reapply_restores_the_written_part_after_grade_rewrote_it(graded, tmp_path):
    subs, out, after_merge = _merged(graded, tmp_path)
    assert merged_path(out).is_file()
    # What `grade` does: a fresh gradebook, and fresh reports for a notebook it grades again.
    rows = [GradebookRow(s, {q: 1.0 for q in QUESTION_IDS}, "ok") for s in STUDENTS]
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    write_reports(out, "alice", Graded("new key", "ok", rows[0].scores, (), (), True))
    assert "W004-3.5" not in (out / "gradebook.csv").read_text()
    reapply(out)
    now = {p: p.read_bytes() for p in after_merge}
    changed = sorted(str(p.relative_to(out)) for p in after_merge if now[p] != after_merge[p])
    assert changed == ["alice/results.json"]  # only its new job key differs
    doc = json.loads((out / "alice" / "results.json").read_text())
    assert [t["score"] for t in doc["tests"] if "written" in t["tags"]] == [4]


def test_reapply_without_a_merge_does_nothing(graded):
    _, out = graded
    before = helpers.snapshot(out)
    assert reapply(out) is None and helpers.snapshot(out) == before


def test_merging_the_same_file_again_after_a_resumed_grade_run_restores_the_written_columns(graded, tmp_path):
    subs, out, after_merge = _merged(graded, tmp_path)
    outcomes = grade_class(subs, out)  # every job key matches: nothing is graded again
    assert all(o.resumed for o in outcomes)
    with (out / "gradebook.csv").open() as f:
        assert "written_total" in next(csv.reader(f))  # grade folds the last merge back in
    assert helpers.gradebook(out)["alice"]["W004-3.5"] == "4"
    assert json.loads((out / "alice" / "results.json").read_text())["score"] == len(QUESTION_IDS) + 4  # kept
    merge(out, tmp_path / "s.csv")
    assert {p: p.read_bytes() for p in after_merge} == after_merge
