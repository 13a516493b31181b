"""Late policy: started days after the (extended) deadline once the grace is over, per day or a table, capped."""

import datetime as dt
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.course.lateness import (
    PolicyError,
    gradescope_time,
    late_days,
    late_note,
    parse_policy,
    read_policy,
    read_times,
)
from autograder.reports.amendments import LateNote

TZ = dt.timezone(dt.timedelta(hours=1))
DEADLINE = dt.datetime(2026, 12, 1, 23, 59, tzinfo=TZ)
MINUTE = dt.timedelta(minutes=1)
POLICY = """
deadline = 2026-12-01T23:59:00+01:00
grace_minutes = 15
penalty = 0.1
cap = 0.25
[extensions]
ada = 2026-12-03T23:59:00+01:00
bob = 1
"""


def policy(tmp_path, text=POLICY):
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return read_policy(path)


SIMPLE = parse_policy("deadline = 2026-12-01T00:00:00Z\npenalty = 0.5\n")


@pytest.mark.parametrize("student, minutes, days, penalty, final", [
    ("cy", 0, 0, 0, 80.0),                 # exactly at the deadline
    ("cy", 15, 0, 0, 80.0),                # the last minute of the grace
    ("cy", 16, 1, 0.1, 72.0),              # a minute after it: day 1, counted from the deadline
    ("cy", 1440, 1, 0.1, 72.0),            # exactly one day after the deadline
    ("cy", 1441, 2, 0.2, 64.0),
    ("cy", 10 * 1440, 10, 0.25, 60.0),     # capped
    ("ada", 2 * 1440 + 15, 0, 0, 80.0),    # her new deadline, with the grace
    ("ada", 2 * 1440 + 16, 1, 0.1, 72.0),
    ("bob", 1440 + 16, 1, 0.1, 72.0),      # one day more
])
def test_per_day_policy_at_its_boundaries(tmp_path, student, minutes, days, penalty, final):
    note = late_note(policy(tmp_path), student, DEADLINE + minutes * MINUTE)
    assert (note.late_days, note.penalty, note.final(80.0)) == (days, penalty, final)


@given(minutes=st.integers(-5000, 30 * 1440), grace=st.integers(0, 1440), percent=st.integers(0, 100),
       cap=st.integers(0, 100), score=st.integers(0, 10000))
def test_the_penalty_arithmetic_is_exact(minutes, grace, percent, cap, score):
    rule = parse_policy(f"deadline = 2026-12-01T23:59:00+01:00\ngrace_minutes = {grace}\n"
                                 f"penalty = {percent / 100!r}\ncap = {cap / 100!r}\n")
    submitted = DEADLINE + minutes * MINUTE
    days = 0 if minutes <= grace else -(-minutes // 1440)
    assert late_days(rule, "x", submitted) == days
    expected = min(Fraction(percent, 100) * days, Fraction(cap, 100))
    note = late_note(rule, "x", submitted.astimezone(dt.timezone.utc))  # the same instant, another offset
    assert (note.late_days, Fraction(repr(note.penalty))) == (days, expected)
    assert note.final(score / 100) == float(round(Fraction(score, 100) * (1 - expected), 2))


def test_a_table_takes_its_last_step_before_the_days_late(tmp_path):
    p = policy(tmp_path, 'deadline = 2026-12-01T00:00:00Z\ncap = 0.4\n[penalty]\n2 = 0.05\n3 = 0.2\n5 = 0.5\n')
    start = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    assert [p.penalty(d) for d in (0, 1, 2, 3, 4, 5, 40)] == [0, 0, Fraction(1, 20), Fraction(1, 5),
                                                              Fraction(1, 5), Fraction(2, 5), Fraction(2, 5)]
    assert late_note(p, "x", start + dt.timedelta(days=2, minutes=1)).penalty == 0.2
    assert "5% from day 2, 20% from day 3, 50% from day 5 late, at most 40%" in p.rule("x")


@pytest.mark.parametrize("text, problem", [
    ("deadline = 2026-12-01T23:59:00\npenalty = 0.1\n", "UTC offset"),   # a local time
    ('deadline = "monday"\npenalty = 0.1\n', "not an ISO-8601"),
    ("deadline = 2026-12-01T23:59:00Z\npenalty = 10\n", "penalty must be a fraction"),
    ("deadline = 2026-12-01T23:59:00Z\n", "penalty is missing"),
    ("deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\ncap = -1\n", "cap must be"),
    ("deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\ngrace_minutes = 1.5\n", "grace_minutes"),
    ("deadline = 2026-12-01T23:59:00Z\n[penalty]\nx = 0.1\n", "not a number of days"),
    ("deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\nlate = 1\n", "unknown setting 'late'"),
    ("deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\n[extensions]\nada = true\n", "extension of 'ada'"),
    ("deadline = [\n", "not valid TOML"),
    ("penalty = 0.1\n", "deadline must be"),
])
def test_a_bad_policy_is_refused_with_its_problem(tmp_path, text, problem):
    with pytest.raises(PolicyError, match=problem):
        policy(tmp_path, text)


GOOD = "deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\n"


@pytest.mark.parametrize("text, problem", [
    (GOOD + "x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    (GOOD + "cap = 1" + "0" * 5000 + "\n", "a number with too many digits"),
    ("deadline = 2026-12-01T23:59:00Z\n[penalty]\n" + "1" * 5000 + " = 0.1\n", "not a number of days"),
    ("deadline = 2026-12-01T23:59:00Z\n[penalty]\n1 = 0.1\n'01' = 0.9\n", "day 1 is given twice"),
])
def test_a_hostile_policy_is_one_usage_error_line(tmp_path, capsys, text, problem):
    from autograder.cli import main

    (tmp_path / "subs").mkdir()
    (tmp_path / "policy.toml").write_text(text)
    (tmp_path / "times.csv").write_text("student,timestamp\n")
    assert main(["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--policy",
                 str(tmp_path / "policy.toml"), "--submitted-at", str(tmp_path / "times.csv")]) == 2
    said = capsys.readouterr()
    assert problem in said.out + said.err and "Traceback" not in said.out + said.err
    assert not (tmp_path / "out").exists()


def test_a_policy_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_bytes(b"\xff\xfe\x00deadline")
    with pytest.raises(PolicyError, match="cannot be read"):
        read_policy(path)


def test_a_bad_row_of_the_times_costs_only_its_student(tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("\ufeffStudent,Timestamp\nada,2026-12-02T10:00:00+00:00\n'=bob,2026-12-02T10:00:00Z\n"
                    "cy,yesterday\ndee,2026-12-02T10:00:00\neve,1,2\nfay,2026-12-02T10:00:00Z\n"
                    "fay,2026-12-03T10:00:00Z\n,\n\n", encoding="utf-8")
    times = read_times(path)
    assert times["ada"] == dt.datetime(2026, 12, 2, 10, tzinfo=dt.timezone.utc) and "=bob" in times
    for student, why in (("cy", "not an ISO-8601"), ("dee", "UTC offset"), ("eve", "expected 2 fields"),
                         ("fay", "a second, different time")):
        assert why in times[student]
        note = late_note(SIMPLE, student, times[student])
        assert note == LateNote(None, 0.0, note.rule, f"lateness unknown: {times[student]}")
    missing = late_note(SIMPLE, "gus", None)
    assert missing.text == "lateness unknown: no submission time for this student" and missing.penalty == 0


@pytest.mark.parametrize("text", ["ada,2026-12-02T10:00:00Z\n", "", '"unclosed\n'])
def test_a_times_file_without_its_header_is_refused(tmp_path, text):
    path = tmp_path / "times.csv"
    path.write_text(text)
    with pytest.raises(PolicyError):
        read_times(path)


def test_gradescope_metadata_gives_the_time_or_why_not(tmp_path):
    meta = tmp_path / "submission_metadata.json"
    meta.write_text('{"created_at": "2026-12-02T10:00:00.123456-08:00", "users": [], "assignment": {}}')
    assert gradescope_time(meta) == dt.datetime(2026, 12, 2, 18, 0, 0, 123456, tzinfo=dt.timezone.utc)
    for text, why in (("not json", "not the JSON"), ("[1]", "not the JSON"), ('{"created_at": 5}', "UTC offset"),
                      ("{}", "UTC offset"), ("[" * 100000, "not the JSON")):
        meta.write_text(text)
        assert why in gradescope_time(meta)
    assert "cannot be read" in gradescope_time(tmp_path / "absent.json")


def test_a_bad_policy_or_times_file_is_a_usage_error_before_any_grading(tmp_path):
    from autograder.cli import main

    (tmp_path / "subs").mkdir()
    (tmp_path / "policy.toml").write_text("deadline = 2026-12-01T23:59:00\npenalty = 0.1\n")
    (tmp_path / "good.toml").write_text("deadline = 2026-12-01T23:59:00Z\npenalty = 0.1\n")
    (tmp_path / "times.csv").write_text("who,when\n")
    grade = ["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out")]
    assert main([*grade, "--policy", str(tmp_path / "policy.toml"), "--submitted-at", str(tmp_path / "times.csv")]) == 2
    assert main([*grade, "--policy", str(tmp_path / "good.toml"), "--submitted-at", str(tmp_path / "times.csv")]) == 2
    assert main([*grade, "--policy", str(tmp_path / "good.toml")]) == 2
    assert main(["job", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--policy", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "out").exists()


def test_the_job_route_scores_results_json_after_the_penalty(tmp_path):
    import json

    from autograder.contract import QUESTION_IDS
    from autograder.grading import Graded
    from autograder.reports.amendments import Amendments
    from autograder.runner import write_reports_in

    graded = Graded("k", "ok", {q: 2.0 for q in QUESTION_IDS}, (), (), True, seconds=3.0)
    meta = tmp_path / "submission_metadata.json"
    meta.write_text('{"created_at": "2026-12-03T10:00:00.5-08:00"}')
    note = late_note(parse_policy("deadline = 2026-12-01T23:59:00+01:00\npenalty = 0.1\n"), "x", gradescope_time(meta))
    write_reports_in(tmp_path, "x", graded, True, Amendments(lateness=note))
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["score"] == round(graded.total * 0.8, 2) and doc["execution_time"] == 3.0
    assert doc["extra_data"]["lateness"]["late_days"] == 2 and "2 days late, penalty 20%" in doc["output"]
    assert "score after the late penalty" in (tmp_path / "feedback.md").read_text()
