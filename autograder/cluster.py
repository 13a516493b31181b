"""Grade on a Dask cluster: one task per submission, the results written by the client.

    python -m autograder grade SUBS --out OUT --cluster local:N      # a LocalCluster of N workers
    python -m autograder grade SUBS --out OUT --scheduler tcp://HOST:PORT

A task is ``grade_task(data, seed)``: the same total function a ``-j`` pool
runs (``grading.grade_notebook``), in the worker's own sandbox, returning the
``Graded`` record. The client writes every report as tasks complete, through
the same code as ``-j``, so both trees are byte-identical. Each task has an
explicit key (assignment, student, content hash, grader version, seed):
identical notebooks of two students are two tasks, and a rerun of the same
class asks for the same keys.

Workers start their sandbox once (``SandboxPlugin``): the zygote is a fresh
``bwrap`` process exec'd by the worker (never a fork of the worker's threaded
process), it dies with its worker (``--die-with-parent``), and every limit
is the sandbox's own — the nanny's memory monitor sees only the worker
process, not the student processes below it. A student's crash, hang or
memory bomb is result data; it never kills a worker.

Dask is optional: ``pip install '.[dask]'``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from autograder.grading import Graded, grade_notebook, grader_version
from autograder.sandbox.worker import close_worker_sandbox, worker_sandbox

ASSIGNMENT = "dgm-vae-kl"
INSTALL_HINT = "Dask is not installed: pip install 'dgm-autograder[dask]' (or pip install '.[dask]' in a clone)"
CONNECT_SECONDS = 10
# Dask's housekeeping on a grading cluster: every value here is a dashboard's or a warning's, and on a busy
# machine its wake-ups cost the graders CPU (an idle LocalCluster of 2 took 12 % of a core with Dask's
# defaults, 1.6 % with these; bench/scaling.py). The event-loop tick (20 ms) only times blocked loops, the
# system monitor (500 ms, 1 ms for the GIL) only feeds the dashboard, work stealing (every second) has
# nothing to balance among single-threaded workers fed from the scheduler's queue, and the active memory
# manager (every 2 s) moves replicas of results, which are fetched once by the client.
QUIET = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "10s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.system-monitor.disk": False,
    "distributed.scheduler.work-stealing": False,
    "distributed.scheduler.active-memory-manager.start": False,
}


class ClusterError(Exception):
    """The cluster cannot be used for this run (unreachable, mixed versions, Dask missing); a usage error."""


@dataclass(frozen=True)
class ClusterSpec:
    """``local_workers`` for a LocalCluster of that many single-threaded workers, else ``address`` of a scheduler."""

    local_workers: int | None = None
    address: str | None = None

    @classmethod
    def parse_local(cls, text: str) -> ClusterSpec:
        """``local:N`` → a LocalCluster of N workers."""
        kind, _, n = text.partition(":")
        if kind != "local" or not n.isdigit() or int(n) < 1:
            raise ClusterError(f"--cluster takes local:N with N ≥ 1, not {text!r}")
        return cls(local_workers=int(n))


def task_key(student: str, data: bytes, seed: int) -> str:
    """The Dask key of one submission's task: stable across runs, distinct for distinct students."""
    who = hashlib.sha256(student.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    what = hashlib.sha256(data).hexdigest()[:16]
    return f"grade-{ASSIGNMENT}-{who}-{what}-{grader_version()}-{seed}"


def insecure_address(address: str) -> bool:
    """Whether ``address`` is plain ``tcp://`` to a host that is not loopback (Dask's TCP has no authentication)."""
    parsed = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    if parsed.scheme != "tcp":
        return False
    host = parsed.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: it may resolve anywhere


def grade_task(data: bytes, seed: int) -> Graded:
    """One submission on a worker, in that worker's sandbox (started by ``SandboxPlugin``)."""
    return grade_notebook(data, sandbox=worker_sandbox(), seed=seed)


def _worker_version() -> str:
    return grader_version()


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return distributed


def _plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    class SandboxPlugin(WorkerPlugin):
        """Starts the worker's sandbox when the worker starts, closes it when the worker closes."""

        name = "dgm-autograder-sandbox"

        async def setup(self, worker) -> None:
            # Dask's statistical profiler walks every thread's stack each 10 ms while holding the GIL: on a
            # grading worker it competes with the grading thread, and nobody looks at its profiles.
            for name in ("profile", "profile-cycle"):
                callback = worker.periodic_callbacks.pop(name, None)
                if callback is not None:
                    callback.stop()
            await asyncio.to_thread(lambda: worker_sandbox(start=True))  # the zygote imports torch: off the loop

        def teardown(self, worker) -> None:
            close_worker_sandbox()

    return SandboxPlugin()


class Cluster:
    """A connected client (and its LocalCluster, if we started one); a context manager."""

    def __init__(self, spec: ClusterSpec) -> None:
        distributed = _import_distributed()
        import dask

        self._local = None
        try:
            if spec.local_workers is not None:
                # memory_limit=0: no nanny memory monitor (it cannot see the student processes; the sandbox
                # enforces every limit itself). The workers are spawned with the client's config, QUIET too.
                with dask.config.set(QUIET):
                    self._local = distributed.LocalCluster(
                        n_workers=spec.local_workers, threads_per_worker=1, processes=True, memory_limit=0,
                        dashboard_address=None, silence_logs=logging.ERROR,
                    )
                self.client = distributed.Client(self._local, timeout=f"{CONNECT_SECONDS}s")
            else:
                self.client = distributed.Client(spec.address, timeout=f"{CONNECT_SECONDS}s")
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            where = spec.address or f"a local cluster of {spec.local_workers}"
            raise ClusterError(f"cannot reach the Dask scheduler at {where}: {type(exc).__name__}: {exc}") from None
        try:
            self.client.register_plugin(_plugin())
            self._check_versions()
        except BaseException:
            self.close()
            raise

    def _check_versions(self) -> None:
        """Refuse workers whose packages or grader version differ from the client's: no mixed gradebook."""
        try:
            self.client.get_versions(check=True, packages=["torch", "sympy", "hypothesis"])
        except ValueError as exc:
            raise ClusterError(f"the workers' packages differ from this client's: {exc}") from None
        mine = grader_version()
        theirs = self.client.run(_worker_version)
        mixed = sorted({v for v in theirs.values() if v != mine})
        if mixed:
            raise ClusterError(f"workers run grader version(s) {', '.join(mixed)}, this client {mine}: "
                               "install the same version everywhere")
        if not theirs:
            raise ClusterError("the cluster has no workers")

    def map(self, jobs: Sequence[tuple[str, bytes]], seed: int) -> Iterator[tuple[str, Graded]]:
        """Grade every ``(student, notebook bytes)``; yields ``(student, Graded)`` as tasks complete."""
        distributed = _import_distributed()
        futures = {}
        for student, data in jobs:
            future = self.client.submit(grade_task, data, seed, key=task_key(student, data, seed), pure=False,
                                        retries=0)
            futures[future] = student
        try:
            for future in distributed.as_completed(futures):
                student = futures[future]
                try:
                    yield student, future.result()
                except Exception as exc:  # noqa: BLE001 - a lost task costs its submission, not the run
                    from autograder.grading import grader_error, grading_failed

                    yield student, grading_failed(grader_error("the submission on the cluster", exc), repr(exc))
        finally:
            self.client.cancel(list(futures))

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
