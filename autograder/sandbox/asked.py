"""Questions a student process asks the grader in the middle of a call (error carried forward).

While a call runs with some graded functions in *oracle mode*
(``runtime.carry``), the student process may write ``{"id": i, "ask": {...}}``
instead of its reply; the grader answers ``{"id": i, "answer": {...}}`` and
waits again for the reply. While answering, the grader may ask the student
process to evaluate a callable it was given (``{"id": i, "call_back": {...}}``
→ ``{"id": i, "back": {...}}``). Every frame is plain JSON on the call's own
channel, bound to the worker like every other frame; the wall time the grader
spends answering is not charged to the student (``grader_seconds``), and the
student's CPU time is measured from ``/proc`` as always.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Protocol

from autograder.sandbox.channel import Meter
from autograder.sandbox.errors import BrokenReply


class StudentProcess(Protocol):
    """What a question uses of the student process it came from (``handles.StudentProcess``)."""

    def send(self, message: dict[str, Any], what: str, seconds: float) -> None: ...

    def next_reply(self, meter: Meter, what: str, request_id: Any) -> dict[str, Any]: ...


#: The grader's answer to one question: ``(ask, call_back) → answer``, every value plain JSON.
Answer = Callable[[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]], dict[str, Any]]


class Asked:
    """One question of a running call, answered by the grader (who may call back into the student)."""

    def __init__(self, process: StudentProcess, meter: Meter, what: str, request_id: Any) -> None:
        self.process, self.meter, self.what, self.request_id = process, meter, what, request_id
        self.grader_seconds = 0.0
        self._mark = time.monotonic()

    def _grader_time(self) -> None:
        """Move the wall-clock backstop by the grader's time since the last mark."""
        now = time.monotonic()
        spent, self._mark = now - self._mark, now
        self.grader_seconds += spent
        self.meter = dataclasses.replace(self.meter, started=self.meter.started + spent)

    def answer(self, answer: Answer, ask: Any) -> dict[str, Any]:
        """The grader's answer to ``ask`` (a malformed question gets an answer saying so)."""
        self._mark = time.monotonic()
        try:
            return answer(ask if isinstance(ask, dict) else {}, self.call_back)
        finally:
            self._grader_time()

    def call_back(self, message: dict[str, Any]) -> dict[str, Any]:
        """Ask the student process to evaluate one of its callables; its ``back`` (a dict)."""
        self._grader_time()
        try:
            reply = self.send({"call_back": message})
        finally:
            self._mark = time.monotonic()
        back = reply.get("back")
        if not isinstance(back, dict):
            raise BrokenReply("a frame that answers no call-back", self.what)
        return back

    def send(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` for this call; the next frame of the call."""
        self.process.send({**message, "id": self.request_id}, self.what, self.meter.wall_seconds)
        return self.process.next_reply(self.meter, self.what, self.request_id)


def refuse(reason: str) -> Answer:
    """An answerer that answers every question with ``reason`` (its budget is spent)."""
    return lambda ask, call_back: {"ok": False, "error": reason}


def used_names(names: Any) -> tuple[str, ...]:
    """The graded names a reply says its call used, bounded (a forged list gains nothing: see ``grading``)."""
    if not isinstance(names, list):
        return ()
    return tuple(sorted({n[:100] for n in names[:100] if isinstance(n, str)}))
