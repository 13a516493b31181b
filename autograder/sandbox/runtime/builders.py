"""Callables rebuilt from plain descriptions (``wire.Fn``).

Student functions take distributions, decoders, encoders and log-densities.
Those never cross the boundary as objects: the grader sends ``Fn(kind,
params)`` and both sides build the same callable from this module, the
student side for the student's function and the grader side for the
reference.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import distributions as D


def normal(loc: torch.Tensor, scale: torch.Tensor) -> D.Distribution:
    return D.Normal(loc, scale)


def independent_normal(loc: torch.Tensor, scale: torch.Tensor, ndims: int = 1) -> D.Distribution:
    return D.Independent(D.Normal(loc, scale), ndims)


def multivariate_normal(loc: torch.Tensor, scale_tril: torch.Tensor) -> D.Distribution:
    return D.MultivariateNormal(loc, scale_tril=scale_tril)


def normal_mixture_1d(logits: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor) -> D.Distribution:
    """``Σ_k softmax(logits)_k N(locs_k, scales_k²)`` as a 1-D ``MixtureSameFamily``."""
    return D.MixtureSameFamily(D.Categorical(logits=logits), D.Normal(locs, scales))


def mixture_log_density(
    logits: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor, shift: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Unnormalised 1-D mixture log-density ``x (n,) → log p(x) + shift (n,)``."""
    p = normal_mixture_1d(logits, locs, scales)
    return lambda x: p.log_prob(x) + shift


def diag_normal_log_density(
    loc: torch.Tensor, scale: torch.Tensor, shift: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Unnormalised ``x (n, d) → log N(x; loc, diag scale²) + shift (n,)``."""
    p = D.Independent(D.Normal(loc, scale), 1)
    return lambda x: p.log_prob(x) + shift


def categorical_decoder(
    weight: torch.Tensor, bias: torch.Tensor, k: int, height: int, width: int, sign: bool = False
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``z (n, J) → logits (n, k, H, W) = (f(z) Wᵀ + b)`` with ``f`` identity or sign."""

    def decoder(z: torch.Tensor) -> torch.Tensor:
        h = torch.sign(z) if sign else z
        return (h @ weight.mT.to(h.dtype) + bias.to(h.dtype)).reshape(-1, k, height, width)

    return decoder


def gaussian_encoder(
    mu_weight: torch.Tensor, mu_bias: torch.Tensor, logvar_weight: torch.Tensor, logvar_bias: torch.Tensor
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``x (B, D) → (mu, logvar)``, each ``(B, J)``, affine in ``x``."""

    def encoder(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(mu_weight.dtype)
        return x @ mu_weight.mT + mu_bias, x @ logvar_weight.mT + logvar_bias

    return encoder


def linear_gaussian_likelihood(
    weight: torch.Tensor, bias: torch.Tensor, log_scale: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``log p(x|z) = Σ_d log N(x_d; (W z + b)_d, s²)`` for ``x (B, D)``, ``z (S, B, J)`` → ``(S, B)``."""

    def log_px_given_z(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = z @ weight.mT.to(z.dtype) + bias.to(z.dtype)  # (S, B, D)
        r = (x.to(z.dtype) - mean) / math.exp(log_scale)
        return (-0.5 * r**2 - log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)

    return log_px_given_z


def diag_gaussian_mixture_log_prior(
    logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``log Σ_c π_c N(z; mu_c, diag exp logvar_c)`` for ``z (S, B, J)`` → ``(S, B)``."""
    mix = D.MixtureSameFamily(
        D.Categorical(logits=logits), D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)
    )
    return lambda z: mix.log_prob(z)


def sympy_symbol(name: str, positive: bool = True) -> Any:
    """A sympy ``Symbol`` (the arguments of symbolic questions)."""
    import sympy

    return sympy.Symbol(name, positive=positive)


BUILDERS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        normal,
        independent_normal,
        multivariate_normal,
        normal_mixture_1d,
        mixture_log_density,
        diag_normal_log_density,
        categorical_decoder,
        gaussian_encoder,
        linear_gaussian_likelihood,
        diag_gaussian_mixture_log_prior,
        sympy_symbol,
    )
}


def build(kind: str, params: dict[str, Any]) -> Any:
    """Build the callable described by ``kind`` and ``params``."""
    return BUILDERS[kind](**params)
