"""The student process: drops privileges, runs notebook cells, answers calls.

It holds nothing but the student's code and the arguments of the current
call. Every answer is plain data (``wire``); the grader decides what it is
worth. Operations::

    {"op": "run_cell", "index": i, "source": str, "seed": int}
        → {"ok": bool, "error": error | null, "output": str}
    {"op": "get", "name": str}
        → {"ok": true, "value": ...} | {"ok": false, "error": error}
    {"op": "describe", "names": [str]}
        → {"names": {name: "function(<signature>)" | "missing" | type name}}
    {"op": "call", "name": str, "args": [...], "kwargs": {...}, "seed": int,
     "grad": [{"output": int | null, "cotangent": tensor | null}] | null,
     "return_args": bool}
        → {"ok": true, "value": ..., "grads": [{grad id: tensor | null}] | null,
           "args_after": {"args": [...], "kwargs": {...}} | null}
        | {"ok": false, "error": error}
    {"op": "exit"}
"""

from __future__ import annotations

import builtins
import ctypes
import inspect
import io
import os
import random
import resource
import sys
import tempfile
import traceback
from typing import Any

import torch

from . import builders, wire

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_KEEP_CHARS = 4000


class BoundedText(io.TextIOBase):
    """A text sink that keeps the first and last few thousand characters written."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.tail = ""
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        s = str(s)
        if self.size < _KEEP_CHARS:
            self.head.append(s[: _KEEP_CHARS - self.size])
        self.size += len(s)
        self.tail = (self.tail + s[-_KEEP_CHARS:])[-_KEEP_CHARS:]
        return len(s)

    def take(self) -> str:
        head = "".join(self.head)
        if self.size > len(head):
            omitted = self.size - len(head) - min(len(self.tail), self.size - len(head))
            tail = self.tail[-(self.size - len(head)) :]
            text = head + (f"\n… [{omitted} characters omitted] …\n" if omitted > 0 else "") + tail
        else:
            text = head
        self.head, self.tail, self.size = [], "", 0
        return text


def become_student(limits: dict[str, Any], scratch: str) -> None:
    """Apply the sandbox limits to this (freshly forked) process, for good."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    uid = limits.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    vm_bytes = _vm_size_bytes()
    memory = vm_bytes + int(limits["memory_bytes"])
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


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _error(exc: BaseException) -> dict[str, str]:
    """Describe a student exception without trusting its methods."""
    try:
        kind = str(type(exc).__name__)
    except BaseException:  # noqa: BLE001 - nor a hostile metaclass
        kind = "Exception"
    try:
        message = str(exc)[:2000]
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not break the reply
        message = "<the exception's message could not be printed>"
    try:
        frames = traceback.extract_tb(exc.__traceback__)
        student = [f for f in frames if f.filename.startswith("<cell")]
        lines = traceback.format_list(student[-3:])
        trace = "".join(lines)[-3000:]
    except BaseException:  # noqa: BLE001
        trace = ""
    return {"type": str(kind)[:100], "message": message, "traceback": trace}


def _describe(namespace: dict[str, Any], name: str) -> str:
    if name not in namespace:
        return "missing"
    value = namespace[name]
    try:
        if not inspect.isfunction(value):
            return str(type(value).__name__)
    except BaseException:  # noqa: BLE001 - a hostile __class__ or metaclass must not break the reply
        return "an object that could not be described"
    try:
        return f"function{inspect.signature(value)}"
    except BaseException:  # noqa: BLE001 - nor a hostile __signature__ / __wrapped__
        return "function(...)"


class Responder:
    """Answers requests against one namespace (in the sandbox, or in a student's own kernel)."""

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.namespace = namespace if namespace is not None else {"__name__": "__main__", "__builtins__": builtins}
        self.output = BoundedText()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        handler = {"run_cell": self.run_cell, "describe": self.describe, "get": self.get, "call": self.call}[request["op"]]
        return handler(request)

    def _seed(self, seed: int) -> None:
        torch.manual_seed(seed)
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
            error = _error(exc)
        return {"ok": error is None, "error": error, "output": self.output.take()}

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"names": {n: _describe(self.namespace, n) for n in request["names"]}}

    def get(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"ok": True, "value": wire.encode(self.namespace[request["name"]], lenient=True)}
        except BaseException as exc:  # noqa: BLE001
            return {"ok": False, "error": _error(exc)}

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        leaves: dict[str, torch.Tensor] = {}
        args = [wire.decode(a, build_fn=builders.build, leaves=leaves) for a in request["args"]]
        kwargs = {k: wire.decode(v, build_fn=builders.build, leaves=leaves) for k, v in request["kwargs"].items()}
        self._seed(int(request["seed"]))
        try:
            fn = self.namespace[request["name"]]
            value = fn(*args, **kwargs)
            grads = None
            if request.get("grad"):
                grads = [self._grads(value, g, leaves) for g in request["grad"]]
            encoded = wire.encode(value, lenient=True)
            encoded_grads = None if grads is None else [wire.encode(g, lenient=True) for g in grads]
            after = None
            if request.get("return_args"):
                after = wire.encode({"args": args, "kwargs": kwargs}, lenient=True)
        except BaseException as exc:  # noqa: BLE001
            self.output.take()
            return {"ok": False, "error": _error(exc)}
        self.output.take()
        return {"ok": True, "value": encoded, "grads": encoded_grads, "args_after": after}

    @staticmethod
    def _grads(value: Any, request: dict[str, Any], leaves: dict[str, torch.Tensor]) -> dict[str, Any]:
        out = value if request.get("output") is None else value[request["output"]]
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return {name: None for name in leaves}
        cot = request.get("cotangent")
        cot = torch.ones_like(out) if cot is None else wire.tensor_from_wire(cot).to(out.dtype)
        names = list(leaves)
        grads = torch.autograd.grad(out, [leaves[n] for n in names], cot, retain_graph=True, allow_unused=True)
        return dict(zip(names, grads))


def serve(rfd: int, wfd: int) -> None:
    """The student process's loop: one reply per request, until ``exit``."""
    responder = Responder()
    sys.stdout = sys.stderr = responder.output
    pid = os.getpid()
    while True:
        request = wire.read_frame(rfd)
        if request.get("op") == "exit":
            os._exit(0)
        reply = responder.handle(request)
        if os.getpid() != pid:
            os._exit(0)  # a process the student forked came back here: it may not answer
        reply["id"] = request.get("id")
        wire.write_frame(wfd, reply)
