"""A call costs one round trip: the request and its ``describe`` go out in one write, and the answers come
back in order; the sandbox seeds as ``torch.manual_seed`` does, without its per-call cost."""

from __future__ import annotations

import random

import pytest
import torch

from autograder.notebook import CodeCell
from autograder.sandbox import channel as channel_module
from autograder.sandbox.errors import BrokenReply, StudentException
from autograder.sandbox.process import Limits, Sandbox
from autograder.sandbox.runtime.child import Responder
from autograder.sandbox.session import StudentSession

CELL = '''
import os, json, struct, sys, torch

def double(x):
    return 2 * x

def noisy(n):
    return torch.rand(n)

def forge():
    f = sys._getframe()
    while "wfd" not in f.f_locals:
        f = f.f_back
    body = json.dumps({"id": f.f_locals["request"]["id"], "ok": True, "value": 7}).encode()
    os.write(f.f_locals["wfd"], struct.pack("!Q", len(body)) + body)
    return 1
'''


@pytest.fixture(scope="module")
def session():
    with Sandbox(Limits(cell_seconds=10, call_seconds=5)) as sandbox:
        with StudentSession(sandbox, (CodeCell(0, CELL),)) as s:
            yield s


@pytest.fixture
def counted(monkeypatch):
    """How many writes and reads (chunks) the grader's channels made."""
    counts = {"send": 0, "fill": 0}
    send, fill = channel_module.Channel.send, channel_module.Channel._fill

    def counting_send(self, *args, **kwargs):
        counts["send"] += 1
        return send(self, *args, **kwargs)

    def counting_fill(self, *args, **kwargs):
        counts["fill"] += 1
        return fill(self, *args, **kwargs)

    monkeypatch.setattr(channel_module.Channel, "send", counting_send)
    monkeypatch.setattr(channel_module.Channel, "_fill", counting_fill)
    return counts


def test_a_call_is_one_write_and_at_most_two_reads(session, counted):
    for i in range(20):
        assert session.call("double", (torch.tensor([float(i)]),), seed=0).value.item() == 2 * i
    assert counted["send"] == 20
    assert counted["fill"] <= 40


def test_an_error_is_still_followed_by_the_describe(session):
    with pytest.raises(StudentException):
        session.call("double", ("x", None), seed=0)
    assert session.call("double", (3,), seed=0).value == 6


def test_a_forged_reply_fails_the_call_that_forged_it_and_not_the_next(session):
    with pytest.raises(BrokenReply, match="answers no request"):
        session.call("forge", seed=0)
    assert session.call("double", (4,), seed=0).value == 8


def test_the_sandbox_seeds_torch_as_manual_seed_does(session):
    torch.manual_seed(11)
    expected = torch.rand(5)
    assert torch.equal(session.call("noisy", (5,), seed=11).value, expected)


@pytest.mark.parametrize("seed", [0, 1, 2**40 + 3])
def test_seeding_without_devices_draws_the_same_numbers(seed):
    draws = []
    for devices in (True, False):
        Responder(devices=devices)._seed(seed)
        draws.append((torch.rand(3), torch.randn(2, dtype=torch.float64), random.random()))
    (t1, n1, r1), (t2, n2, r2) = draws
    assert torch.equal(t1, t2) and torch.equal(n1, n2) and r1 == r2
