"""Fixtures to run checks against code strings in a real sandboxed student process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from autograder.checks import QUESTIONS, CheckResult, run_check
from autograder.checks.compare import DTYPE_CHECK, LONG_CHECK, UNBATCHED
from autograder.checks.framework import QUESTION_SECONDS
from autograder.notebook import CodeCell
from autograder.sandbox.process import Sandbox
from autograder.sandbox.session import StudentSession

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "student_template"))
from build import SolutionWriter  # noqa: E402

PRELUDE = "import math\nimport torch\nimport torch.nn.functional as F\nimport sympy\nfrom torch import distributions as D\n"


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox() as sb:
        yield sb


def reference_source(name: str) -> str:
    """The solution notebook's code for ``name`` (reference implementation and its helpers)."""
    return SolutionWriter().code_for(name)


@pytest.fixture
def grade_checks(sandbox):
    """``grade_checks(source, qid, names, seed)`` → the results of the checks of ``qid`` named ``names``, in one
    student session."""

    def run(source: str, qid: str, names: list[str], seed: int = 0) -> list[CheckResult]:
        import time

        chosen = [c for c in QUESTIONS[qid] if c.name in names]
        assert len(chosen) == len(names), names
        cells = (CodeCell(0, PRELUDE), CodeCell(1, source))
        with StudentSession(sandbox, cells) as session:
            assert session.runs[1].status == "ok", session.runs[1].error
            deadline = time.monotonic() + QUESTION_SECONDS
            return [run_check(session, c, seed, deadline) for c in chosen]

    return run


@pytest.fixture
def grade(grade_checks):
    """``grade(source, qid)`` → the check results of ``qid`` for code ``source``."""

    def run(source: str, qid: str, seed: int = 0) -> list[CheckResult]:
        return grade_checks(source, qid, [c.name for c in QUESTIONS[qid]], seed)

    return run


def mutated(source: str, old: str, new: str) -> str:
    """``source`` with its one occurrence of ``old`` replaced by ``new``: a one-bug variant of a correct answer."""
    assert source.count(old) == 1, (old, source)
    return source.replace(old, new)


def failed(results: list[CheckResult]) -> set[str]:
    """Names of the checks that did not pass."""
    return {r.check for r in results if r.status != "passed"}


def score(results: list[CheckResult]) -> float:
    return sum(r.points for r in results)


def is_convention(name: str) -> bool:
    """Whether check ``name`` is a question's dtype check or its check without leading batch dimensions
    (public beside the question's one or two public checks of substance)."""
    return name in (DTYPE_CHECK, LONG_CHECK) or name.startswith(UNBATCHED)
