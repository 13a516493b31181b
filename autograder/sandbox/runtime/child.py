"""The student process: drops privileges, runs notebook cells, answers calls.

It holds nothing but the student's code and the arguments of the current
call. Every answer is plain data (``wire``; what student code printed, raised
or defined is described by ``outcome``); the grader decides what it is worth.
Operations::

    {"op": "run_cell", "index": i, "source": str, "seed": int}
        → {"ok": bool, "error": error | null, "output": str}
    {"op": "get", "name": str}
        → {"ok": true, "value": ...} | {"ok": false, "error": error}
    {"op": "describe", "names": [str]}
        → {"names": {name: "function(<signature>)" | "missing" | type name}}
    {"op": "call", "name": str, "args": [...], "kwargs": {...}, "seed": int,
     "grad": [{"output": int | null, "cotangent": tensor | null}] | null,
     "return_args": bool, ["graded": [str], "oracle": [str]]}
        → {"ok": true, "value": ..., "trace": the computation recorded for the gradients (``record``) | null,
           "args_after": {"args": [...], "kwargs": {...},
                          "modified": {"args": [reason | null], "kwargs": {name: reason | null}}} | null,
           "again": the value of a second call on the same argument objects (with return_args) | null,
           "used": [str]}
        | {"ok": false, "error": error, "used": [str]}

``graded`` names are wrapped to observe which of them a call uses
(``used``), and those in ``oracle`` are answered by the grader mid-call
(``carry``).
    {"op": "exit"}

Gradients are computed by the grader from the recorded computation
(``record``); ``args_after`` is a measurement: it uses torch as it was before
student code ran and fails (``guard.Tampered``) when student code changed
what it relies on.
"""

from __future__ import annotations

import builtins
import ctypes
import json
import os
import random
import resource
import signal
import socket
import struct
import sys
import tempfile
from typing import Any, Callable

import torch

from . import builders, carry, confine, frames, guard, outcome, record, seccomp, wire

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
SCRATCH_BYTES = 256 * 2**20  # the student's tmpfs scratch (and /dev/shm), taken out of its memory limit


def become_student(limits: dict[str, Any], scratch: str) -> None:
    """Apply the sandbox limits to this (freshly forked) process, for good.

    Own IPC and mount namespaces with a bounded tmpfs scratch (its size comes
    out of the memory limit), no capabilities, the student's uid, resource
    limits, and last the seccomp filter.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    uid = limits.get("uid")
    scratch_bytes = min(SCRATCH_BYTES, int(limits["memory_bytes"]) // 4)
    bounded = confine.private_scratch(scratch, uid, scratch_bytes)
    confine.drop_bounding_set()
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    confine.clear_capabilities()
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    vm_bytes = _vm_size_bytes()
    memory = vm_bytes + int(limits["memory_bytes"]) - (scratch_bytes if bounded else 0)
    rl = resource
    for which, value in (
        (rl.RLIMIT_AS, memory),
        (rl.RLIMIT_CPU, int(limits["cpu_seconds"])),
        (rl.RLIMIT_FSIZE, int(limits["file_bytes"])),
        (rl.RLIMIT_NOFILE, int(limits["open_files"])),
        (rl.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))
    if uid is not None:
        resource.setrlimit(rl.RLIMIT_NPROC, (int(limits["processes"]), int(limits["processes"])))
    os.chdir(scratch)
    os.environ.update(HOME=scratch, TMPDIR=scratch, MPLBACKEND="Agg")
    tempfile.tempdir = None  # the zygote's cached choice may not be writable by this uid; recomputed from TMPDIR
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    seccomp.install()


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


class Responder:
    """Answers requests against one namespace (in the sandbox, or in a student's own kernel).

    ``devices`` False: the process reaches no accelerator (the sandbox), so seeding
    sets the CPU generator alone. ``torch.manual_seed`` would also queue the seeding
    of every accelerator, formatting a traceback each time (about 0.7 ms a call).
    """

    def __init__(self, namespace: dict[str, Any] | None = None, observe: bool = False, devices: bool = True) -> None:
        self.namespace = namespace if namespace is not None else {"__name__": "__main__", "__builtins__": builtins}
        self._torch_seed = torch.manual_seed if devices else torch.default_generator.manual_seed
        self.output = outcome.BoundedText()
        self.observer = carry.Observer() if observe else None
        #: In a worker: request id → the link that asks the grader mid-call (``carry``); None elsewhere.
        self.link_to: Callable[[Any], Callable[..., Any]] | None = None

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        handler = {"run_cell": self.run_cell, "describe": self.describe, "get": self.get, "call": self.call}[request["op"]]
        return handler(request)

    def _seed(self, seed: int) -> None:
        self._torch_seed(seed)
        random.seed(seed)
        np_random = sys.modules.get("numpy.random")
        if np_random is not None:
            np_random.seed(seed % 2**32)

    def run_cell(self, request: dict[str, Any]) -> dict[str, Any]:
        self._seed(int(request["seed"]))
        error = None
        try:
            code = compile(request["source"], f"<cell {request['index']}>", "exec")
            exec(code, self.namespace)  # noqa: S102 - running student code is this process's job
        except BaseException as exc:  # noqa: BLE001 - SystemExit and friends cost only this cell
            error = outcome.error(exc)
        return {"ok": error is None, "error": error, "output": self.output.take()}

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"names": {n: outcome.describe(self.namespace, n) for n in request["names"]}}

    def get(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"ok": True, "value": wire.encode(self.namespace[request["name"]], lenient=True)}
        except BaseException as exc:  # noqa: BLE001
            return {"ok": False, "error": outcome.error(exc)}

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        observer = self.observer
        if observer is None:
            return self._call(request)
        graded = request.get("graded")
        observer.wrap(self.namespace, graded if isinstance(graded, list) else [])
        link = None if self.link_to is None else self.link_to(request.get("id"))
        observer.begin(str(request.get("name")), request.get("oracle"), link)
        try:
            reply = self._call(request)
        finally:
            used = observer.end()
        return {**reply, "used": used}

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        grad, return_args = request.get("grad"), bool(request.get("return_args"))
        measured = bool(grad) or return_args
        purpose = guard.GRADIENTS if grad else guard.ARGUMENTS
        recorder = record.Recorder() if grad else None
        try:
            if measured:
                _SNAPSHOT[0].verify(purpose)  # before decoding: the leaves come from wire
            leaves: dict[str, torch.Tensor] = {}
            build = builders.build if recorder is None else record.building(recorder, leaves, builders.build)
            args = [wire.decode(a, build_fn=build, leaves=leaves) for a in request["args"]]
            kwargs = {k: wire.decode(v, build_fn=build, leaves=leaves) for k, v in request["kwargs"].items()}
            inputs, given = tuple(leaves.items()), (tuple(args), tuple(kwargs.items()))
            records = _records(given) if return_args else None
            self._seed(int(request["seed"]))
            fn = self.namespace[request["name"]]
            value = guard.plain(fn(*args, **kwargs) if recorder is None else record.call(recorder, leaves, fn, args, kwargs))
            trace = after = None
            if measured:
                _SNAPSHOT[0].verify(purpose)
                trace = None if recorder is None else record.finish(recorder, value, grad, inputs)
                _SNAPSHOT[0].verify(purpose)  # a backward of the student's ran in between
                after = None if records is None else wire.encode(_after(given, records))
            encoded = wire.encode(value, lenient=True)  # last: encoding a student object may run its code
            again = None
            if return_args:  # the same argument objects once more: the grader compares the answers (data, not a verdict)
                self._seed(int(request["seed"]))
                again = wire.encode(guard.plain(fn(*args, **kwargs)), lenient=True)
        except BaseException as exc:  # noqa: BLE001
            self.output.take()
            return {"ok": False, "error": outcome.error(exc)}
        self.output.take()
        return {"ok": True, "value": encoded, "trace": trace, "args_after": after, "again": again}


def _records(given: tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]) -> tuple[tuple[guard.Before, ...], ...]:
    """Private records of every argument tensor before the call, one tuple per argument."""
    args, kwargs = given
    return tuple(tuple(guard.before(t) for t in guard.tensors_in(v)) for v in (*args, *(v for _, v in kwargs)))


def _after(given: tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]],
           records: tuple[tuple[guard.Before, ...], ...]) -> dict[str, Any]:
    """The arguments as they are now (the runtime's own objects) and, per argument, how it was modified."""
    args, kwargs = given
    reasons = [next((r for r in map(guard.change, rs) if r is not None), None) for rs in records]
    return {"args": list(args), "kwargs": dict(kwargs),
            "modified": {"args": reasons[: len(args)], "kwargs": {k: r for (k, _), r in zip(kwargs, reasons[len(args):])}}}


def serve(rfd: int, wfd: int) -> None:
    """The student process: a template with an empty namespace, which forks the first worker.

    Student code runs only in workers. A worker asked for a ``snapshot``
    forks a child that stays frozen with the state of every cell run so far:
    the next template. A crash then costs a fork from the template
    (milliseconds), never a replay of the cells before it; the worker itself
    goes on untouched (same process, same threads). Template operations, on a
    channel of its own::

        {"op": "fork"} + a socket  → a worker answers on that socket ({"event": "started"} first);
                                     → {"event": "forked", "ok": bool}
        {"op": "reap"}             → its worker killed and waited for → {"event": "reaped", "status": int | null}
        end of input or "exit"     → the template exits (its worker is left alone)

    and in a worker, besides the operations above::

        {"op": "snapshot"} + a socket → the template answers on that socket ({"event": "frozen"} first);
                                        → {"ok": bool}
    """
    responder = Responder(observe=True, devices=False)
    sys.stdout = sys.stderr = responder.output
    if wfd != rfd:
        os.close(wfd)
    _template(rfd, responder, None)


def _receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request and the descriptors that came with it; ``EOFError`` when the grader is gone."""
    header, fds, _, _ = socket.recv_fds(sock, 8, 2)
    if not header:
        raise EOFError("the grader closed the channel")
    header += frames.read_exactly(sock.fileno(), 8 - len(header))
    (size,) = struct.unpack("!Q", header)
    if size > frames.MAX_FRAME_BYTES:
        raise EOFError("a frame too large")
    request = json.loads(frames.read_exactly(sock.fileno(), size))
    return (request if isinstance(request, dict) else {}), fds


def _reap(worker: int | None) -> int | None:
    """Kill and wait for this template's worker; its wait status."""
    if worker is None:
        return None
    try:
        os.kill(worker, signal.SIGKILL)
    except OSError:
        pass
    try:
        return os.waitpid(worker, 0)[1]
    except ChildProcessError:
        return None


def _template(channel: int, responder: Responder, worker: int | None) -> None:
    """Serve template operations on ``channel`` until it closes (see ``serve``)."""
    sock = socket.socket(fileno=channel)
    while True:
        try:
            request, fds = _receive(sock)
        except (EOFError, OSError, ValueError):
            os._exit(0)
        op = request.get("op")
        if op == "reap":
            status, worker = _reap(worker), None
            frames.write_frame(channel, {"event": "reaped", "status": status})
        elif op == "fork" and len(fds) == 1:
            _reap(worker)
            try:
                worker = os.fork()
            except OSError:
                os.close(fds[0])
                worker = None
                frames.write_frame(channel, {"event": "forked", "ok": False})
                continue
            if worker == 0:
                sock.close()
                _work(fds[0], fds[0], responder)
            os.close(fds[0])
            frames.write_frame(channel, {"event": "forked", "ok": True})
        else:
            os._exit(0)


def _work(rfd: int, wfd: int, responder: Responder) -> None:
    """A worker's loop: one reply per request, until ``exit``; never returns."""
    try:
        pid = os.getpid()
        frozen: list[int] = []  # its snapshots, reaped once the grader has let them go
        frames.write_frame(wfd, {"event": "started"})
        sock = socket.socket(fileno=rfd)
        responder.link_to = lambda request_id: carry.link(rfd, wfd, request_id)
        while True:
            request, fds = _receive(sock)
            frozen = [t for t in frozen if _running(t)]
            if request.get("op") == "exit":
                os._exit(0)
            if request.get("op") == "snapshot" and len(fds) == 1:
                try:
                    child = os.fork()
                except OSError as exc:
                    os.close(fds[0])
                    frames.write_frame(wfd, {"id": request.get("id"), "ok": False, "error": outcome.error(exc)})
                    continue
                if child == 0:
                    sock.close()
                    frames.write_frame(fds[0], {"event": "frozen"})
                    _template(fds[0], responder, None)
                os.close(fds[0])
                frozen.append(child)
                frames.write_frame(wfd, {"id": request.get("id"), "ok": True})
                continue
            for fd in fds:
                os.close(fd)
            reply = responder.handle(request)
            if os.getpid() != pid:
                os._exit(0)  # a process the student forked came back here: it may not answer
            reply["id"] = request.get("id")
            frames.write_frame(wfd, reply)
    finally:
        os._exit(70)


def _running(child: int) -> bool:
    """Whether this worker's snapshot ``child`` still runs (reaping it if not)."""
    try:
        return os.waitpid(child, os.WNOHANG)[0] == 0
    except ChildProcessError:
        return False


#: Taken at import, in the zygote before any student code (a list, so that taking it adds no name to check).
_SNAPSHOT: list[guard.Snapshot] = []
_SNAPSHOT.append(guard.Snapshot((sys.modules[__name__], wire, frames, outcome, builders, guard, carry)))
