"""Statistical acceptance regions: each bound holds for every correct implementation, with its false-fail probability.

Checks of random answers compare a statistic with a region decided here and report n, the
statistic, the region and the probability that a correct solution falls outside it:
- binomial counts: the exact binomial acceptance interval (``binomial_region``);
- means of importance weights w ∈ [0, M] with E w = 1: Bernstein's inequality (``weight_halfwidth``);
- means of quadratic forms εᵀPε + gᵀε of ε ~ N(0, I): the sub-gamma (Laurent–Massart) bound
  ``P(|mean − E| ≥ √(2vt/n) + ct/n) ≤ 2e^{-t}``, ``v = Σ 2λ² + g²``, ``c = 2 max|λ|`` in P's
  eigenbasis (``quadratic_halfwidth``).

A gradient whose one call is too large to replay (a Python loop over the samples) is asked again as the
mean of R independently seeded calls of m samples (``mean_gradients``): that mean is a mean of n = R·m iid
per-sample gradients, as one call of n samples is, so every bound above holds for it at that n with the
same false-fail probability.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from autograder.checks.compare import tolerance
from autograder.checks.framework import Context, Failure
from autograder.sandbox.errors import StudentException

#: Probability that a correct solution fails one statistical check, at most.
FALSE_FAIL = 1e-7

STAT_DETAIL = ("seed {seed}, n = {n}: {statistic}; accepted {region}; "
               "a correct solution fails this check with probability < {p:.0e}")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Grader-side draws (reference samples) from their own seed, leaving the global generator alone."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU's only (torch.manual_seed also queues every device's)
        yield


def binomial_region(n: int, p: float, alpha: float) -> tuple[int, int]:
    """``[lo, hi]`` with ``P(X < lo) ≤ α/2`` and ``P(X > hi) ≤ α/2`` for X ~ Bin(n, p), exactly."""
    k = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = (math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
               + k * math.log(p) + (n - k) * math.log1p(-p))
    pmf = log_pmf.exp()
    cdf, sf = pmf.cumsum(0), pmf.flip(0).cumsum(0).flip(0)  # P(X ≤ k), P(X ≥ k)
    return int((cdf <= alpha / 2).sum()), n - int((sf <= alpha / 2).sum())


def expect_count(ctx: Context, count: int, n: int, p: float, alpha: float, what: str, hint: str) -> None:
    """``count`` must lie in the exact binomial region of Bin(n, p) at level ``alpha``."""
    lo, hi = binomial_region(n, p, alpha)
    if not lo <= count <= hi:
        ctx.fail(f"{what} is not plausible for a correct sampler", expected=f"{lo} … {hi} (mean {n * p:.1f})",
                 got=str(count), hint=hint,
                 detail=STAT_DETAIL.format(seed=ctx.seed, n=n, statistic=f"{what} = {count}, Bin(n, {p:.4f}) if correct",
                                           region=f"[{lo}, {hi}] (exact binomial tails)", p=FALSE_FAIL))


def weight_halfwidth(var: torch.Tensor, sup: torch.Tensor, n: int, delta: float) -> torch.Tensor:
    """u with ``P(|mean_n w − 1| ≥ u) ≤ δ`` for iid ``w ∈ [0, sup]``, ``E w = 1``, ``Var w = var`` (Bernstein)."""
    L = math.log(2 / delta)
    a = 2 * torch.clamp(sup - 1, min=1.0) * L / 3
    return (a + torch.sqrt(a**2 + 8 * n * var * L)) / (2 * n)


def quadratic_halfwidth(P: torch.Tensor, g: torch.Tensor, n: int, delta: float) -> torch.Tensor:
    """h with ``P(|mean of n iid f − E f| ≥ h) ≤ δ`` for ``f(ε) = εᵀPε + gᵀε``, ε ~ N(0, I) (sub-gamma).

    ``P (..., J, J)`` symmetric, ``g (..., J)`` → ``(...)``.
    """
    lam, U = torch.linalg.eigh(P)
    g_rot = (U.mT @ g[..., None])[..., 0]
    v = (2 * lam**2 + g_rot**2).sum(-1)
    c = 2 * lam.abs().amax(-1)
    t = math.log(2 / delta)
    return torch.sqrt(2 * v * t / n) + c * t / n


def expect_within(ctx: Context, got: torch.Tensor, expected: torch.Tensor, half: torch.Tensor, n: int,
                   what: str, bound: str, hint: str, dtype: torch.dtype = torch.float64) -> None:
    """Every entry of ``got`` within ``half`` of ``expected`` (float64 tensors of one shape), plus the
    rounding tolerance of ``dtype`` (the student's arithmetic)."""
    rtol, atol = tolerance(dtype)
    half = half + atol * expected.abs().clamp(min=1.0) + rtol * expected.abs()
    err = (got - expected).abs()
    bad = ~(err <= half)  # NaN fails too
    if bad.any():
        i = int(bad.reshape(-1).nonzero()[0])
        e, h, g_ = expected.reshape(-1)[i].item(), half.reshape(-1)[i].item(), got.reshape(-1)[i].item()
        statistic = f"entry {i}: {g_:.6g}, |error| {abs(g_ - e):.3g}"
        ctx.fail(f"{what} is further from its expectation than Monte-Carlo error allows",
                 expected=f"{e:.6g} ± {h:.3g}", got=got,
                 detail=STAT_DETAIL.format(seed=ctx.seed, n=n, statistic=statistic,
                                           region=f"|error| ≤ {h:.3g} ({bound})", p=FALSE_FAIL),
                 hint=hint)


TOO_MANY_OPS_HINT = ("the grader checks a gradient by replaying the tensor operations of your call, and replays a "
                     "bounded number of them: vectorise over the samples (draw all S at once and work on the whole "
                     "batch) instead of a Python loop over them")


def mean_gradients(ctx: Context, split: tuple[int, int], expect_value: Callable[[Any], object],
                   **kwargs: Any) -> tuple[dict[str, torch.Tensor | None], int, int]:
    """Per leaf, the gradient of one call with ``kwargs`` (None when it does not reach the leaf), the samples
    behind it and the calls: ``(grads, n_samples, 1)``.

    When that call's trace is too large to replay (a Python loop over the samples), the float64 mean of
    ``split = (calls, m)`` independently seeded calls of ``m`` samples each instead, ``(mean, calls · m,
    calls)``: each stays a trace the grader replays. Each call's value goes through ``expect_value``.
    """
    whole, refused = _gradients(ctx, expect_value, 0, kwargs)
    if whole is not None:
        return whole, kwargs["n_samples"], 1
    calls, each = split
    grads = []
    for attempt in range(1, calls + 1):
        part, refused = _gradients(ctx, expect_value, attempt, {**kwargs, "n_samples": each})  # in its place
        if part is None:
            ctx.fail("the gradient cannot be checked: the call has too many tensor operations to replay",
                     expected="a computation vectorised over the samples", got=refused, hint=TOO_MANY_OPS_HINT)
        grads.append(part)
    names = {name for g in grads for name in g}
    return ({name: None if any(g.get(name) is None for g in grads)
             else torch.stack([g[name].double() for g in grads]).mean(0) for name in names}, calls * each, calls)


def _gradients(ctx: Context, expect_value: Callable[[Any], object], attempt: int,
               kwargs: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """One call's gradients, or None and the replay's refusal when its trace has too many operations."""
    try:
        reply = ctx.reply(grad=[{"output": None}], attempt=attempt, **kwargs)
    except StudentException as exc:
        if exc.type == "GradientNotReplayed" and "tensor operations" in exc.message:
            return None, exc.message[:300]
        raise
    expect_value(reply.value)
    return (reply.grads[0] if reply.grads else {}), ""


@contextmanager
def over_calls(calls: int, n_samples: int) -> Iterator[None]:
    """A failure inside says that its statistic is the mean of ``mean_gradients``'s calls (when there were more
    than one)."""
    try:
        yield
    except Failure as failure:
        if calls == 1:
            raise
        note = (f"the gradient is the mean of {calls} calls of {n_samples // calls} samples each (one call of "
                "all of them was too large to replay)")
        failure.detail = f"{failure.detail}; {note}" if failure.detail else note
        raise
