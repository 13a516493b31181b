"""Handles on the processes of one submission: its templates and its worker (see ``process``).

Each is known to the grader by the pid that the kernel says wrote to its
channel, and killed through a pidfd, so never a later process that reuses
the pid.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
from typing import Any, Callable, Protocol

from autograder.sandbox.asked import Answer, Asked
from autograder.sandbox.channel import Channel, CpuClock, Meter, ZygoteSpoke, wall
from autograder.sandbox.errors import BrokenReply, StudentCrashed, StudentProcessError, StudentTimeout
EXIT_GRACE_SECONDS = 10.0
FORK_SECONDS = 30.0  # wall-clock limit of a fork or a snapshot (no student work runs in them)
_SYNC = {"op": "describe", "names": []}  # the request whose answer must follow a reply (``request``)


def wait_status(status: Any) -> str | None:
    """A wait status (an int a template reports) as text; None for anything else."""
    if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status < 1 << 16:
        return None
    if os.WIFSIGNALED(status):
        try:
            return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
        except ValueError:
            return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"


class _Limits(Protocol):
    reply_bytes: int
    wall_factor: float


class Zygote(Protocol):
    """What a handle uses of the sandbox whose zygote made it (``process.Sandbox``; typed here, so the handles
    need not import the module that uses them)."""

    starts: int  # how many times the zygote started: a handle of an earlier zygote is stale
    limits: _Limits
    _current: Template | None

    @property
    def control(self) -> int: ...  # the zygote's control channel (a file descriptor)

    def kill(self) -> None: ...

    def wait_exit(self, seconds: float) -> str | None: ...


def _open_channel(sandbox: Zygote, reply_bytes: int, ask: Callable[[list[int]], dict[str, Any]]) -> Channel | None:
    """A channel to a new student process: ``ask(fds)`` hands it the other end; None when its reply is not ok."""
    ours, theirs = socket.socketpair()
    channel = Channel(ours, reply_bytes, sandbox.control)
    try:
        reply = ask([theirs.fileno()])
    except StudentProcessError:
        channel.close()
        raise
    finally:
        theirs.close()
    if reply.get("ok") is not True:
        channel.close()
        return None
    return channel


class _Handle:
    """A process of one submission, known to the grader by the pid the kernel says wrote to its channel."""

    def __init__(self, sandbox: Zygote, channel: Channel) -> None:
        self.sandbox, self.channel = sandbox, channel
        self._generation = sandbox.starts
        self._open = True
        self.pid: int | None = None
        self._pidfd: int | None = None

    @property
    def alive(self) -> bool:
        return self._open and self._generation == self.sandbox.starts

    def _bind(self) -> None:
        """Take the channel's writer as this process (after its first frame)."""
        self.pid = self.channel.writer or None
        if self.pid is not None:
            try:
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._pidfd = None

    def _kill(self) -> bool:
        """SIGKILL this very process (never a later one with its pid); whether that was possible."""
        if self._pidfd is None:
            return False
        try:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        except OSError:
            pass
        return True

    def discard(self) -> None:
        """Forget the process: close its channel and kill it."""
        if self._open:
            self._open = False
            self.channel.close()
        self._kill()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class Template(_Handle):
    """A frozen student process that forks workers: the root template of a submission or a snapshot."""

    def __init__(self, sandbox: Zygote, channel: Channel, root: bool = False) -> None:
        super().__init__(sandbox, channel)
        self.root = root

    def _op(self, message: dict[str, Any], event: str, what: str, fds: list[int] | None = None) -> dict[str, Any]:
        if not self.alive:
            raise StudentCrashed("its snapshot is gone", what)
        try:
            self.channel.send(message, FORK_SECONDS, what, fds or ())
            reply = self.channel.receive(wall(FORK_SECONDS), what)
        except (OSError, StudentProcessError, ZygoteSpoke) as exc:
            self._broken()
            raise StudentCrashed(f"its snapshot failed ({exc.__class__.__name__})", what) from None
        if reply.get("event") != event:
            self._broken()
            raise BrokenReply("a template's reply that answers no request", what)
        return reply

    def _broken(self) -> None:
        if self.root:
            self.sandbox.kill()
        self.discard()

    def fork(self) -> StudentProcess:
        """A worker with this template's state."""
        channel = _open_channel(self.sandbox, self.sandbox.limits.reply_bytes,
                                lambda fds: self._op({"op": "fork"}, "forked", "start-up", fds))
        if channel is None:
            raise StudentCrashed("it could not fork (process limit)", "start-up")
        worker = StudentProcess(self.sandbox, channel, self)
        worker.start()
        return worker

    def reap(self, what: str) -> str | None:
        """Kill this template's worker and say how it ended."""
        return wait_status(self._op({"op": "reap"}, "reaped", what).get("status"))

    def close(self) -> None:
        """A snapshot is discarded; the root template is asked to exit, and the zygote confirms."""
        if not self.root:
            self.discard()
            return
        if not self.alive:
            return
        try:
            self.channel.send({"op": "exit"}, 1.0, "exit")
        except (StudentTimeout, OSError):
            pass
        self.discard()
        if self.sandbox._current is self:
            self.sandbox.wait_exit(EXIT_GRACE_SECONDS)


class StudentProcess(_Handle):
    """The worker of a submission: request/reply with CPU-time limits on a channel of its own.

    ``template`` is the template that forked it, which reports how it ended.
    """

    def __init__(self, sandbox: Zygote, channel: Channel, template: Template) -> None:
        super().__init__(sandbox, channel)
        self.template = template
        self.clock: CpuClock | None = None
        self.last_cpu: float | None = None
        self.grader_seconds = 0.0
        self._final_cpu: float | None = None  # the clock's last reading, once the process is done
        self._ids = itertools.count(1)

    def start(self) -> None:
        """Wait for the first frame; the process that wrote it is the one measured and killed."""
        reply = self.receive(wall(FORK_SECONDS), "start-up")
        if reply.get("event") != "started":
            self._fail()
            raise BrokenReply(f"unexpected first frame {reply!r:.80}", "start-up")
        self._bind()
        self.clock = CpuClock(self.pid) if self.pid is not None else None

    def cpu_seconds(self) -> float | None:
        """CPU seconds this worker has used so far (None where the grader cannot read them)."""
        return None if self.clock is None else self.clock.seconds()

    def send(self, message: dict[str, Any], what: str, seconds: float, fds: list[int] | None = None,
             then: tuple[dict[str, Any], ...] = ()) -> None:
        try:
            self.channel.send(message, seconds, what, fds or (), then)
        except StudentTimeout:
            self._fail()
            raise
        except OSError:
            raise self._ended(what) from None

    def receive(self, meter: Meter, what: str) -> dict[str, Any]:
        try:
            return self.channel.receive(meter, what)
        except ZygoteSpoke:
            raise self._root_ended(what) from None
        except StudentCrashed:
            raise self._ended(what) from None
        except (StudentTimeout, BrokenReply):
            self._fail()
            raise

    def request(self, message: dict[str, Any], seconds: float, what: str,
                answer: Answer | None = None) -> dict[str, Any]:
        """Send one request and wait for its reply, within ``seconds`` of this process's CPU time.

        Student code can write to its channel too, so a frame with the right
        id is not proof enough: an empty ``describe`` follows, and its answer
        must be the very next frame. A second reply to one request (a forged
        one, then the runtime's) therefore fails the request that caused it,
        not the next one. The runtime reads one request at a time, so the
        ``describe`` goes out with the request (one round trip), unless the
        call may ask questions: those frames are read mid-call. ``last_cpu``
        is then the CPU time of the request.
        With ``answer``, frames that ask the grader something mid-call are
        answered (``Asked``); ``grader_seconds`` is the wall time the grader
        spent on them, not charged to the student.
        """
        self.last_cpu, self.grader_seconds = None, 0.0
        meter = Meter.start(seconds, self.sandbox.limits.wall_factor, self.clock)
        try:
            reply = self._exchange(message, meter, what, sync=answer is None)
            while answer is not None and "ask" in reply:  # a mid-call question to the grader (``Asked``)
                asked = Asked(self, meter, what, reply.get("id"))
                try:
                    response = asked.answer(answer, reply["ask"])
                except StudentProcessError:
                    raise
                except BaseException:
                    self._fail()  # a grader bug: the worker would wait for an answer that never comes
                    raise
                meter, self.grader_seconds = asked.meter, self.grader_seconds + asked.grader_seconds
                reply = asked.send({"answer": response})
        except StudentProcessError:
            if self._final_cpu is not None and meter.cpu_start is not None:
                self.last_cpu = max(0.0, self._final_cpu - meter.cpu_start)
            raise
        self.last_cpu = meter.cpu()
        if answer is None:
            self.next_reply(meter, what, reply["id"] + 1)  # the describe sent with it (ids are consecutive)
        else:
            self._exchange(_SYNC, meter, what)
        return reply

    def next_reply(self, meter: Meter, what: str, request_id: Any) -> dict[str, Any]:
        """The next frame, which must answer request ``request_id``."""
        reply = self.receive(meter, what)
        if "event" in reply or reply.get("id") != request_id:
            self._fail()
            raise BrokenReply("a reply that answers no request", what)
        return reply

    def _exchange(self, message: dict[str, Any], meter: Meter, what: str, fds: list[int] | None = None,
                  sync: bool = False) -> dict[str, Any]:
        """Send ``message``; its reply. With ``sync``, the empty ``describe`` of ``request`` goes right behind it,
        with the next id (its answer is the caller's to read)."""
        if not self.alive:
            raise StudentCrashed("it had already exited", what)
        request_id = next(self._ids)
        behind = ({**_SYNC, "id": next(self._ids)},) if sync else ()
        self.send({**message, "id": request_id}, what, meter.wall_seconds, fds, behind)
        return self.next_reply(meter, what, request_id)

    def snapshot(self) -> Template | None:
        """A frozen copy of this process's state, as a template; None if it could not fork.

        The copy is a child of the worker and announces itself first, so the
        grader knows its pid (to kill it when it is let go).
        """
        channel = _open_channel(self.sandbox, 2**16,
                                lambda fds: self._exchange({"op": "snapshot"}, wall(FORK_SECONDS), "a snapshot", fds))
        if channel is None:
            return None
        frozen = Template(self.sandbox, channel)
        try:
            first = channel.receive(wall(FORK_SECONDS), "a snapshot")
        except (StudentProcessError, ZygoteSpoke):
            first = {}
        if first.get("event") != "frozen":
            frozen.discard()
            return None
        frozen._bind()
        return frozen

    def close(self) -> None:
        """Ask the worker to exit, then make sure it is gone."""
        if self.alive:
            try:
                self.channel.send({"op": "exit"}, 1.0, "exit")
            except (StudentTimeout, OSError):
                pass
        self._done()

    def _done(self) -> None:
        if self.clock is not None:
            self._final_cpu = self.clock.seconds()
            self.clock.close()
            self.clock = None
        self.discard()

    def _reaped(self, what: str) -> str | None:
        """Kill the worker; how it ended, by its template (None if that cannot tell)."""
        if not self._kill():
            self.sandbox.kill()  # no handle on the process: the only sure way to stop it
        self._done()
        try:
            return self.template.reap(what)
        except StudentProcessError:
            return None

    def _ended(self, what: str) -> StudentCrashed:
        """The process is gone (or closed its channel): its template's word on how it ended."""
        return StudentCrashed(self._reaped(what) or "it closed its channel", what)

    def _root_ended(self, what: str) -> StudentCrashed:
        """The zygote spoke: the submission's root template is gone, and with it every snapshot."""
        status = self.sandbox.wait_exit(EXIT_GRACE_SECONDS)
        self._kill()
        self._done()
        return StudentCrashed(status or "it closed its channel", what)

    def _fail(self) -> None:
        self._reaped("the end of a student process")
