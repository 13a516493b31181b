"""Checks: how one is declared, run against a student session, and reported.

A check body gets a ``Context``; it calls the student's function through it
and raises ``Failure`` (via ``ctx.fail`` or the ``compare`` helpers) when the
answer is wrong. It never judges the student process's own failures: a
raise, a hang or a crash become their own result kinds here.

Property checks draw inputs with hypothesis (``for_all``); the failing input
reported is the one hypothesis shrank it to, replayed.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import hypothesis
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from autograder.checks import tape as tapes
from autograder.checks.show import show, show_call
from autograder.contract import BY_ID
from autograder.escape import clip
from autograder.sandbox.errors import (
    BrokenReply,
    StudentCrashed,
    StudentException,
    StudentProcessError,
    StudentTimeout,
)
from autograder.sandbox.runtime import wire
from autograder.sandbox.session import Reply, Session

PUBLIC, HIDDEN = "public", "hidden"
#: The whole hint of a stub (raises NotImplementedError, returns None or the template's placeholder).
NOT_IMPLEMENTED = "not implemented yet"
QUESTION_SECONDS = 120.0  # of the student's CPU time per question
QUESTION_WALL_FACTOR = 10.0  # wall-clock backstop, in multiples of QUESTION_SECONDS


class Status(enum.StrEnum):
    """How a check ended (equal to its plain string, as results.json writes it)."""

    PASSED = "passed"
    FAILED = "failed"  # a wrong answer
    ERROR = "error"  # the student's function raised
    TIMEOUT = "timeout"
    CRASH = "crash"  # the student process died or broke the protocol
    SKIPPED = "skipped"  # not run (the function is missing, or an earlier check stopped the question)
    GRADER_ERROR = "grader_error"  # a bug on the grader's side while running this check


class Failure(Exception):
    """A wrong answer: what was expected, what came back, and the likely mistake."""

    def __init__(self, summary: str, *, expected: str = "", got: str = "", detail: str = "", hint: str = "") -> None:
        super().__init__(summary)
        self.summary, self.expected, self.got, self.detail, self.hint = summary, expected, got, detail, hint


@dataclass(frozen=True)
class FailureRecord:
    """Why a check did not pass, field by field (every field bounded, valid Unicode, not yet escaped).

    ``summary`` is one sentence on what went wrong; ``call`` the call it went
    wrong on (``shrunk`` when hypothesis shrank it); ``kind`` the check's kind.
    The layout of these fields as text lives in ``reports.layout``.
    """

    summary: str
    call: str = ""
    shrunk: bool = False
    expected: str = ""
    got: str = ""
    detail: str = ""
    hint: str = ""
    kind: str = "check"

    @classmethod
    def of(cls, summary: str, **fields: Any) -> FailureRecord:
        """A record with every text field clipped to ``escape.FIELD_CHARS``."""
        texts = {k: clip(v) if isinstance(v, str) else v for k, v in fields.items()}
        return cls(clip(summary), **texts)


@dataclass(frozen=True)
class Check:
    """One check of a question: ``points`` of ``qid`` earned when ``body`` passes."""

    qid: str
    name: str
    points: float
    visibility: str
    hint: str
    body: Callable[[Context], None]
    kind: str = "check"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check; ``failure`` says why it did not pass (None when it passed)."""

    qid: str
    check: str
    visibility: str
    points: float
    max_points: float
    status: Status
    failure: FailureRecord | None = None
    seconds: float = field(compare=False, default=0.0)

    @property
    def message(self) -> str:
        """The failure as plain text (``reports.layout.plain_text``), "" when the check passed."""
        from autograder.reports.layout import plain_text  # the layout belongs to the reports

        return plain_text(self)


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts (stable across runs and machines)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Context:
    """What a check body works with: the student's function for its question, seeded."""

    def __init__(self, session: Session, check: Check, seed: int, deadline: float) -> None:
        self.session, self.check, self.seed, self.deadline = session, check, seed, deadline
        self.name = BY_ID[check.qid].name
        self.last_call: str | None = None
        self.shrunk = False
        self.fatal: StudentProcessError | None = None

    def _call_seed(self, kwargs: dict[str, Any], attempt: int) -> int:
        blob = json.dumps({k: wire.encode(v) for k, v in kwargs.items()}, sort_keys=True)
        return derive_seed(self.seed, blob, attempt) if attempt else derive_seed(self.seed, blob)

    def reply(self, grad: list[dict[str, Any]] | None = None, return_args: bool = False,
              seconds: float | None = None, attempt: int = 0, **kwargs: Any) -> Reply:
        """Call the student's function with the contract's keyword arguments; the full reply.

        The call is seeded from the check's seed and the arguments; ``attempt`` > 0
        reseeds a repeated call (independent runs of a stochastic function).
        """
        if self.fatal is not None:
            raise self.fatal
        self.last_call = show_call(self.name, kwargs)
        if self._question_spent():
            self.fatal = StudentTimeout(QUESTION_SECONDS, f"the checks of {self.check.qid}")
            raise self.fatal
        try:
            reply = self.session.call(self.name, (), kwargs, seed=self._call_seed(kwargs, attempt), grad=grad,
                                      return_args=return_args, seconds=seconds)
        except (StudentTimeout, StudentCrashed, BrokenReply) as exc:
            self.fatal = exc
            raise
        if reply.value is None:  # no contract function returns None: a stub or a missing return
            raise Failure(f"{self.name} returned None", expected="a return value", got="None", hint=NOT_IMPLEMENTED)
        return reply

    def _question_spent(self) -> bool:
        """Whether the question's budget is spent: QUESTION_SECONDS of the student's CPU time since the
        question began (``deadline`` - QUESTION_SECONDS), or QUESTION_WALL_FACTOR times that in wall-clock
        time (wall-clock time only, where the session does not measure CPU time)."""
        began = self.deadline - QUESTION_SECONDS
        cpu = self.session.cpu_since(began)
        if cpu is None:
            return time.monotonic() > self.deadline
        return cpu > QUESTION_SECONDS or time.monotonic() > began + QUESTION_WALL_FACTOR * QUESTION_SECONDS

    def call(self, **kwargs: Any) -> Any:
        """Call the student's function; its return value."""
        return self.reply(**kwargs).value

    def expect_unmodified(self, reply: Reply, before: dict[str, Any], hint: str = "") -> None:
        """Fail when an argument named in ``before`` was modified in place (a ``return_args`` reply).

        The runtime judges each argument tensor on its own records (version
        counter, storage, bytes before the call); the values it sends back must
        also still equal ``before``.
        """
        after = reply.args_after or {}
        modified = after.get("modified")
        reasons = modified.get("kwargs") if isinstance(modified, dict) else None
        if not isinstance(reasons, dict) or not isinstance(after.get("kwargs"), dict):
            self.fatal = BrokenReply("the in-place report is missing from the reply", f"the call of {self.name}")
            raise self.fatal
        for name, value in before.items():
            reason, now = reasons.get(name), after["kwargs"].get(name)
            if reason is not None or not (isinstance(now, torch.Tensor) and torch.equal(now, value)):
                why = f": {str(reason)[:200]}" if reason is not None else ""
                self.fail(f"{name} was modified in place{why}", expected=value, got=now, hint=hint)

    def value(self) -> Any:
        """The student's value of the question's name (for names that are not functions)."""
        if self.fatal is not None:
            raise self.fatal
        self.last_call = self.name
        try:
            return self.session.get(self.name)
        except (StudentTimeout, StudentCrashed, BrokenReply) as exc:
            self.fatal = exc
            raise

    def fail(self, summary: str, *, expected: Any = "", got: Any = "", detail: str = "", hint: str = "") -> None:
        """Raise a ``Failure`` for the current call (values are shown with ``show``)."""
        raise Failure(
            summary,
            expected=expected if isinstance(expected, str) else show(expected),
            got=got if isinstance(got, str) else show(got),
            detail=detail,
            hint=hint,
        )


def for_all(strategy: st.SearchStrategy[Any], max_examples: int = 25) -> Callable[[Callable[[Context, Any], None]], Callable[[Context], None]]:
    """Turn ``body(ctx, example)`` into a check body run on hypothesis-drawn examples."""

    def wrap(fn: Callable[[Context, Any], None]) -> Callable[[Context], None]:
        def body(ctx: Context) -> None:
            tape = tapes.TAPE
            if tape is not None and not tape.recording:  # student bundle: the recorded examples, in order
                for example in tape.examples():
                    tape.start_example(example)
                    fn(ctx, example)
                return

            @hypothesis.seed(ctx.seed)
            @settings(
                max_examples=max_examples,
                database=None,
                deadline=None,
                derandomize=False,
                verbosity=Verbosity.quiet,
                phases=(Phase.explicit, Phase.generate, Phase.shrink),
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=False,
                print_blob=False,
            )
            @given(strategy)
            def prop(example: Any) -> None:
                if tape is None:
                    fn(ctx, example)
                    return
                tape.start_example(example)
                tape.in_body = True
                try:
                    fn(ctx, example)
                finally:
                    tape.in_body = False

            ctx.shrunk = True
            prop()

        body.__name__ = fn.__name__
        body.draws_examples = True  # type: ignore[attr-defined]
        return body

    return wrap


def run_check(session: Session, check: Check, seed: int, deadline: float) -> CheckResult:
    """Run one check; every student-side failure becomes a result, grader bugs propagate."""
    ctx = Context(session, check, derive_seed(seed, check.qid, check.name), deadline)
    start = time.monotonic()
    if tapes.TAPE is not None:
        tapes.TAPE.start_check(f"{check.qid}/{check.name}")
        tapes.TAPE.in_body = not getattr(check.body, "draws_examples", False)

    def result(status: Status, summary: str = "", **fields: str) -> CheckResult:
        failure = None
        if status != Status.PASSED:
            failure = FailureRecord.of(summary, call=ctx.last_call or "", shrunk=bool(ctx.shrunk and ctx.last_call),
                                       kind=check.kind, **{**fields, "hint": fields.get("hint") or check.hint})
        points = check.points if status == Status.PASSED else 0.0
        return CheckResult(check.qid, check.name, check.visibility, points, check.points, status, failure,
                           time.monotonic() - start)

    try:
        check.body(ctx)
    except Failure as f:
        return result(Status.FAILED, f.summary, expected=f.expected, got=f.got, detail=f.detail, hint=f.hint)
    except StudentException as e:
        raised = f"raised {e.type}: {e.message[:300]}"
        return result(Status.ERROR, raised, expected="a return value", got=raised,
                      detail=e.traceback.strip().splitlines()[-1] if e.traceback.strip() else "",
                      hint=NOT_IMPLEMENTED if e.type == "NotImplementedError" else "")
    except StudentTimeout as e:
        return result(Status.TIMEOUT, e.reason, expected="a return value", got=e.reason,
                      hint="look for an infinite loop or work that grows too fast")
    except (StudentCrashed, BrokenReply) as e:
        return result(Status.CRASH, e.reason, expected="a return value", got=e.reason,
                      hint="do not exit, fork or write to file descriptors in graded code")
    except hypothesis.errors.Flaky:
        return result(Status.FAILED, "the function is not deterministic given the seed",
                      expected="the same answer for the same input", got="different answers",
                      hint="use only torch's global generator for randomness")
    return result(Status.PASSED)


def skipped(check: Check, reason: str) -> CheckResult:
    """The result of a check that was not run (``reason`` says why)."""
    return CheckResult(check.qid, check.name, check.visibility, 0.0, check.points, Status.SKIPPED,
                       FailureRecord.of(reason, kind=check.kind))
