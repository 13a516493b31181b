"""Gradients computed by the grader, from a replay of the computation the student process recorded.

The student process sends a trace of a call's aten ops (``runtime.record``),
never gradients. The grader rebuilds the leaves from its own request, runs
every op again with real torch (resolved only in ``torch.ops.aten``, a
denylist refused, the work bounded: op count, every op's output size known
before it runs (a view's is none, a pointwise op's the broadcast of its
tensors', any other's from a cached meta-device dry run), total elements,
wall time), checks
that the replay reproduces the returned value, and differentiates it with its
own autograd. Random and uninitialised ops take their recorded values. A custom
``autograd.Function`` is a grader-side Function over its recorded forward ops
whose backward returns the gradients the student's backward returned, once the
upstream gradients it gets equal the ones recorded. Fail closed: what cannot be
replayed costs the gradient (``ReplayFailed``, naming why), never the grader.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from autograder.sandbox import replay_ops as aten
from autograder.sandbox.errors import BrokenReply
from autograder.sandbox.replay_ops import Malformed, ReplayFailed
from autograder.sandbox.runtime import wire

MAX_OPS = 50_000  # as the student side records (runtime.record, not imported: it patches Function.apply)
MAX_OP_ELEMENTS = 2**26  # elements of one op's outputs
MAX_ELEMENTS = 2**28  # elements of all the replay's outputs
REPLAY_SECONDS = 30.0


@dataclass(frozen=True)
class Node:
    """A custom ``autograd.Function`` of the trace: ops ``first``…``end`` and its recorded gradients."""

    first: int
    end: int
    ins: tuple[int, ...]
    outs: tuple[int, ...]
    grads: tuple[tuple[int, tuple[Any, ...], tuple[Any, ...]], ...]  # (request, grad outputs, grad inputs)


def gradients(trace: Any, value: Any, requests: list[dict[str, Any]], leaves: dict[str, torch.Tensor]
              ) -> list[dict[str, torch.Tensor | None]]:
    """Per request ``{"output": index | None, "cotangent": tensor | None}``, d⟨output, cotangent⟩/d leaf
    of the replayed trace, for every leaf of the grader's request (its own ``leaves``, by grad id)."""
    if isinstance(trace, dict) and isinstance(trace.get("overflow"), str):
        raise ReplayFailed(f"the computation is too large to replay ({trace['overflow'][:200]})")
    try:
        replay = _Replay(trace, leaves)
        outputs = replay.run(len(requests))
    except Malformed as exc:
        raise BrokenReply(f"a malformed gradient trace ({str(exc)[:200]})", "the gradient replay") from None
    return [replay.grads(i, out, _item(value, r.get("output")), r.get("cotangent"))
            for i, (out, r) in enumerate(zip(outputs, requests))]


def leaves_of(values: Iterator[Any]) -> dict[str, torch.Tensor]:
    """The grader's own leaves (``wire.Leaf``) in request arguments, as fresh tensors that require grad."""
    found: dict[str, torch.Tensor] = {}
    stack = list(values)
    while stack:
        v = stack.pop(0)
        if isinstance(v, wire.Leaf):
            found[v.grad_id] = v.tensor.detach().clone().requires_grad_(True)
        elif isinstance(v, wire.Fn):
            stack[:0] = list(v.params.values())
        elif isinstance(v, (list, tuple)):
            stack[:0] = list(v)
        elif isinstance(v, dict):
            stack[:0] = list(v.values())
    return found


def _item(value: Any, index: Any) -> Any:
    if index is None:
        return value
    return value[index] if isinstance(value, (tuple, list)) and 0 <= index < len(value) else None


class _Replay:
    """One trace replayed on the grader's leaves: ``env`` maps refs to the grader's tensors."""

    def __init__(self, trace: Any, leaves: dict[str, torch.Tensor]) -> None:
        if not isinstance(trace, dict):
            raise Malformed("the trace is not an object")
        ops, nodes = trace.get("ops"), trace.get("nodes")
        if not isinstance(ops, list) or not isinstance(nodes, list):
            raise Malformed("no ops or nodes")
        if len(ops) > MAX_OPS:
            raise ReplayFailed(f"the computation has {len(ops)} tensor operations; the grader replays at most {MAX_OPS}")
        self.ops, self.leaves = ops, leaves
        self.env: dict[int, torch.Tensor] = {}
        self.elements = 0
        self.deadline = time.monotonic() + REPLAY_SECONDS
        self.request = 0
        self.outputs = trace.get("outputs")
        named = trace.get("leaves")
        if not isinstance(named, dict):
            raise Malformed("no leaves")
        for grad_id, ref in named.items():
            if grad_id not in leaves:
                raise Malformed(f"a leaf {str(grad_id)[:40]!r} the grader never sent")
            self._define(ref, leaves[grad_id])
        consts = trace.get("consts")
        if not isinstance(consts, list):
            raise Malformed("no constants")
        self.consts: dict[int, list[tuple[Any, dict[str, Any], bool]]] = {}  # op index → constants defined before it
        for item in consts:
            if not (isinstance(item, list) and len(item) in (3, 4) and isinstance(item[1], dict)
                    and type(item[2]) is int and 0 <= item[2] <= len(ops) and item[3:] in ([], ["set"])):
                raise Malformed("a malformed constant")
            self.consts.setdefault(item[2], []).append((item[0], item[1], len(item) == 4))
        self.nodes = {n.first: n for n in map(self._node, nodes)}
        if len(self.nodes) != len(nodes):
            raise Malformed("two custom Function records start at the same op")
        ends = sorted((n.first, n.end) for n in self.nodes.values())
        if any(a_end > b_first for (_, a_end), (b_first, _) in zip(ends, ends[1:])):
            raise Malformed("custom Function records overlap")

    # -- values -------------------------------------------------------------------------------------

    def _tensor(self, obj: Any) -> torch.Tensor:
        if not isinstance(obj, dict):
            raise Malformed("a tensor value that is not an object")
        try:
            t = wire.tensor_from_wire(obj)
        except wire.WireError as exc:
            raise Malformed(str(exc)) from None
        self._spend(int(t.numel()))
        return t

    def _spend(self, n: int) -> None:
        if n > MAX_OP_ELEMENTS or self.elements + n > MAX_ELEMENTS:
            raise ReplayFailed(f"the computation is too large to replay (an op of {n} elements; the grader "
                               f"replays at most {MAX_OP_ELEMENTS} per op and {MAX_ELEMENTS} in all)")
        self.elements += n

    def _constants(self, i: int) -> None:
        """Define the constants first used by op ``i`` (values, or views of a tensor's memory: ``.data``)."""
        for ref, obj, rebind in self.consts.pop(i, ()):
            value = self._tensor(obj) if "$alias" not in obj else self._alias(obj)
            if not rebind:
                self._define(ref, value)
                continue
            try:
                with torch.no_grad():
                    self._ref(ref).data = value
            except RuntimeError:
                raise ReplayFailed("a tensor's memory was swapped (.data = …) for one the grader cannot take") from None

    def _alias(self, obj: dict[str, Any]) -> torch.Tensor:
        base, size, stride, offset = self._ref(obj.get("$alias")), obj.get("s"), obj.get("st"), obj.get("o")
        if not (isinstance(size, list) and isinstance(stride, list) and len(size) == len(stride) <= wire.MAX_DIMS
                and all(type(n) is int and 0 <= n < 2**40 for n in [*size, *stride]) and type(offset) is int
                and 0 <= offset < 2**40):
            raise Malformed("a malformed alias")
        try:
            return torch.as_strided(base.detach(), size, stride, offset)
        except RuntimeError:
            raise ReplayFailed("a tensor recorded as sharing another's memory lies outside it") from None

    def _define(self, ref: Any, tensor: torch.Tensor) -> None:
        if type(ref) is not int or ref in self.env:
            raise Malformed(f"a ref {str(ref)[:20]} that is not a new integer")
        self.env[ref] = tensor

    def _ref(self, ref: Any) -> torch.Tensor:
        if type(ref) is not int or ref not in self.env:
            raise Malformed(f"a ref to nothing ({str(ref)[:20]})")
        return self.env[ref]

    def _arg(self, value: Any, name: str, depth: int = 0) -> Any:
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is dict and len(value) == 1 and "$r" in value:  # the common case, first
            return self._ref(value["$r"])
        if isinstance(value, list) and depth < 4 and len(value) <= 10_000:
            return [self._arg(v, name, depth + 1) for v in value]
        if isinstance(value, dict) and len(value) == 1:
            (tag, item), = value.items()
            if tag == "$r":
                return self._ref(item)
            if tag == "$f" and item in ("nan", "inf", "-inf"):
                return float(item)
            if tag == "$dev":
                if item not in aten.DEVICES:
                    raise ReplayFailed(f"the grader replays only on the CPU, not {str(item)[:20]} ({name})")
                return torch.device(item)
            if tag in aten.SCALARS and isinstance(item, str):
                what, known = aten.SCALARS[tag]
                if item not in known:
                    raise ReplayFailed(f"the grader could not replay {name}: {what} {item[:30]} is not supported")
                return known[item]
            if tag == "$x":
                raise ReplayFailed(f"the grader could not replay {name}: an argument of type {str(item)[:40]}")
        raise Malformed(f"an argument of {name} that is not in the protocol's form")

    def _node(self, obj: Any) -> Node:
        fields = ("first", "end", "ins", "outs", "grads")
        if not (isinstance(obj, dict) and all(k in obj for k in fields)):
            raise Malformed("a malformed custom Function record")
        first, end, ins, outs, grads = (obj[k] for k in fields)
        if not (type(first) is int and type(end) is int and 0 <= first < end <= len(self.ops)
                and isinstance(ins, list) and isinstance(outs, list) and isinstance(grads, list)
                and all(type(r) is int for r in ins + outs) and len(ins) <= 1000 and len(outs) <= 1000
                and len(grads) <= 100):
            raise Malformed("a malformed custom Function record")
        recorded = []
        for g in grads:
            if not (isinstance(g, list) and len(g) == 3 and type(g[0]) is int and isinstance(g[1], list)
                    and isinstance(g[2], list) and len(g[1]) == len(outs) and len(g[2]) == len(ins)):
                raise Malformed("a malformed custom Function gradient")
            recorded.append((g[0], tuple(None if t is None else self._tensor(t) for t in g[1]),
                             tuple(None if t is None else self._tensor(t) for t in g[2])))
        return Node(first, end, tuple(ins), tuple(outs), tuple(recorded))

    # -- running ------------------------------------------------------------------------------------

    def run(self, n_requests: int) -> list[torch.Tensor | None]:
        """Replay every op; the replayed output of each gradient request."""
        i = 0
        while i < len(self.ops):
            self._constants(i)
            node = self.nodes.get(i)
            if node is None:
                self._step(i)
                i += 1
                continue
            results = _Custom.apply(self, node, *[self._ref(r) for r in node.ins])
            for ref, t in zip(node.outs, results):
                self.env[ref] = t
            i = node.end
        self._constants(len(self.ops))
        if not (isinstance(self.outputs, list) and len(self.outputs) == n_requests):
            raise Malformed("not one output per gradient request")
        return [None if ref is None else self._ref(ref) for ref in self.outputs]

    def window(self, node: Node) -> tuple[torch.Tensor, ...]:
        """A custom Function's forward: its recorded ops, without gradients."""
        with torch.no_grad():
            for i in range(node.first, node.end):
                self._constants(i)
                self._step(i, inside=True)
        return tuple(self._ref(r) for r in node.outs)

    def _step(self, i: int, inside: bool = False) -> None:
        if time.monotonic() > self.deadline:
            raise ReplayFailed(f"the replay of the computation took longer than {REPLAY_SECONDS:g} s")
        entry = self.ops[i]
        if not (isinstance(entry, list) and len(entry) == 6 and type(entry[1]) is bool
                and isinstance(entry[2], list) and isinstance(entry[3], dict)):
            raise Malformed(f"op {i} is not in the protocol's form")
        name, grad, raw_args, raw_kwargs, outs, taken = entry
        op, traits = aten.op(name)
        args = [self._arg(a, name) for a in raw_args]
        kwargs = {str(k): self._arg(v, name) for k, v in raw_kwargs.items()}
        refs = aten.refs(outs)
        if taken is not None:
            self._take(name, refs, taken)
            return
        result = self._execute(op, traits, name, args, kwargs, grad and not inside)
        tensors = [result] if isinstance(result, torch.Tensor) else list(aten.tensors(result))
        if len(tensors) != len(refs):
            raise ReplayFailed(f"the replay of {name} gave {len(tensors)} tensors where {len(refs)} were recorded")
        for ref, t in zip(refs, tensors):
            if type(ref) is not int:
                raise Malformed(f"an output ref of {name} that is not an integer")
            self.env[ref] = t

    def _execute(self, op: Any, traits: aten.Traits, name: str, args: list[Any], kwargs: dict[str, Any],
                 grad: bool) -> Any:
        """``op(*args, **kwargs)`` once its output size is known to be within the budget."""
        known: int | None = 0
        if not traits.view:
            values = [*args, *kwargs.values()] if kwargs else args
            read = aten.largest(values)
            if read > MAX_OP_ELEMENTS:  # an op's work grows with what it reads, e.g. a sum over a huge expand
                raise ReplayFailed(f"the computation is too large to replay ({name} reads a tensor of {read} "
                                   f"elements; the grader replays at most {MAX_OP_ELEMENTS} per op)")
            known = aten.pointwise_numel(traits.pointwise, values)
        size = self._dry_run(op, traits.factory, args, kwargs) if known is None else known
        if size:  # nothing to spend on 0 elements
            self._spend(size)
        try:
            result = _call(op, args, kwargs, grad)
        except Exception as exc:  # noqa: BLE001 - the student's computation fails here too: no gradient
            if known is not None:
                self._dry_run(op, traits.factory, args, kwargs)  # too large, if the skipped dry run says so
            why = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise ReplayFailed(f"the grader's replay of {name} failed ({why})") from None
        if size is None:
            self._spend(aten.numel(result))
        return result

    def _dry_run(self, op: Any, factory: bool, args: list[Any], kwargs: dict[str, Any]) -> int | None:
        """The output size of ``op`` from its dry run; None (measured once it ran) when the dry run fails,
        unless an integer argument could make it allocate beyond the budget: refused."""
        size = aten.dry_numel(op, factory, args, kwargs)
        if size is None and any(n > MAX_OP_ELEMENTS for v in (*args, *kwargs.values()) for n in aten.sizes(v)):
            self._spend(MAX_OP_ELEMENTS + 1)
        return size

    def _take(self, name: str, refs: list[Any], taken: Any) -> None:
        """A random or uninitialised op: its outputs are the recorded values."""
        if not (isinstance(taken, list) and len(taken) == len(refs)):
            raise Malformed(f"the recorded values of {name} do not match its outputs")
        for ref, obj in zip(refs, taken):
            value = self._tensor(obj)
            if type(ref) is not int:
                raise Malformed(f"an output ref of {name} that is not an integer")
            existing = self.env.get(ref)
            if existing is None:
                self.env[ref] = value
                continue
            if existing.shape != value.shape or existing.dtype != value.dtype:
                raise Malformed(f"the recorded values of {name} do not fit the tensor it wrote")
            with torch.no_grad():
                existing.copy_(value)

    # -- gradients ----------------------------------------------------------------------------------

    def grads(self, i: int, out: torch.Tensor | None, returned: Any, cotangent: Any) -> dict[str, torch.Tensor | None]:
        """Request ``i``'s gradients of the replayed ``out``, once it reproduces the ``returned`` value."""
        none = {k: None for k in self.leaves}
        if out is None:
            return none
        if not aten.reproduces(out.detach(), returned):
            raise ReplayFailed("the recorded computation does not reproduce the returned value")
        if not out.requires_grad:
            return none
        cot = torch.ones_like(out) if cotangent is None else cotangent.to(out.dtype)
        if cot.shape != out.shape:
            raise ReplayFailed(f"the output has shape {tuple(out.shape)}, the gradient request {tuple(cot.shape)}")
        self.request = i
        names = list(self.leaves)
        try:
            got = torch.autograd.grad(out, [self.leaves[k] for k in names], cot, retain_graph=True, allow_unused=True)
        except ReplayFailed:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ReplayFailed(f"the grader's backward through the replay failed ({str(exc)[:200]})") from None
        return {k: None if g is None else g.detach() for k, g in zip(names, got)}

    def backward(self, node: Node, inputs: list[tuple[torch.Size, torch.dtype, bool]],
                 grad_outputs: tuple[Any, ...]) -> tuple[Any, ...]:
        """A custom Function's recorded gradients, for the upstream gradients recorded with them."""
        for request, recorded_out, recorded_in in node.grads:
            if request == self.request and aten.same(grad_outputs, recorded_out):
                break
        else:
            raise ReplayFailed("the gradient of a custom autograd.Function was recorded for a different "
                               "upstream gradient")
        result = []
        for (shape, dtype, needed), g in zip(inputs, recorded_in):
            if g is None or not needed:
                result.append(None)
            elif g.shape != shape or not g.is_floating_point():
                raise ReplayFailed("a custom autograd.Function's recorded gradient does not fit its input")
            else:
                result.append(g.to(dtype))
        return tuple(result)


def _call(op: Any, args: list[Any], kwargs: dict[str, Any], grad: bool) -> Any:
    """``op(*args, **kwargs)`` with gradients recorded or not (the grad mode is switched only when it differs)."""
    if grad == torch.is_grad_enabled():
        return op(*args, **kwargs)
    with torch.set_grad_enabled(grad):
        return op(*args, **kwargs)


class _Custom(torch.autograd.Function):
    """A recorded custom Function, replayed: forward by its ops, backward by its recorded gradients."""

    @staticmethod
    def forward(ctx: Any, replay: _Replay, node: Node, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.replay, ctx.node = replay, node
        ctx.inputs = [(x.shape, x.dtype, x.requires_grad) for x in inputs]
        return tuple(t.clone() if any(t is x for x in inputs) else t for t in replay.window(node))

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> tuple[Any, ...]:
        return (None, None, *ctx.replay.backward(ctx.node, ctx.inputs, grad_outputs))
