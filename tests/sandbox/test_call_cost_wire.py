"""A decoded tensor is an ordinary tensor of its own holding exactly the bytes sent (every dtype, any bits),
and the frames are ``frames``'s alone (the wire raises their error), with room for the wire's values."""

from __future__ import annotations

import base64

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.sandbox.runtime import frames, wire


@st.composite
def wire_tensors(draw: st.DrawFn) -> tuple[dict, bytes]:
    """A tensor's wire form with arbitrary bytes (NaN payloads, any bit pattern; bools 0 or 1), and those bytes."""
    name = draw(st.sampled_from(sorted(wire.DTYPES)))
    shape = draw(st.lists(st.integers(0, 4), max_size=3))
    n = 1
    for s in shape:
        n *= s
    size = n * wire.DTYPES[name].itemsize
    raw = (bytes(draw(st.lists(st.integers(0, 1), min_size=size, max_size=size))) if name == "bool"
           else draw(st.binary(min_size=size, max_size=size)))
    return {"$t": name, "s": shape, "d": base64.b64encode(raw).decode("ascii")}, raw


def _bytes(t: torch.Tensor) -> bytes:
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


@settings(max_examples=150, deadline=None)
@given(wire_tensors())
def test_a_decoded_tensor_holds_exactly_its_bytes_in_memory_of_its_own(case):
    obj, raw = case
    wire.tensor_from_wire(obj).resize_(7)  # an ordinary, resizable storage
    t = wire.tensor_from_wire(obj)
    assert t.dtype == wire.DTYPES[obj["$t"]] and list(t.shape) == obj["s"] and t.is_contiguous()
    assert _bytes(t) == raw
    again = wire.tensor_from_wire(obj)
    if t.numel():
        t.reshape(-1).view(torch.uint8)[0] ^= 1  # its memory is its own: another decoding keeps the sent bytes
        assert _bytes(again) == raw and _bytes(t) != raw


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(wire.DTYPES)), st.lists(st.integers(0, 3), max_size=3))
def test_a_tensor_comes_back_bit_for_bit_from_its_own_wire_form(name, shape):
    source = torch.randn(shape).to(wire.DTYPES[name]) if shape else torch.tensor(2.5).to(wire.DTYPES[name])
    back = wire.tensor_from_wire(wire.tensor_to_wire(source))
    assert back.dtype == source.dtype and back.shape == source.shape and _bytes(back) == _bytes(source.contiguous())


def test_the_frames_are_taken_from_frames_alone():
    assert frames.FRAME_ITEMS == 16 * wire.MAX_ITEMS  # room for a value, its gradients and its arguments
    assert wire.WireError is frames.WireError
    assert not {"MAX_FRAME_BYTES", "encode_frame", "loads", "read_exactly", "read_frame", "valid_strings",
                "write_frame"} & set(vars(wire))
