"""In-place mutation of an input (a common bug, ../shared/ASSIGNMENT.md) fails the one check of its question that
is about it (``keeps_inputs``), with a message naming the argument; honest calls of that check pass."""

import pytest

from autograder.checks import QUESTIONS
from autograder.checks.framework import INPLACE_HINT
from autograder.reports.layout import plain_text
from tests.checks.conftest import failed, mutated, reference_source

#: (question, function, the argument written to, the change that writes to it)
IN_PLACE = [
    ("B4", "full_gaussian_log_prob", "z", ("eps = _whiten(z - mu, L)", "eps = _whiten(z.sub_(mu), L)")),
    ("C4", "gmvae_elbo", "gamma", ("reconstruction = _bernoulli_log_likelihood",
                                   "gamma.clamp_(min=0.0)\n    reconstruction = _bernoulli_log_likelihood")),
]


def test_one_check_of_each_question_with_tensor_inputs_is_the_in_place_one():
    flagged = {qid for qid, checks in QUESTIONS.items() if any(c.keeps_inputs for c in checks)}
    assert {"B2", "B3", "B4", "B5", "C1", "C2", "C4", "D1", "D2"} <= flagged
    assert all(sum(c.keeps_inputs for c in QUESTIONS[q]) == 1 for q in flagged)


@pytest.mark.parametrize("qid, name, arg, change", IN_PLACE, ids=[m[0] for m in IN_PLACE])
def test_writing_into_an_input_fails_the_in_place_check_naming_the_argument(grade, qid, name, arg, change):
    results = grade(mutated(reference_source(name), *change), qid)
    (keeper,) = [c.name for c in QUESTIONS[qid] if c.keeps_inputs]
    assert keeper in failed(results)
    message = next(plain_text(r) for r in results if r.check == keeper)
    assert f"{arg} was modified in place" in message and INPLACE_HINT[:40] in message, message
