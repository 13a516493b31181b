"""The grader's oracle: the reference solution itself (the student bundle ships neither)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

import reference
from autograder.checks import carried
from autograder.checks.oracle import Grads, Oracle, detached
from autograder.contract import CONTRACT

#: The reference's function of every contract name that is a function.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    e.name: getattr(reference, e.name) for e in CONTRACT if callable(getattr(reference, e.name, None))
}
MEMO_BYTES = 64 * 2**20  # of the answers ``LiveOracle`` keeps (then it starts again from none)
_ATOMS = frozenset({int, bool, str, type(None), torch.dtype})  # keyed by value (floats by their exact text)


def function(name: str) -> Callable[..., Any]:
    """The reference's function ``name`` (a contract name)."""
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a function of the contract") from None


class _Unkeyable(Exception):
    """An argument or an answer that ``LiveOracle``'s memo does not keep (a function, a distribution, …)."""


class LiveOracle(Oracle):
    """Calls the reference solution.

    The checks ask it the same questions for every submission (the examples a
    walk of ``checks.drawn`` replays are the same, and so are the constants),
    so the answers of ``expected`` are kept: keyed by the arguments' exact
    contents (tensors' dtypes, shapes, strides and bytes, numbers' exact
    values), the state of torch's generator before the call and the torch
    settings a computation can read, an answer is what the reference would
    compute again, bit for bit, and the generator is left as the call left it.
    A question with an argument that is not plain data (a callable, a
    distribution) is always computed.
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, ...], tuple[Any, torch.Tensor | None]] = {}
        self._bytes = 0

    def carried(self, names: tuple[str, ...], seed: int) -> carried.Oracle:
        return carried.Oracle(names, seed, FUNCTIONS)

    def expected(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            key = (name, _key(args), _key(kwargs), *_settings())
        except _Unkeyable:
            return detached(function(name)(*args, **kwargs))
        if key in self._memo:
            value, after = self._memo[key]
            if after is not None:
                torch.default_generator.set_state(after)
            return _copy(value)
        value = detached(function(name)(*args, **kwargs))
        self._keep(key, value)
        return value

    def expected_grad(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                      wrt: Sequence[torch.Tensor], cotangent: torch.Tensor | None,
                      output: int | None) -> tuple[Any, Grads]:
        value = function(name)(*args, **kwargs)
        differentiated = value if output is None else value[output]
        grads = torch.autograd.grad(differentiated, list(wrt), cotangent, allow_unused=True)
        return detached(value), tuple(grads)

    def _keep(self, key: tuple[Any, ...], value: Any) -> None:
        """Keep ``value``, the answer to ``key``, with the generator's state after it when the call drew."""
        try:
            kept = _copy(value)
        except _Unkeyable:
            return
        state = torch.default_generator.get_state()
        after = None if state.numpy().tobytes() == key[-1] else state  # the key ends with the state before
        size = _size(key) + _size(kept)
        if self._bytes + size > MEMO_BYTES:
            self._memo.clear()
            self._bytes = 0
        self._memo[key] = kept, after
        self._bytes += size


def _settings() -> tuple[Any, ...]:
    """What a reference computation reads besides its arguments: torch's settings, then its generator's state."""
    return (torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(),
            torch.default_generator.get_state().numpy().tobytes())


def _key(value: Any) -> Any:
    """``value`` as a hashable key that equals another's exactly when the two hold the same data."""
    kind = type(value)
    if kind in _ATOMS:
        return kind, value
    if kind is float:
        return float, value.hex()  # 0.0 and -0.0 differ; a NaN keys like the same NaN
    if kind is torch.Tensor:
        if (value.layout != torch.strided or value.is_quantized or value.is_conj() or value.is_neg()
                or value.device.type != "cpu"):
            raise _Unkeyable
        try:
            data = value.detach().numpy().tobytes()
        except (TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16)
            raise _Unkeyable from None
        return value.dtype, tuple(value.shape), value.stride(), value.storage_offset(), value.requires_grad, data
    if kind is tuple or kind is list:
        return kind, tuple(_key(v) for v in value)
    if kind is dict:
        return dict, tuple((_key(k), _key(v)) for k, v in value.items())
    raise _Unkeyable


def _copy(value: Any) -> Any:
    """A copy of an answer (tensors cloned with their strides, in tuples and lists); ``_Unkeyable`` for others."""
    kind = type(value)
    if kind in _ATOMS or kind is float:
        return value
    if kind is torch.Tensor:
        new = value.clone()
        if new.stride() != value.stride():  # clone keeps the strides of dense tensors only
            raise _Unkeyable
        return new
    if kind is tuple or kind is list:
        return kind(_copy(v) for v in value)
    raise _Unkeyable


def _size(value: Any) -> int:
    """Roughly the bytes ``value`` (a key or a kept answer) holds."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size() + 200
    if isinstance(value, (bytes, str)):
        return len(value) + 50
    if isinstance(value, (tuple, list)):
        return 60 + sum(_size(v) for v in value)
    return 30
