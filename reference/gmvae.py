"""Part C: the Gaussian-mixture VAE (seed 004, §3).

Generative model: ``c ~ Cat(π)``, ``z | c ~ N(μ_c, diag σ_c²)``,
``x | z ~ Ber(sigmoid(f(z)))``. Mean-field posterior
``q(z, c | x) = N(z; μ̃, diag σ̃²) · Cat(c; γ)``.

Shapes use named dims: ``B`` batch (any leading dims, broadcast), ``K``
clusters, ``J`` latent size, ``D`` data size, ``L`` Monte-Carlo samples of
q(z | x). Variances are always passed as log-variances.
"""

from __future__ import annotations

import math

import sympy
import torch
import torch.nn.functional as F

__all__ = [
    "gmvae_responsibilities",
    "expected_log_gaussian",
    "expected_log_gaussian_sympy",
    "gmvae_elbo",
]

_LOG_2PI = math.log(2 * math.pi)


def _log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) = −½ Σ_j (log 2π + log σ_j² + (z_j − μ_j)² / σ_j²).

    ``z, mu, logvar: (*B, J)`` (broadcast) → ``(*B,)``.
    """
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar)).sum(-1)


def gmvae_responsibilities(
    z: torch.Tensor, log_pi: torch.Tensor, mu_c: torch.Tensor, logvar_c: torch.Tensor
) -> torch.Tensor:
    """Cluster posterior p(c | z) of the mixture prior, by Bayes' rule in log space.

    .. math::

        γ_c = p(c | z) = π_c N(z; μ_c, σ_c²) / Σ_c' π_c' N(z; μ_c', σ_c'²)
            = softmax_c(log π_c + log N(z; μ_c, σ_c²))

    The softmax is taken as ``exp(log_softmax(·))`` of the log-joint, so a z
    far from every cluster (every density underflows to 0) still gives a
    proper distribution, concentrated on the least unlikely cluster. Adding
    a constant to ``log_pi`` does not change the result.

    Args:
        z: ``(*B, J)`` latent codes.
        log_pi: ``(K,)`` log prior weights log π_c.
        mu_c: ``(K, J)`` cluster means.
        logvar_c: ``(K, J)`` cluster log-variances log σ_c².

    Returns:
        ``(*B, K)`` responsibilities; each row sums to 1.

    Source: seed 004 §3.3 (q(c | x) ≈ p(c | z)).
    """
    log_joint = log_pi + _log_normal_diag(z.unsqueeze(-2), mu_c, logvar_c)  # (*B, K)
    return torch.log_softmax(log_joint, dim=-1).exp()


def _scaled_gaussian_mismatch(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """Σ_j (log σ_j² + σ̃_j² / σ_j² + (μ̃_j − μ_j)² / σ_j²), i.e. −2 E_q log p without 2π.

    Arguments ``(*B, J)`` (broadcast) → ``(*B,)``; ``_q`` is q = N(μ̃, σ̃²),
    ``_p`` is p = N(μ, σ²).
    """
    inv_var_p = torch.exp(-logvar_p)
    return (logvar_p + torch.exp(logvar_q) * inv_var_p + (mu_q - mu_p) ** 2 * inv_var_p).sum(-1)


def expected_log_gaussian(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """E_{z ~ q}[log p(z)] for diagonal Gaussians q = N(μ̃, σ̃²), p = N(μ, σ²).

    .. math::

        ∫ q(z) log p(z) dz = Σ_j [ −½ log(2π σ_j²) − σ̃_j² / (2σ_j²)
                                   − (μ̃_j − μ_j)² / (2σ_j²) ]

    It equals −H(q) − KL(q ‖ p), the negative cross-entropy.

    Args:
        mu_q, logvar_q: ``(*B, J)`` mean and log-variance of q.
        mu_p, logvar_p: ``(*B, J)`` mean and log-variance of p.
        All four broadcast against each other.

    Returns:
        ``(*B,)``, summed over the last dimension J.

    Source: seed 004 §3.4 (the lemma).
    """
    mismatch = _scaled_gaussian_mismatch(mu_q, logvar_q, mu_p, logvar_p)
    J = torch.broadcast_shapes(mu_q.shape, logvar_q.shape, mu_p.shape, logvar_p.shape)[-1]
    return -0.5 * (J * _LOG_2PI + mismatch)


def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p) -> sympy.Expr:
    """The 1-D lemma as a sympy expression; ``s`` are standard deviations.

    .. math::

        E_{z ~ N(μ̃, s̃²)}[log N(z; μ, s²)] = −½ log(2π s²) − s̃² / (2s²) − (μ̃ − μ)² / (2s²)

    Args:
        mu_q, s_q, mu_p, s_p: sympy symbols (positive reals) or expressions.

    Returns:
        A sympy expression in those four.

    Source: seed 004 §3.4.
    """
    return (
        -sympy.log(2 * sympy.pi * s_p**2) / 2
        - s_q**2 / (2 * s_p**2)
        - (mu_q - mu_p) ** 2 / (2 * s_p**2)
    )


def _bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Σ_i [x_i log μ_i + (1 − x_i) log(1 − μ_i)] with μ = sigmoid(logits), from logits.

    ``x: (*B, D)``, ``logits: (L, *B, D)`` → ``(L, *B)``. Uses
    ``binary_cross_entropy_with_logits``, finite for any finite logit.
    """
    x = x.to(logits.dtype).expand_as(logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def _neg_kl_categorical(gamma: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
    """Σ_c γ_c (log π_c − log γ_c) = −KL(Cat(γ) ‖ Cat(π)), with 0 · log 0 = 0.

    ``gamma: (*B, K)``, ``log_pi: (K,)`` → ``(*B,)``.
    """
    return (gamma * log_pi - torch.xlogy(gamma, gamma)).sum(-1)


def gmvae_elbo(
    x: torch.Tensor,
    x_logits: torch.Tensor,
    mu_z: torch.Tensor,
    logvar_z: torch.Tensor,
    gamma: torch.Tensor,
    log_pi: torch.Tensor,
    mu_c: torch.Tensor,
    logvar_c: torch.Tensor,
) -> torch.Tensor:
    """SGVB estimate of the GMVAE ELBO per example, Bernoulli x.

    .. math::

        ELBO(x) = 1/L Σ_l Σ_i [x_i log μ_x,i^(l) + (1 − x_i) log(1 − μ_x,i^(l))]
                  − ½ Σ_c γ_c Σ_j (log σ_c,j² + σ̃_j² / σ_c,j² + (μ̃_j − μ_c,j)² / σ_c,j²)
                  + Σ_c γ_c log(π_c / γ_c)
                  + ½ Σ_j (1 + log σ̃_j²)

    The four lines are E_q log p(x | z) (Monte Carlo over the L decoded
    samples), E_q log p(z | c) (the §3.4 lemma), E_q log p(c)/q(c | x), and
    the entropy H(q(z | x)) = ½ Σ_j (1 + log(2π σ̃_j²)) — q's own variance
    σ̃², not a cluster's σ_c². The lemma contributes −½ J log 2π (the γ_c sum
    to 1) and the entropy +½ J log 2π, so the 2π terms cancel and appear in
    neither line. Terms with γ_c = 0 contribute 0 (0 · log 0 = 0).

    Args:
        x: ``(*B, D)`` binary data in {0, 1}.
        x_logits: ``(L, *B, D)`` decoder logits f(z^(l)) for L samples z^(l) ~ q(z | x).
        mu_z, logvar_z: ``(*B, J)`` mean μ̃ and log-variance log σ̃² of q(z | x).
        gamma: ``(*B, K)`` q(c | x), rows on the simplex.
        log_pi: ``(K,)`` normalised log prior weights log π_c.
        mu_c, logvar_c: ``(K, J)`` cluster means and log-variances.

    Returns:
        ``(*B,)`` the ELBO of each example.

    Source: seed 004 §3.5 (with the entropy term corrected to σ̃²).
    """
    reconstruction = _bernoulli_log_likelihood(x, x_logits).mean(0)  # (*B,)
    mismatch = _scaled_gaussian_mismatch(
        mu_z.unsqueeze(-2), logvar_z.unsqueeze(-2), mu_c, logvar_c
    )  # (*B, K)
    expected_log_prior_z = -0.5 * (gamma * mismatch).sum(-1)  # without −½ J log 2π
    entropy_z = 0.5 * (1 + logvar_z).sum(-1)  # without +½ J log 2π
    return reconstruction + expected_log_prior_z + _neg_kl_categorical(gamma, log_pi) + entropy_z
