"""Gradients are the grader's own, from a replay of the student's recorded computation (issue 11).

Correct straight-through styles keep the gradient check (run in this process: record and replay
are the same code as in the sandbox); a quantiser without the estimator loses it; forged and
hostile traces each end in one clear failure of the gradient, within the replay's budget.
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from autograder.checks import QUESTIONS, run_check
from autograder.checks.framework import QUESTION_SECONDS
from autograder.local import LocalSession
from autograder.sandbox import replay
from autograder.sandbox.errors import BrokenReply
from autograder.sandbox.runtime import frames, record, wire
from tests.checks.conftest import PRELUDE

STRAIGHT_THROUGH = "straight-through gradient: identity to z_e, nothing to the codebook"

#: Correct D1 styles: each must keep the straight-through check.
STYLES = {
    "detach": '''
def quantize(z_e, codebook):
    idx = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1).argmin(-1)
    z_q = codebook[idx]
    return z_e + (z_q - z_e).detach(), idx
''',
    "indices under no_grad": '''
def quantize(z_e, codebook):
    with torch.no_grad():
        d = (z_e ** 2).sum(-1, keepdim=True) - 2 * z_e @ codebook.T + (codebook ** 2).sum(-1)
        idx = d.argmin(-1)
    return z_e + (codebook[idx] - z_e).detach(), idx
''',
    "custom autograd.Function": '''
class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z_e, z_q):
        return z_q.clone()
    @staticmethod
    def backward(ctx, grad):
        return grad, None
def quantize(z_e, codebook):
    idx = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1).argmin(-1)
    return _STE.apply(z_e, codebook[idx].detach()), idx
''',
    "through .data": '''
def quantize(z_e, codebook):
    idx = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1).argmin(-1)
    z_q = z_e.clone()
    z_q.data.copy_(codebook[idx].data)
    return z_q, idx
''',
    "memory swapped with .data =": '''
def quantize(z_e, codebook):
    idx = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1).argmin(-1)
    z_q = z_e.clone()
    z_q.data = codebook[idx].data
    return z_q, idx
''',
    "one-hot matmul and torch.where": '''
def quantize(z_e, codebook):
    d = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1)
    idx = d.argmin(-1)
    onehot = F.one_hot(idx, codebook.shape[0]).to(z_e.dtype)
    z_q = onehot @ codebook
    keep = torch.ones_like(z_e, dtype=torch.bool)
    return torch.where(keep, z_e + (z_q - z_e).detach(), z_e), idx
''',
}

#: No straight-through estimator: no gradient reaches z_e.
NO_STE = '''
def quantize(z_e, codebook):
    idx = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1).argmin(-1)
    return codebook[idx], idx
'''

#: A custom Function whose backward was recorded for one upstream gradient and is asked another:
#: it remembers the first cotangent it saw and returns it every time.
STALE_FUNCTION = '''
_seen = []
class _Stale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z_e, z_q):
        return z_q.clone()
    @staticmethod
    def backward(ctx, grad):
        _seen.append(grad.clone())
        return _seen[0], None
def quantize(z_e, codebook):
    idx = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1).argmin(-1)
    return _Stale.apply(z_e, codebook[idx].detach()), idx
'''


def _check(source: str, name: str = STRAIGHT_THROUGH):
    namespace: dict = {"__name__": "__main__"}
    exec(PRELUDE + source, namespace)  # noqa: S102 - the notebooks under test
    (c,) = [c for c in QUESTIONS["D1"] if c.name == name]
    return run_check(LocalSession(namespace), c, 0, time.monotonic() + QUESTION_SECONDS)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_straight_through_style_keeps_the_gradient_points(style):
    result = _check(STYLES[style])
    assert result.points == result.max_points, result.failure


def test_no_straight_through_loses_the_gradient_points():
    result = _check(NO_STE)
    assert result.points == 0


def test_a_custom_function_asked_for_another_upstream_gradient_fails_clearly():
    result = _check(STYLES["custom autograd.Function"] + STALE_FUNCTION)
    assert result.points == 0


# -- traces written by hand (what a student process could send) --------------------------------------

Z, CB = torch.randn(3, 2), torch.randn(4, 2)
LEAVES = {"z_e": Z, "codebook": CB}
REQUEST = [{"output": None, "cotangent": None}]


def _leaves() -> dict[str, torch.Tensor]:
    return replay.leaves_of([wire.Leaf(Z, "z_e"), wire.Leaf(CB, "codebook")])


def _trace(ops, outputs=(2,), nodes=(), consts=()):
    return {"leaves": {"z_e": 0, "codebook": 1}, "consts": [list(c) for c in consts], "ops": list(ops),
            "nodes": list(nodes), "outputs": list(outputs)}


def _op(name, args, out, kwargs=None, grad=True, taken=None):
    return [name, grad, args, kwargs or {}, out, taken]


def _grads(trace, value, requests=REQUEST):
    return replay.gradients(trace, value, requests, _leaves())


def test_an_honest_trace_gives_the_graders_gradient():
    trace = _trace([_op("aten.mul.Tensor", [{"$r": 0}, 3.0], {"$r": 2})])
    (g,) = _grads(trace, Z * 3)
    assert torch.equal(g["z_e"], torch.full_like(Z, 3.0)) and g["codebook"] is None


def test_the_recorded_trace_of_a_call_replays():
    recorder = record.Recorder()
    leaves = {"z_e": Z.clone().requires_grad_(True), "codebook": CB.clone().requires_grad_(True)}
    value = record.call(recorder, leaves, lambda z_e, codebook: (z_e.exp() * codebook[:3]).sum(), [], leaves)
    trace = frames.loads(json.dumps(record.finish(recorder, value, REQUEST, tuple(leaves.items()))).encode())
    (g,) = _grads(trace, value.detach())
    assert torch.allclose(g["z_e"], Z.exp() * CB[:3]) and torch.allclose(g["codebook"][:3], Z.exp())


def test_a_forged_identity_path_that_does_not_reproduce_the_value_fails():
    node = {"first": 0, "end": 1, "ins": [0, 1], "outs": [2],
            "grads": [[0, [wire.tensor_to_wire(torch.ones(3, 2))], [wire.tensor_to_wire(torch.ones(3, 2)), None]]]}
    trace = _trace([_op("aten.clone.default", [{"$r": 0}], {"$r": 2}, grad=False)], nodes=[node])
    with pytest.raises(replay.ReplayFailed, match="does not reproduce the returned value"):
        _grads(trace, CB[:3].clone())  # the value returned is codebook rows, the forged path is z_e itself


def test_a_forged_gradient_for_another_upstream_gradient_fails():
    node = {"first": 0, "end": 1, "ins": [0, 1], "outs": [2],
            "grads": [[0, [wire.tensor_to_wire(torch.full((3, 2), 7.0))], [wire.tensor_to_wire(Z), None]]]}
    trace = _trace([_op("aten.clone.default", [{"$r": 0}], {"$r": 2}, grad=False)], nodes=[node])
    with pytest.raises(replay.ReplayFailed, match="recorded for a different upstream gradient"):
        _grads(trace, Z.clone())


@pytest.mark.parametrize("name, why", [
    ("aten.no_such_op.default", "no such aten op"),
    ("aten.set_.source_Tensor", "does not replay"),
    ("aten._assert_async.default", "does not replay"),
    ("torch.ops.aten.add", "not an aten op"),
    ("aten.__class__.default", "not an aten op"),
])
def test_an_op_the_grader_does_not_run_is_named(name, why):
    trace = _trace([_op(name, [{"$r": 0}], {"$r": 2})])
    with pytest.raises(replay.ReplayFailed, match=why):
        _grads(trace, Z)


def test_a_huge_allocation_is_refused_before_it_runs():
    trace = _trace([_op("aten.zeros.default", [[10**10]], {"$r": 2}, kwargs={"dtype": {"$dtype": "float32"}})])
    start = time.monotonic()
    with pytest.raises(replay.ReplayFailed, match="too large"):
        _grads(trace, Z)
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("grow", [
    _op("aten.contiguous.default", [{"$r": 3}], {"$r": 2}),  # returns an alias when it can: copies here
    _op("aten.reshape.default", [{"$r": 3}, [-1]], {"$r": 2}),
    _op("aten._resize_output_.default", [{"$r": 0}, [2**30], {"$dev": "cpu"}], {"$r": 2}),  # in place
])
def test_an_op_that_returns_an_alias_but_allocates_is_refused_before_it_runs(grow):
    huge_view = _op("aten.expand.default", [{"$r": 0}, [2**15, 2**15, 3, 2]], {"$r": 3})  # a view: free
    start = time.monotonic()
    with pytest.raises(replay.ReplayFailed, match="too large"):
        _grads(_trace([huge_view, grow]), Z)
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("reduce", [
    _op("aten.sum.default", [{"$r": 3}], {"$r": 2}),
    _op("aten.amax.default", [{"$r": 3}, [0, 1]], {"$r": 2}),
    _op("aten.mul.Tensor", [{"$r": 3}, 0.0], {"$r": 2}),
])
def test_an_op_that_reads_a_huge_view_is_refused_before_it_runs(reduce):
    huge_view = _op("aten.expand.default", [{"$r": 0}, [2**20, 2**20, 3, 2]], {"$r": 3})  # 2^41 elements, free
    start = time.monotonic()
    with pytest.raises(replay.ReplayFailed, match="reads a tensor of"):
        _grads(_trace([huge_view, reduce]), Z)
    assert time.monotonic() - start < 1


def test_a_million_ops_are_refused_at_once():
    op = _op("aten.neg.default", [{"$r": 0}], {"$r": 2})
    start = time.monotonic()
    with pytest.raises(replay.ReplayFailed, match="at most"):
        _grads(_trace([op] * 10**6), Z)
    assert time.monotonic() - start < 1


def test_a_trace_too_large_on_the_student_side_is_reported():
    with pytest.raises(replay.ReplayFailed, match="too large to replay"):
        _grads({"overflow": "more than 20000 tensor operations"}, Z)


@pytest.mark.parametrize("trace", [
    None, 5, "ops", [], {"ops": "x"},
    _trace([_op("aten.neg.default", [{"$r": 99}], {"$r": 2})]),  # a ref to nothing
    _trace([_op("aten.neg.default", [{"$r": "0"}], {"$r": 2})]),  # a ref of the wrong type
    _trace([_op("aten.neg.default", [[[[[[{"$r": 0}]]]]]], {"$r": 2})]),  # nested too deeply
    _trace([_op("aten.neg.default", [{"$r": 0, "x": 1}], {"$r": 2})]),  # an unknown value form
    _trace([["aten.neg.default", "yes", [], {}, {"$r": 2}, None]]),  # a flag of the wrong type
    _trace([_op("aten.neg.default", [{"$r": 0}], {"$r": 2})], outputs=(2, 2)),  # outputs ≠ requests
    _trace([_op("aten.neg.default", [{"$r": 0}], {"$r": 2})], consts=[(0, wire.tensor_to_wire(Z), 0)]),  # a ref twice
    _trace([_op("aten.neg.default", [{"$r": 0}], {"$r": 2})],
           nodes=[{"first": 0, "end": 5, "ins": [0], "outs": [2], "grads": []}]),  # a node past the ops
    {**_trace([]), "leaves": {"w": 0}},  # a leaf the grader never sent
])
def test_a_malformed_trace_is_a_broken_reply(trace):
    with pytest.raises(BrokenReply, match="malformed gradient trace"):
        _grads(trace, Z)


@pytest.mark.parametrize("device", ["meta", 0, [], {}])
def test_a_device_other_than_the_cpu_is_refused(device):
    trace = _trace([_op("aten.ones.default", [[2]], {"$r": 2}, kwargs={"device": {"$dev": device}})])
    with pytest.raises(replay.ReplayFailed, match="replays only on the CPU"):
        _grads(trace, Z)


def test_an_unsupported_argument_type_is_named():
    trace = _trace([_op("aten.neg.default", [{"$x": "Generator"}], {"$r": 2})])
    with pytest.raises(replay.ReplayFailed, match="aten.neg.default: an argument of type Generator"):
        _grads(trace, Z)


def test_a_random_op_takes_the_recorded_values():
    noise = torch.randn(3, 2)
    trace = _trace([_op("aten.randn.default", [[3, 2]], {"$r": 2}, taken=[wire.tensor_to_wire(noise)]),
                    _op("aten.mul.Tensor", [{"$r": 0}, {"$r": 2}], {"$r": 3})], outputs=(3,))
    (g,) = _grads(trace, Z * noise)
    assert torch.equal(g["z_e"], noise)


@pytest.mark.slow
def test_in_the_sandbox_a_custom_function_keeps_and_a_swapped_snapshot_loses_the_points():
    from tests.hostile.test_held_out import D1_NO_STRAIGHT_THROUGH, LIMITS, SNAPSHOT_SWAP, _notebook
    from autograder.grading import grade_notebook
    from autograder.sandbox.process import Sandbox

    with Sandbox(LIMITS) as sandbox:
        honest = grade_notebook(_notebook(PRELUDE + STYLES["custom autograd.Function"]), sandbox=sandbox, qids=("D1",))
        forged = grade_notebook(_notebook(D1_NO_STRAIGHT_THROUGH + SNAPSHOT_SWAP), sandbox=sandbox, qids=("D1",))
    assert honest.scores["D1"] == 6
    assert forged.scores["D1"] <= 4
