"""The replay's per-op shortcuts decide exactly as the general code they skip."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.sandbox import replay
from autograder.sandbox import replay_ops as aten
from autograder.sandbox.runtime import wire

small = st.builds(torch.zeros, st.lists(st.integers(0, 3), max_size=3))
nested = st.recursive(st.one_of(small, st.integers(), st.none()),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner)), max_leaves=8)


@given(st.lists(nested, max_size=4))
def test_the_largest_read_is_the_largest_tensor_found(values):
    assert aten.largest(values) == max((t.numel() for t in aten.tensors(values)), default=0)


@given(st.lists(st.lists(st.integers(0, 3), max_size=3), min_size=1, max_size=3))
def test_equal_shapes_broadcast_to_themselves(shapes):
    same = [shapes[0]] * len(shapes)
    assert aten.broadcast(same) == list(torch.broadcast_shapes(*same))


VALUES = [0.0, -0.0, 1.0, 1.0 + 1e-9, 2.0, math.nan, math.inf, -math.inf]


floats = st.lists(st.sampled_from(VALUES), min_size=1, max_size=4)


@given(floats, floats, st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool]))
def test_reproduces_decides_as_allclose(a, b, dtype):
    n = min(len(a), len(b))
    if not dtype.is_floating_point:  # integers have no nan or inf
        a, b = ([v if math.isfinite(v) else 0.0 for v in values] for values in (a, b))
    out, returned = torch.tensor(a[:n]).to(dtype), torch.tensor(b[:n]).to(dtype)
    if dtype.is_floating_point:
        expected = torch.allclose(out, returned, rtol=aten.MATCH_RTOL, atol=aten.MATCH_ATOL, equal_nan=True)
    else:
        expected = torch.equal(out, returned)
    assert aten.reproduces(out, returned) == expected


def test_an_op_recorded_without_gradients_replays_without_them_and_the_mode_is_restored():
    leaf = torch.ones(3, 2)
    ops = [["aten.mul.Tensor", False, [{"$r": 0}, 2.0], {}, {"$r": 1}, None],
           ["aten.mul.Tensor", True, [{"$r": 0}, {"$r": 1}], {}, {"$r": 2}, None]]
    trace = {"leaves": {"z_e": 0}, "consts": [], "ops": ops, "nodes": [], "outputs": [2]}
    (g,) = replay.gradients(trace, leaf * 2, [{"output": None, "cotangent": None}],
                            replay.leaves_of([wire.Leaf(leaf, "z_e")]))
    assert torch.equal(g["z_e"], torch.full((3, 2), 2.0)) and torch.is_grad_enabled()  # not 4: no gradient through op 0


@pytest.mark.parametrize("outs", [{"$r": 1}, [{"$r": 1}], [[{"$r": 1}], None]])
def test_the_refs_of_an_output_are_found_in_any_form(outs):
    assert aten.refs(outs) == [1]
