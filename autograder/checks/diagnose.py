"""Diagnoses: what a wrong answer got wrong, said without giving the answer.

Each question's check module keeps a table of the known mistakes of its
functions (ASSIGNMENT.md's "Known traps" and common bugs), each a
``Diagnosis``: a label in words and ``mistaken``, the value that mistake gives
on the failing input, computed here on the grader side in torch (in the
student bundle: on the recorded examples; no reference code is involved).
After a mismatch, the first mistake whose value matches the student's within
the check's tolerance names the hint; otherwise the hint stays the check's
pointer to the contract line or seed section. A mistake that gives the right
value on this input tells nothing and is skipped. A float64 result that
misses by far less than any formula mistake would (``NEAR_MISS``) is said to
be a near miss, with its size.

``judge_hard_case`` is the one rule of every "stable for extreme inputs" check:
its stability hint is given only when the same function is right on the same
input without the extreme values; otherwise the hint says the function is
wrong on ordinary inputs too (with what those show), never "unstable".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from weakref import WeakKeyDictionary

import torch

from autograder.checks.compare import expect_tensor, surely_close, tolerance
from autograder.checks.framework import NOT_IMPLEMENTED, Context, Failure
from autograder.sandbox.errors import StudentException

__all__ = ["NOT_IMPLEMENTED", "Diagnosis", "diagnose", "diagnosed_on_failure", "expect_diagnosed", "judge_hard_case",
           "matches", "near_miss", "once"]
T = TypeVar("T")
_ONCE: WeakKeyDictionary[Context, dict[str, Any]] = WeakKeyDictionary()

#: A float64 result within this (absolute) of the truth, yet outside the tolerance, is a near miss: an ε added,
#: a clamp or a float32 step, not a mistake in the formula (those miss by far more). Only results of magnitude
#: below ~1e3 can be one: above it, float64's tolerance is wider than this.
NEAR_MISS = 1e-5


@dataclass(frozen=True)
class Diagnosis:
    """A known mistake: ``label`` says what is wrong; ``mistaken(**inputs)`` is the value it gives."""

    label: str
    mistaken: Callable[..., Any]


def _parts(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _close(got: torch.Tensor, value: torch.Tensor) -> bool:
    if tuple(got.shape) != tuple(value.shape) or got.numel() > 1_000_000:
        return False
    if not (got.is_floating_point() or value.is_floating_point()):
        return torch.equal(got.to(value.dtype), value)
    rtol, atol = tolerance(got.dtype if got.is_floating_point() else torch.float64)
    g, v = got.detach().to(torch.float64), value.detach().to(torch.float64)
    if surely_close(g, v, rtol, atol):
        return True
    if not torch.equal(torch.isnan(g), torch.isnan(v)) or not torch.equal(torch.isinf(g), torch.isinf(v)):
        return False
    if not torch.equal(g[torch.isinf(v)], v[torch.isinf(v)]):
        return False
    finite = torch.isfinite(v)
    if not finite.any():
        return True
    scale = max(1.0, v[finite].abs().max().item())
    return bool(((g - v).abs()[finite] <= atol * scale + rtol * v[finite].abs()).all())


def matches(got: Any, value: Any) -> bool:
    """``got`` equals ``value`` (a tensor or a tuple of tensors) within the tolerance of got's dtype."""
    gots, values = _parts(got), _parts(value)
    return len(gots) == len(values) and all(
        isinstance(g, torch.Tensor) and isinstance(v, torch.Tensor) and _close(g, v) for g, v in zip(gots, values))


def diagnose(got: Any, diagnoses: tuple[Diagnosis, ...], inputs: dict[str, Any], fallback: str,
             expected: Any = None) -> str:
    """The label of the first diagnosis whose mistaken value ``got`` matches (and ``expected`` does not)."""
    for diagnosis in diagnoses:
        try:
            value = diagnosis.mistaken(**inputs)
        except (RuntimeError, ValueError, IndexError, TypeError, ZeroDivisionError):
            continue  # this mistake is not defined on this input
        if matches(got, value) and not (expected is not None and matches(expected, value)):
            return diagnosis.label
    return fallback


def near_miss(got: Any, expected: torch.Tensor, what: str = "the result") -> str | None:
    """The hint for a float64 ``got`` that misses ``expected`` (finite, same shape) by at most ``NEAR_MISS``."""
    if not (isinstance(got, torch.Tensor) and got.dtype == torch.float64 == expected.dtype
            and got.shape == expected.shape and got.numel() and torch.isfinite(got).all()
            and torch.isfinite(expected).all()):
        return None
    err = (got.detach() - expected.detach()).abs().max().item()
    if not 0 < err <= NEAR_MISS:
        return None
    return (f"{what} is within {err:.1g} of the expected value, far closer than a mistake in the formula would "
            "come, but not within float64 rounding: something small is added (an ε), clamped or computed in "
            "float32 on the way")


def expect_diagnosed(ctx: Context, got: Any, expected: torch.Tensor, diagnoses: tuple[Diagnosis, ...],
                     inputs: dict[str, Any], *, hint: str, **kwargs: Any) -> torch.Tensor:
    """``expect_tensor``; on a mismatch the hint names the diagnosed mistake if one matches ``got``, else says
    it is a near miss if it is one."""
    try:
        return expect_tensor(ctx, got, expected, hint=hint, **kwargs)
    except Failure as failure:
        diagnosed = diagnose(got, diagnoses, inputs, "", expected)
        failure.hint = diagnosed or near_miss(got, expected, kwargs.get("what", "the result")) or failure.hint
        raise


def diagnosed_on_failure(judge: Callable[[str], T], fallback: str, hint: Callable[[], str]) -> T:
    """``judge(hint())`` for a ``hint()`` built only when needed: ``judge(fallback)``, and a failure carrying the hint
    it was given (``fallback``) gets ``hint()`` instead (a ``diagnose`` of the wrong value, which falls back to
    ``fallback``): the same outcome, without diagnosing every right answer."""
    try:
        return judge(fallback)
    except Failure as failure:
        if failure.hint == fallback:
            failure.hint = hint()
        raise


def once(ctx: Context, key: str, measure: Callable[[], T]) -> T:
    """``measure()`` the first time a run of a check asks for ``key``, the same answer after that.

    Evidence for a hint (an extra call, a probe) is about the student's
    function, not about one example: measured on the first failing example,
    it is not measured again on every example hypothesis tries while shrinking.
    """
    memo = _ONCE.setdefault(ctx, {})
    if key not in memo:
        memo[key] = measure()
    return memo[key]


def judge_hard_case(ctx: Context, judge: Callable[[Any], None], example: Any, ordinary: Callable[[Any], Any],
                    elsewhere: str, own: str = "") -> None:
    """``judge(example)`` for a check about a hard case (extreme values, broadcasting, L > 1); when it fails,
    also ``judge(ordinary(example))``, the same input without the hard part.

    A failure whose hint already names a diagnosed mistake keeps it. Else, if
    the ordinary input fails too, the mistake is not the one this check
    targets: the failure keeps its call but its hint becomes ``elsewhere``,
    followed by what the ordinary input's failure diagnosed (when its hint is
    not ``own``, the judge's pointer, by default the check's).
    """
    try:
        judge(example)
    except Failure as failure:
        if failure.hint not in {own or ctx.check.hint, ""}:
            raise  # diagnosed on the hard case itself
        hint = once(ctx, f"ordinary: {elsewhere}", lambda: _ordinary_hint(ctx, judge, ordinary(example), elsewhere,
                                                                         own or ctx.check.hint))
        failure.hint = hint or failure.hint
        raise


def _ordinary_hint(ctx: Context, judge: Callable[[Any], None], ordinary: Any, elsewhere: str, own: str) -> str | None:
    """``judge(ordinary)``: None when it passes, else the hint that the function is wrong on it too."""
    call = ctx.last_call
    try:
        judge(ordinary)
    except Failure as plain:
        return elsewhere if plain.hint in {own, ""} else f"{elsewhere} — {plain.hint}"
    except StudentException:
        return elsewhere
    finally:
        ctx.last_call = call
    return None

