"""A submission's code loaded in a student process, kept usable across its failures.

Cells run in order, each with a wall-time limit; a cell that hangs or kills
the process is skipped and the others are replayed in a fresh process, so
the functions it did not break can still earn their points. A call that
hangs or crashes costs that call; the session restarts for the next one.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch

from autograder.notebook import CodeCell
from autograder.sandbox.errors import (
    BrokenReply,
    StudentCrashed,
    StudentException,
    StudentProcessError,
    StudentTimeout,
)
from autograder.sandbox.process import Sandbox, StudentProcess
from autograder.sandbox.runtime import wire

MAX_RESTARTS = 8


@dataclass(frozen=True)
class CellRun:
    """How a cell ran: ``status`` is ok, error, timeout, crash or broken."""

    index: int
    status: str
    error: str | None
    output: str
    note: str | None


@dataclass(frozen=True)
class Reply:
    value: Any
    grads: list[dict[str, Any]] | None
    args_after: dict[str, Any] | None


def _cell_seed(index: int) -> int:
    return 1_000_003 * (index + 1)


class Session(abc.ABC):
    """Calls into a student's namespace; subclasses say how a request reaches it."""

    call_seconds = 30.0

    @abc.abstractmethod
    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        """Send one request; its reply (plain data)."""

    def describe(self, names: list[str]) -> dict[str, str]:
        """What each name is in the student's namespace: ``function(...)``, a type name or ``missing``."""
        reply = self._request({"op": "describe", "names": names}, self.call_seconds, "describe")
        found = reply.get("names")
        if not isinstance(found, dict):
            raise BrokenReply("describe answered without names", "describe")
        return {n: str(found.get(n, "missing"))[:200] for n in names}

    def get(self, name: str) -> Any:
        """The value of the student's global ``name`` (as plain data)."""
        reply = self._request({"op": "get", "name": name}, self.call_seconds, f"reading {name}")
        if not reply.get("ok"):
            error = reply.get("error")
            raise StudentException(error if isinstance(error, dict) else {})
        try:
            return wire.decode(reply.get("value"))
        except (wire.WireError, ValueError, TypeError) as exc:
            raise BrokenReply(f"undecodable value ({exc})", f"reading {name}") from None

    def call(
        self,
        name: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        seed: int,
        grad: list[dict[str, Any]] | None = None,
        return_args: bool = False,
        seconds: float | None = None,
    ) -> Reply:
        """Call the student's ``name``; raises a ``StudentProcessError`` subclass on any failure."""
        request = {
            "op": "call",
            "name": name,
            "args": [wire.encode(a) for a in args],
            "kwargs": {k: wire.encode(v) for k, v in (kwargs or {}).items()},
            "seed": seed,
            "grad": [
                {"output": g.get("output"), "cotangent": None if g.get("cotangent") is None else wire.encode(g["cotangent"])}
                for g in grad
            ]
            if grad
            else None,
            "return_args": return_args,
        }
        reply = self._request(request, seconds or self.call_seconds, f"the call of {name}")
        if not reply.get("ok"):
            error = reply.get("error")
            raise StudentException(error if isinstance(error, dict) else {})
        try:
            value = wire.decode(reply.get("value"))
            grads = None if reply.get("grads") is None else wire.decode(reply["grads"])
            after = None if reply.get("args_after") is None else wire.decode(reply["args_after"])
        except (wire.WireError, ValueError, TypeError) as exc:
            raise BrokenReply(f"undecodable value ({exc})", f"the call of {name}") from None
        if not _well_formed(grads, after, len(grad or ()), return_args):
            raise BrokenReply("gradients or arguments not in the protocol's form", f"the call of {name}")
        return Reply(value, grads, after)


def _well_formed(grads: Any, after: Any, n_grads: int, return_args: bool) -> bool:
    """Whether ``grads`` and ``args_after`` have the shape the runtime sends (a forged reply may not)."""
    if n_grads and not (
        isinstance(grads, list) and len(grads) == n_grads
        and all(isinstance(g, dict) and all(v is None or isinstance(v, torch.Tensor) for v in g.values()) for g in grads)
    ):
        return False
    if return_args and not (
        isinstance(after, dict) and isinstance(after.get("args"), list) and isinstance(after.get("kwargs"), dict)
    ):
        return False
    return True


def _error_text(error: Any) -> str:
    """``Type: message`` of a student error as the runtime reports it (anything else: a placeholder)."""
    if not isinstance(error, dict):
        return "an error the runtime could not describe"
    return f"{error.get('type')}: {error.get('message')}"[:500]


class StudentSession(Session):
    """Run ``cells`` in ``sandbox`` and answer calls to the names they define."""

    def __init__(self, sandbox: Sandbox, cells: tuple[CodeCell, ...]) -> None:
        self.sandbox = sandbox
        self.call_seconds = sandbox.limits.call_seconds
        self.cells = cells
        self.runs: dict[int, CellRun] = {}
        self.restarts = 0
        self._process: StudentProcess | None = None
        self._dead_reason: str | None = None

    def __enter__(self) -> StudentSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._process = self.sandbox.spawn()
        for cell in self.cells:
            self._run_cell(cell)

    def _run_cell(self, cell: CodeCell) -> None:
        if self._process is None:
            self.runs[cell.index] = CellRun(cell.index, "skipped", self._dead_reason, "", cell.note)
            return
        if not cell.source.strip():
            self.runs[cell.index] = CellRun(cell.index, "ok", None, "", cell.note)
            return
        what = f"code cell {cell.index + 1}"
        request = {"op": "run_cell", "index": cell.index + 1, "source": cell.source, "seed": _cell_seed(cell.index)}
        try:
            reply = self._process.request(request, self.sandbox.limits.cell_seconds, what)
        except StudentProcessError as exc:
            status = {StudentTimeout: "timeout", StudentCrashed: "crash"}.get(type(exc), "broken")
            self.runs[cell.index] = CellRun(cell.index, status, exc.reason, "", cell.note)
            self._restart()
            return
        error = reply.get("error")
        status = "ok" if reply.get("ok") is True else "error"
        text = None if status == "ok" else _error_text(error)
        self.runs[cell.index] = CellRun(cell.index, status, text, str(reply.get("output", ""))[:10_000], cell.note)

    def _restart(self) -> None:
        """A fresh process with every cell replayed but those that hung or crashed."""
        self.restarts += 1
        if self._process is not None and self._process.alive:
            self._process.close()
        if self.restarts > MAX_RESTARTS:
            self._dead_reason = f"the student process failed {MAX_RESTARTS} times; grading stopped"
            self._process = None
            return
        self._process = self.sandbox.spawn()
        generation = self.restarts
        for cell in self.cells:
            run = self.runs.get(cell.index)
            if run is None:
                return  # still loading: the caller runs the remaining cells
            if run.status in ("ok", "error") and cell.source.strip():
                self._run_cell(cell)
                if self.restarts != generation:
                    return  # that replay failed and restarted (and replayed) again

    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        if self._dead_reason is not None:
            raise StudentCrashed(self._dead_reason, what)
        try:
            return self._process.request(request, seconds, what)
        except (StudentTimeout, StudentCrashed, BrokenReply):
            self._restart()
            raise

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
