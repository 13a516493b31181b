"""The student process: limits, isolation, and a session that survives its failures."""

from pathlib import Path

import pytest
import torch

from autograder.notebook import CodeCell
from autograder.sandbox.errors import StudentCrashed, StudentException, StudentTimeout
from autograder.sandbox.isolation import _parents_to_create, detect
from autograder.sandbox.process import Limits, Sandbox
from autograder.sandbox.session import StudentSession

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(Limits(cell_seconds=5, call_seconds=3)) as sb:
        yield sb


def _session(sandbox, *sources):
    return StudentSession(sandbox, tuple(CodeCell(i, s) for i, s in enumerate(sources)))


def test_calls_round_trip_values_and_gradients(sandbox):
    with _session(sandbox, "def f(x, w):\n    return (x * w).sum()") as s:
        from autograder.sandbox.runtime.wire import Leaf

        reply = s.call("f", (torch.tensor([1.0, 2.0]), Leaf(torch.tensor([3.0, 4.0]), "w")), seed=0, grad=[{"output": None}])
        assert reply.value.item() == 11.0
        assert torch.equal(reply.grads[0]["w"], torch.tensor([1.0, 2.0]))


def test_exceptions_are_reported_with_the_student_traceback(sandbox):
    with _session(sandbox, "def f():\n    return 1 / 0") as s:
        with pytest.raises(StudentException) as info:
            s.call("f", seed=0)
        assert info.value.type == "ZeroDivisionError" and "<cell 1>" in info.value.traceback


def test_a_hanging_cell_is_skipped_and_later_cells_still_run(sandbox):
    with _session(sandbox, "a = 1", "while True:\n    pass", "def f():\n    return a") as s:
        assert [s.runs[i].status for i in range(3)] == ["ok", "timeout", "ok"]
        assert s.call("f", seed=0).value == 1


def test_os_exit_in_a_cell_costs_only_that_cell(sandbox):
    with _session(sandbox, "import os\nb = 2", "os._exit(0)", "def f():\n    return b") as s:
        assert s.runs[1].status == "crash" and s.call("f", seed=0).value == 2


def test_a_hanging_call_times_out_and_the_session_recovers(sandbox):
    with _session(sandbox, "def hang():\n    while True:\n        pass\n\ndef ok():\n    return 3") as s:
        with pytest.raises(StudentTimeout):
            s.call("hang", seed=0)
        assert s.call("ok", seed=0).value == 3


def test_sys_exit_and_swallowed_signals_cost_only_the_call(sandbox):
    src = (
        "import signal, sys\n"
        "signal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def leave():\n    sys.exit(0)\n"
        "def stubborn():\n    while True:\n        try:\n            pass\n        except BaseException:\n            pass\n"
        "def ok():\n    return 5\n"
    )
    with _session(sandbox, src) as s:
        with pytest.raises(StudentException):
            s.call("leave", seed=0)
        with pytest.raises(StudentTimeout):
            s.call("stubborn", seed=0)
        assert s.call("ok", seed=0).value == 5


def test_printing_a_flood_keeps_only_a_bounded_excerpt(sandbox):
    with _session(sandbox, "for _ in range(200_000):\n    print('x' * 100)") as s:
        run = s.runs[0]
        assert run.status == "ok" and len(run.output) < 10_000 and "characters omitted" in run.output


def test_memory_bomb_raises_inside_the_student_process(sandbox):
    with _session(sandbox, "x = bytearray(64 * 2**30)") as s:
        assert s.runs[0].status == "error" and "MemoryError" in s.runs[0].error


@pytest.mark.skipif(detect().level != "namespaces", reason="needs bubblewrap (namespaces)")
def test_the_reference_the_checks_and_the_network_are_out_of_reach(sandbox):
    src = (
        "import os, socket\n"
        f"seen = [os.path.exists(p) for p in ({str(REPO / 'reference')!r}, {str(REPO / 'autograder')!r})]\n"
        "try:\n    import reference\n    imported = True\nexcept ImportError:\n    imported = False\n"
        "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n    net = True\nexcept OSError:\n    net = False\n"
        "def report():\n    return seen, imported, net\n"
    )
    with _session(sandbox, src) as s:
        assert s.call("report", seed=0).value == ([False, False], False, False)


@pytest.mark.skipif(not detect().switch_uid, reason="needs root to give each student its own uid")
def test_fork_bombs_hit_the_process_limit(sandbox):
    src = "import os\nkids = 0\ntry:\n    for _ in range(1000):\n        if os.fork() == 0:\n            import time; time.sleep(30)\n        kids += 1\nexcept OSError:\n    pass\ndef count():\n    return kids"
    with _session(sandbox, src) as s:
        assert s.call("count", seed=0).value < 20


def test_seeds_make_student_randomness_reproducible(sandbox):
    with _session(sandbox, "import torch\ndef r():\n    return torch.rand(3)") as s:
        a, b, c = (s.call("r", seed=k).value for k in (7, 7, 8))
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_crash_during_a_call_is_typed(sandbox):
    with _session(sandbox, "import os\ndef die():\n    os._exit(9)") as s:
        with pytest.raises(StudentCrashed) as info:
            s.call("die", seed=0)
        assert "exit code 9" in str(info.value)


def test_modules_that_torch_imports_lazily_load_in_the_student_process(sandbox):
    source = "import torch._subclasses.schema_check_mode\nimport torch.utils.data\nok = True\n"
    with StudentSession(sandbox, (CodeCell(0, source),)) as session:
        assert session.runs[0].status == "ok", session.runs[0].error


def test_an_installation_under_tmp_gets_readable_parent_folders():
    # /tmp is a fresh tmpfs in the view: /tmp/x must be created 0755, or another uid cannot reach /tmp/x/.venv
    roots = ["/tmp/x/y/.venv", "/usr/lib/python3.11", "/opt/py/lib"]
    assert _parents_to_create(roots) == ["/opt", "/tmp/x", "/opt/py", "/tmp/x/y"]
