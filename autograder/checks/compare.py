"""Comparisons that raise ``Failure`` with expected vs got, errors and tolerances."""

from __future__ import annotations

from typing import Any

import torch

from autograder.checks.framework import Context
from autograder.checks.show import show

# (rtol, atol) per result dtype; atol is scaled by max(1, |expected|max).
TOLERANCES = {torch.float64: (1e-6, 1e-8), torch.float32: (2e-4, 2e-5), torch.float16: (1e-2, 1e-3), torch.bfloat16: (2e-2, 1e-2)}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    return TOLERANCES.get(dtype, TOLERANCES[torch.float32])


def expect_tensor(
    ctx: Context,
    got: Any,
    expected: torch.Tensor,
    *,
    what: str = "the result",
    dtype: torch.dtype | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    hint: str = "",
) -> torch.Tensor:
    """``got`` must be a tensor of ``expected``'s shape, of ``dtype`` (if given), and close to it."""
    if not isinstance(got, torch.Tensor):
        ctx.fail(f"{what} is not a tensor", expected=f"a tensor of shape {tuple(expected.shape)}", got=got,
                 hint=hint or "return a torch.Tensor")
    if tuple(got.shape) != tuple(expected.shape):
        ctx.fail(f"{what} has the wrong shape", expected=f"shape {tuple(expected.shape)}", got=f"shape {tuple(got.shape)}",
                 hint=hint or "check which dimensions you reduce over and that batch dimensions broadcast")
    if dtype is not None and got.dtype != dtype:
        ctx.fail(f"{what} has the wrong dtype", expected=str(dtype), got=str(got.dtype),
                 hint="your result changes dtype: the contract keeps the input's dtype (no hard-coded float32 or float64)")
    if not (got.is_floating_point() or expected.is_floating_point()):
        if not torch.equal(got.to(expected.dtype), expected):
            wrong = (got.to(expected.dtype) != expected).sum().item()
            ctx.fail(f"{what}: {wrong} of {expected.numel()} entries differ", expected=expected, got=got, hint=hint)
        return got
    expect_close(ctx, got, expected, what=what, rtol=rtol, atol=atol, hint=hint)
    return got


def expect_close(
    ctx: Context, got: torch.Tensor, expected: torch.Tensor, *, what: str = "the result",
    rtol: float | None = None, atol: float | None = None, hint: str = "",
) -> None:
    """Element-wise ``|got − expected| ≤ atol·max(1, max|expected|) + rtol·|expected|``; NaN only where expected."""
    d_rtol, d_atol = tolerance(got.dtype if got.is_floating_point() else torch.float64)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    g_nan, e_nan = torch.isnan(g), torch.isnan(e)
    if not torch.equal(g_nan, e_nan):
        ctx.fail(f"{what} has NaN where the reference has a number" if g_nan.any() else f"{what} is a number where NaN is expected",
                 expected=expected, got=got, hint=hint or "compute with a numerically stable form (logsumexp, log_softmax, softplus)")
    finite = torch.isfinite(e)
    g_inf, e_inf = torch.isinf(g), torch.isinf(e)
    if not torch.equal(g_inf, e_inf) or not torch.equal(g[e_inf], e[e_inf]):
        ctx.fail(f"{what} is infinite where the reference is finite (or the other way)", expected=expected, got=got,
                 hint=hint or "compute with a numerically stable form (logsumexp, log_softmax, softplus)")
    if not finite.any():
        return
    scale = max(1.0, e[finite].abs().max().item())
    err = (g - e).abs()[finite]
    bound = atol * scale + rtol * e[finite].abs()
    if (err > bound).any():
        rel = (err / e[finite].abs().clamp_min(1e-300)).max().item()
        ctx.fail(
            f"{what} differs from the reference",
            expected=expected,
            got=got,
            detail=f"max abs error {err.max().item():.3g}, max rel error {rel:.3g} (rtol {rtol:g}, atol {atol * scale:.3g})",
            hint=hint,
        )


def expect_scalar_tensor(ctx: Context, got: Any, *, what: str = "the result") -> torch.Tensor:
    """``got`` must be a 0-dim tensor."""
    if not isinstance(got, torch.Tensor) or got.dim() != 0:
        desc = f"shape {tuple(got.shape)}" if isinstance(got, torch.Tensor) else show(got)
        ctx.fail(f"{what} is not a scalar tensor", expected="a 0-dim tensor", got=desc,
                 hint="the contract asks a 0-dim tensor here (reduced to a scalar, not a Python float)")
    return got
