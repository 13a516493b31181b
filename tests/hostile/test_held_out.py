"""Held-out red-team cases (written without reading ``corpus.py``): points without the work.

Each notebook holds only the function under attack, graded on its own question in one module
sandbox. A case marked ``xfail(strict=True)`` is a real bug found by the held-out corpus: it
passes (and the marker must go) once the grader no longer hands out the points. The controls
show that each attack's honest-looking function alone does lose them, so a pass of the attack
is the attack's doing.
"""

from __future__ import annotations

import json

import pytest

from autograder.grading import grade_notebook
from autograder.sandbox.process import Limits, Sandbox
from tests.hostile.corpus import EMPTY, SOLUTION

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SOLUTION.is_file(), reason="the solution notebook is not built yet (make notebooks)")]

LIMITS = Limits(cell_seconds=8, call_seconds=5)

#: A5 without any descent: the forward optimum is p's moments in closed form, the reverse one is
#: "the component nearest the start". A5 draws modes of two merged components, whose mode-seeking
#: optimum lies between them (tests/hostile/test_leftovers_a5.py): only the forward point is earned.
A5_NO_DESCENT = '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    if direction == "forward":
        return float(p.mean), float(p.stddev)
    locs = p.component_distribution.loc.reshape(-1)
    scales = p.component_distribution.scale.reshape(-1)
    k = int((locs - init_loc).abs().argmin())
    return float(locs[k]), float(scales[k])
'''

#: D1 without the straight-through estimator: ``codebook[idx]`` sends no gradient to z_e.
D1_NO_STRAIGHT_THROUGH = '''
import torch
_state = {}
def quantize(z_e, codebook):
    _state["z_e"] = z_e
    idx = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1).argmin(-1)
    return codebook[idx], idx
'''

#: Pure Python, no ctypes: the runtime's snapshot sits in a list whose contents are not watched,
#: and the guard module's ``_RUN_BACKWARD`` is looked up at call time.
SNAPSHOT_SWAP = '''
import sys
_child = sys.modules["dgm_runtime.child"]
_guard = sys.modules["dgm_runtime.guard"]
class _NoCheck:
    def verify(self, purpose):
        pass
_child._SNAPSHOT[0] = _NoCheck()
def _fake(outs, cots, keep, create, inputs, allow, acc):
    return tuple(cots[0].clone() if i is _state.get("z_e") else None for i in inputs)
_guard._RUN_BACKWARD = _fake
'''

#: D3 that updates its inputs in place (the contract forbids it; the control loses that point).
D3_IN_PLACE = '''
import torch
_saved = {}
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    for t in (cluster_size, embed_sum, z_e, indices):
        _saved[id(t)] = t.clone()
    K = cluster_size.shape[0]
    flat, idx = z_e.reshape(-1, z_e.shape[-1]), indices.reshape(-1)
    onehot = torch.nn.functional.one_hot(idx, K).to(flat.dtype)
    cluster_size.mul_(decay).add_((1 - decay) * onehot.sum(0))
    embed_sum.mul_(decay).add_((1 - decay) * (onehot.T @ flat))
    total = cluster_size.sum()
    smoothed = (cluster_size + eps) / (total + K * eps) * total
    return embed_sum / smoothed.unsqueeze(-1), cluster_size.clone(), embed_sum.clone()
'''

#: The same snapshot swap, plus ``child._after`` (a module function looked up at call time) replaced
#: by one that reports the saved copies, unmodified.
AFTER_SWAP = '''
import sys
_child = sys.modules["dgm_runtime.child"]
class _NoCheck:
    def verify(self, purpose):
        pass
_child._SNAPSHOT[0] = _NoCheck()
def _fake_after(given, records):
    args, kwargs = given
    keep = lambda v: _saved.get(id(v), v)
    return {"args": [keep(v) for v in args], "kwargs": {k: keep(v) for k, v in kwargs},
            "modified": {"args": [None] * len(args), "kwargs": {k: None for k, _ in kwargs}}}
_child._after = _fake_after
'''


def _notebook(*sources: str) -> bytes:
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
             for s in sources]
    return json.dumps({**EMPTY, "cells": cells}).encode()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(LIMITS) as sb:
        yield sb


def _score(sandbox, qid: str, *sources: str) -> float:
    return grade_notebook(_notebook(*sources), sandbox=sandbox, qids=(qid,)).scores[qid]


def test_a5_without_a_descent_does_not_earn_full_marks(sandbox):
    assert _score(sandbox, "A5", A5_NO_DESCENT) <= 1


def test_d1_without_straight_through_loses_the_gradient_points(sandbox):
    assert _score(sandbox, "D1", D1_NO_STRAIGHT_THROUGH) <= 4


def test_swapping_the_runtime_snapshot_does_not_fake_the_straight_through_gradient(sandbox):
    assert _score(sandbox, "D1", D1_NO_STRAIGHT_THROUGH + SNAPSHOT_SWAP) <= 4


def test_d3_in_place_loses_the_in_place_point(sandbox):
    assert _score(sandbox, "D3", D3_IN_PLACE) <= 4


def test_swapping_the_after_call_report_does_not_hide_in_place_updates(sandbox):
    assert _score(sandbox, "D3", D3_IN_PLACE + AFTER_SWAP) <= 4
