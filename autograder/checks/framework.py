"""Checks: how one is declared, run against a student session, and reported.

A check body gets a ``Context``; it calls the student's function through it
and raises ``Failure`` (via ``ctx.fail`` or the ``compare`` helpers) when the
answer is wrong. It never judges the student process's own failures: a
raise, a hang or a crash become their own result kinds here.

Property checks draw inputs with hypothesis (``for_all``); the failing input
reported is the one hypothesis shrank it to, replayed.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import hypothesis
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from autograder.checks import drawn
from autograder.checks.oracle import Grads, Oracle
from autograder.checks.records import FailureRecord, Status
from autograder.checks.tape import TapeOracle, default_oracle
from autograder.checks.show import show, show_call, show_sent_call, shown_as_sent
from autograder.contract import BY_ID
from autograder.sandbox.errors import (
    BrokenReply,
    StudentCrashed,
    StudentException,
    StudentProcessError,
    StudentTimeout,
)
from autograder.sandbox.runtime import wire
from autograder.sandbox.calls import Reply, Session

PUBLIC, HIDDEN = "public", "hidden"
#: The whole hint of a stub (raises NotImplementedError, returns None or the template's placeholder).
NOT_IMPLEMENTED = "not implemented yet"
QUESTION_SECONDS = 120.0  # of the student's CPU time per question
QUESTION_WALL_FACTOR = 10.0  # wall-clock backstop, in multiples of QUESTION_SECONDS
_SEED_JSON = json.JSONEncoder(sort_keys=True).encode  # ``json.dumps(value, sort_keys=True)``, its encoder made once


class Failure(Exception):
    """A wrong answer: what was expected, what came back, and the likely mistake."""

    def __init__(self, summary: str, *, expected: str = "", got: str = "", detail: str = "", hint: str = "") -> None:
        super().__init__(summary)
        self.summary, self.expected, self.got, self.detail, self.hint = summary, expected, got, detail, hint


def _oversized(name: str, value: Any) -> Failure | None:
    """The failure of a value the student side did not send for its size (``wire.Oversized``), or None."""
    if isinstance(value, wire.Oversized):
        return Failure(f"{name} returned {value}", expected=f"at most {wire.MAX_ITEMS} items",
                      got=f"a {value.type_name} of {'at least ' if not value.exact else ''}{value.items} items",
                      hint="return what the contract asks (tensors, not long Python sequences)")
    return None


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
    keeps_inputs: bool = False  # every ``ctx.call`` also fails when it modified a tensor argument in place


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


INPLACE_HINT = ("your function writes into an argument (an in-place op such as +=, exp_(), clamp_() or x[...] = on an "
                "input): the contract leaves its inputs unchanged; work on new tensors")


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts (stable across runs and machines)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Context:
    """What a check body works with: the student's function for its question, seeded."""

    def __init__(self, session: Session, check: Check, seed: int, deadline: float,
                 oracle: tuple[str, ...] = (), truth: Oracle | None = None) -> None:
        self.session, self.check, self.seed, self.deadline = session, check, seed, deadline
        self.truth = default_oracle() if truth is None else truth  # the reference's answers (``checks.oracle``)
        self.oracle = oracle  # graded names the grader answers for in this check's calls (``carried``)
        self.used: set[str] = set()  # graded names the student's calls were seen to use
        self.name = BY_ID[check.qid].name
        self._last_call: str | Callable[[], str] | None = None
        self.shrunk = False
        self.fatal: StudentProcessError | None = None
        self.refused: Failure | None = None  # an oversized value (``wire.Oversized``): every later call fails alike

    @property
    def last_call(self) -> str | None:
        """The current call as ``show_call`` shows it (a call's text is made the first time it is asked for)."""
        if callable(self._last_call):
            self._last_call = self._last_call()
        return self._last_call

    @last_call.setter
    def last_call(self, call: str | None) -> None:
        self._last_call = call

    def _call_seed(self, sent: dict[str, Any], attempt: int) -> int:
        blob = _SEED_JSON(sent)
        return derive_seed(self.seed, blob, attempt) if attempt else derive_seed(self.seed, blob)

    def reply(self, grad: list[dict[str, Any]] | None = None, return_args: bool = False,
              seconds: float | None = None, attempt: int = 0, **kwargs: Any) -> Reply:
        """Call the student's function with the contract's keyword arguments; the full reply.

        The call is seeded from the check's seed and the arguments; ``attempt`` > 0
        reseeds a repeated call (independent runs of a stochastic function).
        """
        if self.fatal is not None:
            raise self.fatal
        if self.refused is not None:
            raise self.refused
        if self._question_spent():
            self.last_call = show_call(self.name, kwargs)
            self.fatal = StudentTimeout(QUESTION_SECONDS, f"the checks of {self.check.qid}")
            raise self.fatal
        sent = {k: wire.encode(v) for k, v in kwargs.items()}
        # the call is shown only when its check fails: shown then from the arguments as sent (the body may
        # change them after the call)
        self._last_call = (functools.partial(show_sent_call, self.name, sent)
                           if all(shown_as_sent(v) for v in kwargs.values()) else show_call(self.name, kwargs))
        seed = self._call_seed(sent, attempt)
        oracle = (self.oracle, self.truth.carried(self.oracle, seed)) if self.oracle else None
        try:
            reply = self.session.call(self.name, (), kwargs, seed=seed, grad=grad, return_args=return_args,
                                      seconds=seconds, oracle=oracle, sent=sent)
        except (StudentTimeout, StudentCrashed, BrokenReply) as exc:
            self.fatal = exc
            raise
        finally:
            self.used.update(self.session.last_used)
        if reply.value is None:  # no contract function returns None: a stub or a missing return
            raise Failure(f"{self.name} returned None", expected="a return value", got="None", hint=NOT_IMPLEMENTED)
        self.refused = _oversized(self.name, reply.value)
        if self.refused is not None:
            raise self.refused
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
        """Call the student's function; its return value (for a ``keeps_inputs`` check, only once the call is
        seen to leave its tensor arguments as they were)."""
        if not self.check.keeps_inputs:
            return self.reply(**kwargs).value
        reply = self.reply(return_args=True, **kwargs)
        self.expect_unmodified(reply, {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}, INPLACE_HINT)
        return reply.value

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
            value = self.session.get(self.name)
        except (StudentTimeout, StudentCrashed, BrokenReply) as exc:
            self.fatal = exc
            raise
        refused = _oversized(self.name, value)
        if refused is not None:
            raise refused
        return value

    def expected(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The reference's ``name`` on these arguments, detached (the rules: ``checks.oracle``)."""
        return self.truth.expected(name, args, kwargs)

    def expected_grad(self, name: str, *args: Any, wrt: Sequence[torch.Tensor], cotangent: torch.Tensor | None = None,
                      output: int | None = None, **kwargs: Any) -> tuple[Any, Grads]:
        """The reference's value and its gradients w.r.t. the leaves ``wrt`` (the rules: ``checks.oracle``)."""
        return self.truth.expected_grad(name, args, kwargs, wrt=wrt, cotangent=cotangent, output=output)

    def fail(self, summary: str, *, expected: Any = "", got: Any = "", detail: str = "", hint: str = "") -> None:
        """Raise a ``Failure`` for the current call (values are shown with ``show``)."""
        raise Failure(
            summary,
            expected=expected if isinstance(expected, str) else show(expected),
            got=got if isinstance(got, str) else show(got),
            detail=detail,
            hint=hint,
        )


_BODIES = itertools.count()


def for_all(strategy: st.SearchStrategy[Any], max_examples: int = 25, examples: Callable[[], Sequence[Any]] | None = None
            ) -> Callable[[Callable[[Context, Any], None]], Callable[[Context], None]]:
    """Turn ``body(ctx, example)`` into a check body run on hypothesis-drawn examples.

    ``examples`` makes hand-made inputs, run once the drawn ones pass and reported as they are (not shrunk):
    cases a mistake shows on that the drawing reaches too rarely (``bench/check_power.py`` measures which).

    The body may run outside hypothesis, on an example kept from an earlier run (``checks.drawn``): it must
    not use hypothesis's per-example functions (``assume``, ``note``, ``event``, ``target``).
    """

    def wrap(fn: Callable[[Context, Any], None]) -> Callable[[Context], None]:
        token = next(_BODIES)  # this body's trees of runs (``checks.drawn``) are keyed by it, the check and the seed

        def body(ctx: Context) -> None:
            recorded = ctx.truth.recorded_examples()
            if recorded is not None:  # student bundle: the recorded examples, in order
                for example in recorded:
                    ctx.truth.begin_example(example)
                    fn(ctx, example)
                return
            tape = isinstance(ctx.truth, TapeOracle)  # recording a tape: every example through hypothesis
            replay = drawn.Replay(drawn.Record(usable=False) if tape
                                  else drawn.record((token, ctx.check.qid, ctx.check.name, ctx.seed)))

            def one(example: Any) -> None:
                ctx.truth.begin_example(example)
                fn(ctx, example)

            ctx.shrunk = True
            if not replay.walk(one):
                _draw(one, replay, ctx.seed)
            ctx.shrunk = False
            for example in examples() if examples is not None else ():  # after: a drawn failure reads best
                one(example)

        def _draw(one: Callable[[Any], None], replay: drawn.Replay, seed: int) -> None:
            """Hypothesis's run of the body (the walk did not end it)."""

            @hypothesis.seed(seed)
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
                replay.example(example, lambda: one(example))

            try:
                prop()
            except BaseException as exc:
                replay.ended(exc)
                raise
            replay.ended(None)

        body.__name__ = fn.__name__
        return body

    return wrap


def run_check(session: Session, check: Check, seed: int, deadline: float, *, oracle: tuple[str, ...] = (),
              used: set[str] | None = None, truth: Oracle | None = None) -> CheckResult:
    """Run one check; every student-side failure becomes a result, grader bugs propagate.

    The check's expected values come from ``truth`` (default: ``tape.default_oracle``).

    The student's graded functions ``oracle`` are answered by the reference
    (error carried forward); the graded names its calls used go into ``used``.
    """
    ctx = Context(session, check, derive_seed(seed, check.qid, check.name), deadline, oracle, truth)
    try:
        return _run(ctx, check)
    finally:
        if used is not None:
            used.update(ctx.used)


def _run(ctx: Context, check: Check) -> CheckResult:
    start = time.monotonic()
    ctx.truth.begin_check(f"{check.qid}/{check.name}")

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
