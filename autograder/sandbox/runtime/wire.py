"""Plain-data encoding of values that cross the sandbox boundary (no pickle).

Both sides import this module: the grader to encode arguments and decode
replies, the student process to decode arguments and encode return values.
Frames are length-prefixed JSON (``frames``, whose ``WireError`` this module
raises too). Decoding is strict, bounded and total: a hostile reply can make a
check fail, never make the grader run code, run out of memory or raise
anything but ``WireError``.

Encoding (JSON values, tags start with ``$``)::

    None, bool, str, int (|i| < 2**63)     as themselves
    float                                   as itself, or {"$f": "nan" | "inf" | "-inf"}
    tensor / ndarray                        {"$t": dtype, "s": shape, "d": base64, ["g": grad id]}
    tuple                                   {"$tuple": [...]}
    list                                    [...]
    dict (str or int keys)                  {"$dict": [[key, value], ...]}
    sympy expression                        {"$sym": tree}          (student → grader)
    callable description                    {"$fn": kind, "p": {...}} (grader → student)
    anything else                           {"$obj": type name}     (student → grader)
    a value of more than MAX_ITEMS items    {"$big": type name, "n": items, "exact": bool} (student → grader)

Item budget (helper E, issue 11): one encoded or decoded value holds at most ``MAX_ITEMS``
values (a tensor counts as one). A container's length is checked before it is walked, so a
12 M-element tuple costs the student side one ``len`` (it is sent as ``$big``) and the grader
nothing; ``frames.loads`` refuses a frame whose structure is larger before parsing it.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .frames import WireError, valid_text

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

MAX_DEPTH = 32
MAX_DIMS = 16
MAX_ELEMENTS = 2**36  # product of a tensor's non-zero dimensions (an empty tensor holds no memory, but is used)
MAX_ITEMS = 100_000  # values in one encoded value: containers' items, recursively (a tensor is one)
_INT_RANGE = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Fn:
    """A plain description of a callable, rebuilt on the student side by ``builders``."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Leaf:
    """A tensor argument the student side makes a leaf requiring grad, known by ``grad_id``."""

    tensor: torch.Tensor
    grad_id: str


@dataclass(frozen=True)
class Opaque:
    """A student value of a type the wire does not carry (only its type name)."""

    type_name: str


@dataclass(frozen=True)
class Oversized:
    """A student value of more than ``MAX_ITEMS`` items, not sent: its type and its size (or a lower bound)."""

    type_name: str
    items: int
    exact: bool

    def __str__(self) -> str:
        return f"{'at least ' if not self.exact else ''}{self.items} items; at most {MAX_ITEMS} allowed"


class _TooMany(Exception):
    """Raised through ``_encode`` when a value holds more than ``MAX_ITEMS`` items (never a ``WireError``)."""

    def __init__(self, items: int, exact: bool) -> None:
        super().__init__(f"{'at least ' if not exact else ''}{items} items; at most {MAX_ITEMS} allowed")
        self.items, self.exact = items, exact


def _spend(budget: list[int], n: int = 1, exact: bool = False, take: bool = True) -> None:
    """Take ``n`` items from ``budget`` (a one-element list; ``take`` False: only check) or raise ``_TooMany``.

    ``exact``: the items are the whole value's (a top-level container's length), else a lower bound.
    """
    if n > budget[0]:
        raise _TooMany(n if exact else MAX_ITEMS - budget[0] + n, exact)
    if take:
        budget[0] -= n


@dataclass(frozen=True)
class SympyTree:
    """A sympy expression as a nested list tree; rebuilt by the grader's whitelist."""

    tree: Any


def tensor_to_wire(t: torch.Tensor, grad_id: str | None = None) -> dict[str, Any]:
    with torch._C.DisableTorchFunction():
        data = torch.Tensor.detach(t).cpu().contiguous()
        dtype = _DTYPE_NAMES.get(data.dtype)
        if dtype is None:
            raise WireError(f"tensor dtype {data.dtype} is not supported")
        shape = [int(s) for s in data.shape]
        if dtype == "bfloat16":
            raw = data.view(torch.int16).numpy().tobytes()
        else:
            raw = data.numpy().tobytes()
    out: dict[str, Any] = {"$t": dtype, "s": shape, "d": base64.b64encode(raw).decode("ascii")}
    if grad_id is not None:
        out["g"] = grad_id
    return out


def tensor_from_wire(obj: dict[str, Any]) -> torch.Tensor:
    dtype_name = obj.get("$t")
    shape = obj.get("s")
    data = obj.get("d")
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES or not isinstance(shape, list) \
            or not isinstance(data, str):
        raise WireError("malformed tensor")
    if len(shape) > MAX_DIMS or not all(type(s) is int and 0 <= s < 2**40 for s in shape) \
            or math.prod(s for s in shape if s) > MAX_ELEMENTS:
        raise WireError(f"malformed tensor shape {shape!r:.80}")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise WireError("tensor data is not base64") from None
    dtype = DTYPES[dtype_name]
    n = math.prod(shape)
    if len(raw) != n * dtype.itemsize:
        raise WireError(f"tensor data has {len(raw)} bytes, shape {shape} needs another size")
    storage_dtype = torch.int16 if dtype == torch.bfloat16 else dtype
    flat = torch.frombuffer(bytearray(raw), dtype=storage_dtype) if raw else torch.empty(0, dtype=storage_dtype)
    if dtype == torch.bfloat16:
        flat = flat.view(torch.bfloat16)
    return flat.reshape(shape).clone()


def encode(value: Any, _depth: int = 0, *, lenient: bool = False, _budget: list[int] | None = None) -> Any:
    """Encode a Python value as JSON-compatible plain data.

    With ``lenient`` (the student side), a value the wire cannot carry becomes
    ``{"$obj": type name}`` instead of raising, so the grader can say what it got,
    and a value of more than ``MAX_ITEMS`` items ``{"$big": ...}`` (else ``WireError``).
    """
    top = _budget is None
    budget = [MAX_ITEMS] if top else _budget
    try:
        return _encode(value, _depth, lenient, budget)
    except WireError:
        if not lenient:
            raise
        return {"$obj": type(value).__name__}
    except _TooMany as too_many:
        if not top:
            raise
        if not lenient:
            raise WireError(f"a value of {too_many}") from None
        return {"$big": type(value).__name__, "n": too_many.items, "exact": too_many.exact}


def _encode(value: Any, _depth: int, lenient: bool, budget: list[int] | None = None) -> Any:
    if _depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    budget = [MAX_ITEMS] if budget is None else budget
    _spend(budget)
    kind = type(value)  # never isinstance: a student's class can claim any __class__
    if value is None or issubclass(kind, bool):
        return value
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, int):
        exact = int.__int__(value)  # a subclass's own __int__ or comparisons are never asked
        if exact not in _INT_RANGE:
            raise WireError("integer out of range")
        return exact
    if issubclass(kind, float):
        exact = float.__float__(value)
        return exact if math.isfinite(exact) else {"$f": repr(exact)}
    if issubclass(kind, torch.Tensor):
        return tensor_to_wire(value)
    if kind is Leaf:
        return tensor_to_wire(value.tensor, value.grad_id)
    if kind is Fn:
        return {"$fn": value.kind, "p": {k: encode(v, _depth + 1, lenient=lenient, _budget=budget)
                                         for k, v in value.params.items()}}
    if issubclass(kind, (tuple, list, dict)):  # the length first: a huge container costs one len
        _spend(budget, (tuple.__len__ if issubclass(kind, tuple) else list.__len__ if issubclass(kind, list)
                        else dict.__len__)(value), _depth == 0, take=False)
    if issubclass(kind, tuple):
        return {"$tuple": [encode(v, _depth + 1, lenient=lenient, _budget=budget) for v in value]}
    if issubclass(kind, list):
        return [encode(v, _depth + 1, lenient=lenient, _budget=budget) for v in value]
    if issubclass(kind, dict):
        items = []
        for k, v in value.items():
            if not issubclass(type(k), (str, int)) or issubclass(type(k), bool):
                raise WireError(f"dict key of type {type(k).__name__} is not supported")
            items.append([_encode(k, _depth + 1, lenient, budget), encode(v, _depth + 1, lenient=lenient, _budget=budget)])
        return {"$dict": items}
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        return tensor_to_wire(torch.as_tensor(value))
    if type(value).__module__.startswith("sympy"):
        return {"$sym": _sympy_tree(value)}
    raise WireError(f"values of type {type(value).__name__} cannot be sent")


def decode(obj: Any, *, build_fn=None, leaves: dict | None = None, _depth: int = 0,
           _budget: list[int] | None = None) -> Any:
    """Decode plain data.

    Student side only: ``build_fn(kind, params)`` rebuilds callables, and
    tensors tagged with a grad id become leaves that require grad, collected
    in ``leaves`` by id. Total over any parsed JSON: ``WireError`` or a value
    (strings valid, integers in the 64-bit range the encoder keeps to), of at
    most ``MAX_ITEMS`` items, counted as it goes (a container's length before its items).
    """
    if _depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    budget = [MAX_ITEMS] if _budget is None else _budget
    items = obj.get("$tuple", obj.get("$dict")) if isinstance(obj, dict) else obj
    try:
        _spend(budget)
        if isinstance(items, list):
            _spend(budget, len(items), take=False)
    except _TooMany as too_many:
        raise WireError(f"a value of {too_many}") from None
    down = dict(build_fn=build_fn, leaves=leaves, _depth=_depth + 1, _budget=budget)
    if obj is None or isinstance(obj, (bool, float)):
        return obj
    if isinstance(obj, str):
        return valid_text(obj)
    if isinstance(obj, int):
        if obj not in _INT_RANGE:
            raise WireError("integer out of range")
        return obj
    if isinstance(obj, list):
        return [decode(v, **down) for v in obj]
    if not isinstance(obj, dict) or len(obj) == 0:
        raise WireError("malformed value")
    tag = next(iter(obj))
    if tag == "$t":
        tensor = tensor_from_wire(obj)
        if leaves is not None and isinstance(obj.get("g"), str):
            leaves[obj["g"]] = tensor.requires_grad_(True)
        return tensor
    if tag == "$f" and isinstance(obj["$f"], str) and obj["$f"] in ("nan", "inf", "-inf"):
        return float(obj["$f"])
    if tag == "$tuple" and isinstance(obj[tag], list):
        return tuple([decode(v, **down) for v in obj[tag]])
    if tag == "$dict" and isinstance(obj[tag], list):
        out = {}
        for item in obj[tag]:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))
                    and not isinstance(item[0], bool)):
                raise WireError("malformed dict item")
            key = decode(item[0], _depth=_depth + 1, _budget=budget)
            out[key] = decode(item[1], **down)
        return out
    if tag == "$big" and isinstance(obj["$big"], str) and type(obj.get("n")) is int and obj["n"] in _INT_RANGE:
        return Oversized(valid_text(obj["$big"][:100]), obj["n"], obj.get("exact") is True)
    if tag == "$fn" and build_fn is not None and isinstance(obj.get("p"), dict):
        params = {k: decode(v, **down) for k, v in obj["p"].items()}
        return build_fn(obj["$fn"], params)
    if tag == "$sym":
        return SympyTree(obj["$sym"])
    if tag == "$obj" and isinstance(obj["$obj"], str):
        return Opaque(valid_text(obj["$obj"][:100]))
    raise WireError(f"unknown tag {tag!r:.40}")


SYMPY_MAX_NODES = 10_000  # student side: a larger or deeper expression is sent as ["Oversized"]
SYMPY_MAX_DEPTH = 200


class _Oversized(Exception):
    """A sympy expression beyond ``SYMPY_MAX_NODES`` or ``SYMPY_MAX_DEPTH``."""


def _sympy_tree(expr: Any) -> Any:
    """``expr`` as ``[class name, *children]`` with numbers and names as strings (student side).

    Constants (``pi``, ``E``, ``I``, ``oo``, ``True``, …) are ``["Constant", name]``.
    An expression of more than ``SYMPY_MAX_NODES`` nodes (a shared subexpression
    counts at every use), nested deeper than ``SYMPY_MAX_DEPTH`` or holding an
    integer of more than 1000 digits is sent as ``["Oversized"]``, which the
    grader refuses with a reason.
    """
    import sympy

    special = {sympy.oo: "oo", -sympy.oo: "-oo", sympy.zoo: "zoo", sympy.nan: "nan", sympy.I: "I",
               sympy.true: "True", sympy.false: "False"}
    budget = [SYMPY_MAX_NODES]

    def node(e: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > SYMPY_MAX_DEPTH:
            raise _Oversized
        if not isinstance(e, sympy.Basic):
            raise WireError(f"a {type(e).__name__} inside a sympy expression cannot be sent")
        if isinstance(e, sympy.Symbol):
            return ["Symbol", str(e.name)]
        if isinstance(e, sympy.Rational):
            if max(abs(e.p), e.q).bit_length() > 3300:
                raise _Oversized
            return ["Integer", str(int(e.p))] if e.q == 1 else ["Rational", str(int(e.p)), str(int(e.q))]
        if isinstance(e, sympy.Float):
            return ["Float", repr(float(e))]
        if isinstance(e, sympy.NumberSymbol):
            return ["Constant", str(e)]
        if e in special:
            return ["Constant", special[e]]
        return [type(e).__name__, *[node(a, depth + 1) for a in e.args]]

    try:
        return node(expr, 0)
    except _Oversized:
        return ["Oversized"]
