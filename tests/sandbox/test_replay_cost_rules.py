"""The replay's size bound without a dry run per op: views spend nothing, a pointwise op its broadcast,
any other op a dry run whose outcome is cached by all the dry run sees."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.sandbox import replay
from autograder.sandbox import replay_ops as aten
from autograder.sandbox.runtime import wire

aten_ops = torch.ops.aten
POINTWISE = [aten_ops.add.Tensor, aten_ops.mul.Tensor, aten_ops.sub.Tensor, aten_ops.div.Tensor,
             aten_ops.eq.Tensor, aten_ops.pow.Tensor_Tensor, aten_ops.xlogy.Tensor, aten_ops.maximum.default]
DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool]

shapes = st.lists(st.integers(0, 3), max_size=3)


def _dry(op, args, kwargs=None, device=torch.device("meta")):
    """The dry run as it was before the cache: the op on meta copies of its arguments (or, on the CPU,
    the op itself: None when it fails)."""
    move = aten.meta if device.type == "meta" else (lambda v: v)
    try:
        return aten.numel(op(*move(args), **{k: move(v) for k, v in (kwargs or {}).items()}))
    except Exception:  # noqa: BLE001
        return None


@given(st.lists(shapes, min_size=1, max_size=4))
def test_broadcast_is_torchs(shape_list):
    try:
        expected = list(torch.broadcast_shapes(*shape_list))
    except RuntimeError:
        expected = None
    assert aten.broadcast(shape_list) == expected


@given(st.sampled_from(POINTWISE), shapes, shapes, st.sampled_from(DTYPES))
def test_the_pointwise_rule_is_the_dry_runs_size(op, a, b, dtype):
    x, y = torch.zeros(a, dtype=dtype), torch.ones(b, dtype=dtype)
    known = aten.pointwise_numel(aten.traits(op).pointwise, [x, y])
    if known is not None:  # what the dry run says, and what the op makes, when they do not fail
        assert _dry(op, [x, y]) in (None, known) and _dry(op, [x, y], device=torch.device("cpu")) in (None, known)


def test_an_op_of_two_outputs_counts_both():
    x = torch.zeros(2, 3)
    assert aten.pointwise_numel(aten.traits(aten_ops.frexp.Tensor).pointwise, [x]) == 12


@pytest.mark.parametrize("op", [aten_ops.view.default, aten_ops.expand.default, aten_ops.transpose.int,
                                aten_ops.detach.default, aten_ops.split.Tensor, aten_ops.as_strided.default])
def test_torchs_view_ops_are_views(op):
    assert aten.traits(op).view


@pytest.mark.parametrize("op", [aten_ops.reshape.default, aten_ops.contiguous.default, aten_ops.to.dtype,
                                aten_ops.flatten.using_ints, aten_ops.add_.Tensor, aten_ops.add.out,
                                aten_ops._resize_output_.default, aten_ops.clone.default])
def test_an_op_that_may_copy_or_resize_is_not_a_view(op):
    assert not aten.traits(op).view


@given(st.sampled_from([aten_ops.sum.dim_IntList, aten_ops.mean.dim, aten_ops.amax.default,
                        aten_ops.logsumexp.default]),
       st.lists(st.integers(0, 3), min_size=1, max_size=3), st.sampled_from(DTYPES),
       st.integers(-4, 3), st.booleans())
def test_the_cached_dry_run_decides_as_the_dry_run(op, shape, dtype, dim, keepdim):
    x = torch.zeros(shape, dtype=dtype).transpose(0, -1)  # strides too
    args = [x, [dim], keepdim]
    expected = _dry(op, args)
    assert aten.dry_numel(op, False, args, {}) == expected
    assert aten.dry_numel(op, False, args, {}) == expected  # a cache hit


def test_values_equal_in_python_are_keyed_apart():
    assert len({aten.signature(v, [64]) for v in (1, 1.0, True, 0.0, -0.0)}) == 5


@pytest.mark.parametrize("value", [1, 2.5, -0.0, float("-inf"), True, None, "mean", torch.float64, [3, [4.0]]])
def test_a_signature_gives_back_the_value(value):
    assert aten.unsign(aten.signature(value, [64])) == value


def test_the_cache_keys_every_factory_argument():
    zeros = aten_ops.zeros.default
    small = aten.dry_numel(zeros, True, [[2, 3]], {"dtype": torch.float32})
    assert small == 6 and aten.dry_numel(zeros, True, [[4, 3]], {"dtype": torch.float32}) == 12


def test_a_large_signature_is_not_kept():
    assert aten.signature([list(range(100))], [64]) is None
    assert aten.dry_numel(aten_ops.zeros.default, True, [[1] * 100], {}) == 1


# -- through the replay ----------------------------------------------------------------------------

def _replay(ops, consts=()):
    leaf = torch.zeros(3, 2)
    trace = {"leaves": {"z_e": 0}, "consts": [list(c) for c in consts], "ops": ops, "nodes": [], "outputs": [9]}
    return replay.gradients(trace, leaf, [{"output": None, "cotangent": None}],
                            replay.leaves_of([wire.Leaf(leaf, "z_e")]))


def test_a_huge_broadcast_is_refused_before_it_runs(monkeypatch):
    monkeypatch.setattr(aten, "dry_numel", lambda *a: pytest.fail("a pointwise op needs no dry run"))
    column, row = wire.tensor_to_wire(torch.zeros(2**14, 1)), wire.tensor_to_wire(torch.zeros(1, 2**14))
    add = ["aten.add.Tensor", True, [{"$r": 1}, {"$r": 2}], {}, {"$r": 9}, None]
    start = time.monotonic()
    with pytest.raises(replay.ReplayFailed, match=f"an op of {2**28} elements"):
        _replay([add], consts=[(1, column, 0), (2, row, 0)])
    assert time.monotonic() - start < 1


def test_a_failing_view_is_named_as_the_dry_run_named_it():
    view = ["aten.view.default", True, [{"$r": 0}, [10**10]], {}, {"$r": 9}, None]
    with pytest.raises(replay.ReplayFailed, match="too large"):
        _replay([view])
    view[2][1] = [7]
    with pytest.raises(replay.ReplayFailed, match="replay of aten.view.default failed"):
        _replay([view])
