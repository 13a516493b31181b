"""What the gradient replay (``replay``) runs and how it judges values: aten ops by name, a denylist,
meta-device sizing, and the comparisons of replayed with recorded tensors."""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Iterator

import torch

from autograder.sandbox.errors import StudentException
from autograder.sandbox.runtime import wire

MATCH_RTOL, MATCH_ATOL = 1e-5, 1e-7  # the replay runs on the same machine: only reduction order may differ
_NAME = re.compile(r"aten\.(_?[a-z][a-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)")
DENIED = frozenset({"set_", "resize_", "resize_as_", "from_file", "repeat_interleave", "bincount", "histc",
                    "_efficientzerotensor", "record_stream", "copy_sparse_to_sparse_", "lift_fresh_copy"})
DENIED_PARTS = ("storage", "file", "_assert", "print", "pin_memory", "share_memory", "cuda", "mps", "xpu",
                "mkldnn", "sparse", "nested", "quantize", "_make_dep_token", "_functional_sym")
DEVICES = frozenset({"cpu"})
SCALARS = {"$dtype": ("dtype", dict(wire.DTYPES)),
            "$layout": ("layout", {"strided": torch.strided}),
            "$mf": ("memory format", {n: getattr(torch, n) for n in (
                "contiguous_format", "preserve_format", "channels_last", "channels_last_3d")})}


class ReplayFailed(StudentException):
    """The recorded computation could not be replayed or does not reproduce the value: no gradient."""

    def __init__(self, reason: str) -> None:
        super().__init__({"type": "GradientNotReplayed", "message": reason})


class Malformed(Exception):
    """A trace that is not in the form the runtime sends (only a forged one is)."""


def op(name: Any) -> Any:
    """The aten overload called ``name`` ("aten.packet.overload"); ``ReplayFailed`` when refused."""
    if not isinstance(name, str):
        raise Malformed("an op name that is not a string")
    match = _NAME.fullmatch(name)
    if match is None:
        raise ReplayFailed(f"the grader could not replay {name[:80]!r}: not an aten op")
    packet_name, overload = match.groups()
    if packet_name in DENIED or any(part in packet_name for part in DENIED_PARTS):
        raise ReplayFailed(f"the grader does not replay {name}")
    try:
        packet = getattr(torch.ops.aten, packet_name)
        op = getattr(packet, overload) if overload in packet.overloads() else None
    except (AttributeError, RuntimeError):
        op = None
    if not isinstance(op, torch._ops.OpOverload):
        raise ReplayFailed(f"the grader could not replay {name}: no such aten op")
    return op


@functools.cache
def traits(overload: Any) -> tuple[bool, bool]:
    """Whether ``overload`` takes a ``device`` keyword (a factory: its dry run is put on the meta device), and
    whether all its outputs alias an input (views, in-place ops: no new memory)."""
    schema = overload._schema
    return (any(a.name == "device" and a.kwarg_only for a in schema.arguments),
            all(r.alias_info is not None for r in schema.returns))


def numel(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.numel())
    if isinstance(value, (tuple, list)):
        return sum(numel(v) for v in value)
    return 0


def meta(value: Any) -> Any:
    """``value`` with every tensor (and device) moved to the meta device: the dry run allocates nothing."""
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    if isinstance(value, torch.device):
        return torch.device("meta")
    if isinstance(value, list):
        return [meta(v) for v in value]
    return value


def sizes(value: Any) -> Iterator[int]:
    """The integers of an op's arguments, and the product of each integer list (a size it may allocate)."""
    if type(value) is int:
        yield abs(value)
    elif isinstance(value, list):
        ints = [abs(v) for v in value if type(v) is int]
        yield math.prod(ints)
        for v in value:
            yield from sizes(v)


def reproduces(out: torch.Tensor, returned: Any) -> bool:
    """Whether the replayed ``out`` is the value the student returned (same dtype and shape, equal values)."""
    if not (isinstance(returned, torch.Tensor) and returned.dtype == out.dtype and returned.shape == out.shape):
        return False
    if not out.is_floating_point():
        return torch.equal(out, returned)
    return torch.allclose(out, returned, rtol=MATCH_RTOL, atol=MATCH_ATOL, equal_nan=True)


def same(got: tuple[Any, ...], recorded: tuple[Any, ...]) -> bool:
    if len(got) != len(recorded):
        return False
    for g, r in zip(got, recorded):
        g_zero = g is None or not bool(torch.any(g != 0))
        if r is None:
            if not g_zero:
                return False
        elif g is None:
            if bool(torch.any(r != 0)):
                return False
        elif g.shape != r.shape or not torch.allclose(g.detach(), r.to(g.dtype), rtol=MATCH_RTOL, atol=MATCH_ATOL):
            return False
    return True


def refs(outs: Any, depth: int = 0) -> Iterator[Any]:
    if isinstance(outs, dict) and set(outs) == {"$r"}:
        yield outs["$r"]
    elif isinstance(outs, list) and depth < 4:
        for o in outs:
            yield from refs(o, depth + 1)


def tensors(result: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        yield result
    elif isinstance(result, (tuple, list)) and depth < 4:
        for r in result:
            yield from tensors(r, depth + 1)
