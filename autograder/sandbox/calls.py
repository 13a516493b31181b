"""How the grader calls into a student's namespace: ``Session`` (whatever carries its requests) and ``Reply``.

A request and its reply are plain data (``wire``); the gradients a check asks
for are the grader's own, from a replay of the computation the call recorded
(``replay``). ``session.StudentSession`` carries requests to a sandboxed
student process, ``local.LocalSession`` to a namespace of this process.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from autograder.sandbox import replay
from autograder.sandbox.asked import Answer, used_names
from autograder.sandbox.errors import BrokenReply, StudentException
from autograder.sandbox.runtime import wire


@dataclass(frozen=True)
class Reply:
    """A call's return value, the gradients and arguments asked for, and the CPU time it took (if measured)."""

    value: Any
    grads: list[dict[str, Any]] | None
    args_after: dict[str, Any] | None
    cpu_seconds: float | None = None
    used: tuple[str, ...] = ()  # the graded names the call was seen to use (``runtime.carry``)
    again: Any = None  # with ``return_args``: the value of a second call on the same argument objects


class Session(abc.ABC):
    """Calls into a student's namespace; subclasses say how a request reaches it."""

    call_seconds = 30.0
    last_cpu: float | None = None  # CPU seconds of the last request, where measured
    last_used: tuple[str, ...] = ()  # the graded names the last call was seen to use, whether or not it raised
    graded: tuple[str, ...] = ()  # the names whose use by a call is observed (``runtime.carry``)

    @abc.abstractmethod
    def _request(self, request: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
        """Send one request; its reply (plain data)."""

    def _ask_request(self, request: dict[str, Any], seconds: float, what: str, answer: Answer) -> dict[str, Any]:
        """Send one request whose call may ask ``answer`` questions mid-call (only a sandbox can)."""
        raise BrokenReply("this session cannot answer questions during a call", what)

    def cpu_since(self, start: float) -> float | None:
        """CPU seconds the student used in requests begun at or after ``start`` (``time.monotonic``);
        None where not measured."""
        return None

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
        oracle: tuple[tuple[str, ...], Answer] | None = None,
        sent: dict[str, Any] | None = None,
    ) -> Reply:
        """Call the student's ``name``; raises a ``StudentProcessError`` subclass on any failure.

        With ``oracle = (names, answer)`` the student's graded functions ``names``
        are answered by ``answer`` in the grader when the call uses them. ``sent``:
        ``kwargs`` as ``wire.encode`` gave them (a caller that encoded them already).
        """
        self.last_used = ()
        request = {
            "op": "call",
            "name": name,
            "args": [wire.encode(a) for a in args],
            "kwargs": {k: wire.encode(v) for k, v in (kwargs or {}).items()} if sent is None else sent,
            "seed": seed,
            "grad": [
                {"output": g.get("output"), "cotangent": None if g.get("cotangent") is None else wire.encode(g["cotangent"])}
                for g in grad
            ]
            if grad
            else None,
            "return_args": return_args,
        }
        what = f"the call of {name}"
        if self.graded:
            request["graded"] = list(self.graded)
        if oracle is None:
            reply = self._request(request, seconds or self.call_seconds, what)
        else:
            request["oracle"] = list(oracle[0])
            reply = self._ask_request(request, seconds or self.call_seconds, what, oracle[1])
        self.last_used = used_names(reply.get("used"))
        if not reply.get("ok"):
            error = reply.get("error")
            raise StudentException(error if isinstance(error, dict) else {})
        try:
            value = wire.decode(reply.get("value"))
            after = None if reply.get("args_after") is None else wire.decode(reply["args_after"])
            again = wire.decode(reply.get("again")) if return_args else None
        except (wire.WireError, ValueError, TypeError) as exc:
            raise BrokenReply(f"undecodable value ({exc})", f"the call of {name}") from None
        if not _well_formed(after, return_args):
            raise BrokenReply("arguments not in the protocol's form", f"the call of {name}")
        # the gradients are the grader's own, of a replay of the recorded computation (never the student's numbers)
        grads = replay.gradients(reply.get("trace"), value, grad, replay.leaves_of([*args, *(kwargs or {}).values()])) \
            if grad else None
        return Reply(value, grads, after, self.last_cpu, self.last_used, again)


def _well_formed(after: Any, return_args: bool) -> bool:
    """Whether ``args_after`` has the shape the runtime sends (a forged reply may not)."""
    if return_args and not (
        isinstance(after, dict) and isinstance(after.get("args"), list) and isinstance(after.get("kwargs"), dict)
    ):
        return False
    return True
