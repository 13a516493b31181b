"""A property check replayed from the runs kept in ``checks.drawn`` is the plain hypothesis run, call for call:
the same result, the same message and shrunk input, and the same calls seen by the student's code, whoever
was graded before (no sandbox: a namespace of this process)."""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections.abc import Callable
from random import Random

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from autograder.checks import drawn
from autograder.checks.framework import HIDDEN, Check, Context, for_all, run_check
from autograder.local import LocalSession
from autograder.sandbox.runtime.wire import Fn

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


@st.composite
def _examples(draw):
    """Examples as strategies might draw them: containers of numbers, strings, ``Fn`` and tensors, some of them
    one object twice, views of one storage, transposed, expanded, overlapping, requiring grad or not leaves."""
    pool: list[torch.Tensor] = []

    @st.composite
    def tensors(draw):
        if pool and draw(st.booleans()):
            base = draw(st.sampled_from(pool))
            return draw(st.sampled_from([base, base.detach(), base.reshape(-1)[:1], base.t(), base[None].expand(2, *base.shape)]))
        dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool]))
        shape = draw(st.lists(st.integers(0, 3), max_size=2).map(tuple))
        t = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape).to(dtype)
        t = draw(st.sampled_from([t, t.t(), t.t().contiguous().t(), t.reshape(-1)[1:]]))
        if dtype.is_floating_point and draw(st.booleans()):
            t = t.requires_grad_() if draw(st.booleans()) else (t.detach().requires_grad_() * 2)
        pool.append(t)
        return t

    overlapping = st.builds(lambda: torch.arange(4.0).as_strided((2, 2), (1, 1)))  # all of its storage, yet not dense
    atoms = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3), tensors(),
                      overlapping, st.sampled_from([torch.float32, torch.int64]))
    return draw(st.recursive(atoms, lambda inner: st.one_of(
        st.tuples(inner, inner), st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=2),
        st.builds(Fn, st.just("encoder"), st.dictionaries(st.text(max_size=2), inner, max_size=2))), max_leaves=6))


def _layout(value: object) -> list:
    """What a copy of ``value`` must keep: every node's type and the objects and storages it shares, tensors'
    dtype, shape, strides, storage, bytes, requires_grad and whether they are leaves."""
    ids: dict[int, int] = {}
    out: list = []

    def visit(v: object) -> None:
        out.append((type(v), ids.setdefault(id(v), len(ids))))
        if isinstance(v, torch.Tensor):
            storage = v.untyped_storage()
            out.append((v.dtype, v.shape, v.stride(), v.storage_offset(), v.requires_grad, v.is_leaf, storage.nbytes(),
                        ids.setdefault(storage.data_ptr() or -len(ids), len(ids)), bytes(storage)))
        elif isinstance(v, (tuple, list)):
            for x in v:
                visit(x)
        elif isinstance(v, dict):
            for k, x in v.items():
                visit(k)
                visit(x)
        elif isinstance(v, Fn):
            visit(v.kind)
            visit(v.params)
        elif not isinstance(v, torch.dtype):
            out.append(repr(v))

    visit(value)
    return out


@settings(max_examples=200, deadline=None)
@given(_examples())
def test_a_copied_example_is_what_deepcopy_makes_of_it(example):
    try:
        expected = copy.deepcopy(example)
    except RuntimeError:  # a tensor that is not a leaf: deepcopy's error, which turns the tree off
        with pytest.raises(RuntimeError):
            drawn._copied(example)
        return
    assert _layout(drawn._copied(example)) == _layout(expected)


@settings(max_examples=200, deadline=None)
@given(_examples())
@example((torch.arange(3.0).requires_grad_(), [torch.zeros(2, 3).t()] * 2))  # a plain leaf requiring grad, shared
def test_a_walk_copies_a_kept_example_as_deepcopy_copies_the_drawn_one(example):
    try:
        expected = copy.deepcopy(example)
    except RuntimeError:  # not kept: the tree is turned off
        return
    step = drawn.Step((), *drawn._kept(example))
    for _ in range(2):
        assert _layout(drawn._fresh(step)) == _layout(expected)


def _seen() -> tuple:
    """What an example's code draws from the global generators hypothesis seeds."""
    return random.random(), float(np.random.random()), random.getstate(), np.random.get_state()[1].tolist()


def _states() -> tuple:
    from hypothesis.core import threadlocal
    return random.getstate(), np.random.get_state()[1].tolist(), threadlocal._hypothesis_global_random.getstate()


@pytest.mark.parametrize("register_at", [None, 1])
def test_seeding_a_walk_is_deterministic_prng_around_each_example(register_at):
    from hypothesis import register_random
    from hypothesis.internal.entropy import deterministic_PRNG

    late = [Random(3), Random(3)]  # a generator hypothesis is asked to manage in the middle of the walk

    def examples(around: Callable[[], contextlib.AbstractContextManager], late: Random) -> list:
        random.seed(7)
        np.random.seed(7)
        seen = []
        for i in range(4):
            with around():
                seen.append((_seen(), late.random()))
                if i == register_at:
                    register_random(late)
        return seen

    with deterministic_PRNG():  # hypothesis's own generator exists, as after any hypothesis run
        pass
    plain = examples(deterministic_PRNG, late[0]), _states(), late[0].getstate()
    with drawn._Seeding() as seeding:
        def each() -> contextlib.AbstractContextManager:
            seeding.example()
            return contextlib.nullcontext()

        seen = examples(each, late[1])
    assert (seen, _states(), late[1].getstate()) == plain
