"""The grader's end of a socket to one sandboxed process, and the clocks that limit a request.

Every byte read is attributed by the kernel to the process that wrote it
(``SO_PASSCRED``): a channel is bound to the first process that writes to
it, and a frame written by any other process (a child or a daemon of the
student holding the same socket) breaks the protocol. Time limits count
the CPU time of that process, which the grader reads from ``/proc`` (the
student cannot fake it); wall-clock time is only a backstop, so a loaded
machine does not fail correct code.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autograder.sandbox.errors import BrokenReply, StudentCrashed, StudentTimeout
from autograder.sandbox.runtime import frames

POLL_SECONDS = 0.05
_TICK = os.sysconf("SC_CLK_TCK")
_CPUS = os.cpu_count() or 1
_CREDS = struct.Struct("3i")
_CHUNK = 1 << 16  # bytes asked for in one read, at least


class ZygoteSpoke(Exception):
    """The watched descriptor became readable while waiting on a channel."""


class CpuClock:
    """CPU seconds used by one process (its threads and the children it reaped), read from ``/proc``.

    The file stays open, so the clock keeps reading that process and never
    a later one that reuses its pid.
    """

    def __init__(self, pid: int) -> None:
        try:
            self._fd: int | None = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        except OSError:
            self._fd = None

    def seconds(self) -> float | None:
        """CPU seconds so far, or None if the process cannot be read (gone, or not visible)."""
        if self._fd is None:
            return None
        try:
            text = os.pread(self._fd, 4096, 0)
        except OSError:
            return None
        fields = text[text.rfind(b")") + 2 :].split(None, 15)  # the name may hold spaces and parentheses
        try:
            return sum(map(int, fields[11:15])) / _TICK  # utime, stime, cutime, cstime
        except ValueError:
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class Meter:
    """The limit of one request: ``seconds`` of the clock's CPU time, and a wall-clock backstop.

    Without a readable clock the limit is on wall-clock time, as a plain timer.
    """

    seconds: float
    wall_seconds: float
    started: float  # of the wall-clock limit (moved on by the grader's own time: ``asked``)
    clock: CpuClock | None
    cpu_start: float | None
    read_at: float  # just before ``cpu_start`` was read (never moved)

    @classmethod
    def start(cls, seconds: float, wall_factor: float, clock: CpuClock | None = None) -> Meter:
        now = time.monotonic()
        cpu = None if clock is None else clock.seconds()
        wall = seconds * wall_factor if cpu is not None else seconds
        return cls(seconds, wall, now, clock if cpu is not None else None, cpu, now)

    def cpu(self) -> float | None:
        """CPU seconds used since the start (None if unknown)."""
        if self.clock is None or self.cpu_start is None:
            return None
        now = self.clock.seconds()
        return None if now is None else max(0.0, now - self.cpu_start)

    def wait(self, what: str) -> float:
        """Seconds to wait before looking again; raises ``StudentTimeout`` once a limit is passed.

        The clock is read only once it could show the limit passed: until then the process's threads can
        have used at most the wall time since ``cpu_start`` on every CPU, and the readings' rounding adds at
        most a tick (a reaped child's time, which arrives at once, is seen at the next reading).
        """
        now = time.monotonic()
        wall_left = self.started + self.wall_seconds - now
        if wall_left <= 0:
            clock = "wall-clock" if self.clock is not None else None
            raise StudentTimeout(self.wall_seconds, what, clock)
        most = (now - self.read_at) * _CPUS + 1 / _TICK
        used = most if self.clock is not None and most < self.seconds else self.cpu()
        if used is None:
            return wall_left
        if used > self.seconds:
            raise StudentTimeout(self.seconds, what)
        return max(0.001, min(wall_left, POLL_SECONDS, self.seconds - used))


def wall(seconds: float) -> Meter:
    """A plain wall-clock limit (for the zygote and the templates, which run no student work)."""
    return Meter.start(seconds, 1.0)


class Channel:
    """One non-blocking unix socket to a sandboxed process, bound to the process that writes to it.

    Bytes are read ahead (``_CHUNK`` at least, so one read most often takes a
    reply and the frame behind it) and kept until a frame takes them. Each
    read comes from one writer (with credentials on, the kernel never glues
    two writers' bytes in one read), and each is checked.
    """

    def __init__(self, sock: socket.socket, max_bytes: int, watch: int | None = None) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock, self.max_bytes, self.watch = sock, max_bytes, watch
        self.writer: int | None = None
        self._buffer = bytearray()  # read from the writer, not taken by a frame yet

    def fileno(self) -> int:
        return self.sock.fileno()

    def _fill(self, n: int, meter: Meter, what: str) -> None:
        """Wait (within ``meter``'s limits) for more bytes (up to ``max(n, _CHUNK)``) and keep them."""
        fd = self.sock.fileno()
        fds = [fd] if self.watch is None else [fd, self.watch]
        while True:
            ready, _, _ = select.select(fds, [], [], meter.wait(what))
            if fd not in ready:
                if ready:
                    raise ZygoteSpoke()
                continue
            try:
                data, ancillary, _, _ = self.sock.recvmsg(min(max(n, _CHUNK), 1 << 20), socket.CMSG_SPACE(_CREDS.size))
            except BlockingIOError:
                continue
            except OSError:
                data, ancillary = b"", []
            if not data:
                raise StudentCrashed("it closed its channel", what)
            self._check_writer(ancillary, what)
            self._buffer += data
            return

    def _check_writer(self, ancillary: list[tuple[int, int, bytes]], what: str) -> None:
        pids = [_CREDS.unpack(d[: _CREDS.size])[0] for level, kind, d in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(d) >= _CREDS.size]
        pid = pids[0] if pids else 0
        if self.writer is None:
            self.writer = pid
        elif pid != self.writer:
            raise BrokenReply("a frame written by another process", what)

    def _read(self, n: int, meter: Meter, what: str) -> bytes:
        while len(self._buffer) < n:
            self._fill(n - len(self._buffer), meter, what)
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def receive(self, meter: Meter, what: str) -> dict[str, Any]:
        """One frame within ``meter``'s limits; typed errors for time-outs, EOF and garbage."""
        size = int.from_bytes(self._read(8, meter, what), "big")
        if size > self.max_bytes:
            raise BrokenReply(f"a reply of {size} bytes is over the {self.max_bytes}-byte limit", what)
        body = self._read(size, meter, what)
        try:
            message = frames.loads(body)  # strings made valid where they enter
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, 5000-digit integers, deep nesting
            raise BrokenReply(f"invalid JSON ({exc.__class__.__name__})", what) from None
        if not isinstance(message, dict):
            raise BrokenReply("a reply must be a JSON object", what)
        return message

    def send(self, message: dict[str, Any], seconds: float, what: str, fds: Sequence[int] = (),
             then: Sequence[dict[str, Any]] = ()) -> None:
        """Write one frame, and the frames ``then`` right behind it, within ``seconds`` of wall time (a process
        that never reads cannot block us); ``fds`` travel with its first bytes. ``OSError`` if the other end is
        gone."""
        view = memoryview(b"".join(frames.encode_frame(m) for m in (message, *then)))
        deadline = time.monotonic() + seconds
        while fds:
            try:
                view, fds = view[socket.send_fds(self.sock, [view[:8]], list(fds)) :], ()
            except BlockingIOError:
                self._writable(deadline, seconds, what)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except BlockingIOError:
                self._writable(deadline, seconds, what)

    def _writable(self, deadline: float, seconds: float, what: str) -> None:
        """Wait until the socket takes more bytes; ``StudentTimeout`` at ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([], [self.sock.fileno()], [], remaining)[1]:
            raise StudentTimeout(seconds, what, "wall-clock")

    def close(self) -> None:
        self.sock.close()
