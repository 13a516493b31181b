"""Reference for Part E: sampling, likelihood estimates and losses of a VAE (seed 000 §1).

The model: ``z ~ N(0, I)`` in ``J = z_dim`` dimensions, a decoder mapping z to
per-pixel categorical logits over ``k`` intensities, and an encoder
``q(z|x) = N(mu, diag exp(logvar))``.

Random draws come from torch's global generator in one fixed order per
function (documented on each); graders compare these estimators
statistically, so any correct order of draws is equally right.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import distributions as D

__all__ = ["sample_images", "log_likelihood_mc", "log_likelihood_is", "elbo", "vae_losses", "kl_mc"]

_LOG_2PI = math.log(2 * math.pi)

Decoder = Callable[[torch.Tensor], torch.Tensor]
Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _float_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


def _log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Σ_j log N(z_j; mu_j, exp logvar_j); ``(*S, J)`` broadcasting → ``(*S,)``."""
    return -0.5 * ((z - mu).square() * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


def _log_std_normal(z: torch.Tensor) -> torch.Tensor:
    """Σ_j log N(z_j; 0, 1); ``(*S, J)`` → ``(*S,)``."""
    return -0.5 * (z.square() + _LOG_2PI).sum(-1)


def _kl_diag_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp logvar) ‖ N(0, I)) = ½ Σ_j (exp logvar + mu² − 1 − logvar); ``(B, J)`` → ``(B,)``."""
    return 0.5 * (torch.exp(logvar) + mu.square() - 1 - logvar).sum(-1)


def _reparameterise(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int) -> torch.Tensor:
    """z_s = mu + exp(½ logvar) ε_s with ε ~ N(0, I) drawn as one ``(S, B, J)`` tensor."""
    eps = torch.randn((n_samples, *mu.shape), dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps  # (S, B, J)


def sample_images(decoder: Decoder, n_images: int, z_dim: int) -> torch.Tensor:
    """Ancestral sampling: one ``z ~ N(0, I)`` per image, then every pixel from its categorical.

    Draws ``z`` as one ``(n_images, z_dim)`` tensor, then the pixels. (Seed
    000 Q1.1 answers "sample z per pixel and take the most likely
    intensity": that is neither a sample of the model nor one z per image.)

    Returns:
        long ``(n_images, H, W)`` with values in ``[0, k)``.
    """
    z = torch.randn(n_images, z_dim)
    logits = decoder(z)  # (n, k, H, W)
    return D.Categorical(logits=logits.movedim(1, -1)).sample()  # (n, H, W)


def log_likelihood_mc(x: torch.Tensor, log_px_given_z: LogLikelihood, z_dim: int, n_samples: int) -> torch.Tensor:
    """Naive Monte-Carlo estimate ``log p(x) ≈ logsumexp_s log p(x|z_s) − log S``, z_s ~ N(0, I).

    ``logsumexp`` keeps it finite when every log p(x|z_s) is far below −10⁴,
    where ``log(mean(exp(·)))`` underflows to −inf. Draws z as ``(S, B, J)``.

    Args:
        x: ``(B, D)``; log_px_given_z: ``(B, D), (S, B, J) → (S, B)``.

    Returns:
        ``(B,)``.
    """
    z = torch.randn(n_samples, x.shape[0], z_dim, dtype=_float_dtype(x), device=x.device)
    return torch.logsumexp(log_px_given_z(x, z), 0) - math.log(n_samples)


def log_likelihood_is(x: torch.Tensor, encoder: Encoder, log_px_given_z: LogLikelihood, n_samples: int) -> torch.Tensor:
    """Importance-sampled ``log p(x) ≈ logsumexp_s [log p(x|z_s) + log p(z_s) − log q(z_s|x)] − log S``.

    The proposal is the encoder's ``q(z|x)``; z_s = mu + σ ε_s with ε drawn as ``(S, B, J)``.

    Returns:
        ``(B,)``.
    """
    mu, logvar = encoder(x)
    z = _reparameterise(mu, logvar, n_samples)
    log_w = log_px_given_z(x, z) + _log_std_normal(z) - _log_normal_diag(z, mu, logvar)  # (S, B)
    return torch.logsumexp(log_w, 0) - math.log(n_samples)


def elbo(x: torch.Tensor, encoder: Encoder, log_px_given_z: LogLikelihood, n_samples: int) -> torch.Tensor:
    """``ELBO(x) ≈ mean_s log p(x|z_s) − KL(q(z|x) ‖ N(0, I))`` with reparameterised z_s.

    The KL is in closed form; ε is drawn as ``(S, B, J)``. Differentiable
    w.r.t. the encoder's outputs.

    Returns:
        ``(B,)``.
    """
    mu, logvar = encoder(x)
    z = _reparameterise(mu, logvar, n_samples)
    return log_px_given_z(x, z).mean(0) - _kl_diag_std_normal(mu, logvar)


def vae_losses(
    x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction and regularisation losses, each a batch mean of per-image sums.

    ``reconstruction = mean_b Σ_pixels −log Cat(x_b,pixel; softmax(logits))``
    (``F.cross_entropy`` over the class dim 1) and
    ``regularization = mean_b KL(N(mu_b, diag exp logvar_b) ‖ N(0, I))``.

    Args:
        x: long ``(B, H, W)`` in ``[0, k)``; x_logits: ``(B, k, H, W)``; mu, logvar: ``(B, J)``.

    Returns:
        two scalars.
    """
    nll = F.cross_entropy(x_logits, x, reduction="none").sum((1, 2))  # (B,)
    return nll.mean(), _kl_diag_std_normal(mu, logvar).mean()


def kl_mc(
    mu: torch.Tensor, logvar: torch.Tensor, log_prior: Callable[[torch.Tensor], torch.Tensor], n_samples: int
) -> torch.Tensor:
    """Monte-Carlo ``KL(q(z|x) ‖ p(z)) ≈ mean_s [log q(z_s|x) − log p(z_s)]`` with reparameterised z_s.

    For priors with no closed-form KL (a mixture, say); ε is drawn as ``(S, B, J)``.

    Args:
        mu, logvar: ``(B, J)``; log_prior: ``(S, B, J) → (S, B)``.

    Returns:
        ``(B,)``, differentiable w.r.t. ``mu`` and ``logvar``.
    """
    z = _reparameterise(mu, logvar, n_samples)
    return (_log_normal_diag(z, mu, logvar) - log_prior(z)).mean(0)
