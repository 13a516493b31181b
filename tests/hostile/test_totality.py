"""Every job is total: a class of honest students plus one notebook of each kind that once stopped
``grade`` with exit 3 gets a complete gradebook, each offender its own one-line status, a grader bug
becomes the status of the submission that triggered it (exit 1, traceback logged), and the honest
students' reports are byte-identical to a class run without the offenders."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
import torch

from autograder import checks, cli, discovery, grading, runner
from autograder.grading import grade_notebook
from autograder.discovery import student_dir
from autograder.escape import csv_value
from autograder.runner import grade_class
from autograder.sandbox import worker
from autograder.sandbox.process import Limits, Sandbox
from tests.hostile.corpus import EMPTY, SOLUTION, Case, append, body, partial, raw
from tests.sandbox.test_wire import LYING_INT

pytestmark = pytest.mark.skipif(not SOLUTION.is_file(), reason="the solution notebook is not built yet (make notebooks)")

LIMITS = Limits(cell_seconds=8, call_seconds=5)
HONEST = {"honest-a": {"KL_SCENARIOS", "covariance_from_scale_tril"}, "honest-z": {"covariance_from_scale_tril"}}
TRIP = "trip the grader"
BUG = "grader error while grading B2: ZeroDivisionError: the grader divided by zero"


def _nb(build, base: dict = EMPTY) -> bytes:
    return Case("x", "", build, frozenset(), "").notebook(base)


def _with(**fields) -> bytes:
    nb = json.loads(_nb(body("return L @ L.mT")))
    nb.update(fields)
    return json.dumps(nb).encode()


BIG_INT = LYING_INT + "return Big(10**400)\n"
LONG_NAME = "m-" + "é" * 120  # 242 bytes of UTF-8: a valid file name, too long once a folder name grows
NOT_UTF8 = os.fsdecode(b"m-" + b"\xff" * 200)  # each byte becomes U+FFFD, three bytes of UTF-8

OFFENDERS: dict[str, tuple[bytes, str]] = {  # student → (notebook, status pattern: fullmatch)
    "m-surrogate-raise": (_nb(append("raise ValueError('bad \\ud800 text')")),
                          r"code cell 1 raised ValueError: bad \\ud800 text"),
    "m-surrogate-return": (_nb(body("return 'x\\udfff'")), "ok"),
    "m-kernelspec-str": (_with(metadata={"kernelspec": "python3", "language_info": 5}), "ok"),
    "m-metadata-types": (_with(cells=[
        {"cell_type": "code", "metadata": [1], "source": "def covariance_from_scale_tril(L):\n    return L\n"},
        {"cell_type": "markdown", "metadata": {"tags": "answer:W000-1.2"}, "source": ["a", "b"]},
        {"cell_type": "markdown", "metadata": {"tags": [1, None]}, "source": "c"},
        {"cell_type": 7, "source": None}]), "ok"),
    "m-huge-int-literal": (raw(b'{"nbformat": 4, "cells": [], "n": ' + b"7" * 5000 + b"}")(None),
                           r"notebook does not parse \(not valid JSON\)"),
    "m-int-subclass": (_nb(body(BIG_INT)), "ok"),
    "m-grader-bug": (_nb(body(f"return {TRIP!r}")), BUG),
    "m-many-cells": (_with(cells=[{"cell_type": "code", "metadata": {}, "source": "x"}] * 15_000),
                     "notebook has 15000 cells, more than the 10000 allowed"),
    LONG_NAME: (_nb(body("return L @ L.mT")), "ok"),
    NOT_UTF8: (_nb(body("return L @ L.mT")), "ok"),
}
LINKS = {"m-link": r"m-link\.ipynb is a symbolic link; submit the notebook itself",
         "m-linked-folder": r"m-linked-folder is a symbolic link; submit the notebook itself",
         "m-link-inside": r"m-link-inside/nb\.ipynb is a symbolic link; submit the notebook itself"}


def _buggy(check):
    """``check`` with a grader bug that only a B2 returning ``TRIP`` sets off."""

    def bug(ctx):
        if ctx.call(L=torch.eye(2)) == TRIP:
            raise ZeroDivisionError("the grader divided by zero")
        check.body(ctx)

    return dataclasses.replace(check, body=bug)


@pytest.fixture(scope="module")
def patched():
    with Sandbox(LIMITS) as sandbox, pytest.MonkeyPatch.context() as mp:
        mp.setattr(worker, "_SANDBOX", sandbox)  # the short time limits of this module
        first, *rest = checks.QUESTIONS["B2"]
        mp.setitem(checks.QUESTIONS, "B2", (_buggy(first), *rest))
        yield sandbox


def _write_class(folder: Path, offenders: bool) -> None:
    folder.mkdir()
    for student, names in HONEST.items():
        (folder / f"{student}.ipynb").write_bytes(partial(names))
    if not offenders:
        return
    for student, (data, _) in OFFENDERS.items():
        (folder / os.fsencode(student + ".ipynb").decode("utf-8", "surrogateescape")).write_bytes(data)
    outside = folder.parent / f"{folder.name}-outside"
    outside.mkdir()
    (outside / "nb.ipynb").write_bytes(partial({"KL_SCENARIOS"}))
    (folder / "m-link.ipynb").symlink_to(folder / "honest-a.ipynb")  # a classmate's notebook
    (folder / "m-linked-folder").symlink_to(outside, target_is_directory=True)
    (folder / "m-link-inside").mkdir()
    (folder / "m-link-inside" / "nb.ipynb").symlink_to(outside / "nb.ipynb")


@pytest.fixture(scope="module")
def classes(tmp_path_factory, patched):
    """(submissions base, (clean out, hostile out)); about a minute, so every test using it is slow."""
    base = tmp_path_factory.mktemp("totality")
    outs = base / "out-clean", base / "out-hostile"
    _write_class(base / "clean", offenders=False)
    _write_class(base / "hostile", offenders=True)
    grade_class(base / "clean", outs[0], jobs=1)
    grade_class(base / "hostile", outs[1], jobs=1)
    return base, outs


def _gradebook(out: Path) -> dict[str, dict[str, str]]:
    """The gradebook's rows, each cell as given to the writer (``escape.csv_value``: backslashes are escaped)."""
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        rows = [{k: csv_value(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return {row["student"]: row for row in rows}


def _student(name: str) -> str:
    return discovery._student_id(name)


@pytest.mark.slow
def test_the_gradebook_is_complete_and_every_offender_has_its_status(classes):
    _, (clean, hostile) = classes
    rows = _gradebook(hostile)
    expected = {_student(s): pattern for s, (_, pattern) in OFFENDERS.items()} | LINKS
    assert set(rows) == set(HONEST) | set(expected)
    for student, pattern in expected.items():
        assert re.fullmatch(pattern, rows[student]["status"]), (student, rows[student]["status"])
    assert (hostile / "report.html").is_file()


@pytest.mark.slow
def test_honest_reports_are_byte_identical_to_a_clean_run(classes):
    _, (clean, hostile) = classes
    for student in HONEST:
        for name in ("results.json", "feedback.md"):
            got, want = (student_dir(out, student) / name for out in (hostile, clean))
            assert got.read_bytes() == want.read_bytes(), (student, name)
    assert {s: r for s, r in _gradebook(hostile).items() if s in HONEST} == _gradebook(clean)


@pytest.mark.slow
def test_folders_are_bounded_unique_and_keep_the_original_id(classes):
    _, (_, hostile) = classes
    rows = _gradebook(hostile)
    dirs = {s: student_dir(hostile, s) for s in rows}
    assert len(set(dirs.values())) == len(dirs)
    for student, folder in dirs.items():
        assert folder.parent == hostile and len(folder.name.encode()) <= 120 and (folder / "results.json").is_file()
    assert _student(LONG_NAME) in rows and _student(NOT_UTF8) in rows  # the gradebook keeps the id itself
    assert dirs[_student(LONG_NAME)].name.startswith("_m-éé")


@pytest.mark.slow
def test_a_symlink_to_a_classmate_is_not_graded_as_that_notebook(classes):
    _, (_, hostile) = classes
    row = _gradebook(hostile)["m-link"]
    assert row["total"] == "0" and "symbolic link" in row["status"]
    text = (student_dir(hostile, "m-link") / "results.json").read_text(encoding="utf-8")
    assert json.loads(text)["score"] == 0


@pytest.mark.slow
def test_a_grader_bug_costs_the_submission_that_set_it_off(classes):
    _, (_, hostile) = classes
    folder = student_dir(hostile, "m-grader-bug")
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert results["extra_data"]["key"] == "" and results["extra_data"]["status"] == BUG  # never resumed
    log = (folder / runner.GRADER_LOG).read_text(encoding="utf-8")
    assert "Traceback" in log and "ZeroDivisionError: the grader divided by zero" in log
    assert not any((student_dir(hostile, s) / runner.GRADER_LOG).exists() for s in HONEST)
    bugged = [t for t in results["tests"] if "grader error" in t["output"]]
    assert len(bugged) == 1 and bugged[0]["score"] == 0


@pytest.mark.slow
def test_grade_exits_1_on_a_grader_error_and_regrades_it(classes, capsys):
    base, (_, hostile) = classes
    assert cli.main(["grade", str(base / "hostile"), "--out", str(hostile), "--json"]) == 1
    students = {s["student"]: s for s in json.loads(capsys.readouterr().out)["students"]}
    assert students["m-grader-bug"]["resumed"] is False and students["m-grader-bug"]["status"] == BUG
    assert all(students[s]["resumed"] for s in HONEST)


def test_an_exception_outside_the_checks_is_the_submissions_status(monkeypatch):
    def broken(data):
        raise KeyError("no such cell")

    monkeypatch.setattr(grading, "read_notebook", broken)
    graded = grade_notebook(partial({"KL_SCENARIOS"}), sandbox=None, qids=("A1", "B2"))  # type: ignore[arg-type]
    assert graded.status == "grader error while grading the submission: KeyError: 'no such cell'"
    assert not graded.gradable and graded.key == "" and graded.scores == {"A1": 0.0, "B2": 0.0}
    assert "KeyError" in graded.grader_errors[0] and all(r.status == "skipped" for r in graded.checks)


def test_a_report_that_cannot_be_rendered_costs_only_that_student(tmp_path, monkeypatch):
    real = runner.render_feedback

    def fragile(student, graded, *more):
        if student == "fragile":
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "a renderer bug")
        return real(student, graded, *more)

    monkeypatch.setattr(runner, "render_feedback", fragile)
    graded = grading.Graded("k", "ok", {"A1": 1.0}, (), (), True)
    outcome = runner._written(student_dir(tmp_path, "fragile"), "fragile", graded)
    assert outcome.status.startswith("grader error while grading the reports: UnicodeEncodeError")
    assert not outcome.gradable
    log = (student_dir(tmp_path, "fragile") / runner.GRADER_LOG).read_text(encoding="utf-8")
    assert log.startswith("Traceback") and "During handling" in log  # the real reports failed, then the plain ones
    assert runner._written(student_dir(tmp_path, "sturdy"), "sturdy", graded).status == "ok"  # others unaffected
    assert not (student_dir(tmp_path, "sturdy") / runner.GRADER_LOG).exists()


# -- the cell that is blamed is the cell that failed ------------------------------------------------------


def _cells(*runs):
    from autograder.notebook import CodeCell
    from autograder.sandbox.session import CellRun

    sources = tuple(CodeCell(i, src) for i, (src, _, _) in enumerate(runs))
    return tuple(CellRun(i, status, error, "", None) for i, (_, status, error) in enumerate(runs)), sources


def test_a_missing_function_blames_the_cell_that_should_have_defined_it():
    cells, sources = _cells(
        ("import time\nwhile True:\n    time.sleep(1)", "timeout", "timed out after 60 s"),
        ("def other():\n    return 1", "ok", None),
        ("def covariance_from_scale_tril(L):\n    return L @ L.mT +", "error", "SyntaxError: invalid syntax (line 2)"),
    )
    reason = grading._missing_reason("missing", "covariance_from_scale_tril", cells, sources)
    assert reason == "covariance_from_scale_tril is not defined (code cell 3: SyntaxError: invalid syntax (line 2))"


def test_without_a_failed_definition_the_first_failed_cell_is_named():
    cells, sources = _cells(("raise RuntimeError('x')", "error", "RuntimeError: x"), ("y = 1", "ok", None))
    assert grading._missing_reason("missing", "f", cells, sources) == "f is not defined (code cell 1: RuntimeError: x)"
    cells, sources = _cells(("y = 1", "ok", None))
    assert grading._missing_reason("missing", "f", cells, sources) == "f is not defined"


# -- a pool worker that dies ---------------------------------------------------------------------------


@pytest.mark.slow  # five pool workers start (torch imported in each)
def test_a_pool_worker_that_dies_costs_only_the_job_it_ran(tmp_path, monkeypatch):
    from tests.hostile import dying_job

    monkeypatch.setattr(runner, "grade_job", dying_job.job)
    students = ["a", "b", dying_job.DIES, "c", "d", "e"]
    outcomes = {o.student: o for o in runner._run([(s, b"") for s in students], 0, tmp_path, 2)}
    assert sorted(outcomes) == sorted(students)
    died = outcomes.pop(dying_job.DIES)
    assert died.status.startswith("grader error while grading the submission: BrokenProcessPool: the grading process "
                                  "died") and not died.gradable
    assert all(o.status == "ok" and o.gradable for o in outcomes.values())
    assert (student_dir(tmp_path, dying_job.DIES) / runner.GRADER_LOG).is_file()


# -- submissions are regular files inside the submissions folder; folder names bounded ------------------


def test_discovery_refuses_links_and_reading_never_follows_one(tmp_path):
    subs, outside = tmp_path / "subs", tmp_path / "outside"
    subs.mkdir()
    outside.mkdir()
    (outside / "secret.ipynb").write_bytes(b"{}")
    (subs / "alice.ipynb").write_bytes(b"{}")
    (subs / "bob.ipynb").symlink_to(subs / "alice.ipynb")
    (subs / "carol").symlink_to(outside, target_is_directory=True)
    (subs / "dave").mkdir()
    (subs / "dave" / "nb.ipynb").symlink_to(outside / "secret.ipynb")
    (subs / "notes.txt").symlink_to(outside / "secret.ipynb")  # not a submission at all
    os.mkfifo(subs / "erin.ipynb")  # never opened: a read would block
    found = {s.student: s for s in discovery.discover(subs)}
    assert sorted(found) == ["alice", "bob", "carol", "dave", "erin"]
    assert found["erin"].path is None and found["erin"].problem == "erin.ipynb is not a regular file; submit the notebook itself"
    assert found["alice"].path == subs / "alice.ipynb" and found["alice"].problem is None
    assert found["bob"].problem == "bob.ipynb is a symbolic link; submit the notebook itself"
    assert found["carol"].problem == "carol is a symbolic link; submit the notebook itself"
    assert found["dave"].problem == "dave/nb.ipynb is a symbolic link; submit the notebook itself"
    assert discovery.read_submission(subs / "alice.ipynb", subs) == b"{}"
    (subs / "alice.ipynb").unlink()
    (subs / "alice.ipynb").symlink_to(outside / "secret.ipynb")  # swapped after discovery
    with pytest.raises(discovery.SubmissionError, match="alice.ipynb is a symbolic link"):
        discovery.read_submission(subs / "alice.ipynb", subs)
    with pytest.raises(discovery.SubmissionError, match="dave/nb.ipynb is a symbolic link"):
        discovery.read_submission(subs / "dave" / "nb.ipynb", subs)
    with pytest.raises(discovery.SubmissionError, match="^carol is a symbolic link"):
        discovery.read_submission(subs / "carol" / "secret.ipynb", subs)
    with pytest.raises(discovery.SubmissionError, match="not a regular file"):
        discovery.read_submission(subs / "erin.ipynb", subs)


NAMES = ["é" * 200, "x" * 255, "\ufffd" * 100, "a/b" * 60, "gradebook.csv", ".hidden", "_x"]


@pytest.mark.parametrize("student", NAMES)
def test_student_folders_are_bounded_and_unique(tmp_path, student):
    folder = student_dir(tmp_path, student)
    assert folder.parent == tmp_path and len(folder.name.encode()) <= discovery.MAX_FOLDER_BYTES + 10
    assert folder.name.startswith("_") and folder != student_dir(tmp_path, student + "y")
    folder.mkdir()  # the file system takes it
    assert student_dir(tmp_path, "plain name") == tmp_path / "plain name"
