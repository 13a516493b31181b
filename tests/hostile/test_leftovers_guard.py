"""In-place changes are judged on data, not on what the student process reports about itself (issue 11).

D3's "inputs are not modified in place" passes only when a second call on the same argument objects
gives the same answer as the first: a student who rebinds the runtime's report (``child._after``, the
guard's snapshot) still hands back a different second answer. These tests run the held-out attack
in this process (``LocalSession``, the runtime's modules aliased as the sandbox names them) and
restore every runtime name afterwards.
"""

from __future__ import annotations

import sys
import time

import pytest

from autograder.checks import QUESTIONS, run_check
from autograder.checks.framework import Status
from autograder.local import LocalSession
from autograder.sandbox.runtime import child, guard
from tests.hostile.test_held_out import AFTER_SWAP, D3_IN_PLACE

PURE = next(c for c in QUESTIONS["D3"] if c.name == "inputs are not modified in place")


@pytest.fixture
def runtime_names(monkeypatch):
    """The runtime's modules under their sandbox names; ``_after`` and the snapshot put back afterwards."""
    monkeypatch.setitem(sys.modules, "dgm_runtime.child", child)
    monkeypatch.setitem(sys.modules, "dgm_runtime.guard", guard)
    monkeypatch.setattr(child, "_after", child._after)
    kept = list(child._SNAPSHOT)
    yield
    child._SNAPSHOT[:] = kept


def _run(source: str, seed: int = 0):
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<cell 0>", "exec"), namespace)  # noqa: S102 - the attack, on purpose
    return run_check(LocalSession(namespace), PURE, seed, time.monotonic() + 60)


def test_an_in_place_update_loses_the_point(runtime_names):
    result = _run(D3_IN_PLACE)
    assert result.status == Status.FAILED and "in place" in result.failure.summary


def test_rebinding_the_after_call_report_does_not_hide_an_in_place_update(runtime_names):
    result = _run(D3_IN_PLACE + AFTER_SWAP)
    assert child._after.__name__ == "_fake_after" and type(child._SNAPSHOT[0]).__name__ == "_NoCheck"  # it is live
    assert result.status == Status.FAILED, "the forged report earned the point"
    assert result.failure.summary.startswith("a second call on the same argument objects gives another answer")


@pytest.mark.parametrize("seed", [0, 1])
def test_a_pure_update_keeps_the_point(runtime_names, seed):
    assert _run("from reference import ema_codebook_update\n", seed).status == Status.PASSED
