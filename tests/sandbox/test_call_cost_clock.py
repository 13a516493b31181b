"""A request's meter reads the student's CPU clock only once the clock could show the limit passed (its
threads use at most the wall time on every CPU, and a reading rounds to a tick), so a short call costs one
reading at its start and one at its end; no limit is seen later than the readings show it."""

from __future__ import annotations

import dataclasses
import time

import pytest

from autograder.sandbox import channel
from autograder.sandbox.channel import POLL_SECONDS, Meter
from autograder.sandbox.errors import StudentTimeout

TICK = 1 / channel._TICK


class FakeClock:
    """A CPU clock that shows ``now`` seconds, counting its readings."""

    def __init__(self, now: float = 5.0) -> None:
        self.now, self.reads = now, 0

    def seconds(self) -> float:
        self.reads += 1
        return self.now


def test_a_fresh_request_waits_without_reading_the_clock():
    clock = FakeClock()
    meter = Meter.start(30.0, 3.0, clock)
    assert clock.reads == 1
    assert 0 < meter.wait("a call") <= POLL_SECONDS
    assert clock.reads == 1
    clock.now += 0.25
    assert meter.cpu() == pytest.approx(0.25) and clock.reads == 2


def test_the_clock_is_read_once_its_reading_could_pass_the_limit(monkeypatch):
    monkeypatch.setattr(channel, "_CPUS", 2)
    clock = FakeClock()
    seconds = TICK + 1.0  # reachable after 0.5 s of wall time on two CPUs
    meter = Meter.start(seconds, 100.0, clock)
    while time.monotonic() < meter.read_at + 0.1:
        meter.wait("a call")
    assert clock.reads == 1
    time.sleep(0.45)
    clock.now += seconds + 0.01  # a reaped child's time arrives at once
    with pytest.raises(StudentTimeout):
        meter.wait("a call")
    assert clock.reads == 2


def test_a_short_wait_never_lasts_longer_than_the_limit_could_allow(monkeypatch):
    monkeypatch.setattr(channel, "_CPUS", 4)
    meter = Meter.start(TICK + 0.02, 100.0, FakeClock())
    assert meter.wait("a call") <= 0.02


def test_time_the_grader_took_out_of_the_wall_clock_does_not_delay_a_reading(monkeypatch):
    monkeypatch.setattr(channel, "_CPUS", 2)
    clock = FakeClock()
    meter = Meter.start(0.5, 1000.0, clock)
    time.sleep(0.3)  # the grader answering a question mid-call (``asked``): the student's threads ran on
    moved = dataclasses.replace(meter, started=meter.started + 0.3)
    clock.now += 0.6
    with pytest.raises(StudentTimeout, match="timed out after 0.5 s"):
        moved.wait("a call")
    assert clock.reads == 2


def test_without_a_clock_the_limit_is_wall_clock_time():
    meter = Meter.start(0.2, 3.0)
    assert meter.clock is None and 0.19 < meter.wait("start-up") <= 0.2
