"""The grader's side of the sandbox: the zygote, which forks each submission's processes (``handles``).

The zygote pays for ``import torch`` once; each submission then gets a
forked student process in milliseconds, its *root template*: it runs no
student code and forks *workers*. A worker runs the cells and answers the
calls; a snapshot leaves a frozen copy of a worker behind as the next
template, so a worker that crashes or hangs is replaced by a fork of the
last template instead of a replay of the cells (``runtime.child``). Channels,
all unix sockets (``channel``):

* the *control* channel to the zygote (fork requests, and the zygote's
  events ``ready`` and ``exited``), which no student process ever holds;
* one channel per template and one per worker, created here for that
  process alone and passed with its fork or snapshot request.

So a student's stray or forged frames reach only its own channels, and only
the zygote can say that the root template is gone (after which the zygote
kills every process of the student's uid). A worker that breaks a limit or
the protocol is killed by the grader itself (pidfd); its template reports
how it ended. Anything abnormal in the zygote tears the whole sandbox down.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.sandbox import isolation as iso
from autograder.sandbox.channel import Channel, wall
from autograder.sandbox.errors import BrokenReply, StudentCrashed, StudentProcessError, StudentTimeout
from autograder.sandbox.handles import Template
from autograder.sandbox.workdir import WorkDir, sweep
from autograder.sandbox.runtime import procs

_UIDS = itertools.count()
#: Processes of a submission besides its worker: the root template, the template that forked the worker,
#: the last snapshot, and one on its way out.
TEMPLATE_PROCESSES = 4


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's student processes.

    ``cell_seconds`` and ``call_seconds`` are CPU time of the student process
    (measured by the grader); wall-clock time stops a request only at
    ``wall_factor`` times its limit. ``budget_seconds`` is the CPU time of all
    of a submission's cells and calls together, replays included, and
    ``budget_wall_factor`` times it in wall-clock time (a notebook that only
    sleeps holds a worker that long at most); past either, grading of that
    submission stops. ``cpu_seconds`` is the kernel's limit of one process.
    """

    cell_seconds: float = 60.0
    call_seconds: float = 30.0
    startup_seconds: float = 120.0
    wall_factor: float = 10.0
    budget_seconds: float = 900.0
    budget_wall_factor: float = 2.0
    cpu_seconds: int = 1800
    memory_bytes: int = 3 * 2**30
    file_bytes: int = 64 * 2**20
    processes: int = 16
    open_files: int = 256
    reply_bytes: int = 64 * 2**20


class Sandbox:
    """One zygote in its sandbox; restarts itself after a teardown."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.isolation = iso.detect()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: Channel | None = None
        self._tmp: WorkDir | None = None
        self._uids: set[int] = set()
        self._current: Template | None = None
        self.starts = 0

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        sweep()  # what killed graders left behind
        self._tmp = WorkDir()
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
        self._control = Channel(ours, 2**16)
        self.starts += 1
        try:
            ready = self._control.receive(wall(self.limits.startup_seconds), "sandbox start-up")
        except (StudentTimeout, StudentCrashed, BrokenReply) as exc:
            self.kill()
            raise RuntimeError(f"the sandbox did not start: {exc}") from None
        if ready.get("event") != "ready":
            self.kill()
            raise RuntimeError(f"the sandbox did not start: {ready!r:.200}")

    def spawn(self) -> Template:
        """Fork a fresh student process, the root template of a submission (starting the zygote if needed)."""
        if self._current is not None:
            self._current.close()
        if self._proc is None or self._proc.poll() is not None:
            self.kill()
            self._start()
        assert self._control is not None
        uid = None
        if self.isolation.switch_uid:
            uid = 100_000 + (os.getpid() * 7919 + next(_UIDS)) % 800_000
            self._uids.add(uid)
        limits = {
            "uid": uid,
            "memory_bytes": self.limits.memory_bytes,
            "cpu_seconds": self.limits.cpu_seconds,
            "file_bytes": self.limits.file_bytes,
            "processes": self.limits.processes + TEMPLATE_PROCESSES,
            "open_files": self.limits.open_files,
        }
        ours, theirs = socket.socketpair()
        channel = Channel(ours, 2**16, self.control)  # credentials on from the first byte
        try:
            self._control.send({"op": "fork", "limits": limits}, self.limits.startup_seconds, "start-up",
                               fds=[theirs.fileno()])
        except (OSError, StudentTimeout):
            channel.close()
            self.kill()
            raise StudentCrashed("the sandbox is gone", "start-up") from None
        finally:
            theirs.close()
        root = self._current = Template(self, channel, root=True)
        try:
            reply = root.channel.receive(wall(self.limits.startup_seconds), "start-up")
        except (StudentProcessError, ZygoteSpoke):
            reply = {}
        if reply.get("event") != "started":
            self.kill()
            raise StudentCrashed("the student process did not start", "start-up")
        return root

    def wait_exit(self, seconds: float) -> str | None:
        """The status of the root template that just ended (the zygote's ``exited`` event), or None
        after a teardown if the zygote does not report one within ``seconds``."""
        if self._control is None:
            return None
        try:
            event = self._control.receive(wall(seconds), "the end of a student process")
        except (StudentTimeout, StudentCrashed, BrokenReply):
            event = {}
        if self._current is not None:
            self._current.discard()
            self._current = None
        if event.get("event") != "exited":
            self.kill()
            return None
        return str(event.get("status"))[:100]

    def kill(self) -> None:
        """Tear the sandbox down with every process in it."""
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
        self.starts += 1  # every handle of the torn-down sandbox is now dead

    def close(self) -> None:
        self.kill()

    @property
    def control(self) -> int:
        assert self._control is not None
        return self._control.fileno()
