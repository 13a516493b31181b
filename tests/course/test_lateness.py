"""Late policy: late days counted from the (extended) deadline after the grace, per-day or table, capped."""

import datetime as dt

import pytest

from autograder.course.lateness import PolicyError, gradescope_submitted_at, lateness, read_policy, read_submitted_at

POLICY = """
deadline = 2026-12-01T23:59:00+01:00
grace_minutes = 15
per_day = 10
cap = 25
[extensions]
ada = 2026-12-03T23:59:00+01:00
"""
TZ = dt.timezone(dt.timedelta(hours=1))


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize("student, when, days, percent, final", [
    ("bob", at(1, 23, 59), 0, 0, 80.0),            # exactly at the deadline
    ("bob", at(2, 0, 14), 0, 0, 80.0),             # inside the grace period
    ("bob", at(2, 0, 15), 1, 10, 72.0),            # a minute after it
    ("bob", at(2, 23, 0), 1, 10, 72.0),            # within the first day late
    ("bob", at(3, 0, 14), 1, 10, 72.0),
    ("bob", at(3, 0, 16), 2, 20, 64.0),
    ("bob", at(5, 0, 16), 4, 25, 60.0),            # capped
    ("ada", at(3, 12), 0, 0, 80.0),                # her extension
    ("ada", at(4, 1), 1, 10, 72.0),
    ("bob", None, 0, 0, 80.0),                     # no known time: on time
])
def test_per_day_policy(student, when, days, percent, final):
    result = lateness(read_policy(POLICY), student, when, 80.0)
    assert (result.late_days, result.penalty_percent, result.final) == (days, percent, final)


def test_a_table_uses_its_last_step_after_its_end():
    policy = read_policy("deadline = 2026-12-01T00:00:00Z\ntable = [5, 20, 50]\n")
    utc = dt.timezone.utc
    assert [lateness(policy, "x", dt.datetime(2026, 12, d, 1, tzinfo=utc), 100.0).final for d in (1, 2, 3, 9)] == \
        [95.0, 80.0, 50.0, 50.0]
    assert "5%, 20%, 50% for day 1, 2" in policy.describe("x")


@pytest.mark.parametrize("text, problem", [
    ("deadline = 2026-12-01T23:59:00\n", "UTC offset"),                 # naive time
    ("deadline = 2026-12-01T23:59:00Z\nper_day = 150\n", "per_day"),
    ("deadline = 2026-12-01T23:59:00Z\nper_day = 5\ntable = [1]\n", "not both"),
    ("deadline = 2026-12-01T23:59:00Z\npenalty = 5\n", "unknown setting"),
    ("deadline = [\n", "not valid TOML"),
    ("per_day = 5\n", "deadline"),
])
def test_a_bad_policy_says_every_problem(text, problem):
    with pytest.raises(PolicyError, match=problem):
        read_policy(text)


def test_submission_times_from_a_csv_and_from_gradescope(tmp_path):
    times = read_submitted_at("student,submitted_at\nada,2026-12-02T10:00:00+00:00\n'=bob,2026-12-02T10:00:00Z\n")
    assert set(times) == {"ada", "=bob"} and times["ada"].tzinfo is not None
    with pytest.raises(PolicyError, match="appears twice"):
        read_submitted_at("student,submitted_at\nada,2026-12-02T10:00:00Z\nada,2026-12-02T11:00:00Z\n")
    meta = tmp_path / "submission_metadata.json"
    meta.write_text('{"created_at": "2026-12-02T10:00:00.123456-08:00", "users": []}')
    assert gradescope_submitted_at(meta) == dt.datetime(2026, 12, 2, 18, 0, 0, 123456, tzinfo=dt.timezone.utc)
    meta.write_text("not json")
    assert gradescope_submitted_at(meta) is None
