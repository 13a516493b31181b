"""Comparisons that raise ``Failure`` with expected vs got, errors and tolerances."""

from __future__ import annotations

from typing import Any, Callable

import torch

from autograder.checks.framework import Context, Failure
from autograder.sandbox.errors import StudentException
from autograder.checks.show import show

# (rtol, atol) per result dtype; atol is scaled by max(1, |expected|max).
TOLERANCES = {torch.float64: (1e-6, 1e-8), torch.float32: (2e-4, 2e-5), torch.float16: (1e-2, 1e-3), torch.bfloat16: (2e-2, 1e-2)}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    return TOLERANCES.get(dtype, TOLERANCES[torch.float32])


def coarsest(*dtypes: torch.dtype | None) -> torch.dtype:
    """The floating dtype of ``dtypes`` with the loosest tolerance (float64 when none is floating)."""
    floats = [d for d in dtypes if d is not None and d.is_floating_point]
    return max(floats, key=lambda d: tolerance(d)[0], default=torch.float64)


def expect_shape(ctx: Context, got: Any, shape: tuple[int, ...], *, what: str = "the result", hint: str = "") -> torch.Tensor:
    """``got`` must be a tensor of ``shape``; its dtype is judged by the question's dtype check, its values elsewhere."""
    if not isinstance(got, torch.Tensor):
        ctx.fail(f"{what} is not a tensor", expected=f"a tensor of shape {tuple(shape)}", got=got,
                 hint=hint or "return a torch.Tensor")
    if tuple(got.shape) != tuple(shape):
        ctx.fail(f"{what} has the wrong shape", expected=f"shape {tuple(shape)}", got=f"shape {tuple(got.shape)}",
                 hint=hint or "check which dimensions you reduce over and that batch dimensions broadcast")
    return got


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
    """``got`` must be a tensor of ``expected``'s shape, close to it in value.

    A wrong dtype is not judged here (the question's ``DTYPE_CHECK`` is about
    it): values are compared cast, with the tolerance of the coarsest of
    got's dtype, expected's and ``dtype`` (the dtype the contract asks).
    """
    expect_shape(ctx, got, tuple(expected.shape), what=what, hint=hint)
    if not (got.is_floating_point() or expected.is_floating_point()):
        if not torch.equal(got.to(expected.dtype), expected):
            wrong = (got.to(expected.dtype) != expected).sum().item()
            ctx.fail(f"{what}: {wrong} of {expected.numel()} entries differ", expected=expected, got=got, hint=hint)
        return got
    expect_close(ctx, got, expected, what=what, rtol=rtol, atol=atol, hint=hint, dtype=dtype)
    return got


def expect_close(
    ctx: Context, got: torch.Tensor, expected: torch.Tensor, *, what: str = "the result",
    rtol: float | None = None, atol: float | None = None, hint: str = "", dtype: torch.dtype | None = None,
) -> None:
    """Element-wise ``|got − expected| ≤ atol·max(1, max|expected|) + rtol·|expected|``; NaN only where expected.

    The default tolerance is that of the coarsest of got's dtype, expected's and ``dtype``.
    """
    d_rtol, d_atol = tolerance(coarsest(got.dtype, expected.dtype, dtype))
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    g = got.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if surely_close(g, e, rtol, atol):
        return
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


def surely_close(g: torch.Tensor, e: torch.Tensor, rtol: float, atol: float) -> bool:
    """True when float64 ``g`` and ``e`` have one shape, every entry finite and within the tolerance of
    ``expect_close``: the common case, proved in a few operations. False proves nothing."""
    if g.shape != e.shape or not e.numel():
        return g.shape == e.shape
    size = e.abs()
    excess = ((g - e).abs() - (atol * max(1.0, size.max().item()) + rtol * size)).max().item()
    return excess <= 0  # a NaN or an infinity in g or e makes it NaN (max propagates NaN): not proved


def expect_scalar_tensor(ctx: Context, got: Any, *, what: str = "the result") -> torch.Tensor:
    """``got`` must be a 0-dim tensor."""
    if not isinstance(got, torch.Tensor) or got.dim() != 0:
        desc = f"shape {tuple(got.shape)}" if isinstance(got, torch.Tensor) else show(got)
        ctx.fail(f"{what} is not a scalar tensor", expected="a 0-dim tensor", got=desc,
                 hint="the contract asks a 0-dim tensor here (reduced to a scalar, not a Python float)")
    return got


#: The name of each question's one check about its result's dtype and device (E1's: ``LONG_CHECK``).
DTYPE_CHECK = "keeps the input's dtype (float32 and float64) and device"
#: The name of the one check (of each question whose inputs have leading dimensions ``...``) that calls it
#: without any; its other checks draw inputs with at least one.
UNBATCHED = "works without leading batch dimensions"
LONG_CHECK = "returns a long tensor"
DTYPE_HINT = ("your result changes dtype: the contract keeps the input's dtype and device; a tensor created "
              "without naming them (a buffer, a constant, noise) is float32 on the CPU")


def expect_dtype(ctx: Context, got: Any, dtype: torch.dtype, *, device: torch.device | None = None,
                 what: str = "the result", hint: str = DTYPE_HINT) -> None:
    """``got`` must be a tensor of ``dtype`` on ``device`` (the CPU unless given)."""
    if not isinstance(got, torch.Tensor):
        ctx.fail(f"{what} is not a tensor", expected=f"a {dtype} tensor", got=got, hint="return a torch.Tensor")
    if got.dtype != dtype:
        ctx.fail(f"{what} has the wrong dtype", expected=str(dtype), got=str(got.dtype), hint=hint)
    want = device or torch.device("cpu")
    if got.device.type != want.type:
        ctx.fail(f"{what} is on the wrong device", expected=str(want), got=str(got.device), hint=hint)


def keeps_dtype(call: Callable[[Context, torch.dtype], Any], names: tuple[str, ...] = ("the result",),
                longs: frozenset[int] = frozenset()) -> Callable[[Context], None]:
    """A ``DTYPE_CHECK`` body: ``call(ctx, dtype)`` with float32, then float64 inputs; each part of the result
    (``names``, in order) has that dtype, or long for the positions in ``longs``."""

    def body(ctx: Context) -> None:
        for dtype in (torch.float32, torch.float64):
            got = call(ctx, dtype)
            parts = tuple(got) if isinstance(got, tuple) and len(names) > 1 else (got,)
            if len(parts) != len(names):
                ctx.fail(f"the result has {len(parts)} parts", expected=f"({', '.join(names)})", got=got)
            for i, (name, part) in enumerate(zip(names, parts)):
                want = torch.long if i in longs else dtype
                expect_dtype(ctx, part, want, what=f"{name} (for {dtype} inputs)" if i not in longs else name,
                             hint=DTYPE_HINT if i not in longs else
                             "see the contract: indices and levels are a long tensor (not floats)")

    return body


def expect_unbatched(ctx: Context, kwargs: dict[str, Any], batched: tuple[str, ...], expected: Any, *,
                     names: tuple[str, ...] = ("the result",), hint: str = "") -> None:
    """The ``UNBATCHED`` check: the student's answer on ``kwargs`` (whose ``batched`` arguments have no leading
    dimension) must be the reference's ``expected``, or else the student's own answer on the same arguments
    given one leading dimension of size 1: a formula that is wrong either way is the other checks' business."""
    try:
        own = ctx.call(**{k: v[None] if k in batched else v for k, v in kwargs.items()})
    except (StudentException, Failure):
        own = None
    got = ctx.call(**kwargs)
    gots, owns, exps = (tuple(v) if isinstance(v, tuple) and len(names) > 1 else (v,) for v in (got, own, expected))
    if len(gots) != len(exps):
        ctx.fail(f"the result has {len(gots)} parts", expected=f"({', '.join(names)})", got=got, hint=hint)
    for i, (name, g, e) in enumerate(zip(names, gots, exps)):
        try:
            expect_tensor(ctx, g, e, what=name, hint=hint)
        except Failure as wrong:
            mine = owns[i] if len(owns) == len(exps) else None
            if isinstance(mine, torch.Tensor) and tuple(mine.shape) == (1, *e.shape):
                mine = mine[0]
            if not (isinstance(mine, torch.Tensor) and tuple(mine.shape) == tuple(e.shape)):
                raise
            try:
                expect_tensor(ctx, g, mine.detach(), what=name, hint=hint)
            except Failure:
                raise wrong from None
