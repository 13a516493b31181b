"""The models Part E's checks hand to students, with the closed forms that make their truth known.

``decoder`` (a ``categorical_decoder``, logits affine in z or in sign(z)); a linear-Gaussian
likelihood ``x | z ~ N(Wz + b, s² I)`` with prior N(0, I), so ``p(x) = N(x; b, WWᵀ + s² I)`` and,
when W has orthogonal columns, the exact posterior is a diagonal Gaussian an affine
``gaussian_encoder`` represents; and ``diag_gaussian_mixture_log_prior`` (one component: a Gaussian
prior with a closed-form KL). Closed forms are float64.
"""

from __future__ import annotations

import math

import torch
from torch import distributions as D

from autograder.sandbox.runtime.wire import Fn


def decoder(weight: torch.Tensor, bias: torch.Tensor, k: int, h: int, w: int, sign: bool = False) -> Fn:
    return Fn("categorical_decoder", {"weight": weight, "bias": bias, "k": k, "height": h, "width": w, "sign": sign})


def likelihood(W: torch.Tensor, b: torch.Tensor, log_scale: float, dtype: torch.dtype) -> Fn:
    return Fn("linear_gaussian_likelihood", {"weight": W.to(dtype), "bias": b.to(dtype), "log_scale": float(log_scale)})


def log_px(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, log_scale: float) -> torch.Tensor:
    """log p(x) = log N(x; b, WWᵀ + s² I); ``x (B, D)`` → ``(B,)`` in float64."""
    W, b = W.double(), b.double()
    L = torch.linalg.cholesky(W @ W.T + math.exp(2 * log_scale) * torch.eye(W.shape[0], dtype=torch.float64))
    r = torch.linalg.solve_triangular(L, (x.double() - b).T, upper=False)  # (D, B)
    return -0.5 * (r**2).sum(0) - torch.diagonal(L).log().sum() - 0.5 * W.shape[0] * math.log(2 * math.pi)


def posterior(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, log_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """p(z | x) = N(m, V): ``V = (I + WᵀW/s²)⁻¹``, ``m = V Wᵀ(x − b)/s²``; m ``(B, J)``, V ``(J, J)``."""
    W, b, s2 = W.double(), b.double(), math.exp(2 * log_scale)
    V = torch.linalg.inv(torch.eye(W.shape[1], dtype=torch.float64) + W.T @ W / s2)
    return (x.double() - b) @ W @ V / s2, V


def prior_weight_moments(x, W, b, log_scale) -> tuple[torch.Tensor, torch.Tensor]:
    """Var and sup of ``w = p(x|z)/p(x)`` under z ~ N(0, I), per example (closed forms).

    ``E w² = (4πs²)^{-D/2} N(x; b, WWᵀ + s²/2 I) / p(x)²``; ``sup w = max_z p(x|z)/p(x)`` at the least-squares z.
    """
    d, s2 = W.shape[0], math.exp(2 * log_scale)
    lp = log_px(x, W, b, log_scale)
    log_e_w2 = -0.5 * d * math.log(4 * math.pi * s2) + log_px(x, W, b, 0.5 * math.log(s2 / 2)) - 2 * lp
    r = x.double() - b - (torch.linalg.pinv(W) @ (x.double() - b).T).T @ W.T  # residual off range(W)
    log_sup = (-0.5 * r**2 / s2 - 0.5 * math.log(2 * math.pi * s2)).sum(-1) - lp
    return torch.expm1(log_e_w2), log_sup.exp()


def encoder(x, W, b, log_scale, shift: torch.Tensor | None = None, inflate: float = 1.0) -> Fn:
    """The affine encoder of the exact posterior (W with orthogonal columns), its mean shifted by
    ``shift`` and its variance multiplied by ``inflate``."""
    _, V = posterior(x, W, b, log_scale)
    s2, var = math.exp(2 * log_scale), torch.diagonal(V) * inflate
    shift = torch.zeros(W.shape[1], dtype=torch.float64) if shift is None else shift
    d, dtype = W.shape[0], x.dtype
    params = {"mu_weight": V @ W.T.double() / s2, "mu_bias": -(V @ W.T.double() @ b.double()) / s2 + shift,
              "logvar_weight": torch.zeros(W.shape[1], d, dtype=torch.float64), "logvar_bias": var.log()}
    return Fn("gaussian_encoder", {k: v.to(dtype) for k, v in params.items()})


def mixture_prior(logits, locs, logvars) -> Fn:
    return Fn("diag_gaussian_mixture_log_prior", {"logits": logits, "mu": locs, "logvar": logvars})


def gaussian_kl_terms(mu, logvar, m, lv):
    """KL(q ‖ N(m, diag e^lv)) by torch.distributions, and the summand's quadratic form per dimension:
    ``log q(z) − log p(z) = Σ_j λ_j ε_j² + g_j ε_j + const`` with λ = ½(σ²/v − 1), g = σ(mu − m)/v."""
    mu, logvar, m, lv = mu.double(), logvar.double(), m.double(), lv.double()
    kl = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(m, torch.exp(0.5 * lv))).sum(-1)
    sigma, v = torch.exp(0.5 * logvar), torch.exp(lv)
    return kl, 0.5 * (sigma**2 / v - 1), sigma * (mu - m) / v
