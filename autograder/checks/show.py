"""Safe, compact text for values in feedback: tensors, calls, callables.

Bounded whatever the value: at most ``MAX_ELEMENTS`` items of a container,
``MAX_NESTING`` levels of containers, ``MAX_TEXT`` characters of a string,
and integers of any size shown by their size.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from autograder.sandbox.runtime import wire
from autograder.sandbox.runtime.wire import Fn, Leaf, Opaque, SympyTree

MAX_ELEMENTS = 12
MAX_NESTING = 4
MAX_TEXT = 80
_BIG = 10**18
_SENT_AS_IS = frozenset({type(None), bool, int, float, str})


def _number(x: float) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x) if -_BIG < x < _BIG else f"<an integer of {x.bit_length()} bits>"
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x)}."
    return f"{x:.6g}"


def _items(parts: list[str], total: int, limit: int) -> str:
    return ", ".join(parts) + (", …" if total > limit else "")


def show(value: Any, limit: int = MAX_ELEMENTS, _depth: int = 0) -> str:
    """A short, printable description of ``value`` (never calls student code)."""
    if isinstance(value, torch.Tensor):
        return _tensor(value, limit)
    if isinstance(value, Leaf):
        return _tensor(value.tensor, limit)
    if isinstance(value, (bool, float, int)) or value is None:
        return _number(value) if value is not None else "None"
    if isinstance(value, str):
        return repr(value) if len(value) <= MAX_TEXT else f"{value[:MAX_TEXT]!r}… ({len(value)} characters)"
    if isinstance(value, (tuple, list, dict)) and _depth >= MAX_NESTING:
        return "[…]" if isinstance(value, list) else "(…)" if isinstance(value, tuple) else "{…}"
    if isinstance(value, tuple):
        parts = [show(v, limit, _depth + 1) for v in value[:limit]]
        return "(" + _items(parts, len(value), limit) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + _items([show(v, limit, _depth + 1) for v in value[:limit]], len(value), limit) + "]"
    if isinstance(value, dict):
        parts = [f"{show(k)}: {show(v, limit, _depth + 1)}" for k, v in list(value.items())[:limit]]
        return "{" + _items(parts, len(value), limit) + "}"
    if isinstance(value, Fn):
        inner = ", ".join(f"{k}={show(v, 4, _depth + 1)}" for k, v in list(value.params.items())[:limit])
        return f"<{value.kind}({inner})>"
    if isinstance(value, Opaque):
        return f"<an object of type {value.type_name}>"
    if isinstance(value, SympyTree):
        return "<a sympy expression>"
    return f"<{type(value).__name__}>"


def _nested(t: torch.Tensor) -> str:
    return _listed(t.tolist())  # one conversion: iterating a tensor row by row cost more than the text


def _listed(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_listed(row) for row in v) + "]"
    return _number(v) if isinstance(v, float) else str(v)


def _tensor(t: torch.Tensor, limit: int) -> str:
    t = t.detach()
    suffix = "" if t.dtype in (torch.float32, torch.int64) else f", dtype={str(t.dtype).replace('torch.', '')}"
    if t.numel() <= limit:
        return f"tensor({_nested(t)}{suffix})"
    flat = t.reshape(-1)[:limit]
    body = ", ".join(_number(v) if isinstance(v, float) else str(v) for v in flat.tolist())
    return f"tensor(shape={tuple(t.shape)}{suffix}, first values [{body}, …])"


def show_call(name: str, kwargs: dict[str, Any]) -> str:
    """``name(arg=value, …)`` with the contract's argument names."""
    return f"{name}(" + ", ".join(f"{k}={show(v)}" for k, v in kwargs.items()) + ")"


def shown_as_sent(value: Any) -> bool:
    """Whether ``show`` of ``value`` rebuilt from its wire encoding (``show_sent_call``) is ``show(value)``: for
    numbers, strings, tensors, ``Leaf`` and ``Fn``, in tuples, lists and dicts (not numpy or sympy values)."""
    kind = type(value)
    if kind in _SENT_AS_IS:
        return True
    if kind is torch.Tensor:
        return _rebuildable(value)
    if kind is Leaf:
        return type(value.tensor) is torch.Tensor and _rebuildable(value.tensor)
    if kind is Fn:
        return type(value.params) is dict and all(shown_as_sent(v) for v in value.params.values())
    if kind is tuple or kind is list:
        return all(shown_as_sent(v) for v in value)
    if kind is dict:
        return all(type(k) in (str, int) and shown_as_sent(v) for k, v in value.items())
    return False


def _rebuildable(t: torch.Tensor) -> bool:
    """Whether ``tensor_from_wire`` takes ``t``'s encoding back (its limits on dimensions and elements)."""
    return t.dim() <= wire.MAX_DIMS and math.prod(s for s in t.shape if s) <= wire.MAX_ELEMENTS


def show_sent_call(name: str, sent: dict[str, Any]) -> str:
    """``show_call`` of arguments ``shown_as_sent``, from their wire encodings ``sent`` (``wire.encode``)."""
    return show_call(name, {k: _rebuilt(v) for k, v in sent.items()})


def _rebuilt(sent: Any) -> Any:
    """The value ``show`` is to see for the wire encoding ``sent`` of a value ``shown_as_sent``."""
    if isinstance(sent, list):
        return [_rebuilt(v) for v in sent]
    if not isinstance(sent, dict):
        return sent
    if "$t" in sent:
        return wire.tensor_from_wire(sent)
    if "$f" in sent:
        return float(sent["$f"])
    if "$tuple" in sent:
        return tuple(_rebuilt(v) for v in sent["$tuple"])
    if "$fn" in sent:
        return Fn(sent["$fn"], {k: _rebuilt(v) for k, v in sent["p"].items()})
    return {k: _rebuilt(v) for k, v in sent["$dict"]}
