"""The plain-data wire: round trips, and strict rejection of malformed data."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.sandbox.runtime import frames, wire

#: An int that claims every comparison and an ``__int__`` far out of range (student code in
#: ``tests/hostile/test_totality.py`` too).
LYING_INT = '''
class Big(int):
    def __lt__(self, other):
        return True
    def __ge__(self, other):
        return True
    def __int__(self):
        return 10**400
'''
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
        {"$t": "float32", "s": [1], "d": "AA!="},  # not base64
        {"$f": ["nan"]},  # not a float name
        {"$dict": [[True, 1]]},  # a key the encoder never sends
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


# -- hostile frames: decode is total, text valid, integers bounded ----------------------------------------

TAGS = ["$t", "$f", "$tuple", "$dict", "$fn", "$sym", "$obj", "s", "d", "g", "p", "x"]
SCALARS = (st.none() | st.booleans() | st.integers() | st.sampled_from([2**63, -(2**63) - 1, 10**400]) | st.floats()
           | st.text(alphabet=st.characters(exclude_categories=()), max_size=8)
           | st.sampled_from(["float32", "bfloat16", "int64", "bool", "nan", "-inf", "AAAA", "AA==", "!!", "\ud800"]))
FRAMES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(TAGS) | st.text(max_size=3), inner, min_size=0, max_size=3)
    | st.builds(lambda dtype, shape, data: {"$t": dtype, "s": shape, "d": data},
                st.sampled_from(list(wire.DTYPES) + ["complex", 5]),
                st.lists(st.integers(0, 2), max_size=2)
                | st.lists(st.integers(-1, 2**41) | st.booleans() | st.just(2**40 - 1), max_size=18),
                st.sampled_from(["", "AAAA", "AAAAAAAA", "AAAAAA==", "not base64!", "AA=", 7])),
    max_leaves=25,
)


def _all_valid(value) -> bool:
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, bool) or value is None or isinstance(value, (float, torch.Tensor, wire.SympyTree)):
        pass
    elif isinstance(value, int):
        assert -(2**63) <= value < 2**63
    elif isinstance(value, (list, tuple)):
        return all(_all_valid(v) for v in value)
    elif isinstance(value, dict):
        return all(_all_valid(k) and _all_valid(v) for k, v in value.items())
    elif isinstance(value, wire.Opaque):
        value.type_name.encode("utf-8")
    else:
        raise AssertionError(f"decode returned a {type(value).__name__}")
    return True


@settings(max_examples=200, deadline=None)
@given(FRAMES)
def test_decode_is_total_over_hostile_frames(obj):
    """Grader side: any parsed frame decodes to valid, bounded values, or raises WireError."""
    body = json.dumps({"value": obj}).encode()
    try:
        value = wire.decode(frames.loads(body)["value"])
    except wire.WireError:
        return
    assert _all_valid(value)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64) | FRAMES.map(lambda o: json.dumps(o).encode()))
def test_loads_raises_only_what_the_channel_reports(body):
    try:
        obj = frames.loads(body)
    except (ValueError, RecursionError):
        return
    json.dumps(obj).encode("utf-8")  # every string valid


def test_lone_surrogates_become_their_escapes_once_where_they_enter():
    body = b'{"a": ["\\ud800", {"\\udfff": "x\\ud83d\\ude00"}], "raw": "\xed\xa0\x80"}'
    assert frames.loads(body) == {"a": ["\\ud800", {"\\udfff": "x\U0001f600"}], "raw": "\\ud800"}
    assert frames.valid_text("ok \\ud800") == "ok \\ud800"


@pytest.mark.parametrize("obj", [2**63, -(2**63) - 1, 10**300, {"$dict": [[2**64, 1]]}, [1, [2, [2**100]]]])
def test_integers_outside_the_wire_range_are_refused(obj):
    with pytest.raises(wire.WireError):
        wire.decode(obj)


@pytest.mark.parametrize("shape", [[2**39, 2**39, 0], [1] * 17, [True], [2**36 + 1], [0.5]])
def test_absurd_tensor_shapes_are_refused(shape):
    with pytest.raises(wire.WireError):
        wire.decode({"$t": "float32", "s": shape, "d": ""})


def test_int_and_float_subclasses_cannot_lie_about_their_value():
    namespace: dict = {}
    exec(LYING_INT, namespace)  # noqa: S102 - the test's own class
    Huge = namespace["Big"]

    class Sneaky(float):
        def __float__(self):
            return float("nan")

    assert wire.encode(Huge(5)) == 5 and type(wire.encode(Huge(5))) is int
    assert wire.encode(Huge(10**400), lenient=True) == {"$obj": "Big"}
    assert wire.encode(Sneaky(1.5)) == 1.5
    assert wire.encode({Huge(7): 1}) == {"$dict": [[7, 1]]}
