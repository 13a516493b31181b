"""Diagnoses: what a wrong answer got wrong, said without giving the answer.

Each question's check module keeps a table of the known mistakes of its
functions (ASSIGNMENT.md's "Known traps" and common bugs), each a
``Diagnosis``: a label in words and ``mistaken``, the value that mistake gives
on the failing input, computed here on the grader side in torch (in the
student bundle: on the recorded examples; no reference code is involved).
After a mismatch, the first mistake whose value matches the student's within
the check's tolerance names the hint; otherwise the hint stays the check's
pointer to the contract line or seed section. A mistake that gives the right
value on this input tells nothing and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from autograder.checks.compare import expect_tensor, tolerance
from autograder.checks.framework import NOT_IMPLEMENTED, Context, Failure

__all__ = ["NOT_IMPLEMENTED", "Diagnosis", "diagnose", "expect_diagnosed", "matches"]


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


def expect_diagnosed(ctx: Context, got: Any, expected: torch.Tensor, diagnoses: tuple[Diagnosis, ...],
                     inputs: dict[str, Any], *, hint: str, **kwargs: Any) -> torch.Tensor:
    """``expect_tensor``; on a mismatch the hint names the diagnosed mistake, if one matches ``got``."""
    try:
        return expect_tensor(ctx, got, expected, hint=hint, **kwargs)
    except Failure as failure:
        failure.hint = diagnose(got, diagnoses, inputs, failure.hint, expected)
        raise

