"""C3's sympy work in a bounded process: a student's expression never spends the grader's time or memory.

Rebuilding and comparing an expression (``decide``, with ``symbolic``) can
be made to run for long, or to allocate without limit, by a small tree
(sympy's automatic evaluation, ``doit``, ``expand``, ``evalf``). The grader never does it itself:
``judge`` checks the tree's shape and size (``symbolic.check_tree``: cheap,
iterative), then sends it as one line of JSON to a worker process started
once per grader process and reused: ``python symbolic_worker.py``, which
imports sympy and ``symbolic`` only (no torch, no threads, ~0.5 s to start).

The worker forks one child per comparison (fork is safe there: the worker is
single-threaded). The child lowers its own limits (``CPU_SECONDS`` of CPU
time, ``MEMORY_BYTES`` of address space beyond the worker's, no core file),
runs ``decide`` and writes back a plain JSON verdict. The worker kills a child
that outlives a wall-clock backstop, the grader kills a worker that outlives
its own. A comparison that hits a limit costs that comparison only
(``Verdict.limit`` says which, in a sentence for the student), and since
every comparison starts from the same fresh child, no sympy cache or memory is
shared between students. Without ``fork`` (Windows: only the student
bundle's own checks run there) ``judge`` runs ``decide`` in its own process.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sympy

if __package__:  # the grader: autograder.checks.symbolic_worker
    from autograder.checks import symbolic
else:  # the worker, run as a script: this folder's symbolic module, without the grader's package (no torch)
    import symbolic

__all__ = ["Verdict", "judge", "start", "CPU_SECONDS", "MEMORY_BYTES"]

CPU_SECONDS = 10  # of CPU time per comparison (whole seconds: RLIMIT_CPU's unit)
MEMORY_BYTES = 512 * 2**20  # address space a comparison may add to the worker's
WALL_FACTOR, WALL_SLACK = 6, 10.0  # a comparison's wall backstop: WALL_FACTOR × its CPU seconds + WALL_SLACK
STARTUP_SECONDS = 60.0  # the grader's further patience, for the worker's own start on a loaded machine


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison, as plain data.

    ``refused`` (why the tree is not an accepted expression) or ``limit``
    (which budget the comparison exceeded) are sentences for the student;
    otherwise ``equal`` and ``how`` it was decided, and when not equal the
    witness ``point`` (symbol name → value), the values ``got`` (None when
    undefined) and ``expected`` there, and the symbols whose dependence is
    ``wrong``.
    """

    equal: bool = False
    how: str = ""
    refused: str = ""
    limit: str = ""
    point: dict[str, str] = field(default_factory=dict)
    got: float | complex | None = None
    expected: float | None = None
    wrong: tuple[str, ...] = ()


def start() -> None:
    """Start the worker now, if it is not running, without waiting: it imports sympy while the caller works."""
    if hasattr(os, "fork"):
        with _WORKER.lock:
            _WORKER.running()


def judge(tree: Any, expected: Any, names: tuple[str, ...], seed: int = 0, cpu_seconds: int = CPU_SECONDS,
          memory_bytes: int = MEMORY_BYTES) -> Verdict:
    """Whether the student's ``tree`` equals the reference's ``expected`` tree over positive symbols ``names``."""
    try:
        symbolic.check_tree(tree)
    except symbolic.SymbolicError as exc:
        return Verdict(refused=str(exc))
    request = {"tree": tree, "expected": expected, "names": list(names), "seed": seed, "cpu": int(cpu_seconds),
               "memory": int(memory_bytes)}
    if not hasattr(os, "fork"):
        return _verdict(_run(request), request)
    wall = WALL_FACTOR * request["cpu"] + WALL_SLACK + STARTUP_SECONDS
    return _verdict(_WORKER.ask(request, wall), request)


def _verdict(reply: dict[str, Any] | None, request: dict[str, Any]) -> Verdict:
    """The worker's plain ``reply`` (None: it outlived the grader's backstop) as a ``Verdict``."""
    if reply is None or reply.get("limit") == "time":
        return Verdict(limit=f"the expression took more than {request['cpu']} s to compare (the grader's limit "
                             "for one symbolic comparison): return a closed form of moderate size")
    if reply.get("limit") == "memory":
        return Verdict(limit=f"comparing the expression needed more than {request['memory'] // 2**20} MiB of "
                             "memory (the grader's limit): return a closed form of moderate size")
    if reply.get("limit") == "crash":
        return Verdict(limit=f"sympy crashed while comparing the expression ({reply.get('why', '')}): "
                             "return a closed form of moderate size")
    if "refused" in reply:
        return Verdict(refused=str(reply["refused"]))
    if "error" in reply:  # the reference's own tree failed: a grader bug
        raise RuntimeError(f"the symbolic worker failed: {reply['error']}")
    got = reply["got"]
    return Verdict(equal=bool(reply["equal"]), how=str(reply["how"]), point=dict(reply["point"]),
                   got=complex(*got) if isinstance(got, list) else got, expected=reply["expected"],
                   wrong=tuple(reply["wrong"]))


class _Worker:
    """The grader's handle on the worker process: started on first use, again after a kill."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started it: a forked grader starts its own
        self.lock = threading.Lock()

    def ask(self, request: dict[str, Any], wall: float) -> dict[str, Any] | None:
        """The worker's reply to ``request``; None when it gave none within ``wall`` seconds (it is killed)."""
        line = (json.dumps(request) + "\n").encode()
        with self.lock:
            for attempt in (1, 2):  # a worker found dead before it got the request is restarted once
                proc = self.running()
                try:
                    view = memoryview(line)
                    while view:
                        view = view[proc.stdin.write(view):]  # type: ignore[union-attr]
                    break
                except OSError:
                    self._kill()
                    if attempt == 2:
                        raise
            reply = self._read_line(proc, time.monotonic() + wall)
            if reply is None:
                self._kill()
                return None
            return json.loads(reply)

    def running(self) -> subprocess.Popen[bytes]:
        """The worker process, started if need be (the caller holds ``lock``)."""
        if self._proc is not None and (self._owner != os.getpid() or self._proc.poll() is not None):
            self._kill()  # a dead worker's pipes are closed; a parent's worker is left to the parent
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, bufsize=0, close_fds=True, start_new_session=True)
            self._owner = os.getpid()
        return self._proc

    def _read_line(self, proc: subprocess.Popen[bytes], deadline: float) -> bytes | None:
        fd, data = proc.stdout.fileno(), b""  # type: ignore[union-attr]
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self._kill()
                raise RuntimeError("the symbolic worker stopped without replying")
            data += chunk
        return data

    def _kill(self) -> None:
        if self._proc is not None and self._owner == os.getpid():
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                pipe.close()  # type: ignore[union-attr]
        self._proc = None

    def close(self) -> None:
        """Stop the worker and its child, if any (at exit)."""
        self._kill()


_WORKER = _Worker()
atexit.register(_WORKER.close)


# -- the worker's side ----------------------------------------------------------------------------


#: Run once by the worker before it serves, so that every child starts with sympy's lazy imports done.
_WARM_UP = {"tree": ["log", ["Symbol", "x"]], "expected": ["Mul", ["Integer", "2"], ["Symbol", "x"]], "names": ["x"],
            "seed": 0}


def serve() -> None:
    """The worker's loop: one JSON request per line on stdin, one JSON reply per line on stdout."""
    _run(_WARM_UP)
    for line in sys.stdin.buffer:
        reply = _in_child(json.loads(line))
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def decide(request: dict[str, Any]) -> dict[str, Any]:
    """Rebuild ``request["tree"]`` (a student's) and compare it with ``request["expected"]`` (the reference's).

    Both are trees over positive symbols named ``request["names"]``; integrals
    are evaluated (``doit``). The verdict is plain data: ``{"refused": why}``
    for a tree that is not an accepted or evaluable expression, otherwise
    ``equal``, ``how`` and, when not equal, the witness ``point``, ``got``
    (a float, ``[re, im]`` or None), ``expected`` and the ``wrong`` symbols.
    """
    symbols = {n: sympy.Symbol(n, positive=True) for n in request["names"]}
    expected = symbolic.rebuild(request["expected"], symbols)
    seed = request["seed"]
    try:
        got = symbolic.rebuild(request["tree"], symbols)
        if got.has(sympy.Integral):
            got = got.doit()
            if got.has(sympy.Integral):
                raise symbolic.SymbolicError(symbolic.UNEVALUATED)
            symbolic.finite(got)
        result = symbolic.compare(got, expected, symbols, seed)
        wrong = [] if result.equal else symbolic.wrong_dependence(got, expected, symbols, seed)
    except symbolic.SymbolicError as exc:
        return {"refused": str(exc)}
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # sympy failed on the student's expression (doit, expand, diff)
        return {"refused": f"sympy failed while comparing the expression ({type(exc).__name__})"}
    got_value = [result.got.real, result.got.imag] if isinstance(result.got, complex) else result.got
    return {"equal": result.equal, "how": result.how, "point": result.point or {}, "got": got_value,
            "expected": result.expected, "wrong": wrong}


def _run(request: dict[str, Any]) -> dict[str, Any]:
    try:
        return decide(request)
    except MemoryError:
        return {"limit": "memory"}
    except RecursionError:
        return {"refused": "the expression is too deeply nested for sympy to compare"}
    except Exception as exc:  # only the reference's tree can get here
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _in_child(request: dict[str, Any]) -> dict[str, Any]:
    """``_run(request)`` in a forked child under the request's limits, killed at the wall backstop."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_end)
            _limit(request["cpu"], request["memory"])
            data = memoryview(json.dumps(_run(request)).encode())
            while data:
                data = data[os.write(write_end, data):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + WALL_FACTOR * request["cpu"] + WALL_SLACK
    data, timed_out = b"", False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_end], [], [], left)[0]:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if data and not timed_out and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return json.loads(data)
    if timed_out or (os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL)):
        return {"limit": "time"}
    if os.WIFSIGNALED(status):
        return {"limit": "crash", "why": signal.Signals(os.WTERMSIG(status)).name}
    return {"limit": "memory"}  # exited before it could write its verdict: out of memory while writing it


def _limit(cpu_seconds: int, memory_bytes: int) -> None:
    """This process's limits: ``cpu_seconds`` of CPU time, ``memory_bytes`` more address space, no core file."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    try:
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no /proc (macOS): the address-space limit is not enforced there anyway
        return
    resource.setrlimit(resource.RLIMIT_AS, (used + memory_bytes, used + memory_bytes))


if __name__ == "__main__":
    serve()
