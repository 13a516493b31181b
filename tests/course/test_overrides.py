"""Overrides: validated all-or-nothing, kept across runs, applied to a check or a question, shown in the reports;
and the stored graded record they are applied to, read back totally."""

import csv
import dataclasses
import json

import pytest

from autograder.checks import QUESTIONS
from autograder.checks.framework import CheckResult, FailureRecord, Status
from autograder.cli import main
from autograder.contract import QUESTION_IDS
from autograder.course.amend import read_lateness, refresh
from autograder.course.lateness import late_note, parse_policy
from autograder.course.overrides import (
    STORE,
    Override,
    OverrideError,
    apply,
    combine,
    parse,
    read_overrides,
    render_store,
)
from autograder.discovery import student_dir
from autograder.grading import Graded, submission_key
from autograder.reports import GradebookRow, render_feedback, render_gradebook, render_results, write_atomic
from autograder.reports.amendments import Amendments
from autograder.reports.graded_record import RECORD, load_graded, read_graded, render_graded
from autograder.runner import write_reports
from autograder.sandbox.session import CellRun
from autograder.scoring import question_scores

HEADER = "student,question,score,reason,by\n"


def record(name: str, failed: tuple[str, ...] = ()) -> Graded:
    """A graded record of every real check; the checks ``failed`` (``C4.3``) scored 0."""
    checks = []
    for qid in QUESTION_IDS:
        for number, c in enumerate(QUESTIONS[qid], start=1):
            bad = f"{qid}.{number}" in failed
            failure = FailureRecord.of("wrong value", expected="1", got="2", hint="use logsumexp") if bad else None
            checks.append(CheckResult(qid, c.name, c.visibility, 0.0 if bad else float(c.points), float(c.points),
                                      Status.FAILED if bad else Status.PASSED, failure))
    data = name.encode()
    cells = (CellRun(0, "ok", None, "", None), CellRun(1, "error", "ValueError: \ud800\u202e", "out", "a note"))
    return Graded(submission_key(data, 0), "ok", question_scores(checks, QUESTION_IDS), tuple(checks), cells, True,
                  seconds=1.5, grader_errors=("Traceback …",), notebook="0" * 64, seed=3)


ADA = record("ada", ("C4.3", "B2.1"))
RECORDS = {"ada": ADA, "=bob": record("bob"), "cy": None}


@pytest.mark.parametrize("row, problem", [
    ("mallory,C4,1,x,y", "unknown student 'mallory'"),
    ("ada,Z9,1,x,y", "unknown question 'Z9'"),
    ("ada,C4.99,1,x,y", "unknown check 'C4.99'"),
    ("ada,C4.3,2.5,x,y", "outside 0…2 for C4.3"),
    ("ada,C4,12,x,y", "outside 0…11 for C4"),
    ("ada,C4,-1,x,y", "score '-1' has a minus sign"),
    ("ada,C4,-0,x,y", "score '-0' has a minus sign"),
    ("ada,C4,nan,x,y", "not a number"),
    *((f"ada,C4,{cell},x,y", f"score {cell!r} is not a number")
      for cell in ("-0.004", "1_0", "\uff11", "\u0663", "1e0", "1.234")),
    ("ada,C4,abc,x,y", "not a number"),
    ("ada,C4,1, ,y", "needs a reason"),
    ("ada,C4,1,x", "expected 5 fields"),
    ("cy,C4,1,x,y", "record of 'cy' cannot be read"),
    ("ada,c4,1,again,y", "a second row for ada C4"),
])
def test_a_bad_row_is_refused_with_its_line_and_problem(row, problem):
    with pytest.raises(OverrideError) as info:
        parse(f"{HEADER}ada,C4,2,fine,TA\n{row}\n", RECORDS)
    [only] = info.value.problems
    assert only.startswith("line 3: ") and problem in only


def test_every_problem_is_listed_at_once_and_ids_are_case_insensitive():
    with pytest.raises(OverrideError) as info:
        parse(f"{HEADER}mallory,C4,1,x,y\nada,C4,99,x,y\n", RECORDS)
    assert len(info.value.problems) == 2
    found = parse(f"\ufeff{HEADER.upper()}ada,c4.3,1.5,stable form is fine,TA Kim\n'=bob,b2,1,partial,\n\n", RECORDS)
    assert found == [Override("ada", "C4.3", 1.5, "stable form is fine", "TA Kim"),
                     Override("=bob", "B2", 1.0, "partial", "")]
    for text in ("ada,C4,1,x,y\n", "", "student,question,score\n", '"unclosed\n'):
        with pytest.raises(OverrideError, match="first line|cannot be read"):
            parse(text, RECORDS)


def test_a_check_override_then_a_question_override_set_the_scores_and_say_so():
    c4 = ADA.scores["C4"]
    amended, notes = apply(ADA, [Override("ada", "B2", 2.0, "regrade", "TA Lee"),
                                 Override("ada", "C4.3", 2.0, "stable form", "TA Kim")])
    assert amended.scores["C4"] == c4 + 2 and amended.scores["B2"] == 2.0
    assert amended.checks[[i for i, r in enumerate(ADA.checks) if r.qid == "C4"][2]].points == 2.0
    assert [n.item for n in notes] == ["C4.3", "B2"]
    assert notes[1].line() == f"B2: 2/2 (override by TA Lee: regrade; autograded {ADA.scores['B2']:g}/2)"
    both, _ = apply(ADA, [Override("ada", "C4", 11.0, "all right", "TA"), Override("ada", "C4.3", 0.0, "no", "TA")])
    assert both.scores["C4"] == 11.0  # the question's own override comes last


def test_the_later_row_replaces_the_kept_one_and_the_store_reads_back_inert():
    kept = [Override("ada", "C4", 5.0, "old", "TA1"), Override("=bob", "B2", 1.0, "=cmd()|x", "@TA")]
    merged, replaced = combine(kept, [Override("ada", "C4", 7.0, "new", "TA2")])
    assert replaced == [(kept[0], Override("ada", "C4", 7.0, "new", "TA2"))]
    text = render_store(merged)
    assert "'=bob,B2,1,'=cmd()|x,'@TA\n" in text
    assert parse(text, RECORDS) == merged


def test_a_hostile_store_reads_as_what_it_holds_of_sense(tmp_path):
    assert read_overrides(tmp_path) == []
    (tmp_path / STORE).write_bytes(b"\xff\xfe garbage")
    assert read_overrides(tmp_path) == []
    (tmp_path / STORE).write_text(f"{HEADER}ada,C4,x,y,z\nada,C4,1,ok,TA\nada,C4,2,later,TA\n,,,\n")
    assert read_overrides(tmp_path) == [Override("ada", "C4", 2.0, "later", "TA")]


def test_the_reports_show_an_override_with_its_autograded_score():
    amended, notes = apply(ADA, [Override("ada", "C4.3", 1.5, "regrade: *accepted*", "TA Kim")])
    feedback = render_feedback("ada", amended, Amendments(notes))
    assert "override by TA Kim: regrade: \\*accepted\\*; autograded 0/2)" in feedback
    assert "(−0.5 points)" in feedback
    doc = json.loads(render_results(amended, amendments=Amendments(notes)))
    test = next(t for t in doc["tests"] if t["number"] == "C4.3")
    assert test["score"] == 1.5 and test["output"].startswith("C4.3 ") and "autograded 0/2" in test["output"]
    assert doc["score"] == amended.total and doc["extra_data"]["overrides"][0]["autograded"] == 0.0


def test_the_record_reads_back_equal_and_anything_else_reads_as_regrade():
    text = render_graded(ADA)
    assert read_graded(text) == ADA and render_graded(read_graded(text)) == text
    doc = json.loads(text)
    bad = [
        {**doc, "extra": 1},
        {**doc, "scores": {"Z9": 1.0}},
        {**doc, "scores": []},
        {**doc, "gradable": "yes"},
        {**doc, "seed": 1.5},
        {**doc, "checks": [{**doc["checks"][0], "points": 99.0}]},
        {**doc, "checks": [{**doc["checks"][0], "status": "great"}]},
        {**doc, "checks": [{**doc["checks"][0], "qid": ["A1"]}]},
        {**doc, "checks": [{**doc["checks"][0], "failure": {"summary": 1}}]},
        {**doc, "cells": [{"index": "0", "status": "ok", "error": None, "output": "", "note": None}]},
        {**doc, "scores": {"A1": 1.0}},  # checks of questions without a score
        {**doc, "grader_errors": "one"},
        {**doc, "cells": [[0, "ok", None, "", None]]},
        {**doc, "cells": [{**doc["cells"][0], "index": True}]},
    ]
    for value in bad:
        assert read_graded(json.dumps(value)) is None
    for raw in ("", "null", "[]", '{"key": NaN}', "[" * 100000, text[:-20]):
        assert read_graded(raw) is None


def _class(tmp_path):
    out = tmp_path / "out"
    rows = []
    for student, graded in (("ada", ADA), ("=bob", record("bob")), ("cy", record("cy"))):
        write_reports(out, student, graded)
        rows.append(GradebookRow(student, graded.scores, graded.status))
    write_atomic(out / "gradebook.csv", render_gradebook(rows))
    return out, rows


def _snapshot(out):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_override_is_all_or_nothing_then_kept_by_a_rerun_and_no_policy_changes_nothing(tmp_path):
    out, rows = _class(tmp_path)
    (student_dir(out, "cy") / RECORD).write_text('{"hostile": true}')
    before = _snapshot(out)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}ada,C4.3,2,ok,TA\nada,C9,1,x,y\ncy,C4,1,x,y\n")
    assert main(["override", str(out), "--scores", str(bad)]) == 2
    assert _snapshot(out) == before
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}ada,c4.3,2,stable form accepted,TA Kim\n")
    assert main(["override", str(out), "--scores", str(good)]) == 0
    ada = student_dir(out, "ada")
    gradebook = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert float(gradebook["ada"]["C4"]) == ADA.scores["C4"] + 2
    assert "C4.3 " in (ada / "feedback.md").read_text() and (out / STORE).is_file()
    bob = student_dir(out, "=bob") / "feedback.md"
    assert bob.read_bytes() == before[bob][0]
    write_reports(out, "ada", ADA)  # `grade` graded ada again: its reports are the autograded ones …
    amended, warnings = refresh(out, rows, None)  # … until the kept overrides are applied again
    assert json.loads((ada / "results.json").read_text())["extra_data"]["scores"]["C4"] == ADA.scores["C4"] + 2
    assert warnings == [] and next(r for r in amended if r.student == "ada").scores["C4"] == ADA.scores["C4"] + 2
    assert load_graded(ada) == ADA  # the record stays the autograded one
    after = _snapshot(out)
    for student in ("=bob", "cy"):  # no override, no policy: what grading wrote, not even rewritten
        for name in ("feedback.md", "results.json"):
            path = student_dir(out, student) / name
            assert after[path] == before[path]


def test_a_policy_adds_the_late_columns_and_the_rule_and_is_kept_for_later_commands(tmp_path):
    out, rows = _class(tmp_path)
    policy = parse_policy("deadline = 2026-12-01T00:00:00Z\npenalty = 0.1\n")
    import datetime as dt

    lateness = {"ada": late_note(policy, "ada", dt.datetime(2026, 12, 2, 0, 1, tzinfo=dt.timezone.utc)),
                "=bob": late_note(policy, "=bob", "line 3: timestamp 'x' is not an ISO-8601 date and time")}
    from autograder.course.amend import add_late_columns

    refresh(out, rows, lateness)
    add_late_columns(out, lateness)
    gradebook = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert (gradebook["ada"]["late_days"], gradebook["ada"]["penalty"]) == ("2", "0.2")
    assert float(gradebook["ada"]["final"]) == round(ADA.total * 0.8, 2)
    assert (gradebook["'=bob"]["late_days"], gradebook["'=bob"]["final"]) == ("", gradebook["'=bob"]["total"])
    assert gradebook["cy"]["final"] == ""
    assert "lateness unknown: line 3" in (student_dir(out, "=bob") / "feedback.md").read_text()
    doc = json.loads((student_dir(out, "ada") / "results.json").read_text())
    assert doc["score"] == round(ADA.total * 0.8, 2) and doc["extra_data"]["lateness"]["late_days"] == 2
    assert read_lateness(out) == lateness
    refresh(out, rows, None)  # a grade without a policy: no columns, no lateness kept
    assert read_lateness(out) is None and "late_days" not in (out / "gradebook.csv").read_text()


def test_graded_record_with_an_unrenderable_override_is_left_as_graded(tmp_path, monkeypatch):
    out, rows = _class(tmp_path)
    (out / STORE).write_text(f"{HEADER}ada,C4.3,2,ok,TA\nada,C4.77,1,gone,TA\nzed,C4,1,x,y\n")
    monkeypatch.setattr("autograder.course.amend.render_feedback", lambda *a: 1 / 0)
    before = _snapshot(out)
    _, warnings = refresh(out, rows, None)
    assert "C4.77" in warnings[0] and "zed" in warnings[-1]
    assert sum("ZeroDivisionError" in w for w in warnings) == 3 and len(warnings) == 5
    assert all(_snapshot(out)[p] == b for p, b in before.items() if p.name != "gradebook.csv")
    assert load_graded(student_dir(out, "ada")) == ADA


@pytest.mark.slow
def test_a_grade_rerun_applies_the_kept_overrides_and_the_late_policy(tmp_path):
    """`grade` (every job resumed: the records carry the real job keys) keeps the overrides and adds lateness."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    for student in ("ada", "bob"):
        data = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}).encode() + student.encode()
        (subs / f"{student}.ipynb").write_bytes(data)
        write_reports(out, student, dataclasses.replace(ADA, key=submission_key(data, 0)))
    (out / STORE).write_text(f"{HEADER}ada,C4.3,2,stable form accepted,TA Kim\n")
    (tmp_path / "policy.toml").write_text("deadline = 2026-12-01T23:59:00+01:00\ngrace_minutes = 15\npenalty = 0.1\n")
    (tmp_path / "times.csv").write_text("student,timestamp\nada,2026-12-02T00:15:00+01:00\nbob,soon\n")
    args = ["grade", str(subs), "--out", str(out), "--json", "--policy", str(tmp_path / "policy.toml"),
            "--submitted-at", str(tmp_path / "times.csv")]
    assert main(args) == 0
    gradebook = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert float(gradebook["ada"]["C4"]) == ADA.scores["C4"] + 2 and gradebook["ada"]["late_days"] == "1"
    assert float(gradebook["ada"]["final"]) == round((ADA.total + 2) * 0.9, 2) and gradebook["bob"]["late_days"] == ""
    assert "lateness unknown" in (student_dir(out, "bob") / "feedback.md").read_text()
    assert main(args[:5]) == 0  # no policy: no lateness columns, the override stays
    gradebook = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert "final" not in gradebook["ada"] and float(gradebook["ada"]["C4"]) == ADA.scores["C4"] + 2
    (tmp_path / "policy.toml").write_text("deadline = 2026-12-01T23:59:00\n")
    assert main(args) == 2
