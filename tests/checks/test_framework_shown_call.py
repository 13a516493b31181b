"""The call a failure shows is the call as made: rendered only when the check fails, from the arguments as they
were sent, it is ``show_call`` of the arguments at the time of the call (whatever the body did to them later)."""

from __future__ import annotations

import time

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checks.framework import HIDDEN, Check, Context, run_check
from autograder.checks.show import show_call, show_sent_call, shown_as_sent
from autograder.local import LocalSession
from autograder.sandbox.runtime import wire
from autograder.sandbox.runtime.wire import Fn, Leaf

NAME = "scale_tril_from_raw"  # the contract's name of question B1


@st.composite
def _tensors(draw):
    dtype = draw(st.sampled_from(list(wire.DTYPES.values())))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    values = st.floats(width=16) if dtype.is_floating_point else st.integers(0, 1) if dtype == torch.bool \
        else st.integers(-100, 100)
    flat = draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    t = torch.tensor(flat, dtype=torch.float64 if dtype.is_floating_point else torch.int64).to(dtype).reshape(shape)
    if len(shape) == 2 and draw(st.booleans()):
        t = t.t()
    if dtype.is_floating_point and draw(st.booleans()):
        t = t.requires_grad_()
    return t


_ATOMS = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=100),
                   st.just("\ud800"), _tensors(), _tensors().map(lambda t: Leaf(t.detach(), "g0")))
_VALUES = st.recursive(_ATOMS, lambda inner: st.one_of(
    st.tuples(inner), st.lists(inner, max_size=14), st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-5, 5)),
                                                                   inner, max_size=14),
    st.builds(Fn, st.just("encoder"), st.dictionaries(st.text(max_size=3), inner, max_size=6))), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["x", "mu", "L", "encoder"]), _VALUES, max_size=4))
def test_a_call_shown_from_its_arguments_as_sent_is_show_call_of_them(kwargs):
    assert all(shown_as_sent(v) for v in kwargs.values())
    assert show_sent_call(NAME, {k: wire.encode(v) for k, v in kwargs.items()}) == show_call(NAME, kwargs)


def test_values_whose_encoding_show_would_not_see_as_they_are_are_shown_at_once():
    assert not shown_as_sent(np.zeros(2))  # sent as a tensor, shown as an ndarray
    assert not shown_as_sent((1, [np.float64(1.0)]))
    assert not shown_as_sent(torch.nn.Parameter(torch.zeros(2)))


def _arguments(raw: torch.Tensor, numpy: bool) -> dict:
    return {"raw": raw, "extra": [raw, np.ones(1)]} if numpy else {"raw": raw}


def _changing_its_argument(numpy: bool) -> Check:
    def body(ctx: Context) -> None:
        raw = torch.tensor([1.0, 2.0])
        ctx.call(**_arguments(raw, numpy))
        raw.add_(10.0)  # the body changes its argument after the call
        ctx.fail("wrong")

    return Check("B1", "fails after changing its argument", 1.0, HIDDEN, "", body)


def _student(raw: torch.Tensor, extra: object = None) -> torch.Tensor:
    return 2 * raw


def test_a_failure_shows_the_call_with_the_arguments_it_was_made_with():
    for numpy in (False, True):
        result = run_check(LocalSession({NAME: _student}), _changing_its_argument(numpy), 0, time.monotonic() + 60)
        assert result.failure.call == show_call(NAME, _arguments(torch.tensor([1.0, 2.0]), numpy))
        assert "11." not in result.failure.call


def test_a_tensor_the_wire_would_not_take_back_is_shown_at_once():
    many = torch.zeros((1,) * 17)
    assert not shown_as_sent(many) and not shown_as_sent(Leaf(many, "g0"))
    assert shown_as_sent(torch.zeros((1,) * 16))
