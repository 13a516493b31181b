"""After a merge, feedback.md, results.json and gradebook.csv show the same autograded, written and grand totals."""

import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from autograder.cli import main
from autograder.contract import MAX_TOTAL, QUESTION_IDS
from autograder.course.amend import render_lateness
from autograder.discovery import student_dir
from autograder.grading import Graded, submission_key
from autograder.reports import GradebookRow, render_gradebook, write_atomic
from autograder.reports.amendments import Amendments, LateNote
from autograder.reports.totals import Totals, totals
from autograder.runner import write_reports_in
from autograder.written.merge import merge
from tests.written import helpers
from tests.written.helpers import RUBRIC

WRITTEN_MAX = sum(q.points for q in RUBRIC.values())
#: Autograded scores with fractions, so that a total rounded differently in one report shows.
AUTO = {q: (0.25 if i % 3 else 1.5) for i, q in enumerate(QUESTION_IDS)}
AUTO_TOTAL = round(sum(AUTO.values()), 2)


def _cells(feedback: str, heading: str) -> list[list[str]]:
    section = feedback.split(heading, 1)[1].split("\n## ", 1)[0]
    rows: list[list[str]] = []
    row: list[str] | None = None
    for t in MarkdownIt("commonmark").enable("table").parse(section):
        if t.type == "tr_open":
            row = []
        elif t.type == "inline" and row is not None:
            row.append(t.content.strip("*"))
        elif t.type == "tr_close":
            rows.append(row)
            row = None
    return rows


def test_every_report_shows_the_same_totals_and_unscored_answers_are_blank(tmp_path):
    _, out = helpers.graded_out(tmp_path, AUTO)
    codes = helpers.codes(out)
    qids = list(RUBRIC)
    given_scores = {"alice": {qids[0]: 2.5, qids[1]: 0.0},  # partly scored, one of them a real 0
                    "bob": {},  # nothing scored yet
                    "carol": {q: RUBRIC[q].points for q in qids}}  # everything, full marks
    rows = [[codes[s], q, f"{v:g}", ""] for s, mine in given_scores.items() for q, v in mine.items()]
    rows.append([codes["bob"], qids[2], "", "blank score: not scored yet"])
    merge(out, helpers.scores_file(tmp_path / "s.csv", rows))
    book = helpers.gradebook(out)
    for student, mine in given_scores.items():
        written = round(sum(mine.values()), 2) if mine else None
        grand = round(AUTO_TOTAL + (written or 0), 2)
        unscored = len(RUBRIC) - len(mine)
        row = book[student]
        assert [row[c] for c in ("total", "max_total", "written_total", "written_max", "grand_total", "grand_max",
                                 "written_unscored")] == [
            f"{AUTO_TOTAL:g}", str(MAX_TOTAL), "" if written is None else f"{written:g}", str(WRITTEN_MAX),
            f"{grand:g}", str(MAX_TOTAL + WRITTEN_MAX), str(unscored)]
        assert [row[q] for q in qids] == [f"{mine[q]:g}" if q in mine else "" for q in qids]  # blank, never 0

        doc = json.loads((out / student / "results.json").read_text())
        assert doc["score"] == grand
        sentence = doc["output"].split("\n\n")[-1]
        assert f"Autograded: {AUTO_TOTAL:g} / {MAX_TOTAL}." in sentence
        assert (f"Written answers: {written:g} / {WRITTEN_MAX}." if mine else "Written answers: not scored yet.") in sentence
        assert f"Total: {grand:g} / {MAX_TOTAL + WRITTEN_MAX}" in sentence
        assert ("partial" in sentence) == bool(unscored) and (f"{unscored} written" in sentence) == bool(unscored)
        assert doc["extra_data"]["written"] == {q: mine.get(q) for q in qids}  # null, not 0
        assert sum(t["score"] for t in doc["tests"] if "written" in t["tags"]) == (written or 0)

        feedback = (out / student / "feedback.md").read_text()
        assert f"**Score: {AUTO_TOTAL:g} / {MAX_TOTAL}**" in feedback
        assert _cells(feedback, "## Totals")[1:] == [
            ["Autograded", f"{AUTO_TOTAL:g}", str(MAX_TOTAL)],
            ["Written answers", "not scored yet" if written is None else f"{written:g}", str(WRITTEN_MAX)],
            ["Total", f"{grand:g}", str(MAX_TOTAL + WRITTEN_MAX)]]
        assert ("The total is partial" in feedback) == bool(unscored)
        table = {r[0].split()[0]: r[1] for r in _cells(feedback, "## Written answers")[1:]}
        assert table == {q: f"{mine[q]:g}" if q in mine else "not scored yet" for q in qids}


def test_merging_again_replaces_the_sentence_of_the_output_instead_of_adding_one(tmp_path):
    _, out = helpers.graded_out(tmp_path, AUTO)
    alice = helpers.codes(out)["alice"]
    before = json.loads((out / "alice" / "results.json").read_text())["output"]
    merge(out, helpers.scores_file(tmp_path / "a.csv", [[alice, "W004-3.5", "1", ""]]))
    merge(out, helpers.scores_file(tmp_path / "b.csv", [[alice, "W004-3.5", "3", ""]]))
    output = json.loads((out / "alice" / "results.json").read_text())["output"]
    assert output.startswith(before + "\n\n") and output.count("Autograded:") == 1
    assert f"Total: {AUTO_TOTAL + 3:g} / " in output


# ---------------------------------------------------------------- the totals, unit level

_score = st.one_of(st.none(), st.integers(0, 20).map(lambda n: n / 4))


@given(auto=st.integers(0, 400).map(lambda n: n / 4), written=st.lists(_score, min_size=1, max_size=6))
def test_totals_add_up_and_say_when_they_are_partial(auto, written):
    points = {f"W{i}": 5.0 for i in range(len(written))}
    t = totals(auto, dict(zip(points, written)), points)
    scored = [s for s in written if s is not None]
    assert t.written_total == (round(sum(scored), 2) if scored else None)
    assert t.grand == round(auto + sum(scored), 2) and t.grand_max == MAX_TOTAL + 5 * len(written)
    assert t.unscored == written.count(None)
    assert ("partial" in t.sentence()) == (None in written)
    assert ("not scored yet" in t.written_text()) == (not scored)


@given(st.dictionaries(st.sampled_from(sorted(RUBRIC)), _score, max_size=len(RUBRIC)))
def test_the_gradebook_totals_are_those_of_the_totals(mine):
    row = GradebookRow("ann", AUTO, "ok")
    points = {q: float(p.points) for q, p in RUBRIC.items()}
    text = render_gradebook([row], written={"ann": mine}, written_points=points)
    (cells,) = list(csv.DictReader(io.StringIO(text)))
    t: Totals = totals(row.total, mine, points)
    assert cells["grand_total"] == f"{t.grand:g}" and cells["written_unscored"] == str(t.unscored)
    assert cells["written_total"] == ("" if t.written_total is None else f"{t.written_total:g}")
    assert all(cells[q] == ("" if mine.get(q) is None else f"{mine[q]:g}") for q in RUBRIC)


def test_a_late_penalty_applies_to_the_grand_total_in_every_report(tmp_path, capsys):
    _, out = helpers.graded_out(tmp_path, AUTO)
    rule = "10% per started day late"
    notes = {"alice": LateNote(2, 0.2, rule, "2 days late, penalty 20%"), "bob": LateNote(0, 0.0, rule, "on time")}
    write_atomic(out / "lateness.json", render_lateness(notes))  # what `grade` writes with a late policy
    for student, note in notes.items():
        graded = Graded(submission_key(helpers.notebook(student), 0), "ok", AUTO, (), (), True)
        write_reports_in(student_dir(out, student), student, graded, amendments=Amendments((), note))
    scores = helpers.scores_file(tmp_path / "s.csv", [[helpers.codes(out)["alice"], "W004-3.5", "5", ""]])
    assert main(["merge", str(out), "--scores", str(scores)]) == 0
    final = round((AUTO_TOTAL + 5) * 0.8, 2)
    row = helpers.gradebook(out)["alice"]
    assert row["grand_total"] == f"{AUTO_TOTAL + 5:g}" and row["final"] == f"{final:g}"
    doc = json.loads((out / "alice" / "results.json").read_text())
    assert doc["score"] == final and f"After the late penalty: {final:g} / " in doc["output"]
    assert ["Total after the late penalty", f"{final:g}", str(MAX_TOTAL + WRITTEN_MAX)] in _cells(
        (out / "alice" / "feedback.md").read_text(), "## Totals")
    assert json.loads((out / "bob" / "results.json").read_text())["score"] == AUTO_TOTAL  # on time: no penalty
    assert helpers.gradebook(out)["bob"]["final"] == f"{AUTO_TOTAL:g}"
