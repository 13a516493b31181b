"""Grader-side handles on the sandbox: the zygote and the student processes it forks.

The zygote pays for ``import torch`` once; each submission then gets a fresh
forked process in milliseconds. Two kinds of channel, both unix sockets:

* the *control* channel to the zygote (fork requests, and the zygote's
  events ``ready`` and ``exited``), which no student process ever holds;
* one *student* channel per forked process, created here for that process
  alone and passed to the zygote with the fork request.

So a student's stray or forged frames reach only its own channel, and only
the zygote can say that a student process is gone. Anything abnormal (a
timeout, a reply that breaks the protocol, a dead zygote) tears the whole
sandbox down, which kills every process the student started; the next
``spawn`` starts anew.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
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
EXIT_GRACE_SECONDS = 10.0


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


class _ZygoteSpoke(Exception):
    """The control channel became readable while waiting on a student channel."""


def _read(fd: int, n: int, deadline: float, what: str, seconds: float, watch: int | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StudentTimeout(seconds, what)
        ready, _, _ = select.select([fd] if watch is None else [fd, watch], [], [], remaining)
        if fd not in ready:
            if ready:
                raise _ZygoteSpoke()
            continue
        try:
            chunk = os.read(fd, min(n - got, 1 << 20))
        except BlockingIOError:
            continue
        if not chunk:
            raise StudentCrashed("it closed its channel", what)
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(fd: int, seconds: float, what: str, max_bytes: int, watch: int | None = None) -> dict[str, Any]:
    """Read one frame within ``seconds``; typed errors for time-outs, EOF and garbage.

    With ``watch``, raises ``_ZygoteSpoke`` as soon as that descriptor has
    something to read while ``fd`` has nothing.
    """
    deadline = time.monotonic() + seconds
    header = _read(fd, 8, deadline, what, seconds, watch)
    size = int.from_bytes(header, "big")
    if size > max_bytes:
        raise BrokenReply(f"a reply of {size} bytes is over the {max_bytes}-byte limit", what)
    body = _read(fd, size, deadline, what, seconds, watch)
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, 5000-digit integers, deep nesting
        raise BrokenReply(f"invalid JSON ({exc.__class__.__name__})", what) from None
    if not isinstance(message, dict):
        raise BrokenReply("a reply must be a JSON object", what)
    return message


def _write(fd: int, message: dict[str, Any], seconds: float, what: str) -> None:
    """Write one frame to a non-blocking ``fd`` within ``seconds`` (a process that never reads cannot block us)."""
    view = memoryview(wire.encode_frame(message))
    deadline = time.monotonic() + seconds
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StudentTimeout(seconds, what)
        _, ready, _ = select.select([], [fd], [], remaining)
        if ready:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue


class Sandbox:
    """One zygote in its sandbox; restarts itself after a teardown."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.isolation = iso.detect()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._uids: set[int] = set()
        self._current: StudentProcess | None = None
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
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                argv, stdin=theirs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env, cwd=self._tmp.name, start_new_session=True,
            )
        finally:
            theirs.close()
        self._control = ours
        self.starts += 1
        try:
            ready = receive(ours.fileno(), self.limits.startup_seconds, "sandbox start-up", 2**16)
        except (StudentTimeout, StudentCrashed, BrokenReply) as exc:
            self.kill()
            raise RuntimeError(f"the sandbox did not start: {exc}") from None
        if ready.get("event") != "ready":
            self.kill()
            raise RuntimeError(f"the sandbox did not start: {ready!r:.200}")

    def spawn(self) -> StudentProcess:
        """Fork a fresh student process (starting the zygote if needed)."""
        if self._current is not None:
            self._current.close()
        if self._proc is None or self._proc.poll() is not None:
            self.kill()
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
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self._control, [wire.encode_frame({"op": "fork", "limits": limits})], [theirs.fileno()])
        except OSError:
            ours.close()
            self.kill()
            raise StudentCrashed("the sandbox is gone", "start-up") from None
        finally:
            theirs.close()
        ours.setblocking(False)
        student = self._current = StudentProcess(self, ours)
        reply = student.receive(self.limits.startup_seconds, "start-up")
        if reply.get("event") != "started":
            student._fail()
            raise BrokenReply(f"unexpected first frame {reply!r:.80}", "start-up")
        return student

    def wait_exit(self, seconds: float) -> str | None:
        """The status of the student process that just ended (the zygote's ``exited`` event), or None
        after a teardown if the zygote does not report one within ``seconds``."""
        if self._control is None:
            return None
        try:
            event = receive(self._control.fileno(), seconds, "the end of a student process", 2**16)
        except (StudentTimeout, StudentCrashed, BrokenReply):
            event = {}
        if event.get("event") != "exited":
            self.kill()
            return None
        return str(event.get("status"))[:100]

    def kill(self) -> None:
        """Tear the sandbox down with every process in it."""
        if self._current is not None:
            self._current.alive = False
            self._current._channel.close()
            self._current = None
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
            self._proc = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._uids and self.isolation.level != "namespaces":
            procs.kill_uids(self._uids)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def close(self) -> None:
        self.kill()

    @property
    def control(self) -> int:
        assert self._control is not None
        return self._control.fileno()


class StudentProcess:
    """One forked student process: request/reply with deadlines on a channel of its own."""

    def __init__(self, sandbox: Sandbox, channel: socket.socket) -> None:
        self.sandbox = sandbox
        self._channel = channel
        self.alive = True
        self._ids = itertools.count(1)

    def send(self, message: dict[str, Any], what: str, seconds: float) -> None:
        try:
            _write(self._channel.fileno(), message, seconds, what)
        except StudentTimeout:
            self._fail()
            raise
        except OSError:
            raise self._ended(what) from None

    def receive(self, seconds: float, what: str) -> dict[str, Any]:
        try:
            return receive(self._channel.fileno(), seconds, what, self.sandbox.limits.reply_bytes,
                           watch=self.sandbox.control)
        except (_ZygoteSpoke, StudentCrashed):
            raise self._ended(what) from None
        except (StudentTimeout, BrokenReply):
            self._fail()
            raise

    def request(self, message: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        """Send one request and wait for its reply.

        Student code can write to its channel too, so a frame with the right
        id is not proof enough: an empty ``describe`` follows, and its answer
        must be the very next frame. A second reply to one request (a forged
        one, then the runtime's) therefore fails the request that caused it,
        not the next one.
        """
        reply = self._exchange(message, seconds, what)
        self._exchange({"op": "describe", "names": []}, seconds, what)
        return reply

    def _exchange(self, message: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        if not self.alive:
            raise StudentCrashed("it had already exited", what)
        request_id = next(self._ids)
        self.send({**message, "id": request_id}, what, seconds)
        reply = self.receive(seconds, what)
        if "event" in reply or reply.get("id") != request_id:
            self._fail()
            raise BrokenReply("a reply that answers no request", what)
        return reply

    def close(self) -> None:
        """Ask the process to exit and wait for the zygote to confirm; tear the sandbox down if it does not."""
        if not self.alive:
            return
        try:
            _write(self._channel.fileno(), {"op": "exit"}, 1.0, "exit")
        except (StudentTimeout, OSError):
            pass
        self._done()
        self.sandbox.wait_exit(EXIT_GRACE_SECONDS)

    def _ended(self, what: str) -> StudentCrashed:
        """The process is gone (or closed its channel): the zygote's word on how it ended."""
        self._done()
        status = self.sandbox.wait_exit(EXIT_GRACE_SECONDS)
        return StudentCrashed(status or "it closed its channel", what)

    def _done(self) -> None:
        self.alive = False
        self._channel.close()
        if self.sandbox._current is self:
            self.sandbox._current = None

    def _fail(self) -> None:
        self._done()
        self.sandbox.kill()
