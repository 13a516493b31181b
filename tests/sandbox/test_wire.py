"""The plain-data wire: round trips, and strict rejection of malformed data."""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.sandbox.runtime import wire

DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool, torch.uint8, torch.bfloat16]


@given(st.sampled_from(DTYPES), st.lists(st.integers(0, 3), max_size=3))
def test_tensor_round_trip_keeps_dtype_shape_and_bits(dtype, shape):
    t = (torch.arange(int(torch.tensor(shape).prod()) if shape else 1) - 2).reshape(shape).to(dtype)
    back = wire.decode(json.loads(json.dumps(wire.encode(t))))
    assert back.dtype == dtype and back.shape == t.shape and torch.equal(back, t)


def test_nested_values_round_trip():
    value = {1: "C", "x": (1.5, float("nan"), [None, True, torch.zeros(2)]), 2: float("-inf")}
    back = wire.decode(json.loads(json.dumps(wire.encode(value), allow_nan=False)))
    assert back[1] == "C" and back[2] == float("-inf")
    a, nan, rest = back["x"]
    assert a == 1.5 and nan != nan and rest[:2] == [None, True] and torch.equal(rest[2], torch.zeros(2))


def test_lenient_encoding_names_unsupported_types():
    class Weird:
        pass

    assert wire.decode(wire.encode((Weird(), 1), lenient=True)) == (wire.Opaque("Weird"), 1)
    with pytest.raises(wire.WireError):
        wire.encode(Weird())


@pytest.mark.parametrize(
    "obj",
    [
        {"$t": "float32", "s": [3], "d": "AAAA"},  # wrong byte count
        {"$t": "complex", "s": [1], "d": ""},  # unknown dtype
        {"$t": "float32", "s": [-1], "d": ""},  # negative dimension
        {"$eval": "__import__('os')"},  # unknown tag
        {"$fn": "normal", "p": {}},  # callables are never rebuilt on the grader side
    ],
)
def test_malformed_values_are_rejected(obj):
    with pytest.raises(wire.WireError):
        wire.decode(obj)


def test_deep_nesting_is_rejected():
    obj: list = []
    for _ in range(100):
        obj = [obj]
    with pytest.raises(wire.WireError):
        wire.decode(obj)


def test_leaf_tags_make_student_side_leaves():
    leaves: dict = {}
    t = wire.decode(wire.encode(wire.Leaf(torch.ones(2), "mu")), leaves=leaves)
    assert t.requires_grad and leaves["mu"] is t
