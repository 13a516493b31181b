"""Checks: how one is declared, run against a student session, and reported.

A check body gets a ``Context``; it calls the student's function through it
and raises ``Failure`` (via ``ctx.fail`` or the ``compare`` helpers) when the
answer is wrong. It never judges the student process's own failures: a
raise, a hang or a crash become their own result kinds here.

Property checks draw inputs with hypothesis (``for_all``); the failing input
reported is the one hypothesis shrank it to, replayed.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from autograder.checks import tape as tapes
from autograder.checks.show import show, show_call
from autograder.contract import BY_ID
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
QUESTION_SECONDS = 120.0

FAILURE_TEMPLATE = """{qid} {name} — {kind} "{check}" failed ({visibility})
  call     : {call}{shrunk}
  expected : {expected}
  got      : {got}{detail}
  hint     : {hint}"""


class Failure(Exception):
    """A wrong answer: what was expected, what came back, and the likely mistake."""

    def __init__(self, summary: str, *, expected: str = "", got: str = "", detail: str = "", hint: str = "") -> None:
        super().__init__(summary)
        self.summary, self.expected, self.got, self.detail, self.hint = summary, expected, got, detail, hint
        self.call: str | None = None
        self.shrunk = False


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
    """The outcome of a check: ``status`` is passed, failed, error, timeout, crash or skipped."""

    qid: str
    check: str
    visibility: str
    points: float
    max_points: float
    status: str
    message: str
    seconds: float = field(compare=False, default=0.0)


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
        if time.monotonic() > self.deadline:
            self.fatal = StudentTimeout(QUESTION_SECONDS, f"the checks of {self.check.qid}")
            raise self.fatal
        try:
            return self.session.call(self.name, (), kwargs, seed=self._call_seed(kwargs, attempt), grad=grad,
                                     return_args=return_args, seconds=seconds)
        except (StudentTimeout, StudentCrashed, BrokenReply) as exc:
            self.fatal = exc
            raise

    def call(self, **kwargs: Any) -> Any:
        """Call the student's function; its return value."""
        return self.reply(**kwargs).value

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


def _message(check: Check, ctx: Context, kind: str, expected: str, got: str, detail: str, hint: str) -> str:
    return FAILURE_TEMPLATE.format(
        qid=check.qid,
        name=ctx.name,
        kind=kind,
        check=check.name,
        visibility=check.visibility,
        call=ctx.last_call or "(before any call)",
        shrunk="  (shrunk)" if ctx.shrunk and ctx.last_call else "",
        expected=expected or "—",
        got=got or "—",
        detail=f"\n  detail   : {detail}" if detail else "",
        hint=hint or check.hint,
    )


def run_check(session: Session, check: Check, seed: int, deadline: float) -> CheckResult:
    """Run one check; every student-side failure becomes a result, grader bugs propagate."""
    ctx = Context(session, check, derive_seed(seed, check.qid, check.name), deadline)
    start = time.monotonic()
    if tapes.TAPE is not None:
        tapes.TAPE.start_check(f"{check.qid}/{check.name}")
        tapes.TAPE.in_body = not getattr(check.body, "draws_examples", False)

    def result(status: str, message: str) -> CheckResult:
        points = check.points if status == "passed" else 0.0
        return CheckResult(check.qid, check.name, check.visibility, points, check.points, status, message,
                           time.monotonic() - start)

    try:
        check.body(ctx)
    except Failure as f:
        return result("failed", _message(check, ctx, check.kind, f.expected, f.got,
                                         f"{f.summary}; {f.detail}" if f.detail else f.summary, f.hint))
    except StudentException as e:
        return result("error", _message(check, ctx, check.kind, "a return value", f"raised {e.type}: {e.message[:300]}",
                                         e.traceback.strip().splitlines()[-1] if e.traceback.strip() else "", ""))
    except StudentTimeout as e:
        return result("timeout", _message(check, ctx, check.kind, "a return value", e.reason, "", 
                                          "look for an infinite loop or work that grows too fast"))
    except (StudentCrashed, BrokenReply) as e:
        return result("crash", _message(check, ctx, check.kind, "a return value", e.reason, "",
                                        "do not exit, fork or write to file descriptors in graded code"))
    except hypothesis.errors.Flaky:
        return result("failed", _message(check, ctx, check.kind, "the same answer for the same input",
                                          "different answers", "the function is not deterministic given the seed",
                                          "use only torch's global generator for randomness"))
    return result("passed", "")


def skipped(check: Check, reason: str) -> CheckResult:
    """The result of a check that was not run (``reason`` says why)."""
    return CheckResult(check.qid, check.name, check.visibility, 0.0, check.points, "skipped", reason)
