"""Hypothesis strategies for check inputs.

Values are small integers or halves so that distances, ties and boundaries
are exact in float32 and float64 alike, and a shrunk input reads well.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

DTYPES = st.sampled_from([torch.float32, torch.float64])


def composite(fn: Callable[..., Any]) -> Callable[..., st.SearchStrategy[Any]]:
    """``st.composite``, with one strategy object per distinct arguments.

    Hypothesis validates a strategy and computes its label and properties the
    first time each object is drawn from; a composite built anew inside every
    draw paid that on every example. The cached object draws exactly as a new
    one would (same definition, arguments and label). Unhashable arguments get
    a new object.
    """
    build = st.composite(fn)
    cached = functools.lru_cache(maxsize=4096)(build)

    @functools.wraps(fn)
    def strategy(*args: Any, **kwargs: Any) -> st.SearchStrategy[Any]:
        try:
            return cached(*args, **kwargs)
        except TypeError:  # an unhashable argument
            return build(*args, **kwargs)

    return strategy


def batch_shapes(max_dims: int = 2, max_side: int = 3, min_dims: int = 0) -> st.SearchStrategy[tuple[int, ...]]:
    """Leading batch shapes ``(*B)``, the empty shape included when ``min_dims`` is 0."""
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@composite
def halves(draw, shape: tuple[int, ...], lo: float, hi: float, dtype: torch.dtype = torch.float64, step: float = 0.5) -> torch.Tensor:
    """A tensor of ``shape`` with entries in ``{lo, lo + step, …, hi}``."""
    n = math.prod(shape)
    steps = int(round((hi - lo) / step))
    ints = draw(st.lists(st.integers(0, steps), min_size=n, max_size=n))
    return (lo + step * torch.tensor(ints, dtype=torch.float64)).reshape(shape).to(dtype)


@composite
def scale_trils(draw, batch: tuple[int, ...], d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Lower-triangular ``(*B, d, d)`` with off-diagonals in halves and diagonal in {0.5, …, 2}."""
    off = draw(halves((*batch, d, d), -2, 2, torch.float64))
    diag = draw(halves((*batch, d), 0.5, 2, torch.float64))
    return (torch.tril(off, -1) + torch.diag_embed(diag)).to(dtype)


@composite
def simplex(draw, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Probability vectors along the last dim of ``shape``, proportional to integers 1…8."""
    w = draw(halves(shape, 1, 8, torch.float64, step=1))
    return (w / w.sum(-1, keepdim=True)).to(dtype)


def well_posed_log_density(z: torch.Tensor, mu: torch.Tensor, L: torch.Tensor, rtol: float, atol: float) -> bool:
    """Whether log N(z; μ, L Lᵀ) (float64, every batch element) is well posed for the tolerance ``(rtol, atol)``:
    rounding every entry of z, μ and L by one float64 ulp moves it, to first order, by less than the tolerance.

    The amplification Σ |x| |∂f/∂x| over the entries x is computed by autograd
    on the triangular-solve form. An input beyond it (cond(L) ≳ 1e13 for the
    checks' entries) has no float64 answer any correct form can be held to.
    """
    z, mu, L = (t.detach().to(torch.float64).requires_grad_() for t in (z, mu, L))
    e = torch.linalg.solve_triangular(L, (z - mu)[..., None], upper=False)[..., 0]
    f = -0.5 * (e * e).sum(-1) - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1) \
        - L.shape[-1] / 2 * math.log(2 * math.pi)
    grads = torch.autograd.grad(f.sum(), (z, mu, L))
    spread = sum((x.abs() * g.abs()).flatten(f.dim()).sum(-1) for x, g in zip((z, mu, L), grads))
    value = f.detach().abs()
    return bool((2.0**-53 * spread <= rtol * value + atol * value.max().clamp(min=1.0)).all())


@composite
def ill_conditioned_gaussians(draw):
    """``(z, mu, L)`` in float64, ``d`` 3…5, ``L`` with diagonal 2^k down to 1.2e-4 and off-diagonals in [−2, 2].

    The diagonal entries are powers of two and everything else halves, so
    ``z = μ + L ε`` and any forward substitution are exact in float64: the
    reference's value is the true log-density, while cond(L) reaches 1e12 and
    more (cond(Σ) = cond(L)²), where Σ⁻¹, det Σ and solves with Σ break down.
    Only inputs well posed for float64's tolerance are kept
    (``well_posed_log_density``): every correct form (a triangular solve,
    ``cholesky_solve``, ``MultivariateNormal``) is exact to far within it there.
    """
    diag_exponents = (-13, -12, -11, -7, -1, 0, 1)  # the minimal (shrunk) diagonal entry is 2^-13 ≈ 1.2e-4
    d = draw(st.integers(3, 5))
    batch = draw(batch_shapes(max_dims=2, min_dims=1))  # one batch for z, mu and L: B4's broadcasting is checked apart
    n = math.prod(batch) * d
    exponents = draw(st.lists(st.sampled_from(diag_exponents), min_size=n, max_size=n))
    diagonal = torch.tensor([2.0**k for k in exponents], dtype=torch.float64).reshape(*batch, d)
    L = torch.tril(draw(halves((*batch, d, d), -2, 2)), -1) + torch.diag_embed(diagonal)
    mu = draw(halves((*batch, d), -4, 4))
    eps = draw(halves((*batch, d), -2, 2))  # the whitened point: ε = L⁻¹ (z − μ) exactly
    z = mu + torch.einsum("...ij,...j->...i", L, eps)  # exact (dyadic)
    return z, mu, L


def well_conditioned(example: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The same whitened point and off-diagonals with every diagonal entry below 1 raised to 1 (exact)."""
    z, mu, L = example
    eps = torch.linalg.solve_triangular(L, (z - mu)[..., None], upper=False)[..., 0]
    L = torch.tril(L, -1) + torch.diag_embed(L.diagonal(dim1=-2, dim2=-1).clamp(min=1.0))
    return mu + torch.einsum("...ij,...j->...i", L, eps), mu, L
