"""`python -m autograder check`'s table and exit code, on made-up results (no sandbox, no student process).

The bundle runs of the same command on real notebooks are in test_bundle_runs.py.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest

from autograder.reports.layout import plain_text
import autograder.cli as cli
from autograder import grading
from autograder.sandbox import process
from autograder.checks import CheckResult
from autograder.checks.framework import FailureRecord

FAILURE = FailureRecord(
    "raised ValueError: [/oops] [bold red]no", kind="value", call="covariance_from_scale_tril(L=tensor([[2.]]))",
    shrunk=True, expected="tensor([[4.]])", got="raised ValueError: [/oops] [bold red]no", hint="Σ = L @ L.mT",
)


def _run(monkeypatch, capsys, tmp_path, results, status="ok", qids=("B2",)):
    monkeypatch.setattr(process, "Sandbox", contextlib.nullcontext)
    monkeypatch.setattr(grading, "grade_notebook", lambda data, **kw: SimpleNamespace(checks=tuple(results), status=status))
    notebook = tmp_path / "mine.ipynb"
    notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    code = cli.main(["check", str(notebook), *[a for q in qids for a in ("-q", q)]])
    return code, capsys.readouterr().out


def _result(status: str, failure: FailureRecord | None = None) -> CheckResult:
    return CheckResult("B2", "Σ = L Lᵀ", "public", 1.0 if status == "passed" else 0.0, 1.0, status, failure)


def test_a_failure_shows_its_check_reason_and_input_in_the_table_and_exits_1(monkeypatch, capsys, tmp_path):
    code, out = _run(monkeypatch, capsys, tmp_path, [_result("error", FAILURE)])
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("│ B2"))
    assert "failed" in row and "Σ = L Lᵀ (error): got raised ValueError: [/oops] [bold red]no" in row
    assert "covariance_from_scale_tril(L=tensor([[2.]]))" in row and "(shrunk)" not in row
    assert plain_text(_result("error", FAILURE)) in out  # the full message follows, student text verbatim (no markup)


def test_all_passed_exits_0(monkeypatch, capsys, tmp_path):
    code, out = _run(monkeypatch, capsys, tmp_path, [_result("passed")])
    assert code == 0 and "Public checks passed" in out


@pytest.mark.parametrize("results", [[], [_result("skipped", FailureRecord("not run: the notebook did not run"))]])
def test_nothing_run_is_not_a_pass(monkeypatch, capsys, tmp_path, results):
    code, out = _run(monkeypatch, capsys, tmp_path, results, status="a cell raised SyntaxError [x]")
    assert code == 1
    assert "notebook: a cell raised SyntaxError [x]" in out
