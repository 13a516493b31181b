"""The injected oracle: checks get the truth from their context, live in the grader, played from a tape in the
student bundle, gradients included; no check module imports the reference."""

from __future__ import annotations

import ast
import sys
import time
from pathlib import Path

import pytest
import torch

import reference
from autograder.checks import QUESTIONS, run_check
from autograder.checks.framework import Status
from autograder.checks import live
from autograder.checks.live import LiveOracle
from autograder.checks.oracle import Oracle, TapeError
from autograder.checks.tape import TapeOracle, default_oracle
from autograder.local import LocalSession

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "student_template"))
from dist_engine import GRADER_ONLY  # noqa: E402

B1_GRADIENT = next(c for c in QUESTIONS["B1"] if c.kind == "gradient")


def _imports_reference(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] \
            if isinstance(node, ast.ImportFrom) else []
        if any(n == "reference" or n.startswith("reference.") for n in names):
            return True
    return False


def test_only_the_grader_only_oracle_modules_import_the_reference():
    importing = {p.relative_to(ROOT / "autograder").as_posix() for p in (ROOT / "autograder").rglob("*.py")
                 if _imports_reference(p)}
    assert importing <= {"checks/live.py", "checks/carried.py"}
    assert importing <= set(GRADER_ONLY)  # so the student bundle ships neither


def test_the_grader_s_oracle_is_the_live_reference():
    assert isinstance(default_oracle(), LiveOracle)


def _run(namespace: dict, truth: Oracle):
    return run_check(LocalSession(namespace), B1_GRADIENT, 0, time.monotonic() + 60, truth=truth)


def _exp_diagonal(raw: torch.Tensor) -> torch.Tensor:
    return torch.tril(raw, -1) + torch.diag_embed(torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)))


def test_a_check_that_differentiates_through_the_reference_plays_from_its_tape():
    solution = {"scale_tril_from_raw": reference.scale_tril_from_raw}
    recording = TapeOracle(source=LiveOracle())
    assert _run(solution, recording).status == Status.PASSED
    record = recording.data[f"B1/{B1_GRADIENT.name}"]
    assert record["examples"] and all(len(q) == 4 for v in record["values"][1:] for q in v)  # value and gradients
    playing = TapeOracle(recording.data)
    assert _run(solution, playing).status == Status.PASSED
    wrong = _run({"scale_tril_from_raw": _exp_diagonal}, TapeOracle(recording.data))
    assert wrong.status == Status.FAILED and "dL/draw" in wrong.failure.hint


class _Twice(Oracle):
    def expected(self, name, args, kwargs):
        return 2 * args[0]

    def expected_grad(self, name, args, kwargs, *, wrt, cotangent, output):
        return 2 * args[0], (torch.full_like(args[0], 2.0),)


def _recorded() -> dict:
    tape = TapeOracle(source=_Twice())
    tape.begin_check("Q/c")
    tape.begin_example(torch.ones(2))
    assert torch.equal(tape.expected("f", (torch.ones(2),), {}), torch.full((2,), 2.0))
    tape.expected_grad("g", (torch.ones(3),), {"k": 1}, wrt=(), cotangent=None, output=None)
    return tape.data


def test_a_played_tape_answers_in_order_and_refuses_another_question():
    tape = TapeOracle(_recorded())
    tape.begin_check("Q/c")
    (example,) = tape.recorded_examples()
    tape.begin_example(example)
    assert torch.equal(tape.expected("f", (torch.zeros(2),), {}), torch.full((2,), 2.0))  # by position, not value
    value, grads = tape.expected_grad("g", (torch.ones(3),), {"k": 5}, wrt=(), cotangent=None, output=None)
    assert torch.equal(grads[0], torch.full((3,), 2.0))
    with pytest.raises(TapeError, match="nothing recorded"):
        tape.expected("f", (torch.zeros(2),), {})


@pytest.mark.parametrize("asked", [("h", (torch.ones(2),)), ("f", (torch.ones(3),)), ("f", (torch.ones(2).double(),))])
def test_a_played_tape_checks_the_name_dtypes_and_shapes_of_each_question(asked):
    tape = TapeOracle(_recorded())
    tape.begin_check("Q/c")
    tape.begin_example(tape.recorded_examples()[0])
    with pytest.raises(TapeError, match="recorded"):
        tape.expected(asked[0], asked[1], {})
    with pytest.raises(TapeError, match="no recording"):
        tape.begin_check("Q/other")


def test_only_the_live_oracle_carries_errors_forward():
    with pytest.raises(TapeError):
        TapeOracle({}).carried(("gmvae_elbo",), 0)
    assert callable(LiveOracle().carried(("gmvae_elbo",), 0))


def test_the_live_oracle_answers_a_repeated_question_as_a_new_call_would(monkeypatch):
    calls = []

    def drawing(x, scale, f=None):
        calls.append(scale)
        return x * scale + torch.randn(x.shape, dtype=x.dtype), scale

    monkeypatch.setitem(live.FUNCTIONS, "drawing", drawing)
    oracle, x = LiveOracle(), torch.arange(3.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        first = oracle.expected("drawing", (x, 2.0), {})
        after = torch.random.get_rng_state()
        torch.manual_seed(1)
        again = oracle.expected("drawing", (x.clone(), 2.0), {})
        assert len(calls) == 1 and torch.equal(again[0], first[0]) and torch.equal(torch.random.get_rng_state(), after)
        again[0].add_(1)  # the check's own copy
        torch.manual_seed(1)
        assert torch.equal(oracle.expected("drawing", (x, 2.0), {})[0], first[0]) and len(calls) == 1
        torch.manual_seed(2)  # another state of the generator
        oracle.expected("drawing", (x, 2.0), {})
        # other arguments: -0.0 is not 0.0, float64 is not float32, a function is not data
        for args, kwargs in [((x, 0.0), {}), ((x, -0.0), {}), ((x.double(), 2.0), {}), ((x, 2.0), {"f": len})] * 2:
            torch.manual_seed(1)
            oracle.expected("drawing", args, kwargs)
    assert len(calls) == 2 + 4 + 1  # the function's question is asked each time
