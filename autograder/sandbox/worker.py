"""This process's one sandbox, for a process that grades job after job (a ``-j`` pool or a Dask worker)."""

from __future__ import annotations

import torch

from autograder.sandbox.process import Sandbox

_SANDBOX: Sandbox | None = None


def worker_sandbox(start: bool = False) -> Sandbox:
    """This process's one sandbox; with ``start``, its zygote is started now (it imports torch once, not in the
    first job)."""
    global _SANDBOX
    if _SANDBOX is None:
        # The checks' tensors are small: threads only fight the student process and the other workers.
        torch.set_num_threads(1)
        _SANDBOX = Sandbox()
    if start:
        _SANDBOX.spawn().close()
    return _SANDBOX


def close_worker_sandbox() -> None:
    """Tear this process's sandbox down (a worker that closes)."""
    global _SANDBOX
    if _SANDBOX is not None:
        _SANDBOX.close()
        _SANDBOX = None
