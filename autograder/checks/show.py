"""Safe, compact text for values in feedback: tensors, calls, callables."""

from __future__ import annotations

import math
from typing import Any

import torch

from autograder.sandbox.runtime.wire import Fn, Leaf, Opaque, SympyTree

MAX_ELEMENTS = 12


def _number(x: float) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x)}."
    return f"{x:.6g}"


def show(value: Any, limit: int = MAX_ELEMENTS) -> str:
    """A short, printable description of ``value`` (never calls student code)."""
    if isinstance(value, torch.Tensor):
        return _tensor(value, limit)
    if isinstance(value, Leaf):
        return _tensor(value.tensor, limit)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (bool, int, str)) or value is None:
        return repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(show(v, limit) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(show(v, limit) for v in value[:limit]) + (", …" if len(value) > limit else "") + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {show(v, limit)}" for k, v in list(value.items())[:limit]) + "}"
    if isinstance(value, Fn):
        inner = ", ".join(f"{k}={show(v, 4)}" for k, v in value.params.items())
        return f"<{value.kind}({inner})>"
    if isinstance(value, Opaque):
        return f"<an object of type {value.type_name}>"
    if isinstance(value, SympyTree):
        return "<a sympy expression>"
    return f"<{type(value).__name__}>"


def _nested(t: torch.Tensor) -> str:
    if t.dim() == 0:
        v = t.item()
        return _number(v) if isinstance(v, float) else str(v)
    return "[" + ", ".join(_nested(row) for row in t) + "]"


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
