"""Unit tests of the bugs the mixed hostile class and the escaping audit found (issues 11 and 14)."""

from __future__ import annotations

import datetime as dt

import pytest

from autograder.course.lateness import PolicyError, late_note, parse_policy


@pytest.mark.parametrize("text, problem", [
    ('deadline = 2026-12-01T23:59:00Z\n[penalty]\n"²" = 0.1\n', "not a number of days"),  # "²".isdigit()
    ("deadline = 9999-12-31T23:00:00Z\npenalty = 0.1\n[extensions]\nbob = 300\n", "years"),
    ("deadline = 9999-12-31T23:00:00Z\npenalty = 0.1\ngrace_minutes = 10080\n", "years"),
    ("deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\n[extensions]\nbob = 9999-12-31T23:00:00Z\n", "years"),
])
def test_a_policy_that_used_to_crash_is_refused_with_its_problem(text, problem):
    with pytest.raises(PolicyError, match=problem):
        parse_policy(text)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_submission_time_at_the_ends_of_the_calendar_costs_only_its_lateness(when):
    policy = parse_policy("deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\ngrace_minutes = 10080\n")
    note = late_note(policy, "x", dt.datetime.fromisoformat(when))
    assert note.late_days is not None and 0 <= note.penalty <= 1


def test_review_reads_a_notebook_as_grade_does(tmp_path, monkeypatch):
    """A notebook swapped for a link (or removed) after discovery gives no answers, never a crash or the
    target's answers."""
    import json

    from autograder.discovery import Submission
    from autograder.written import review

    outside = tmp_path / "outside.ipynb"
    outside.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {"tags": ["answer:W004-2"]},
                                              "source": "someone else's answer"}],
                                   "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ada.ipynb").symlink_to(outside)
    found = [Submission("ada", subs / "ada.ipynb"), Submission("bob", subs / "bob.ipynb")]
    monkeypatch.setattr(review, "discover", lambda folder: found)
    assert review.collect_answers(subs) == {"ada": {}, "bob": {}}


def test_a_written_answer_shows_escape_sequences_and_bidi_overrides_escaped():
    from autograder.reports.markdown import render_markdown

    page = render_markdown("a \x1b[2J\x07 b \u202e c \u2028\n\n- item\tx\r\n")
    assert "\x1b" not in page and "\x07" not in page and "\u202e" not in page and "\u2028" not in page
    assert "\\x1b[2J\\x07" in page and "\\u202e" in page and "<li>item\tx</li>" in page


def test_the_similarity_section_shows_a_student_id_as_every_other_section_does():
    from autograder.course.similarity import Pair
    from autograder.reports.class_sections import name
    from autograder.reports.similarity import render_similarity_section

    page = render_similarity_section([Pair("new\nline", "<b>x</b>", 0.9, {"B2": 0.9}, False)], [])
    assert name("new\nline") in page and "new\\x0aline" in page and "new\nline" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>" not in page



def test_a_graded_record_with_an_integer_too_large_for_a_float_reads_as_none():
    """``math.isfinite(10**400)`` raises OverflowError: a corrupt graded.json used to stop override and grade."""
    from autograder.reports.graded_record import read_graded, render_graded
    from tests.course.test_overrides import ADA

    text = render_graded(ADA)
    seconds = f'"seconds": {ADA.seconds!r}'
    assert seconds in text
    assert read_graded(text.replace(seconds, '"seconds": 1' + "0" * 400)) is None


@pytest.mark.parametrize("text", [
    "[" * 100_000,                                                                    # RecursionError
    '{"extra_data": {"scores": {}, "key": "k", "status": "ok", "x": ' + "1" * 5000 + "}}",  # ValueError
    '{"extra_data": {"scores": {"A1": 1' + "0" * 400 + '}, "key": "k", "status": "ok"}}',   # OverflowError
    '{"extra_data": {"scores": {"A1": "lots"}, "key": "k", "status": "ok"}}',
    '{"extra_data": {"scores": {}, "key": "k"}}',                                      # no status: resume read it
])
def test_a_results_json_that_is_not_ours_reads_as_none_so_the_student_is_graded_again(text):
    from autograder.reports.results_json import read_summary

    assert read_summary(text) is None


def test_a_results_json_of_ours_still_resumes():
    from autograder.reports.results_json import read_summary, render_results
    from tests.course.test_overrides import ADA

    assert read_summary(render_results(ADA))["key"] == ADA.key


def test_the_class_report_and_timing_survive_corrupt_records(tmp_path):
    """A results.json whose score is an integer too large for a float, a run.json nested too deep: the
    student's row stays, the rest of the class report is written."""
    from autograder.reports.class_report import render_class_report, render_timing
    from autograder.reports.gradebook import GradebookRow, render_gradebook

    out = tmp_path / "out"
    (out / "ada").mkdir(parents=True)
    (out / "gradebook.csv").write_text(render_gradebook([GradebookRow("ada", {"A1": 6.0}, "ok")]))
    (out / "ada" / "results.json").write_text(
        '{"extra_data": {"seed": 0}, "tests": [{"score": 1' + "0" * 400 + ', "max_score": 6, '
        '"extra_data": {"qid": "A1", "check": "c"}}]}')
    (out / "ada" / "run.json").write_text("[" * 100_000)
    assert "ada" in render_class_report(out)
    assert render_timing(out, {"ada": out / "ada"}).splitlines()[1] == "ada,0.000,,"


def test_diff_reads_records_that_are_not_ours_as_empty(tmp_path):
    """Deep nesting, a list, ``extra_data`` of another type, a score too large to format: each used to stop
    ``diff``; now the student's moved total is listed with what can be said."""
    from autograder.course.diff import DiffError, diff
    from tests.course.test_diff import _run

    students = {s: {"total": "1"} for s in ("ada", "bob", "cy", "dee")}
    _run(tmp_path / "old", students)
    _run(tmp_path / "new", {s: {"total": "2"} for s in students})
    new = tmp_path / "new"
    (new / "ada" / "results.json").write_text("[" * 100_000)
    (new / "bob" / "results.json").write_text("[1, 2]")
    (new / "cy" / "results.json").write_text('{"extra_data": [1], "tests": []}')
    (new / "dee" / "results.json").write_text('{"extra_data": {"lateness": 5}, "tests": [{"name": "t", "score": 1'
                                              + "0" * 400 + "}]}")
    changes = diff(tmp_path / "old", new)
    assert {c.student for c in changes if c.item == "total"} == set(students)
    (new / "gradebook.csv").write_text("name,total\nada,1\n")  # no student column
    with pytest.raises(DiffError):
        diff(tmp_path / "old", new)
