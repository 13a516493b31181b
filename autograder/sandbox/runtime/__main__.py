"""The zygote: imports torch once, then forks one student process per request.

Run inside the sandbox as ``python -m <this package>``. It speaks frames on
its stdin/stdout (moved to private descriptors); each forked child answers
on the same channel until it exits, then the zygote reports how it ended::

    {"op": "fork", "limits": {...}}  → the child's frames …, then
                                       {"event": "exited", "status": str}
    end of input                     → the zygote exits
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

import torch

from . import child, procs, wire

torch.set_num_threads(1)
# Preloaded once so that no student pays for them (and so that they load
# before the student's uid, which may not read the interpreter's folders).
import numpy.random  # noqa: E402,F401
import sympy  # noqa: E402,F401
import torch.distributions  # noqa: E402,F401
import torch.nn.functional  # noqa: E402,F401


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def main() -> None:
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    wire.write_frame(wfd, {"event": "ready", "python": sys.version.split()[0], "torch": torch.__version__})
    while True:
        try:
            request = wire.read_frame(rfd)
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
                child.become_student(limits, scratch)
                wire.write_frame(wfd, {"event": "started"})
                child.serve(rfd, wfd)
            finally:
                os._exit(70)
        _, status = os.waitpid(pid, 0)
        if uid is not None:
            procs.kill_uids({uid})
        shutil.rmtree(scratch, ignore_errors=True)
        wire.write_frame(wfd, {"event": "exited", "status": _status(status)})


if __name__ == "__main__":
    main()
