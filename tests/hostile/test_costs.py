"""What a submission costs: limits on the student's CPU time, and crashes that cost only their own time.

A loaded machine must not fail correct code (the grader measures the
student process's CPU time; wall-clock time is only a backstop), and a
crash must not make the grader replay the cells whose time the student
already had (workers restart from a snapshot).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from autograder.checks.framework import PUBLIC, QUESTION_SECONDS, QUESTION_WALL_FACTOR, Check, Context
from autograder.contract import BY_ID
from autograder.grading import grade_notebook
from autograder.notebook import CodeCell
from autograder.sandbox import session as session_module
from autograder.sandbox.channel import Channel, CpuClock, Meter
from autograder.sandbox.errors import BrokenReply, StudentCrashed, StudentTimeout
from autograder.sandbox.process import Limits, Sandbox
from autograder.sandbox.runtime import frames
from autograder.sandbox.session import Session, StudentSession
from tests.hostile.corpus import SOLUTION

BURN = "import time as _t\ndef burn(seconds):\n    _s = _t.process_time()\n    while _t.process_time() - _s < seconds:\n        pass\n"


def _cells(*sources: str) -> tuple[CodeCell, ...]:
    return tuple(CodeCell(i, s) for i, s in enumerate(sources))


# -- the clock, without a sandbox ---------------------------------------------------------------------


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_clock_counts_work_and_not_waiting():
    sleeper = _python("import time; time.sleep(30)")
    busy = _python("while True:\n    pass")
    try:
        time.sleep(0.3)  # both past start-up
        sleeping, working = Meter.start(0.3, 100.0, CpuClock(sleeper.pid)), Meter.start(0.3, 100.0, CpuClock(busy.pid))
        deadline = time.monotonic() + 60
        with pytest.raises(StudentTimeout) as info:
            while time.monotonic() < deadline:
                assert sleeping.wait("sleeping") > 0  # never over: sleeping costs no CPU time
                time.sleep(working.wait("working"))
        assert info.value.reason == "timed out after 0.3 s"
        assert sleeping.cpu() < 0.1 <= 0.3 < working.cpu()
    finally:
        for p in (sleeper, busy):
            p.kill()
            p.wait()


def test_the_wall_clock_is_only_a_backstop():
    sleeper = _python("import time; time.sleep(30)")
    try:
        meter = Meter.start(0.1, 3.0, CpuClock(sleeper.pid))
        assert meter.wall_seconds == pytest.approx(0.3)
        time.sleep(0.35)
        with pytest.raises(StudentTimeout) as info:
            meter.wait("waiting")
        assert info.value.reason == "timed out after 0.3 s of wall-clock time"
    finally:
        sleeper.kill()
        sleeper.wait()
    gone = Meter.start(0.2, 3.0, CpuClock(2**22 + 12345))  # no such process: a plain wall-clock limit
    assert gone.clock is None and gone.wall_seconds == 0.2


def test_a_frame_from_another_process_than_the_channels_is_refused():
    ours, theirs = socket.socketpair()
    channel = Channel(ours, 2**16)
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            frames.write_frame(theirs.fileno(), {"event": "started"})
            os._exit(0)
        os.waitpid(pid, 0)
    assert channel.receive(Meter.start(5, 1), "start-up") == {"event": "started"}
    assert channel.writer not in (None, 0, os.getpid())
    with pytest.raises(BrokenReply, match="written by another process"):
        channel.receive(Meter.start(5, 1), "a request")
    channel.close()
    theirs.close()


class _Metered(Session):
    """A session whose student used ``cpu`` seconds of CPU time in the current question."""

    def __init__(self, cpu: float | None) -> None:
        self.cpu = cpu

    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        return {"ok": True, "value": 1}

    def cpu_since(self, start: float) -> float | None:
        return self.cpu


def test_the_question_budget_is_cpu_time_with_a_wall_clock_backstop():
    check = Check("B2", "a check", 1.0, PUBLIC, "", lambda ctx: None)
    began = time.monotonic() - 2 * QUESTION_SECONDS  # past the budget in wall-clock time, within the backstop
    assert Context(_Metered(1.0), check, 0, began + QUESTION_SECONDS).call() == 1
    with pytest.raises(StudentTimeout, match=f"timed out after {QUESTION_SECONDS:g} s"):
        Context(_Metered(QUESTION_SECONDS + 1), check, 0, began + QUESTION_SECONDS).call()
    with pytest.raises(StudentTimeout):  # no CPU time measured (a student's own kernel): wall-clock time
        Context(_Metered(None), check, 0, began + QUESTION_SECONDS).call()
    long_ago = time.monotonic() - (QUESTION_WALL_FACTOR + 1) * QUESTION_SECONDS
    with pytest.raises(StudentTimeout):
        Context(_Metered(0.0), check, 0, long_ago + QUESTION_SECONDS).call()


# -- in the sandbox -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(cell_seconds=3, call_seconds=0.5, wall_factor=8)) as sb:
        yield sb


def test_limits_count_cpu_time_and_each_call_reports_its_own(sandbox):
    source = BURN + "def wait(s):\n    _t.sleep(s)\n    return s\ndef work():\n    burn(0.2)\n    return 1\n" \
                    "def spin():\n    while True:\n        pass\n"
    with StudentSession(sandbox, _cells(source)) as s:
        waited = s.call("wait", (1.5,), seed=0)  # three times the call's limit, in wall-clock time only
        assert waited.value == 1.5 and waited.cpu_seconds < 0.2
        worked = s.call("work", seed=0)
        assert worked.value == 1 and 0.1 < worked.cpu_seconds < 0.5
        with pytest.raises(StudentTimeout) as info:
            s.call("spin", seed=0)
        assert info.value.reason == "timed out after 0.5 s"
        start = time.monotonic()
        with pytest.raises(StudentTimeout) as info:
            s.call("wait", (600,), seed=0)
        assert info.value.reason == "timed out after 4 s of wall-clock time" and time.monotonic() - start < 30
        assert s.call("work", seed=0).value == 1
        assert s.cpu_since(start) < 0.5  # the question budget counts what the student used, not what it waited


def test_crashing_calls_replay_no_cell(sandbox):
    slow = [BURN + "burn(0.3)\n", "burn(0.3)\nb = 2\n", "burn(0.3)\n"]
    defs = "import os\n" + "".join(f"def die{i}():\n    os._exit({i})\n" for i in range(4)) + "def ok():\n    return b\n"
    with StudentSession(sandbox, _cells(*slow, defs)) as s:
        for i in range(4):
            for _ in range(2):
                with pytest.raises(StudentCrashed, match=f"exit code {i}"):
                    s.call(f"die{i}", seed=0)
                assert s.call("ok", seed=0).value == 2
        assert s.cell_runs == 4 and s.restarts == 0 and s.forks == 1 + 8
        assert s.cpu_spent < 0.9 + 1.5  # the cells' time once, not once per crash


def test_crashing_cells_replay_no_cell_once_a_snapshot_holds_the_rest(sandbox, monkeypatch):
    monkeypatch.setattr(session_module, "SNAPSHOT_SECONDS", 0.1)
    monkeypatch.setattr(session_module, "SNAPSHOT_COST_SHARE", 1e9)
    cells = [BURN + "n = 0\n"] + ["burn(0.2)\nn += 1\n", "import os\nos._exit(3)\n"] * 4 + ["def count():\n    return n\n"]
    with StudentSession(sandbox, _cells(*cells)) as s:
        assert [s.runs[i].status for i in range(len(cells))] == ["ok"] + ["ok", "crash"] * 4 + ["ok"]
        assert s.runs[2].error == "the process died (exit code 3)"
        assert s.call("count", seed=0).value == 4
        assert s.cell_runs == len(cells) and s.restarts == 0


def test_a_cell_that_crashes_again_on_replay_is_dropped(sandbox):
    flaky = "import os\nif os.path.exists('ran'):\n    os._exit(4)\nopen('ran', 'w').close()\nx = 1\n"
    cells = [flaky, "y = 2\n", "import os\nos._exit(5)\n", "def f():\n    return (globals().get('x'), y)\n"]
    with StudentSession(sandbox, _cells(*cells)) as s:  # the scratch folder survives a worker: 'ran' exists
        assert [s.runs[i].status for i in range(4)] == ["crash", "ok", "crash", "ok"]
        assert s.call("f", seed=0).value == (None, 2)


def test_the_submission_budget_stops_grading():
    limits = Limits(cell_seconds=1, call_seconds=1, budget_seconds=1.5, wall_factor=50, budget_wall_factor=50)
    cells = _cells(BURN + "burn(0.5)\n", "burn(0.5)\n", "burn(0.8)\n", "x = 1\n", "x = 2\n")
    with Sandbox(limits) as sb, StudentSession(sb, cells) as s:
        assert [s.runs[i].status for i in range(5)] == ["ok", "ok", "ok", "skipped", "skipped"]
        assert "used up its time budget (1.5 s of CPU time" in s.runs[3].error
        with pytest.raises(StudentTimeout, match="time budget"):
            s.call("burn", (0.1,), seed=0)


def test_a_notebook_that_only_sleeps_is_stopped_by_the_wall_clock_budget():
    limits = Limits(cell_seconds=1, call_seconds=1, budget_seconds=1, wall_factor=50, budget_wall_factor=3)
    cells = _cells(*("import time\ntime.sleep(1.2)\n" for _ in range(6)))
    start = time.monotonic()
    with Sandbox(limits) as sb, StudentSession(sb, cells) as s:
        statuses = [s.runs[i].status for i in range(6)]
    assert "skipped" in statuses and statuses[0] == "ok", statuses
    assert "or 3 s of wall-clock time" in next(r.error for r in s.runs.values() if r.status == "skipped")
    assert time.monotonic() - start < 30  # not six sleeps of the 50 s per-cell backstop


@pytest.mark.slow
def test_fifteen_thousand_tiny_cells_cost_their_own_time(sandbox):
    tiny = _cells(*("1" for _ in range(15_000)))
    crashy = _cells(*("import os\nos._exit(1)" if i % 1000 == 999 else "1" for i in range(15_000)))
    start = time.monotonic()
    with StudentSession(sandbox, tiny):
        honest = time.monotonic() - start
    start = time.monotonic()
    with StudentSession(sandbox, crashy) as s:
        hostile = time.monotonic() - start
    assert s.restarts == 0 and s.cell_runs < 15_000 + 15 * 3000
    assert hostile < 2 * honest + 15 * 5, (honest, hostile)


# -- a loaded machine ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _cpu_hog():
    """Four busy processes per core beside the grader (a machine loaded to 4x its cores, and more)."""
    hogs = [_python("while True:\n    pass") for _ in range(4 * (os.cpu_count() or 1))]
    try:
        yield
    finally:
        for hog in hogs:
            hog.send_signal(signal.SIGKILL)
            hog.wait()


@pytest.mark.slow
def test_a_cpu_hog_beside_the_grader_changes_no_result():
    source = BURN + "def heavy(k):\n    burn(0.8)\n    return k * k\ndef hang():\n    while True:\n        pass\n"

    def grade(sb: Sandbox) -> tuple[list[object], float]:
        outcomes, start = [], time.monotonic()
        with StudentSession(sb, _cells(source)) as s:
            outcomes.append([s.runs[0].status])
            for k in range(3):
                outcomes.append(s.call("heavy", (k,), seed=k).value)
            try:
                s.call("hang", seed=0)
            except StudentTimeout as exc:
                outcomes.append(exc.reason)
        return outcomes, time.monotonic() - start

    with Sandbox(Limits(cell_seconds=5, call_seconds=1.5, wall_factor=10)) as sb:
        idle, _ = grade(sb)
        with _cpu_hog():
            loaded, seconds = grade(sb)
    assert idle == loaded == [["ok"], 0, 1, 4, "timed out after 1.5 s"]
    assert seconds > 3 * 1.5  # the hog did slow it down: a wall-clock limit of 1.5 s per call would have failed it


@pytest.mark.slow
@pytest.mark.skipif(not SOLUTION.is_file(), reason="the solution notebook is not built yet (make notebooks)")
def test_the_solution_grades_the_same_beside_a_cpu_hog():
    qids = ("A1", "A5", "B2")
    data = SOLUTION.read_bytes()
    with Sandbox(Limits(call_seconds=0.5, wall_factor=40)) as sb:  # calls of the solution need well under 0.5 s
        idle = grade_notebook(data, sandbox=sb, qids=qids)
        with _cpu_hog():
            loaded = grade_notebook(data, sandbox=sb, qids=qids)
    assert idle.status == "ok" and idle.scores == {q: float(BY_ID[q].points) for q in qids}
    assert loaded == idle
