"""Statistical acceptance regions: each bound holds for every correct implementation, with its false-fail probability.

Checks of random answers compare a statistic with a region decided here and report n, the
statistic, the region and the probability that a correct solution falls outside it:
- binomial counts: the exact binomial acceptance interval (``binomial_region``);
- means of importance weights w ∈ [0, M] with E w = 1: Bernstein's inequality (``weight_halfwidth``);
- means of quadratic forms εᵀPε + gᵀε of ε ~ N(0, I): the sub-gamma (Laurent–Massart) bound
  ``P(|mean − E| ≥ √(2vt/n) + ct/n) ≤ 2e^{-t}``, ``v = Σ 2λ² + g²``, ``c = 2 max|λ|`` in P's
  eigenbasis (``quadratic_halfwidth``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch

from autograder.checks.compare import tolerance
from autograder.checks.framework import Context

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

