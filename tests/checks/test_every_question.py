"""The reference solution earns every point of every question, under two grading seeds."""

import pytest

from autograder.contract import BY_ID, QUESTION_IDS
from autograder.reports.layout import plain_text
from tests.checks.conftest import reference_source, score


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("qid", QUESTION_IDS)
def test_reference_scores_full_marks(grade, qid, seed):
    results = grade(reference_source(BY_ID[qid].name), qid, seed)
    assert score(results) == BY_ID[qid].points, [plain_text(r) for r in results if r.status != "passed"]
