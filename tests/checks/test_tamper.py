"""The grader's measurements in the student process cannot be patched from inside (issue 11).

A quantiser without the straight-through estimator, or an EMA update that
writes into its inputs, patches torch, builtins or the runtime so that the
gradients or the arguments the runtime reports look right: each such notebook
loses the check that measures it, with the reason; correct code keeps it.
"""

from __future__ import annotations

import builtins
import contextlib
import time

import pytest
import torch

from autograder.checks import QUESTIONS, run_check
from autograder.checks.framework import QUESTION_SECONDS
from autograder.local import LocalSession
from autograder.notebook import CodeCell
from autograder.reports.layout import plain_text
from autograder.sandbox.runtime import builders, child, guard, wire
from autograder.sandbox.session import StudentSession
from tests.checks.conftest import PRELUDE, reference_source

STRAIGHT_THROUGH = "straight-through gradient: identity to z_e, nothing to the codebook"
PURE = "inputs are not modified in place"

#: No straight-through estimator: z_q carries no gradient to z_e (codebook[idx] + 0 · z_e gives zeros).
NO_STE = '''
def quantize(z_e, codebook):
    idx = ((z_e[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
    return codebook[idx] + 0 * z_e, idx
'''

#: An EMA update that writes its running statistics in place (also a mutant of test_vq).
IN_PLACE = '''
def _update(cluster_size, embed_sum, z_e, indices, decay, eps):
    K = cluster_size.shape[0]
    onehot = F.one_hot(indices.reshape(-1), K).to(embed_sum.dtype)
    cluster_size.mul_(decay).add_((1 - decay) * onehot.sum(0))
    embed_sum.mul_(decay).add_((1 - decay) * onehot.T @ z_e.reshape(-1, z_e.shape[-1]))
    total = cluster_size.sum()
    smoothed = (cluster_size + eps) / (total + K * eps) * total
    return embed_sum / smoothed[:, None], cluster_size.clone(), embed_sum.clone()
'''

#: Patches that would fake the gradient the runtime reports (or touch what it measures with).
GRADIENT_PATCHES = {
    "torch.autograd.grad returns the upstream gradient": '''
def _fake_grad(outputs, inputs, grad_outputs=None, **kwargs):
    return (grad_outputs, None)
torch.autograd.grad = _fake_grad
''',
    "torch.Tensor.backward wrapped": '''
_real_backward = torch.Tensor.backward
torch.Tensor.backward = lambda self, *a, **k: _real_backward(self, *a, **k)
''',
    "torch.autograd.backward wrapped": '''
_real_ab = torch.autograd.backward
torch.autograd.backward = lambda *a, **k: _real_ab(*a, **k)
''',
    "torch.Tensor.detach wrapped": '''
_real_detach = torch.Tensor.detach
torch.Tensor.detach = lambda self: _real_detach(self)
''',
    "torch.Tensor.clone wrapped": '''
_real_clone = torch.Tensor.clone
torch.Tensor.clone = lambda self, *a, **k: _real_clone(self, *a, **k)
''',
    "builtins.isinstance wrapped": '''
import builtins
_real_isinstance = builtins.isinstance
builtins.isinstance = lambda obj, cls: _real_isinstance(obj, cls)
''',
    "the runtime's wire.encode replaced": '''
import sys
for _m in list(sys.modules.values()):
    if getattr(_m, "__name__", "").endswith(".wire") and hasattr(_m, "tensor_to_wire"):
        _real_encode = _m.encode
        _m.encode = lambda value, *a, **k: _real_encode(value, *a, **k)
''',
    "the runtime's recorder replaced": '''
import sys, types
for _m in list(sys.modules.values()):
    if getattr(_m, "__name__", "").endswith(".child") and hasattr(_m, "Responder"):
        _m.record = types.SimpleNamespace(**{**vars(_m.record), "finish": lambda *a: {"overflow": "forged"}})
''',
    "a dispatch mode left active": '''
from torch.utils._python_dispatch import TorchDispatchMode
class _Spy(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))
_Spy().__enter__()
''',
}

#: In-place updates that hand the runtime clean-looking arguments afterwards.
ARGUMENT_ATTACKS = {
    "clean copies put back into the runtime's kwargs (frame)": '''
import sys
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    caller = sys._getframe(1).f_locals
    clean = {k: v.clone() for k, v in caller["kwargs"].items() if isinstance(v, torch.Tensor)}
    out = _update(cluster_size, embed_sum, z_e, indices, decay, eps)
    caller["kwargs"].update(clean)
    return out
''',
    "storage swapped back with .data =": '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    saved = cluster_size.clone(), embed_sum.clone()
    out = _update(cluster_size, embed_sum, z_e, indices, decay, eps)
    cluster_size.data, embed_sum.data = saved
    return out
''',
    "storage swapped back with set_": '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    saved = cluster_size.clone(), embed_sum.clone()
    out = _update(cluster_size, embed_sum, z_e, indices, decay, eps)
    with torch.no_grad():
        cluster_size.set_(saved[0]); embed_sum.set_(saved[1])
    return out
''',
    "values written back with copy_": '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    saved = cluster_size.clone(), embed_sum.clone()
    out = _update(cluster_size, embed_sum, z_e, indices, decay, eps)
    cluster_size.copy_(saved[0]); embed_sum.copy_(saved[1])
    return out
''',
    "written through .data (no version bump)": '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    out = _update(cluster_size.data, embed_sum.data, z_e, indices, decay, eps)
    return out
''',
}


@pytest.fixture
def grade_one(sandbox):
    """``grade_one(source, qid, check name)`` → that check's result for ``source`` in the sandbox."""

    def run(source: str, qid: str, name: str, seed: int = 0):
        cells = (CodeCell(0, PRELUDE), CodeCell(1, source))
        with StudentSession(sandbox, cells) as session:
            assert session.runs[1].status == "ok", session.runs[1].error
            (c,) = [c for c in QUESTIONS[qid] if c.name == name]
            return run_check(session, c, seed, time.monotonic() + QUESTION_SECONDS)

    return run


@contextlib.contextmanager
def restored():
    """Undo whatever student code run in this process patched (torch, builtins, the runtime)."""
    owners = [torch.Tensor, torch.autograd, builtins, child, child.Responder, wire, builders, guard]
    saved = [(o, dict(vars(o))) for o in owners]
    codes = [(f, f.__code__) for f in vars(child.Responder).values() if callable(f) and hasattr(f, "__code__")]
    staticmethods = [(sm.__func__, sm.__func__.__code__) for sm in vars(child.Responder).values()
                     if isinstance(sm, staticmethod)]
    try:
        yield
    finally:
        while torch._C._len_torch_dispatch_stack():
            torch._C._pop_torch_dispatch_stack(None)
        for fn, code in codes + staticmethods:
            fn.__code__ = code
        for owner, entries in saved:
            for key in [k for k in vars(owner) if k not in entries]:
                delattr(owner, key)
            for key, value in entries.items():
                if vars(owner).get(key) is not value and not key.startswith("__"):
                    setattr(owner, key, value)


def local_result(source: str, qid: str, name: str):
    """The check's result with the student code run in this process (fast; patches undone after)."""
    namespace: dict = {"__name__": "__main__"}
    with restored():
        exec(PRELUDE + source, namespace)  # noqa: S102 - the attacks under test
        (c,) = [c for c in QUESTIONS[qid] if c.name == name]
        return run_check(LocalSession(namespace), c, 0, time.monotonic() + QUESTION_SECONDS)


@pytest.mark.slow  # hypothesis shrinks the raising example call by call (about 30 s); the same patch runs locally below
def test_the_autograd_grad_patch_loses_the_straight_through_check_in_the_sandbox(grade_one):
    result = grade_one(NO_STE + GRADIENT_PATCHES["torch.autograd.grad returns the upstream gradient"], "D1",
                       STRAIGHT_THROUGH)
    assert result.status == "error" and result.points == 0
    assert "torch.autograd.grad was replaced by student code; gradients cannot be measured" in plain_text(result)


@pytest.mark.parametrize("patch", [pytest.param(p, marks=pytest.mark.slow) if "dispatch" in p else p
                                   for p in sorted(GRADIENT_PATCHES)])  # a dispatch mode slows every op (~20 s)
def test_every_patch_style_loses_the_gradient_check(patch):
    result = local_result(NO_STE + GRADIENT_PATCHES[patch], "D1", STRAIGHT_THROUGH)
    assert result.status == "error" and result.points == 0, plain_text(result)
    assert "by student code; gradients cannot be measured" in plain_text(result)


def test_a_tampered_runtime_measures_nothing_even_for_the_right_answer():
    source = reference_source("quantize") + GRADIENT_PATCHES["torch.Tensor.detach wrapped"]
    result = local_result(source, "D1", STRAIGHT_THROUGH)
    assert result.status == "error" and "torch.Tensor.detach was replaced by student code" in plain_text(result)


def test_answering_differently_when_z_e_requires_grad_loses_the_gradient_check():
    source = reference_source("quantize") + '''
_quantize = quantize
def quantize(z_e, codebook):
    z_q, idx = _quantize(z_e, codebook)
    return (z_e * 1.0 if z_e.requires_grad else z_q), idx  # the identity Jacobian without the quantiser
'''
    result = local_result(source, "D1", STRAIGHT_THROUGH)
    assert result.status == "failed" and "z_q differs when z_e requires grad" in plain_text(result)


def test_a_tuple_subclass_cannot_show_one_output_to_the_values_and_another_to_the_gradients():
    source = NO_STE.replace("def quantize", "def _quantize") + '''
class Pair(tuple):
    def __iter__(self):
        yield from (tuple.__getitem__(self, 1), tuple.__getitem__(self, 2))
def quantize(z_e, codebook):
    z_q, idx = _quantize(z_e, codebook)
    return Pair((z_e * 1.0, z_q, idx))
'''
    assert local_result(source, "D1", STRAIGHT_THROUGH).points == 0


@pytest.mark.parametrize("attack", sorted(ARGUMENT_ATTACKS))
def test_each_in_place_attack_loses_the_no_mutation_check(grade_one, attack):
    result = grade_one(IN_PLACE + ARGUMENT_ATTACKS[attack], "D3", PURE)
    assert result.status == "failed" and result.points == 0, plain_text(result)
    assert "was modified in place" in plain_text(result)


def test_an_in_place_update_behind_a_patched_runtime_loses_the_check():
    source = IN_PLACE + "ema_codebook_update = _update\n" + GRADIENT_PATCHES["torch.Tensor.clone wrapped"]
    result = local_result(source, "D3", PURE)
    assert result.status == "error" and "in-place changes to the arguments cannot be measured" in plain_text(result)


@pytest.mark.parametrize("qid, name", [("D1", STRAIGHT_THROUGH), ("D3", PURE)])
def test_the_solution_keeps_the_measured_checks(grade_one, qid, name):
    source = reference_source({"D1": "quantize", "D3": "ema_codebook_update"}[qid])
    assert grade_one(source, qid, name).status == "passed"


def test_the_runtime_reports_how_each_argument_changed():
    responder = child.Responder({"__name__": "__main__"})
    exec("def f(a, b, c, d):\n    a.add_(1)\n    b.data = b.clone()\n    c.resize_(1)\n    return d.sum()\n",
         responder.namespace)  # noqa: S102
    tensors = [torch.zeros(3) for _ in range(4)]
    request = {"op": "call", "name": "f", "args": [], "kwargs": {k: wire.encode(t) for k, t in zip("abcd", tensors)},
               "seed": 0, "grad": None, "return_args": True}
    reply = responder.handle(request)
    modified = wire.decode(reply["args_after"])["modified"]["kwargs"]
    assert modified["a"].startswith("it was written in place")
    assert modified["b"].startswith("its storage was replaced")
    assert modified["c"].startswith("its shape")
    assert modified["d"] is None


def test_an_untouched_runtime_verifies_quickly():
    snapshot = child._SNAPSHOT[0]
    assert snapshot.first_change() is None
    start = time.perf_counter()
    for _ in range(20):
        snapshot.verify(guard.GRADIENTS)
    assert (time.perf_counter() - start) / 20 < 0.02
