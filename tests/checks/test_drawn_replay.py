"""A property check replayed from the runs kept in ``checks.drawn`` is the plain hypothesis run, call for call:
the same result, the same message and shrunk input, and the same calls seen by the student's code, whoever
was graded before (no sandbox: a namespace of this process)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from hypothesis import strategies as st

from autograder.checks import drawn
from autograder.checks.framework import HIDDEN, Check, Context, for_all, run_check
from autograder.local import LocalSession

NAME = "scale_tril_from_raw"  # the contract's name of question B1 (the check calls it with ``raw=``)


@for_all(st.lists(st.integers(-4, 4), min_size=1, max_size=6), max_examples=12)
def _doubles(ctx: Context, xs: list[int]) -> None:
    got = ctx.call(raw=torch.tensor(xs, dtype=torch.float64))
    if not torch.equal(got, 2 * torch.tensor(xs, dtype=torch.float64)):
        ctx.fail("not doubled", expected=2 * torch.tensor(xs, dtype=torch.float64), got=got)


CHECK = Check("B1", "doubles (test of checks.drawn)", 1.0, HIDDEN, "", _doubles, "property")


def _student(kind: str) -> tuple[Callable[..., torch.Tensor], list[list[float]]]:
    """A student's function of one kind, and the list of the inputs it was called with."""
    seen: list[list[float]] = []

    def fn(raw: torch.Tensor) -> torch.Tensor:
        seen.append(raw.tolist())
        if kind == "stub":
            raise NotImplementedError
        if kind == "big" and raw.abs().max() > 2:
            return raw
        if kind == "long" and len(seen) > 1 and raw.numel() > 3:
            raise IndexError("too long")
        if kind == "fifth" and len(seen) == 5:  # stateful: only its fifth call is wrong
            return raw
        return 2 * raw

    return fn, seen


def _grade(kind: str, seed: int = 0) -> tuple[tuple, list[list[float]]]:
    fn, seen = _student(kind)
    result = run_check(LocalSession({NAME: fn}), CHECK, seed, time.monotonic() + 60)
    return (result.status, result.points, result.failure), seen


KINDS = ("right", "big", "stub", "long", "fifth", "right")


@pytest.fixture(autouse=True)
def _no_trees():
    drawn.forget()
    yield
    drawn.forget()


def test_every_kind_of_student_replays_exactly_the_plain_hypothesis_run():
    plain = {}
    for kind in KINDS:
        drawn.forget()
        plain[kind] = _grade(kind)
    drawn.forget()
    for kind in KINDS:  # one process, one tree: each later student walks what the earlier ones grew
        assert _grade(kind) == plain[kind], kind
    assert {k: r[0][0] for k, r in plain.items()} == {
        "right": "passed", "big": "failed", "stub": "error", "long": "error", "fifth": "failed"}


def test_a_replayed_run_makes_no_hypothesis_run_and_another_seed_has_its_own_tree(monkeypatch):
    first = _grade("big")
    monkeypatch.setattr(drawn.Replay, "example", lambda *a: pytest.fail("hypothesis ran"))
    assert _grade("big") == first
    monkeypatch.undo()
    other = _grade("big", seed=1)
    drawn.forget()
    assert _grade("big", seed=1) == other


def test_a_tree_that_does_not_match_what_hypothesis_draws_is_dropped():
    first = _grade("right")
    (record,) = drawn._RECORDS.values()
    record.root.choices = ("not", "these")  # as if hypothesis chose another first example
    assert _grade("big")[0][0] == "failed"
    assert not record.usable
    assert _grade("right") == first
