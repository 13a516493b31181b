"""The sandbox's working folder (the runtime's copy and the zygote's working directory), and the sweep of the
folders that killed graders left behind.

A grader killed with SIGKILL (a ``-j`` pool stopped by Ctrl-C, a Dask worker
its nanny killed, an out-of-memory kill) never runs its clean-up, so its
folder stays in the temporary directory. Each folder therefore holds a lock
file, locked for as long as its grader lives: the kernel drops the lock when
the process dies, whoever the process was and in whatever pid namespace, so
a folder whose lock can be taken belongs to nobody and is removed when the
next sandbox starts. A folder without a lock file (being made, or made by an
older version) is never touched.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "dgm-sandbox-"
LOCK = ".owner.lock"


class WorkDir:
    """A fresh folder under ``root`` (the temporary directory by default), locked until ``cleanup``."""

    def __init__(self, root: str | None = None) -> None:
        self.name = tempfile.mkdtemp(prefix=PREFIX, dir=root)
        pending = os.path.join(self.name, LOCK + ".new")
        self._lock: int | None = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.rename(pending, os.path.join(self.name, LOCK))  # seen by a sweep only once it is locked

    def cleanup(self) -> None:
        """Remove the folder, then let the lock go."""
        shutil.rmtree(self.name, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def sweep(root: str | None = None) -> list[str]:
    """Remove the working folders under ``root`` whose grader is gone; the folders removed."""
    base = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = [e for e in base.iterdir() if e.name.startswith(PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        if _abandoned(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    return removed


def _abandoned(folder: Path) -> bool:
    """Whether ``folder`` is a real folder (not a link) with a lock file that no live process holds."""
    try:
        if folder.is_symlink() or not folder.is_dir():
            return False
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # also lets go of a lock just taken: the folder is removed right after
    return True
