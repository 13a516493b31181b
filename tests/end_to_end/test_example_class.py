"""The bundled example class: the solution earns 100, the blank template 0, each flawed
student loses points on exactly the question of its trap."""

from pathlib import Path

import pytest

from autograder.contract import BY_ID, MAX_TOTAL, QUESTION_IDS
from autograder.grading import grade_notebook
from autograder.reports.layout import plain_text
from autograder.sandbox.process import Sandbox
from examples.flawed import FLAWS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def graded(sandbox):
    cache = {}

    def get(student: str):
        if student not in cache:
            cache[student] = grade_notebook((EXAMPLES / f"{student}.ipynb").read_bytes(), sandbox=sandbox)
        return cache[student]

    return get


def test_the_solution_scores_full_marks(graded):
    result = graded("solution")
    lost = {r.qid: plain_text(r) for r in result.checks if r.status != "passed"}
    assert lost == {}
    assert result.total == MAX_TOTAL and result.status == "ok"


def test_the_blank_template_scores_zero_with_a_reason_per_check(graded):
    result = graded("blank_template")
    assert result.total == 0
    assert all(r.status == "error" and "NotImplementedError" in plain_text(r) for r in result.checks if r.qid != "A1")


@pytest.mark.parametrize("flaw", FLAWS, ids=lambda f: f.student)
def test_each_flaw_costs_exactly_its_own_question(graded, flaw):
    result = graded(flaw.student)
    losing = {q for q in QUESTION_IDS if result.scores[q] < BY_ID[q].points}
    assert losing == {flaw.qid}, {r.qid: plain_text(r) for r in result.checks if r.status != "passed"}
    failures = [r for r in result.checks if r.qid == flaw.qid and r.status != "passed"]
    assert all(f"{flaw.qid} {flaw.name}" in plain_text(r) and "hint     :" in plain_text(r) for r in failures)


def test_the_example_notebooks_are_built_from_their_sources():
    import sys

    sys.path.insert(0, str(EXAMPLES.parents[1] / "student_template"))
    from build import notebooks, render

    for path, nb in notebooks().items():
        assert path.read_text() == render(nb), f"{path.name} is stale: run make notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 11))
def test_the_solution_scores_full_marks_under_other_seeds(sandbox, seed):
    result = grade_notebook((EXAMPLES / "solution.ipynb").read_bytes(), sandbox=sandbox, seed=seed)
    assert {r.qid: plain_text(r) for r in result.checks if r.status != "passed"} == {}


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 4))
@pytest.mark.parametrize("flaw", FLAWS, ids=lambda f: f.student)
def test_each_flaw_costs_its_question_under_other_seeds(sandbox, flaw, seed):
    result = grade_notebook((EXAMPLES / f"{flaw.student}.ipynb").read_bytes(), sandbox=sandbox, seed=seed)
    assert {q for q in QUESTION_IDS if result.scores[q] < BY_ID[q].points} == {flaw.qid}
