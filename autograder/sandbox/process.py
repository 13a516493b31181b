"""Grader-side handles on the sandbox: the zygote and the student processes it forks.

The zygote pays for ``import torch`` once; each submission then gets a fresh
forked process in milliseconds. Anything abnormal (a timeout, a reply that
breaks the protocol, a dead zygote) tears the whole sandbox down, which
kills every process the student started; the next ``spawn`` starts anew.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.sandbox import isolation as iso
from autograder.sandbox.errors import BrokenReply, StudentCrashed, StudentTimeout
from autograder.sandbox.runtime import procs, wire

_UIDS = itertools.count()


@dataclass(frozen=True)
class Limits:
    """Resource limits of one student process."""

    cell_seconds: float = 60.0
    call_seconds: float = 30.0
    startup_seconds: float = 120.0
    cpu_seconds: int = 1800
    memory_bytes: int = 3 * 2**30
    file_bytes: int = 64 * 2**20
    processes: int = 16
    open_files: int = 256
    reply_bytes: int = 64 * 2**20


def _read(fd: int, n: int, deadline: float, what: str, seconds: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StudentTimeout(seconds, what)
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise StudentCrashed("it closed its channel", what)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(fd: int, seconds: float, what: str, max_bytes: int) -> dict[str, Any]:
    """Read one frame within ``seconds``; typed errors for time-outs, EOF and garbage."""
    deadline = time.monotonic() + seconds
    header = _read(fd, 8, deadline, what, seconds)
    size = int.from_bytes(header, "big")
    if size > max_bytes:
        raise BrokenReply(f"a reply of {size} bytes is over the {max_bytes}-byte limit", what)
    body = _read(fd, size, deadline, what, seconds)
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BrokenReply(f"invalid JSON ({exc.__class__.__name__})", what) from None
    if not isinstance(message, dict):
        raise BrokenReply("a reply must be a JSON object", what)
    return message


class Sandbox:
    """One zygote in its sandbox; restarts itself after a teardown."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.isolation = iso.detect()
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._uids: set[int] = set()
        self.starts = 0

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="dgm-sandbox-")
        runtime_parent = iso.install_runtime(Path(self._tmp.name))
        if self.isolation.level == "namespaces":
            argv = iso.bwrap_command(runtime_parent, sys.executable, self.isolation.switch_uid)
            env = None
        else:
            argv = iso.plain_command(sys.executable)
            env = iso.environment(runtime_parent)
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd=self._tmp.name, start_new_session=True,
        )
        self.starts += 1
        ready = receive(self._proc.stdout.fileno(), self.limits.startup_seconds, "sandbox start-up", 2**16)
        if ready.get("event") != "ready":
            self.kill()
            raise RuntimeError(f"the sandbox did not start: {ready!r:.200}")

    def spawn(self) -> StudentProcess:
        """Fork a fresh student process (starting the zygote if needed)."""
        if self._proc is None:
            self._start()
        uid = None
        if self.isolation.switch_uid:
            uid = 100_000 + (os.getpid() * 7919 + next(_UIDS)) % 800_000
            self._uids.add(uid)
        limits = {
            "uid": uid,
            "memory_bytes": self.limits.memory_bytes,
            "cpu_seconds": self.limits.cpu_seconds,
            "file_bytes": self.limits.file_bytes,
            "processes": self.limits.processes,
            "open_files": self.limits.open_files,
        }
        student = StudentProcess(self)
        student.send({"op": "fork", "limits": limits}, "start-up")
        reply = student.receive(self.limits.startup_seconds, "start-up")
        if reply.get("event") != "started":
            self.kill()
            raise BrokenReply(f"unexpected first frame {reply!r:.80}", "start-up")
        return student

    def kill(self) -> None:
        """Tear the sandbox down with every process in it."""
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                stream.close()
            self._proc = None
        if self._uids and self.isolation.level != "namespaces":
            procs.kill_uids(self._uids)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def close(self) -> None:
        self.kill()

    @property
    def stdin(self) -> int:
        assert self._proc is not None
        return self._proc.stdin.fileno()

    @property
    def stdout(self) -> int:
        assert self._proc is not None
        return self._proc.stdout.fileno()


class StudentProcess:
    """One forked student process: request/reply with deadlines."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.alive = True
        self._ids = itertools.count(1)

    def send(self, message: dict[str, Any], what: str) -> None:
        try:
            wire.write_frame(self.sandbox.stdin, message)
        except (BrokenPipeError, OSError):
            self._fail()
            raise StudentCrashed("its channel is closed", what) from None

    def receive(self, seconds: float, what: str) -> dict[str, Any]:
        try:
            reply = receive(self.sandbox.stdout, seconds, what, self.sandbox.limits.reply_bytes)
        except (StudentTimeout, BrokenReply, StudentCrashed):
            self._fail()
            raise
        if reply.get("event") == "exited":
            self.alive = False
            raise StudentCrashed(str(reply.get("status"))[:100], what)
        return reply

    def request(self, message: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        """Send one request and wait for its reply."""
        if not self.alive:
            raise StudentCrashed("it had already exited", what)
        request_id = next(self._ids)
        self.send({**message, "id": request_id}, what)
        reply = self.receive(seconds, what)
        if "event" in reply or reply.get("id") != request_id:
            self._fail()
            raise BrokenReply("a reply that answers no request", what)
        return reply

    def close(self) -> None:
        """Ask the process to exit; tear the sandbox down if it does not."""
        if not self.alive:
            return
        try:
            self.send({"op": "exit"}, "exit")
            while True:
                self.receive(10.0, "exit")
        except StudentCrashed:
            pass
        except (StudentTimeout, BrokenReply):
            self.sandbox.kill()
        self.alive = False

    def _fail(self) -> None:
        self.alive = False
        self.sandbox.kill()
