"""E4's truth in closed form (float64): the encoder's moments, the reconstruction term, its gradient, the KL.

The linear-Gaussian likelihood of ``models`` makes log p(x | mu + σ ⊙ ε) and
its gradient w.r.t. the encoder's mu and logvar quadratic forms of ε, whose
means ``stats.quadratic_halfwidth`` bounds.
"""

from __future__ import annotations

import math

import torch
from torch import distributions as D

from autograder.sandbox.runtime import builders
from autograder.sandbox.runtime.wire import Fn, Leaf


def encoded(x: torch.Tensor, encoder: Fn) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's ``(mu, logvar)`` at ``x``, in float64 (a ``Leaf`` parameter as its tensor)."""
    mu, logvar = builders.build(encoder.kind, {k: (v.tensor if isinstance(v, Leaf) else v).double()
                                               for k, v in encoder.params.items()})(x.double())
    return mu, logvar


def reconstruction_form(x, W, b, log_scale, mu, logvar):
    """log p(x | mu + σ ⊙ ε) = c + εᵀPε + gᵀε per example: (E, P (B, J, J), g (B, J)); E its expectation."""
    s2, W = math.exp(2 * log_scale), W.double()
    A = W * torch.exp(0.5 * logvar)[:, None, :]  # W diag(σ), (B, D, J)
    r = x.double() - mu @ W.T - b.double()  # (B, D)
    P = -A.mT @ A / (2 * s2)
    g = (A.mT @ r[..., None])[..., 0] / s2
    const = -0.5 * W.shape[0] * math.log(2 * math.pi * s2) - (r**2).sum(-1) / (2 * s2)
    return const + torch.diagonal(P, dim1=-2, dim2=-1).sum(-1), P, g


def kl_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) ‖ N(0, I)) per example."""
    return D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(torch.zeros_like(mu), 1.0)).sum(-1)


def gradient_forms(x, W, b, log_scale, mu, logvar) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """d ELBO / d mu and d ELBO / d logvar of one example (x (D,), mu and logvar (J,)), as quadratic forms of ε.

    ``{"mu" | "logvar": (E (J,), P (J, J, J), g (J, J))}``: component j is εᵀP_jε + g_jᵀε plus a constant,
    of expectation E_j (the KL's exact gradient included).
    """
    s2, W, j = math.exp(2 * log_scale), W.double(), mu.shape[0]
    sigma = torch.exp(0.5 * logvar)
    A, r = W * sigma, x.double() - W @ mu - b.double()
    eye = torch.eye(j, dtype=torch.float64)
    # d/dmu_j: W_jᵀ(r − Aε)/s² − mu_j;  d/dlogvar_j: (σ_j/2s²) ε_j W_jᵀ(r − Aε) − ½(σ_j² − 1)
    P_mu, g_mu = torch.zeros(j, j, j, dtype=torch.float64), -(A.T @ W).T / s2
    e_mu = W.T @ r / s2 - mu
    a = (A.T @ W).T  # a_j = Aᵀ W_j, (J, J)
    outer = eye[:, :, None] * a[:, None, :]  # e_j a_jᵀ, (J, J, J)
    P_lv = -(sigma / (2 * s2))[:, None, None] * 0.5 * (outer + outer.mT)
    g_lv = (sigma * (W.T @ r) / (2 * s2))[:, None] * eye
    e_lv = -(sigma**2) * (W**2).sum(0) / (2 * s2) - 0.5 * (sigma**2 - 1)
    return {"mu": (e_mu, P_mu, g_mu), "logvar": (e_lv, P_lv, g_lv)}
