"""What the gradient replay (``replay``) runs and how it judges values: aten ops by name, a denylist,
output sizes known before an op runs (views: none; pointwise ops: a broadcast; else a meta-device dry
run, its outcome cached by what it sees), and the comparisons of replayed with recorded tensors."""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Hashable, Iterator, NamedTuple

import torch

from autograder.sandbox.errors import StudentException
from autograder.sandbox.runtime import wire

MATCH_RTOL, MATCH_ATOL = 1e-5, 1e-7  # the replay runs on the same machine: only reduction order may differ
_NAME = re.compile(r"aten\.(_?[a-z][a-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)")
DENIED = frozenset({"set_", "resize_", "resize_as_", "from_file", "repeat_interleave", "bincount", "histc",
                    "_efficientzerotensor", "record_stream", "copy_sparse_to_sparse_", "lift_fresh_copy"})
DENIED_PARTS = ("storage", "file", "_assert", "print", "pin_memory", "share_memory", "cuda", "mps", "xpu",
                "mkldnn", "sparse", "nested", "quantize", "_make_dep_token", "_functional_sym")
DEVICES = ("cpu",)  # a tuple, not a set: a forged device (a list, a dict) is compared, never hashed
SCALARS = {"$dtype": ("dtype", dict(wire.DTYPES)),
            "$layout": ("layout", {"strided": torch.strided}),
            "$mf": ("memory format", {n: getattr(torch, n) for n in (
                "contiguous_format", "preserve_format", "channels_last", "channels_last_3d")})}
DRY_RUNS_KEPT = 4096  # dry-run outcomes cached: the grader grades notebook after notebook, signatures recur
_KEY_ITEMS = 64  # a larger signature is dry-run every time: a hostile trace cannot fill memory with keys
_CONSTANTS = (torch.dtype, torch.layout, torch.memory_format)


class ReplayFailed(StudentException):
    """The recorded computation could not be replayed or does not reproduce the value: no gradient."""

    def __init__(self, reason: str) -> None:
        super().__init__({"type": "GradientNotReplayed", "message": reason})


class Malformed(Exception):
    """A trace that is not in the form the runtime sends (only a forged one is)."""


class Traits(NamedTuple):
    """What sizes an op's outputs before it runs."""

    factory: bool  # takes a ``device`` keyword: its dry run is put on the meta device
    view: bool  # its outputs are views of an input: no new memory
    pointwise: int  # a pointwise op's number of outputs (each of its tensors' broadcast shape), else 0


def op(name: Any) -> tuple[Any, Traits]:
    """The aten overload called ``name`` ("aten.packet.overload") and its traits; ``ReplayFailed`` when refused."""
    if not isinstance(name, str):
        raise Malformed("an op name that is not a string")
    return _op(name)


@functools.lru_cache(maxsize=1024)
def _op(name: str) -> tuple[Any, Traits]:
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
    return op, traits(op)


@functools.cache
def traits(overload: Any) -> Traits:
    """How ``overload``'s output size is known before it runs."""
    schema = overload._schema
    pointwise = torch.Tag.pointwise in overload.tags and all(str(r.type) == "Tensor" for r in schema.returns)
    return Traits(any(a.name == "device" and a.kwarg_only for a in schema.arguments), _is_view(overload),
                  len(schema.returns) if pointwise else 0)


def _is_view(overload: Any) -> bool:
    """Whether ``overload`` is one of torch's view ops (functionalization gives each a ``_copy`` twin): a
    composite that returns an alias (reshape, contiguous, to) copies when it cannot view, and an in-place
    or out= op writes, and may resize."""
    schema = overload._schema
    if not schema.returns or any(r.alias_info is None or r.alias_info.is_write for r in schema.returns):
        return False
    try:
        composite = torch._C._dispatch_has_kernel_for_dispatch_key(overload.name(), "CompositeImplicitAutograd")
    except RuntimeError:  # a TorchScript-only op
        return False
    return not composite and hasattr(torch.ops.aten, f"{schema.name.split('::')[-1]}_copy")


def broadcast(shapes: list[torch.Size]) -> list[int] | None:
    """The shape ``shapes`` broadcast to, or None when they do not broadcast."""
    first = shapes[0]
    if shapes.count(first) == len(shapes):
        return list(first)
    out = [1] * max(map(len, shapes))
    for shape in shapes:
        for i, n in enumerate(shape, len(out) - len(shape)):
            if out[i] == 1:
                out[i] = n
            elif n not in (1, out[i]):
                return None
    return out


def pointwise_numel(outputs: int, values: list[Any]) -> int | None:
    """The output size of a pointwise op of ``outputs`` outputs on ``values``, or None when unknown."""
    if not outputs:
        return None
    shapes = []
    for v in values:
        if isinstance(v, torch.Tensor):
            shapes.append(v.shape)
        elif isinstance(v, list):
            return None
    shape = broadcast(shapes) if shapes else None
    return None if shape is None else outputs * math.prod(shape)


def largest(values: list[Any], depth: int = 1) -> int:
    """The elements of the largest tensor in ``values`` (as ``tensors`` finds them), 0 when none."""
    most = 0
    for v in values:
        if isinstance(v, torch.Tensor):
            most = max(most, v.numel())
        elif depth < 4 and isinstance(v, (tuple, list)):
            most = max(most, largest(v, depth + 1))
    return most


def dry_numel(overload: Any, factory: bool, args: list[Any], kwargs: dict[str, Any]) -> int | None:
    """The output size of a meta-device dry run of ``overload``; None when it raises (no meta kernel,
    or data-dependent). Its outcome is cached by ``signature``: all that the dry run sees."""
    key = signature([args, kwargs], [_KEY_ITEMS])
    if key is None:
        return _dry_run(overload, factory, meta(args), {k: meta(v) for k, v in kwargs.items()})
    return _cached_dry_run(overload, factory, key, torch.get_default_dtype())


@functools.lru_cache(maxsize=DRY_RUNS_KEPT)
def _cached_dry_run(overload: Any, factory: bool, key: Hashable, default_dtype: torch.dtype) -> int | None:
    """``_dry_run`` on the values of ``key``; ``default_dtype`` (what a factory makes without a dtype) keys it."""
    args, kwargs = unsign(key)
    return _dry_run(overload, factory, args, kwargs)


def _dry_run(overload: Any, factory: bool, args: list[Any], kwargs: dict[str, Any]) -> int | None:
    if factory:
        kwargs = {**kwargs, "device": torch.device("meta")}
    try:
        with torch.no_grad():
            return numel(overload(*args, **kwargs))
    except Exception:  # noqa: BLE001 - no meta kernel (or data-dependent): the caller decides
        return None


def signature(value: Any, budget: list[int]) -> Hashable | None:
    """What ``meta`` keeps of ``value`` (a tensor's shape, stride and dtype; values by type and value), or
    None beyond ``budget`` items."""
    budget[0] -= 1
    if budget[0] < 0:
        return None
    kind = type(value)
    if kind is int or kind is bool or kind is str or value is None:
        return (kind, value)
    if kind is float:
        return (float, repr(value))  # nan is equal to nothing, 0.0 to -0.0: repr tells them apart
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.stride(), value.dtype)
    if isinstance(value, list):
        items = [signature(v, budget) for v in value]
        return None if None in items else ("list", *items)
    if isinstance(value, dict):
        pairs = [(k, signature(v, budget)) for k, v in value.items()]
        return None if any(v is None for _, v in pairs) else ("dict", *pairs)
    if isinstance(value, torch.device):
        return ("device",)
    if isinstance(value, _CONSTANTS):
        return (kind, value)
    return None


def unsign(key: Any) -> Any:
    """The value ``meta`` makes of one of ``key``'s signature (the inverse of ``signature``, on meta)."""
    tag = key[0]
    if tag == "tensor":
        return torch.empty_strided(key[1], key[2], dtype=key[3], device="meta")
    if tag == "list":
        return [unsign(k) for k in key[1:]]
    if tag == "dict":
        return {k: unsign(v) for k, v in key[1:]}
    if tag == "device":
        return torch.device("meta")
    return float(key[1]) if tag is float else key[1]


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
    if torch.equal(out, returned):  # then allclose too: the common case, and far cheaper
        return True
    return out.is_floating_point() and torch.allclose(out, returned, rtol=MATCH_RTOL, atol=MATCH_ATOL, equal_nan=True)


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


def refs(outs: Any) -> list[Any]:
    """The refs of an op's recorded outputs (``{"$r": ref}``, in lists)."""
    if type(outs) is dict and len(outs) == 1 and "$r" in outs:
        return [outs["$r"]]
    return list(_refs(outs))


def _refs(outs: Any, depth: int = 0) -> Iterator[Any]:
    if isinstance(outs, dict) and set(outs) == {"$r"}:
        yield outs["$r"]
    elif isinstance(outs, list) and depth < 4:
        for o in outs:
            yield from _refs(o, depth + 1)


def tensors(result: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        yield result
    elif isinstance(result, (tuple, list)) and depth < 4:
        for r in result:
            yield from tensors(r, depth + 1)
