"""Error carried forward, student side: which graded functions a call used, and oracle mode.

Before each call the graded names of the namespace are wrapped (``Observer.wrap``):
a wrapper records that it ran inside the grader's call, and calls the student's
function. In *oracle mode* for a name (the call request's ``"oracle"``), the
wrapper instead asks the grader mid-call (``autograder.sandbox.asked``)::

    {"ask": {"op": "oracle", "name": str, "args": [...], "kwargs": {...}}}
        → {"answer": {"ok": true, "value": ..., "handle": int | null, ["grads": {grad id: tensor | null}]}
                    | {"ok": false, "error": str}}
    {"ask": {"op": "backward", "handle": int, "cotangent": tensor}}
        → {"answer": {"ok": true, "grads": {grad id: tensor | null}} | {"ok": false, "error": str}}

(a scalar's gradients come with its value; another value's are asked for by
its handle), and answers the grader's call-backs into callables it passed while it waits::

    {"call_back": {"id": int, "x": tensor}}
        → {"back": {"ok": true, "value": tensor, "grad": tensor | null} | {"ok": false, "error": str}}

Arguments are plain data: tensors (those that require grad tagged with a grad
id), 1-D ``Normal`` distributions by their parameters, callables by a number.
The grader's value comes back through ``_Carried``, an autograd function whose
backward asks the grader for the gradients, so the student's own optimiser
still descends through it. The process never holds reference code.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import torch
from torch import distributions as D

from . import frames, guard, wire

MAX_CALLBACKS = 64  # callables passed to the grader in one question


class OracleError(RuntimeError):
    """The grader could not answer for a graded function (the student's caller sees it raise)."""


class Observer:
    """The graded names of one namespace, wrapped; what the current call used; its link to the grader."""

    def __init__(self) -> None:
        self.wrappers: dict[str, Callable[..., Any]] = {}
        self.used: set[str] = set()
        self.oracle: frozenset[str] = frozenset()
        self.top: str | None = None
        self.link: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # send a frame, get the answer
        self.callbacks: list[Callable[..., Any]] = []

    def wrap(self, namespace: dict[str, Any], names: list[str]) -> None:
        """Wrap every plain function among ``names`` not wrapped yet (a redefined one anew); total."""
        for name in names[:100]:
            fn = dict.get(namespace, name) if type(name) is str else None
            if type(fn) is not types.FunctionType or fn is self.wrappers.get(name):
                continue  # by its real type: a student object claiming another __class__ is left alone
            try:
                self.wrappers[name] = namespace[name] = self._wrapper(name, fn)
            except BaseException:  # noqa: BLE001 - a function whose attributes misbehave is not observed
                continue

    def begin(self, top: str, oracle: Any, link: Callable[[dict[str, Any]], dict[str, Any]] | None) -> None:
        """A call of ``top`` starts: nothing used yet, ``oracle`` names answered over ``link``."""
        names = oracle if isinstance(oracle, list) else []
        self.used, self.top, self.link, self.callbacks = set(), top, link, []
        self.oracle = frozenset(n for n in names if isinstance(n, str) and n != top)

    def end(self) -> list[str]:
        """The call is over: the names it used."""
        used, self.top, self.link, self.oracle, self.callbacks = sorted(self.used), None, None, frozenset(), []
        return used

    def _wrapper(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def graded(*args: Any, **kwargs: Any) -> Any:
            if self.top is not None and name != self.top:
                self.used.add(name)
                if name in self.oracle and self.link is not None:
                    return self._ask(name, args, kwargs)
            return fn(*args, **kwargs)

        return graded

    # -- oracle mode --------------------------------------------------------------------------------

    def _ask(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``name(*args, **kwargs)`` computed by the grader, differentiable w.r.t. the tensors that require grad."""
        inputs: list[torch.Tensor] = []
        self.callbacks = []  # valid during this question only: the grader differentiates without them
        try:
            message = {"op": "oracle", "name": name, "args": [self._encode(a, inputs) for a in args],
                       "kwargs": {str(k): self._encode(v, inputs) for k, v in kwargs.items()}}
        except wire.WireError as exc:
            raise OracleError(f"the grader cannot take these arguments of {name} ({exc})") from None
        answer = self._exchange(message)
        value = wire.decode(answer.get("value"))
        handle, grads = answer.get("handle"), answer.get("grads")
        if not inputs or not guard.is_tensor(value) or not (isinstance(handle, int) or grads is not None):
            return value
        known = wire.decode(grads) if grads is not None else None
        return _Carried.apply(self, handle, known if isinstance(known, dict) else None, value, *inputs)

    def _exchange(self, ask: dict[str, Any]) -> dict[str, Any]:
        """The grader's answer to ``ask`` (``OracleError`` when it could not answer)."""
        link = self.link
        if link is None:
            raise OracleError("the grader's call is over: it can no longer answer")
        self.link = None  # call-backs into student code run without the oracle
        try:
            answer = link({"ask": ask}, self._call_back)
        finally:
            self.link = link
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise OracleError(f"the grader could not answer: {str(error)[:300]}")
        return answer

    def backward(self, handle: int, cotangent: torch.Tensor) -> dict[str, Any]:
        """The grader's gradients of a value it answered, for ``cotangent``."""
        answer = self._exchange({"op": "backward", "handle": handle, "cotangent": wire.tensor_to_wire(cotangent)})
        grads = wire.decode(answer.get("grads"))
        return grads if isinstance(grads, dict) else {}

    def _encode(self, value: Any, inputs: list[torch.Tensor], depth: int = 0) -> Any:
        if guard.is_tensor(value):
            if value.requires_grad:
                inputs.append(value)
                return wire.tensor_to_wire(value, f"t{len(inputs) - 1}")
            return wire.tensor_to_wire(value)
        kind = type(value)
        if kind is D.Normal:
            return {"$fn": "normal", "p": {"loc": self._encode(value.loc, inputs),
                                          "scale": self._encode(value.scale, inputs)}}
        if kind is D.Independent and type(value.base_dist) is D.Normal:
            return {"$fn": "independent_normal", "p": {"loc": self._encode(value.base_dist.loc, inputs),
                                                      "scale": self._encode(value.base_dist.scale, inputs),
                                                      "ndims": int(value.reinterpreted_batch_ndims)}}
        if depth < wire.MAX_DEPTH and kind in (list, tuple):
            items = [self._encode(v, inputs, depth + 1) for v in value]
            return items if kind is list else {"$tuple": items}
        if callable(value) and not isinstance(value, type):
            if len(self.callbacks) >= MAX_CALLBACKS:
                raise wire.WireError("too many callables")
            self.callbacks.append(value)
            return {"$fn": "callback", "p": {"id": len(self.callbacks) - 1}}
        return wire.encode(value)

    def _call_back(self, message: Any) -> dict[str, Any]:
        """``{"back": ...}``: a callable this call passed, evaluated at the grader's points, with input-gradients."""
        try:
            index, x = message.get("id"), wire.tensor_from_wire(message.get("x"))
            fn = self.callbacks[index] if isinstance(index, int) and 0 <= index < len(self.callbacks) else None
            if fn is None:
                raise OracleError("no such callable")
            x.requires_grad_(True)
            with torch.enable_grad():
                out = fn(x)
            if not guard.is_tensor(out):
                raise OracleError(f"the callable returned a {type(out).__name__}, not a tensor")
            (grad,) = guard.gradients(out, (x,), None)
            back = {"ok": True, "value": wire.tensor_to_wire(out),
                    "grad": None if grad is None else wire.tensor_to_wire(grad)}
        except BaseException as exc:  # noqa: BLE001 - student code: its failure is the grader's to report
            back = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        return {"back": back}


class _Carried(torch.autograd.Function):
    """The grader's value of a graded function; its backward asks the grader for the gradients."""

    @staticmethod
    def forward(ctx: Any, observer: Observer, handle: int | None, known: dict[str, Any] | None,
                value: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        ctx.observer, ctx.handle, ctx.known = observer, handle, known
        ctx.shapes = [(t.shape, t.dtype) for t in inputs]
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        if ctx.known is not None:  # a scalar's gradients, for a cotangent of one
            grads, scale = ctx.known, grad.reshape(())
        else:
            grads, scale = ctx.observer.backward(ctx.handle, grad), None
        out = []
        for i, (shape, dtype) in enumerate(ctx.shapes):
            g = grads.get(f"t{i}")
            ok = guard.is_tensor(g) and g.shape == shape and g.is_floating_point()
            out.append(None if not ok else (g if scale is None else g * scale).to(dtype))
        return (None, None, None, None, *out)


def link(rfd: int, wfd: int, request_id: Any) -> Callable[..., Any]:
    """A worker's link to the grader for request ``request_id``: send a question, answer the grader's
    call-backs while waiting, return its answer."""

    def ask(message: dict[str, Any], call_back: Callable[[Any], dict[str, Any]]) -> Any:
        frames.write_frame(wfd, {**message, "id": request_id})
        while True:
            frame = frames.read_frame(rfd)
            if "answer" in frame:
                return frame["answer"]
            if "call_back" not in frame:
                raise OracleError("the grader sent a frame that answers nothing")
            frames.write_frame(wfd, {**call_back(frame["call_back"]), "id": request_id})

    return ask
