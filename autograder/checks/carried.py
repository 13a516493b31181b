"""Error carried forward, grader side: the reference answers for a student's graded function in oracle mode.

When a caller is regraded with a dependency ``P`` taken as correct, the
student process asks (``runtime.carry``) for ``P``'s value on the arguments
its caller passed, as plain data; :class:`Oracle` computes it with the
reference here, in the grader, keeps the graph, and answers the backward
questions that follow. A callable argument (A3's ``log_p_tilde``) stays in
the student process: the reference evaluates it there by a call-back, value
and input-gradient, rows being independent as a log-density's are.

Every question is hostile plain data: bounded in count and size, and an
unusable one gets an answer saying why (the student's caller then raises),
never an exception in the grader. The oracle only ever hands out the
reference's values for the student's own arguments, and the regrade that
uses it counts only when it scores better (``grading``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Callable

import torch

from autograder.sandbox.errors import StudentProcessError
from autograder.sandbox.runtime import builders, wire

MAX_ASKS = 20_000  # questions in one call (a descent asks one or two per step)
MAX_SECONDS = 60.0  # of the grader's time answering one call (a descent of 1500 steps takes a few)
MAX_ELEMENTS = 2**22  # of all tensor arguments of one question, and of their broadcast shape
MAX_INT = 2**20  # integer arguments (a sample count)
CallBack = Callable[[dict[str, Any]], dict[str, Any]]


class Refused(Exception):
    """A question the oracle does not answer (the reason goes back to the student process)."""


def _no(reason: str) -> dict[str, Any]:
    return {"ok": False, "error": reason[:300]}


class Oracle:
    """Answers a call's questions about the graded functions ``names`` with the reference ``functions``
    (by contract name: ``live.FUNCTIONS``, which only the grader holds)."""

    def __init__(self, names: tuple[str, ...], seed: int, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions = functions
        self.names = frozenset(names) & functions.keys()
        self.seed = seed
        self.asks = 0
        self.seconds = 0.0  # the grader's own time answering so far (call-backs into the student included)
        self.kept: dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}

    def __call__(self, ask: dict[str, Any], call_back: CallBack) -> dict[str, Any]:
        self.asks += 1
        if self.asks > MAX_ASKS or self.seconds > MAX_SECONDS:
            return _no(f"more than {MAX_ASKS} questions or {MAX_SECONDS:g} s of the grader's time in one call")
        start = time.monotonic()
        try:
            if ask.get("op") == "oracle":
                return self._value(ask, call_back)
            if ask.get("op") == "backward":
                return self._backward(ask)
            return _no("not a question the grader answers")
        except StudentProcessError:
            raise
        except Refused as exc:
            return _no(str(exc))
        except Exception as exc:  # noqa: BLE001 - these arguments came from student code; its caller raises
            return _no(f"the reference raised {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            self.seconds += time.monotonic() - start

    def _value(self, ask: dict[str, Any], call_back: CallBack) -> dict[str, Any]:
        name, args, kwargs = ask.get("name"), ask.get("args"), ask.get("kwargs")
        if name not in self.names:
            raise Refused(f"{str(name)[:100]} is not answered by the grader in this call")
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise Refused("malformed arguments")
        leaves: dict[str, torch.Tensor] = {}

        def build(kind: str, params: dict[str, Any]) -> Any:
            return _build(kind, params, call_back)

        args = [wire.decode(a, build_fn=build, leaves=leaves) for a in args]
        kwargs = {str(k): wire.decode(v, build_fn=build, leaves=leaves) for k, v in kwargs.items()}
        _bounded([*args, *kwargs.values()])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed((self.seed * 1_000_003 + self.asks) % 2**63)  # CPU only: cheap
            with torch.enable_grad():
                out = self.functions[name](*args, **kwargs)
        answer: dict[str, Any] = {"ok": True, "handle": None}
        if leaves and isinstance(out, torch.Tensor) and out.requires_grad:
            if out.numel() == 1:  # a loss: its gradients now, which saves the backward question
                answer["grads"] = self._grads(out, leaves, torch.ones_like(out), retain=False)
            else:
                answer["handle"] = len(self.kept)
                self.kept[answer["handle"]] = (out, leaves)
        answer["value"] = wire.encode(out.detach() if isinstance(out, torch.Tensor) else out)
        return answer

    @staticmethod
    def _grads(out: torch.Tensor, leaves: dict[str, torch.Tensor], cot: torch.Tensor, retain: bool) -> Any:
        """The gradients of ``out`` for ``cot`` w.r.t. the student's tensors, by grad id, as plain data."""
        grads = torch.autograd.grad(out, list(leaves.values()), cot.to(out.dtype), allow_unused=True,
                                    retain_graph=retain)
        return wire.encode({k: None if g is None else g.detach() for k, g in zip(leaves, grads)})

    def _backward(self, ask: dict[str, Any]) -> dict[str, Any]:
        handle = ask.get("handle")
        kept = self.kept.get(handle) if isinstance(handle, int) else None
        if kept is None:
            raise Refused("no such value to differentiate")
        out, leaves = kept
        cot = wire.decode(ask.get("cotangent"))
        if not isinstance(cot, torch.Tensor) or cot.shape != out.shape or not cot.is_floating_point():
            raise Refused(f"a gradient request of another shape than {tuple(out.shape)}")
        return {"ok": True, "grads": self._grads(out, leaves, cot, retain=True)}


def _build(kind: str, params: dict[str, Any], call_back: CallBack) -> Any:
    """The grader's object for an argument described by the student process."""
    if kind == "callback" and set(params) == {"id"} and isinstance(params["id"], int):
        index = params["id"]
        return lambda x: _StudentFn.apply(x, call_back, index)
    if kind == "normal" and set(params) == {"loc", "scale"}:
        return builders.normal(**params)
    if kind == "independent_normal" and set(params) == {"loc", "scale", "ndims"} and params["ndims"] in range(4):
        return builders.independent_normal(**params)
    raise Refused(f"an argument of kind {str(kind)[:40]!r} the grader cannot rebuild")


def _bounded(values: list[Any]) -> None:
    """Refuse arguments too large to compute with: tensors, their broadcast, integers."""
    tensors: list[torch.Tensor] = []
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, torch.Tensor):
            tensors.append(v)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
            raise Refused(f"an integer argument over {MAX_INT}")
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, torch.distributions.Normal):
            tensors += [v.loc, v.scale]
        elif isinstance(v, torch.distributions.Independent):
            stack.append(v.base_dist)
    if sum(t.numel() for t in tensors) > MAX_ELEMENTS:
        raise Refused("arguments too large for the grader")
    try:
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    except RuntimeError:
        return
    if math.prod(shape) > MAX_ELEMENTS:
        raise Refused("arguments whose broadcast is too large for the grader")


class _StudentFn(torch.autograd.Function):
    """A callable of the student's evaluated in its process: value, and the row-wise input-gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, call_back: CallBack, index: int) -> torch.Tensor:
        if x.numel() > MAX_ELEMENTS:
            raise Refused("points too many to evaluate")
        back = call_back({"id": index, "x": wire.tensor_to_wire(x.detach())})
        if back.get("ok") is not True:
            raise Refused(f"your callable could not be evaluated: {str(back.get('error'))[:200]}")
        try:
            value, grad = wire.decode(back.get("value")), wire.decode(back.get("grad"))
        except wire.WireError as exc:
            raise Refused(f"your callable's value could not be read ({exc})") from None
        if not isinstance(value, torch.Tensor) or value.dim() > x.dim() or value.shape != x.shape[: value.dim()]:
            raise Refused(f"your callable returned shape {getattr(value, 'shape', None)} for points {tuple(x.shape)}")
        if grad is None:
            grad = torch.zeros_like(x)
        if not isinstance(grad, torch.Tensor) or grad.shape != x.shape or not grad.is_floating_point():
            raise Refused("your callable's gradient has another shape than its points")
        ctx.save_for_backward(grad.to(x.dtype))
        ctx.dims = value.dim()
        return value.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return g.reshape(g.shape + (1,) * (grad.dim() - ctx.dims)) * grad, None, None
