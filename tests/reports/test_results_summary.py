"""results.json's top-level ``output`` in a student's words, and ``execution_time`` on the job route only."""

from __future__ import annotations

import json

from autograder.checks import CheckResult
from autograder.checks.framework import FailureRecord, Status
from autograder.contract import QUESTION_IDS
from autograder.grading import Graded
from autograder.reports import render_results
from autograder.reports.results_json import summary


def _result(visibility: str, status: Status) -> CheckResult:
    failure = None if status == Status.PASSED else FailureRecord("wrong", kind="value")
    return CheckResult("B2", "c", visibility, 1.0 if status == Status.PASSED else 0.0, 1.0, status, failure)


def _graded(checks: tuple[CheckResult, ...], status: str = "ok", seconds: float = 12.3456) -> Graded:
    return Graded("k", status, {q: 0.0 for q in QUESTION_IDS}, checks, (), True, seconds)


MIXED = (*[_result("public", Status.PASSED)] * 3, _result("public", Status.FAILED),
         *[_result("hidden", Status.PASSED)] * 4, _result("hidden", Status.ERROR))


def test_the_output_states_the_public_and_hidden_totals():
    doc = json.loads(render_results(_graded(MIXED)))
    assert doc["output"] == ("Public checks: 3/4 passed. 5 hidden checks are graded after the deadline; "
                             "your score counts both.")


def test_a_status_that_is_not_ok_comes_first_and_one_hidden_check_reads_as_one():
    text = summary(_graded((_result("public", Status.SKIPPED), _result("hidden", Status.SKIPPED)),
                           status="code cell 2 raised NameError: x"))
    assert text == ("Status: code cell 2 raised NameError: x. Public checks: 0/1 passed. "
                    "1 hidden check is graded after the deadline; your score counts both.")


def test_no_hidden_checks_no_hidden_sentence():
    assert summary(_graded((_result("public", Status.PASSED),))) == "Public checks: 1/1 passed."


def test_execution_time_only_when_timed_and_the_class_route_stays_byte_identical():
    untimed = [render_results(_graded(MIXED, seconds=s)) for s in (1.0, 99.0)]
    assert untimed[0] == untimed[1] and "execution_time" not in json.loads(untimed[0])
    timed = json.loads(render_results(_graded(MIXED, seconds=12.3456), timed=True))
    assert timed["execution_time"] == 12.35
    assert {k: v for k, v in timed.items() if k != "execution_time"} == json.loads(untimed[0])


def test_the_job_route_writes_execution_time(tmp_path):
    """``runner.grade_submission`` (one Gradescope container) is the route that times its results.json."""
    from autograder.runner import grade_submission

    (tmp_path / "upload").mkdir()
    (tmp_path / "upload" / "notes.txt").write_text("no notebook here")
    grade_submission(tmp_path / "upload", tmp_path / "results")
    doc = json.loads((tmp_path / "results" / "results.json").read_text())
    assert isinstance(doc["execution_time"], float) and doc["execution_time"] >= 0
    assert doc["output"].startswith("Status: no notebook found") and "Public checks: 0/" in doc["output"]
