"""The truth A3 and A4 are judged against: means and variances of their estimators by quadrature.

A ``Case`` is a proposal q and an unnormalised target p̃ = p · exp(shift), p a 1-D mixture or a
diagonal Normal; each coordinate is integrated on a trapezoid grid of ``NODES`` nodes over
±14 standard deviations (float64), so no sampling happens on the grader's side. A statistic
of ``N_SAMPLES`` samples is accepted at |z| ≤ ``Z_MAX``: false-fail probability ``TAIL`` each.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import distributions as D

from autograder.checks.framework import Context
from autograder.sandbox.runtime import builders
from autograder.sandbox.runtime.wire import Fn, Leaf

F64 = torch.float64

Z_MAX = 5.33
TAIL = math.erfc(Z_MAX / math.sqrt(2))  # two-sided normal tail P(|Z| > 5.33) = 9.8e-8 per statistic
N_SAMPLES = 4096
NODES = 8001


@dataclass(frozen=True)
class Case:
    """q = N(q_loc, diag q_scale²) against p̃ = p · exp(shift).

    With ``p_logits`` p is the 1-D mixture Σ_k softmax(p_logits)_k N(p_loc_k, p_scale_k²)
    and q a 1-D ``Normal``; without, p = N(p_loc, diag p_scale²) and q an ``Independent`` Normal.
    """

    q_loc: tuple[float, ...]
    q_scale: tuple[float, ...]
    p_loc: tuple[float, ...]
    p_scale: tuple[float, ...]
    shift: float
    p_logits: tuple[float, ...] | None = None

    def q(self, dtype: torch.dtype, leaf: bool = False) -> Fn:
        if self.p_logits is not None:
            loc, scale = torch.tensor(self.q_loc[0], dtype=dtype), torch.tensor(self.q_scale[0], dtype=dtype)
            return Fn("normal", {"loc": Leaf(loc, "loc") if leaf else loc, "scale": scale})
        loc, scale = torch.tensor(self.q_loc, dtype=dtype), torch.tensor(self.q_scale, dtype=dtype)
        return Fn("independent_normal", {"loc": Leaf(loc, "loc") if leaf else loc, "scale": scale, "ndims": 1})

    def target(self, dtype: torch.dtype) -> Fn:
        loc, scale = torch.tensor(self.p_loc, dtype=dtype), torch.tensor(self.p_scale, dtype=dtype)
        if self.p_logits is not None:
            logits = torch.tensor(self.p_logits, dtype=dtype)
            return Fn("mixture_log_density", {"logits": logits, "locs": loc, "scales": scale, "shift": self.shift})
        return Fn("diag_normal_log_density", {"loc": loc, "scale": scale, "shift": self.shift})


class Coordinate:
    """One coordinate of a case on a trapezoid grid: log q, log p and (log p)' at the nodes (float64)."""

    def __init__(self, q_loc: float, q_scale: float, logits, locs, scales) -> None:
        self.q_loc, self.q_scale = q_loc, q_scale
        lo = min([q_loc - 14 * q_scale] + [m - 14 * s for m, s in zip(locs, scales)])
        hi = max([q_loc + 14 * q_scale] + [m + 14 * s for m, s in zip(locs, scales)])
        self.x = torch.linspace(lo, hi, NODES, dtype=F64)
        self.h = torch.full_like(self.x, (hi - lo) / (NODES - 1))
        self.h[[0, -1]] /= 2
        p = builders.normal_mixture_1d(*(torch.tensor(v, dtype=F64) for v in (logits, locs, scales)))
        x = self.x.clone().requires_grad_()
        log_p = p.log_prob(x)
        self.dlog_p = torch.autograd.grad(log_p.sum(), x)[0]
        self.log_p = log_p.detach()
        self.log_q = D.Normal(torch.tensor(q_loc, dtype=F64), torch.tensor(q_scale, dtype=F64)).log_prob(self.x)

    def under_q(self, f: torch.Tensor) -> float:
        return (self.h * self.log_q.exp() * f).sum().item()

    def under_p(self, f: torch.Tensor) -> float:
        return (self.h * self.log_p.exp() * f).sum().item()

    def weighted(self, f: torch.Tensor) -> float:
        """E_q[(p/q)² f] = ∫ p²/q f."""
        return (self.h * (2 * self.log_p - self.log_q).exp() * f).sum().item()


@functools.cache
def coordinates(case: Case) -> tuple[Coordinate, ...]:
    if case.p_logits is not None:
        return (Coordinate(case.q_loc[0], case.q_scale[0], case.p_logits, case.p_loc, case.p_scale),)
    return tuple(Coordinate(*qs, (0.0,), (m,), (s,)) for qs, m, s in
                 zip(zip(case.q_loc, case.q_scale), case.p_loc, case.p_scale))


def moments(c: Coordinate, f: torch.Tensor) -> tuple[float, float]:
    mean = c.under_q(f)
    return mean, c.under_q((f - mean) ** 2)


def reverse_value(case: Case) -> tuple[float, float]:
    """Mean and per-sample variance of log q(x) − log p̃(x), x ~ q (coordinates independent)."""
    parts = [moments(c, c.log_q - c.log_p) for c in coordinates(case)]
    return sum(m for m, _ in parts) - case.shift, sum(v for _, v in parts)


def snis(case: Case, h: list[torch.Tensor | None]) -> tuple[float, float]:
    """Expectation (to O(1/S²)) and per-sample asymptotic variance of Σ_s w_s h(x_s), w self-normalised.

    h(x) = Σ_j h_j(x_j). Delta method: S·Var → E_q[w̄²(h − μ)²] and bias → −E_q[w̄²(h − μ)] / S,
    with w̄ = p/q = Π_j w̄_j; the expectations factor over the independent coordinates.
    """
    cs = coordinates(case)
    zero = [torch.zeros_like(c.x) if f is None else f for c, f in zip(cs, h)]
    mu = [c.under_p(f) for c, f in zip(cs, zero)]
    a = [c.weighted(torch.ones_like(c.x)) for c in cs]
    b = [c.weighted(f - m) for c, f, m in zip(cs, zero, mu)]
    v = [c.weighted((f - m) ** 2) for c, f, m in zip(cs, zero, mu)]
    rest = lambda *skip: math.prod(a[i] for i in range(len(cs)) if i not in skip)  # noqa: E731
    var = sum(v[j] * rest(j) for j in range(len(cs)))
    var += sum(b[j] * b[k] * rest(j, k) for j in range(len(cs)) for k in range(len(cs)) if j != k)
    bias = -sum(b[j] * rest(j) for j in range(len(cs)))
    return sum(mu) + bias / N_SAMPLES, var


def z_test(ctx: Context, got: float, mean: float, variance: float, *, what: str, tests: int, hint: str = "") -> None:
    """``got``, a statistic of ``N_SAMPLES`` samples, within ``Z_MAX`` standard errors of ``mean`` (one of ``tests``)."""
    se = math.sqrt(variance / N_SAMPLES)
    z = (got - mean) / se
    if not abs(z) <= Z_MAX:
        ctx.fail(f"{what} is {z:+.1f} standard errors from its expectation" if math.isfinite(z) else f"{what} is not finite",
                 expected=f"{mean:.5g} ± {se:.2g} (one standard error)", got=f"{got:.6g}", hint=hint,
                 detail=(f"two-sided z-test: n = {N_SAMPLES} samples, statistic z = {z:.2f}, threshold |z| ≤ {Z_MAX}; "
                         f"false-fail probability < {tests * TAIL:.1e} ({tests} statistics at {TAIL:.1e}); "
                         f"check seed {ctx.seed}"))
