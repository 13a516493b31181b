"""The student side of gradient replay: a record of the call's computation, sent instead of gradients.

A gradient measured in the student process is only a claim: pure Python can
rebind whatever measures it. So the runtime records the aten operations of a
call that asks for gradients (a ``TorchDispatchMode``), and the grader
re-executes them on its own leaves (``autograder.sandbox.replay``). Custom
``torch.autograd.Function`` nodes are recorded with the gradients their
backward returned in the student's own backward pass, which still runs only to
observe them. The trace is plain data::

    {"leaves": {grad id: ref}, "consts": [[ref, tensor | alias, op index], ...],
     "ops": [[op name, grad enabled, args, kwargs, outputs, taken | null], ...],
     "nodes": [{"first": op index, "end": op index, "ins": [ref], "outs": [ref],
                "grads": [[request index, [grad output | null], [grad input | null]], ...]}],
     "outputs": [ref | null per gradient request]}
    | {"overflow": reason}

Values inside ``args``/``kwargs``/``outputs``: a tensor is ``{"$r": ref}``
(a leaf, an earlier op's output or a constant sent in ``consts``), lists, plain
scalars (``{"$f": "nan"}`` for non-finite floats), ``{"$dtype"|"$dev"|"$layout"|"$mf": name}``
and ``{"$x": type name}`` for anything else. ``taken``: the output tensors of
random and uninitialised ops, whose values the grader takes instead of drawing them.
A constant is defined before the op of its index; one that shares the memory of a
tensor already seen (``.data``) is ``{"$alias": ref, "s": size, "st": stride, "o": offset}``;
``[ref, tensor | alias, op index, "set"]``: the tensor ``ref`` got that memory (``x.data = …``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import guard, wire

MAX_OPS = 50_000  # per call; a trace this long fits a frame (frames.FRAME_ITEMS). A gradient check whose call passes
# it asks again with its samples split over calls (checks.stats.mean_gradients): a loop of ~55 ops a sample fits
MAX_ELEMENTS = 2**23  # elements of constants, taken outputs and node gradients in one trace
TAKEN = frozenset({"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided"})
_FUNCTION_APPLY = torch.autograd.function.Function.__dict__["apply"].__func__
_ACTIVE: list[Recorder] = []  # the recorder of the current call (at most one)


class _Overflow(Exception):
    """The trace would pass one of its limits."""


class GradientNotReplayed(Exception):
    """Raised into a recorded call once it passes ``MAX_OPS``: its gradient cannot be replayed, so the call stops
    there rather than running on at the dispatcher's cost (the check that asked may ask again, smaller)."""


def _address(tensor: torch.Tensor) -> int:
    try:
        return int(tensor.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # no storage (not a dense tensor)
        return 0


def scalar(value: Any) -> Any:
    """A non-tensor op argument as plain data (total)."""
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value if -(2**63) <= value < 2**63 else {"$x": "int"}
    if kind is float:
        return value if math.isfinite(value) else {"$f": repr(value)}
    if kind is torch.dtype:
        return {"$dtype": str(value).removeprefix("torch.")}
    if kind is torch.device:
        return {"$dev": str(value)}
    if kind is torch.layout:
        return {"$layout": str(value).removeprefix("torch.")}
    if kind is torch.memory_format:
        return {"$mf": str(value).removeprefix("torch.")}
    return {"$x": kind.__name__}


class Recorder(TorchDispatchMode):
    """Records every aten op run while it is active; ``trace()`` is the plain-data record."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # not wrapped by torch._disable_dynamo, whose first call imports torch._dynamo (seconds)

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}  # id(tensor) → ref
        self.storages: dict[int, int] = {}  # storage address → the ref of the first tensor seen on it
        self.addresses: list[int] = []  # per ref: its storage address when last seen
        self.alive: list[torch.Tensor] = []  # every tensor seen, kept alive so that ids stay unique
        self.leaves: dict[str, int] = {}
        self.consts: list[list[Any]] = []
        self.ops: list[list[Any]] = []
        self.nodes: list[dict[str, Any]] = []
        self.outputs: list[int | None] = []
        self.elements = 0
        self.depth = 0  # inside a custom Function's forward
        self.request = 0  # the gradient request whose backward runs (node gradients are filed under it)
        self.overflow: str | None = None

    # -- values -------------------------------------------------------------------------------------

    def _values(self, tensor: torch.Tensor) -> dict[str, Any]:
        n = int(tensor.numel())
        if self.elements + n > MAX_ELEMENTS:
            raise _Overflow(f"more than {MAX_ELEMENTS} recorded tensor elements")
        self.elements += n
        return wire.tensor_to_wire(tensor)

    def ref(self, tensor: torch.Tensor, const: bool = True) -> int:
        """The ref of ``tensor``; a tensor seen for the first time is a constant (its values sent) unless not
        ``const``; one whose memory was swapped since (``.data = …``) is rebound."""
        address = _address(tensor)
        r = self.refs.get(id(tensor))
        if r is not None:
            if address != self.addresses[r]:
                self.addresses[r] = address
                self.consts.append([r, self._constant(r, tensor, address), len(self.ops), "set"])
            return r
        r = self.refs[id(tensor)] = len(self.alive)
        self.alive.append(tensor)
        self.addresses.append(address)
        if const:
            self.consts.append([r, self._constant(r, tensor, address), len(self.ops)])
        elif address:
            self.storages.setdefault(address, r)
        return r

    def _constant(self, r: int, tensor: torch.Tensor, address: int) -> dict[str, Any]:
        """A view of the memory of a tensor seen before (``.data``), else the values of ``tensor``."""
        base = self.storages.setdefault(address, r) if address else r
        if base == r:
            return self._values(tensor)
        return {"$alias": base, "s": list(tensor.shape), "st": list(tensor.stride()), "o": int(tensor.storage_offset())}

    def leaf(self, grad_id: str, tensor: torch.Tensor) -> None:
        """``tensor`` is the call's leaf ``grad_id`` (the grader rebuilds it from its own request)."""
        self.leaves[grad_id] = self.ref(tensor, const=False)

    def arg(self, value: Any, depth: int = 0) -> Any:
        if guard.is_tensor(value):
            return {"$r": self.ref(value)}
        if type(value) in (list, tuple) and depth < 4:
            return [self.arg(v, depth + 1) for v in value]
        return scalar(value)

    def out(self, value: Any, taken: list[Any], depth: int = 0) -> Any:
        if guard.is_tensor(value):
            taken.append(value)
            return {"$r": self.ref(value, const=False)}
        if type(value) in (list, tuple) and depth < 4:
            return [self.out(v, taken, depth + 1) for v in value]
        return scalar(value)

    # -- recording ----------------------------------------------------------------------------------

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.overflow is None:
            try:
                self._record(func, args, kwargs, result)
            except _Overflow as exc:
                self.overflow = str(exc)
                if len(self.ops) >= MAX_OPS:
                    raise GradientNotReplayed(f"the computation is too large to replay ({exc})") from None
        return result

    def _record(self, func: Any, args: Any, kwargs: Any, result: Any) -> None:
        if len(self.ops) >= MAX_OPS:
            raise _Overflow(f"more than {MAX_OPS} tensor operations")
        grad = torch.is_grad_enabled()
        encoded_args = [self.arg(a) for a in args]
        encoded_kwargs = {str(k): self.arg(v) for k, v in kwargs.items()}
        tensors: list[torch.Tensor] = []
        outs = self.out(result, tensors)
        random = torch.Tag.nondeterministic_seeded in func.tags or func._overloadpacket.__name__ in TAKEN
        taken = [self._values(t) for t in tensors] if random else None
        self.ops.append([str(func), grad, encoded_args, encoded_kwargs, outs, taken])

    def node(self, first: int, args: tuple[Any, ...], result: Any) -> None:
        """A custom Function applied over ops ``first``…now: its inputs, outputs, and a hook on its backward."""
        outs = [t for t in (result if type(result) in (tuple, list) else (result,)) if guard.is_tensor(t)]
        grad_fn = next((t.grad_fn for t in outs if isinstance(t.grad_fn, torch.autograd.function.BackwardCFunction)),
                       None)
        if grad_fn is None or self.overflow is not None:
            return  # nothing differentiable came out: the ops inside replay as they are
        record = {"first": first, "end": len(self.ops), "ins": [self.ref(a) for a in args if guard.is_tensor(a)],
                  "outs": [self.ref(t, const=False) for t in outs], "grads": []}
        self.nodes.append(record)

        def hook(grad_inputs: Any, grad_outputs: Any) -> None:
            if self.overflow is None:
                try:
                    record["grads"].append([self.request, [self._maybe(g) for g in grad_outputs],
                                            [self._maybe(g) for g in grad_inputs]])
                except _Overflow as exc:
                    self.overflow = str(exc)

        grad_fn.register_hook(hook)

    def _maybe(self, tensor: Any) -> Any:
        return self._values(tensor) if guard.is_tensor(tensor) else None

    def trace(self) -> dict[str, Any]:
        """The record as plain data (or why it could not be kept)."""
        if self.overflow is not None:
            return {"overflow": self.overflow}
        return {"leaves": self.leaves, "consts": self.consts, "ops": self.ops, "nodes": self.nodes,
                "outputs": self.outputs}


class active:
    """``with active(recorder):`` records the ops (and custom Functions) run inside."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def __enter__(self) -> Recorder:
        _ACTIVE.append(self.recorder)
        self.recorder.__enter__()
        return self.recorder

    def __exit__(self, *exc: object) -> None:
        try:
            self.recorder.__exit__(*exc)
        finally:
            _ACTIVE.remove(self.recorder)


def building(recorder: Recorder, leaves: dict[str, torch.Tensor],
             build: Callable[[str, dict[str, Any]], Any]) -> Callable[[str, dict[str, Any]], Any]:
    """``build`` recorded: the distributions and callables built from the leaves are part of the computation."""

    def recorded(kind: str, params: dict[str, Any]) -> Any:
        for grad_id, tensor in leaves.items():
            recorder.leaf(grad_id, tensor)
        if _ACTIVE:  # an Fn inside an Fn: already recorded
            return build(kind, params)
        with active(recorder):
            return build(kind, params)

    return recorded


def call(recorder: Recorder, leaves: dict[str, torch.Tensor], fn: Callable[..., Any],
         args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)``, recorded."""
    for grad_id, tensor in leaves.items():
        recorder.leaf(grad_id, tensor)
    with active(recorder):
        return fn(*args, **kwargs)


def finish(recorder: Recorder, value: Any, requests: list[dict[str, Any]],
           inputs: tuple[tuple[str, torch.Tensor], ...]) -> dict[str, Any]:
    """The trace, with the ref of each requested output; the student's backward runs (once per request)
    only when a custom Function's gradients are to be observed."""
    for i, request in enumerate(requests):
        out = guard.item(value, request.get("output"))
        try:
            recorder.outputs.append(recorder.ref(out) if guard.is_tensor(out) else None)
        except _Overflow as exc:
            recorder.overflow = str(exc)
        if recorder.nodes and inputs and recorder.overflow is None:
            cot = request.get("cotangent")
            recorder.request = i
            guard.gradients(out, tuple(t for _, t in inputs), None if cot is None else wire.tensor_from_wire(cot))
    return recorder.trace()


def _apply(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """``Function.apply``, observed by the active recorder (outermost custom Functions only)."""
    recorder = _ACTIVE[-1] if _ACTIVE else None
    if recorder is None or recorder.depth:
        return _FUNCTION_APPLY(cls, *args, **kwargs)
    first = len(recorder.ops)
    recorder.depth += 1
    try:
        result = _FUNCTION_APPLY(cls, *args, **kwargs)
    finally:
        recorder.depth -= 1
    recorder.node(first, (*args, *kwargs.values()), result)
    return result


torch.autograd.function.Function.apply = classmethod(_apply)  # in the zygote, before any student code
