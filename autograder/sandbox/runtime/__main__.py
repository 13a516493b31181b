"""The zygote: imports torch once, then forks one student process per request.

Run inside the sandbox as ``python -m <this package>``. Its stdin is a unix
socket to the grader, the *control* channel: fork requests come in, events
go out. Each fork request carries a fresh socket (SCM_RIGHTS), the only
channel the forked student process gets; the child closes the control
socket before it runs any student code, so no student process can read
another student's requests or forge an event. Each child then confines
itself (``child.become_student``): IPC and mount namespaces of its own, a
bounded tmpfs over the scratch folder made here, no capabilities, its own
uid, resource limits and a seccomp filter::

    {"op": "fork", "limits": {...}} + a socket  → the child answers on that socket
                                                  ({"event": "started"}, then replies);
                                                  when it is gone: {"event": "exited", "status": str}
    end of input                                → the zygote exits
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile

import torch

from . import child, frames, procs

torch.set_num_threads(1)
# Preloaded once so that no student pays for them (and so that they load
# before the student's uid, which may not read the interpreter's folders).
import numpy.random  # noqa: E402,F401
import sympy  # noqa: E402,F401
import torch.distributions  # noqa: E402,F401
import torch.nn.functional  # noqa: E402,F401
import torch.optim  # noqa: E402


def _warm_up_optimizers() -> None:
    """An optimiser's first step imports ``torch._dynamo`` (about 1 s): take one here, once."""
    x = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.Adam([x])
    x.sum().backward()
    optimiser.step()


_warm_up_optimizers()

_HEADER_BYTES = 8


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _fork_request(control: socket.socket) -> tuple[dict, int]:
    """One request from the grader and the channel socket attached to it."""
    header, fds, _, _ = socket.recv_fds(control, _HEADER_BYTES, 1)
    if not header:
        raise EOFError("the grader closed the control channel")
    header += frames.read_exactly(control.fileno(), _HEADER_BYTES - len(header))
    request = json.loads(frames.read_exactly(control.fileno(), int.from_bytes(header, "big")))
    if len(fds) != 1:
        raise RuntimeError("a fork request without its channel")
    return request, fds[0]


def main() -> None:
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    frames.write_frame(control.fileno(), {"event": "ready", "python": sys.version.split()[0], "torch": torch.__version__})
    while True:
        try:
            request, channel = _fork_request(control)
        except EOFError:
            return
        limits = request["limits"]
        uid = limits.get("uid")
        scratch = tempfile.mkdtemp(prefix="student-")
        if uid is not None:
            os.chown(scratch, uid, uid)
        pid = os.fork()
        if pid == 0:
            try:
                control.close()  # before any student code: the child never sees the control channel
                child.become_student(limits, scratch)
                frames.write_frame(channel, {"event": "started"})
                child.serve(channel, channel)
            finally:
                os._exit(70)
        os.close(channel)
        _, status = os.waitpid(pid, 0)
        if uid is not None:
            procs.kill_uids({uid})
        shutil.rmtree(scratch, ignore_errors=True)
        frames.write_frame(control.fileno(), {"event": "exited", "status": _status(status)})


if __name__ == "__main__":
    main()
