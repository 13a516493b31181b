"""Process clean-up shared by the zygote and the grader (stdlib only)."""

from __future__ import annotations

import os
import signal
from collections.abc import Container


def kill_uids(uids: Container[int]) -> int:
    """SIGKILL every visible process whose real uid is in ``uids`` until none is left.

    Returns how many kill signals were sent. Loops because a fork bomb keeps
    making processes while we kill them; the process limit makes it finite.
    """
    sent = 0
    for _ in range(1000):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as f:
                    owner = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            except (OSError, StopIteration, ValueError):
                continue
            if owner in uids:
                found = True
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    sent += 1
                except OSError:
                    pass
        if not found:
            break
    return sent
