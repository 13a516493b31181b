"""A submission's code loaded in a student process, kept usable across its failures.

Cells run in order, each within a CPU-time limit; a cell that hangs or kills
the process is skipped and the session goes on in a fork of its last
snapshot, so the functions it did not break can still earn their points. A
call that hangs or crashes costs that call; the next one gets a fresh fork.
"""

from __future__ import annotations

import bisect
import enum
import time
from dataclasses import dataclass
from typing import Any

from autograder.notebook import CodeCell
from autograder.sandbox.errors import (
    BrokenReply,
    BudgetSpent,
    StudentCrashed,
    StudentProcessError,
    StudentTimeout,
)
from autograder.sandbox.asked import Answer, refuse
from autograder.sandbox.calls import Session
from autograder.sandbox.handles import StudentProcess, Template
from autograder.sandbox.process import Sandbox

ORACLE_SECONDS = 300.0  # of the grader's own time answering a submission's calls mid-call (``asked``)
MAX_RESTARTS = 8  # fresh starts (every kept cell replayed) before grading of a submission stops
SNAPSHOT_SECONDS = 2.0  # cell time after which the worker's state is kept in a snapshot...
SNAPSHOT_COST_SHARE = 0.05  # ...or longer, so that snapshots cost at most this share of the cells' time


class CellStatus(enum.StrEnum):
    """How a code cell ended."""

    OK = "ok"
    ERROR = "error"  # raised: its effects up to the exception stay
    TIMEOUT = "timeout"
    CRASH = "crash"  # the student process died
    BROKEN = "broken"  # the process broke the protocol
    SKIPPED = "skipped"  # not run: the submission's budget was spent


@dataclass(frozen=True)
class CellRun:
    """How a cell ran."""

    index: int
    status: CellStatus
    error: str | None
    output: str
    note: str | None


def _cell_seed(index: int) -> int:
    return 1_000_003 * (index + 1)


def _error_text(error: Any) -> str:
    """``Type: message`` of a student error as the runtime reports it (anything else: a placeholder)."""
    if not isinstance(error, dict):
        return "an error the runtime could not describe"
    return f"{error.get('type')}: {error.get('message')}"[:500]


class StudentSession(Session):
    """Run ``cells`` in ``sandbox`` and answer calls to the names they define.

    Crashes cost their own time: every ``SNAPSHOT_SECONDS`` of cell time, and
    once the cells are loaded, the worker leaves a snapshot behind; a worker
    that crashes or hangs is replaced by a fork of the last snapshot, with
    only the cells run since it replayed. Every request's CPU time (replays
    included) comes out of the submission's budget (``Limits.budget_seconds``,
    and ``wall_factor`` times it in wall-clock time); past it, grading stops.
    """

    def __init__(self, sandbox: Sandbox, cells: tuple[CodeCell, ...]) -> None:
        self.sandbox = sandbox
        self.limits = sandbox.limits
        self.call_seconds = sandbox.limits.call_seconds
        self.cells = cells
        self.runs: dict[int, CellRun] = {}
        self.restarts = 0  # fresh starts after the first
        self.forks = 0  # workers forked (the first one included)
        self.cell_runs = 0  # cells run, replays included
        self.cpu_spent = 0.0
        self.wall_spent = 0.0  # inside the student's requests: start-up and the grader's own work are not charged
        self.grader_spent = 0.0  # the grader's time answering questions mid-call, bounded by ORACLE_SECONDS
        self._log: list[tuple[float, float]] = []  # (start of a request, CPU spent before it)
        self._root: Template | None = None
        self._template: Template | None = None  # the last snapshot (or the root template)
        self._snapshots: list[Template] = []  # every snapshot still alive
        self._process: StudentProcess | None = None
        self._kept: list[CodeCell] = []  # cells whose effects a worker holds (they ran ok or raised), in order
        self._frozen = 0  # how many of them the snapshot holds
        self._unfrozen_seconds = 0.0
        self._snapshot_seconds = 0.0  # what the last snapshot took
        self._dead: StudentProcessError | None = None
        self._spawns = 0

    def __enter__(self) -> StudentSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for cell in self.cells:
            self._load(cell)
        self._freeze(len(self._kept), force=True)

    def cpu_since(self, start: float) -> float:
        i = bisect.bisect_left(self._log, (start, -1.0))
        return self.cpu_spent - (self._log[i][1] if i < len(self._log) else self.cpu_spent)

    # -- cells ------------------------------------------------------------------------------------

    def _load(self, cell: CodeCell) -> None:
        """Run ``cell`` for the first time and record how it ran."""
        if not cell.source.strip():
            self.runs[cell.index] = CellRun(cell.index, CellStatus.OK, None, "", cell.note)
            return
        process = self._worker()
        if process is None:
            self.runs[cell.index] = CellRun(cell.index, CellStatus.SKIPPED, self._dead and self._dead.reason, "", cell.note)
            return
        run = self._run(process, cell)
        self.runs[cell.index] = run
        if run.status in (CellStatus.OK, CellStatus.ERROR):
            self._kept.append(cell)
            self._freeze(len(self._kept))

    def _run(self, process: StudentProcess, cell: CodeCell) -> CellRun:
        what = f"code cell {cell.index + 1}"
        request = {"op": "run_cell", "index": cell.index + 1, "source": cell.source, "seed": _cell_seed(cell.index)}
        start = time.monotonic()
        self.cell_runs += 1
        try:
            reply = self._measured(process, request, self.limits.cell_seconds, what)
        except BudgetSpent as exc:
            return CellRun(cell.index, CellStatus.SKIPPED, exc.reason, "", cell.note)
        except StudentProcessError as exc:
            status = {StudentTimeout: CellStatus.TIMEOUT, StudentCrashed: CellStatus.CRASH}.get(type(exc), CellStatus.BROKEN)
            self._process = None
            return CellRun(cell.index, status, exc.reason, "", cell.note)
        finally:
            self._unfrozen_seconds += time.monotonic() - start
        status = CellStatus.OK if reply.get("ok") is True else CellStatus.ERROR
        text = None if status == CellStatus.OK else _error_text(reply.get("error"))
        return CellRun(cell.index, status, text, str(reply.get("output", ""))[:10_000], cell.note)

    def _freeze(self, held: int, force: bool = False) -> None:
        """Keep the state of the worker (which holds the first ``held`` kept cells) in a snapshot,
        if enough cell time ran since the last one."""
        process = self._process
        if process is None or self._frozen == held:
            return
        if not force and self._unfrozen_seconds < max(SNAPSHOT_SECONDS, self._snapshot_seconds / SNAPSHOT_COST_SHARE):
            return
        start = time.monotonic()
        try:
            frozen = process.snapshot()
        except StudentProcessError:
            self._process = None
            return
        finally:
            self._snapshot_seconds = time.monotonic() - start
        if frozen is None:
            return  # no fork possible (the student's processes fill its limit): no snapshot this time
        self._snapshots.append(frozen)
        self._template, self._frozen, self._unfrozen_seconds = frozen, held, 0.0
        self._prune()

    # -- the worker -------------------------------------------------------------------------------

    def _worker(self) -> StudentProcess | None:
        """A live worker that holds every kept cell (a fork of the snapshot, or a fresh start); None once dead."""
        while self._dead is None and (self._process is None or not self._process.alive):
            self._process = None
            try:
                if self._template is None or not self._template.alive:
                    self._fresh_start()
                    continue
                self._process = self._template.fork()
            except StudentProcessError:
                self._drop_template()
                continue
            finally:
                self._prune()
            self.forks += 1
            self._replay()
        return self._process

    def _fresh_start(self) -> None:
        """A new root template from the zygote: the kept cells are all replayed."""
        if self._root is not None:
            self._root.close()
        self._root = self._template = None
        if self._spawns > MAX_RESTARTS:
            self._dead = StudentCrashed(f"the student process failed {MAX_RESTARTS} times; grading stopped", "grading")
            return
        self.restarts, self._spawns = self._spawns, self._spawns + 1
        self._root = self._template = self.sandbox.spawn()
        self._frozen, self._unfrozen_seconds = 0, 0.0

    def _drop_template(self) -> None:
        """The snapshot is unusable: the next worker starts afresh."""
        self._template = None
        self._prune()

    def _prune(self) -> None:
        """Let go of every snapshot but the last one and the one the worker was forked from."""
        parent = self._process.template if self._process is not None else None
        for snapshot in self._snapshots:
            if snapshot is not self._template and snapshot is not parent:
                snapshot.close()
        self._snapshots = [t for t in self._snapshots if t is self._template or t is parent]

    def _replay(self) -> None:
        """Run again, in the new worker, the kept cells that the snapshot does not hold."""
        i = self._frozen
        while i < len(self._kept) and self._process is not None:
            cell = self._kept[i]
            run = self._run(self._process, cell)
            if run.status in (CellStatus.OK, CellStatus.ERROR):
                i += 1
                self._freeze(i)
                continue
            self.runs[cell.index] = run  # it failed this time: it is no longer replayed
            del self._kept[i]

    # -- requests ---------------------------------------------------------------------------------

    def _budget_left(self, what: str) -> None:
        """Raise once the submission's CPU or wall-clock budget is spent (and stop grading it)."""
        budget = self.limits.budget_seconds
        if self._dead is None and (
            self.cpu_spent >= budget or self.wall_spent >= budget * self.limits.budget_wall_factor
        ):
            self._dead = BudgetSpent(budget, what, budget * self.limits.budget_wall_factor)
            self.close()
        if self._dead is not None:
            raise self._dead

    def _measured(self, process: StudentProcess, request: dict[str, Any], seconds: float, what: str,
                  answer: Answer | None = None) -> dict[str, Any]:
        """One request within its limit; its CPU time (wall-clock time if unreadable) is charged,
        the grader's time answering questions mid-call (``answer``) is not."""
        self._budget_left(what)
        start = time.monotonic()
        self._log.append((start, self.cpu_spent))
        try:
            return process.request(request, seconds, what, answer)
        finally:
            used, elapsed = process.last_cpu, max(0.0, time.monotonic() - start - process.grader_seconds)
            self.grader_spent += process.grader_seconds
            self.cpu_spent += elapsed if used is None else used
            self.wall_spent += elapsed
            self.last_cpu = used

    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        return self._ask_request(request, seconds, what, None)

    def _ask_request(self, request: dict[str, Any], seconds: float, what: str,
                     answer: Answer | None) -> dict[str, Any]:
        if answer is not None and self.grader_spent > ORACLE_SECONDS:
            answer = refuse(f"the grader's {ORACLE_SECONDS:g} s for error carried forward are spent")
        self._budget_left(what)
        process = self._worker()
        if process is None:
            assert self._dead is not None
            raise self._dead
        try:
            return self._measured(process, request, seconds, what, answer)
        except (StudentTimeout, StudentCrashed, BrokenReply):
            self._process = None
            raise

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
        for snapshot in self._snapshots:
            snapshot.close()
        self._snapshots, self._template = [], None
        if self._root is not None:
            self._root.close()
            self._root = None
