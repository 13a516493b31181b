"""Reference for Part B: a full-covariance Gaussian parameterised by its Cholesky factor.

With ε ~ N(0, I) and ``z = μ + L ε`` for a lower-triangular L with a positive
diagonal, z ~ N(μ, Σ) with ``Σ = L Lᵀ`` (seed 004 §2). Everything here works on
the factor L and never forms Σ⁻¹ or det Σ: Mahalanobis distances come from a
triangular solve and ``log det Σ = 2 Σᵢ log Lᵢᵢ``, as in
``torch.distributions.MultivariateNormal``.

Shapes use named dims: ``D`` is the event size and ``*B`` any leading batch
dims; batch dims of different arguments broadcast against each other. Every
function keeps the dtype and device of its inputs and loops over no batch.

``L`` is assumed lower-triangular with a positive diagonal (as produced by
:func:`scale_tril_from_raw`); no function checks its values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "scale_tril_from_raw",
    "covariance_from_scale_tril",
    "rsample_full_gaussian",
    "full_gaussian_log_prob",
    "kl_full_gaussian_standard_normal",
]

_LOG_2PI = math.log(2 * math.pi)

_SQUARE_MSG = "{name} must have shape (*B, D, D) (a batch of square matrices); got {shape}"
_EVENT_MSG = "{name} must have shape (*B, D) with D = {d} to match L of shape {l_shape}; got {shape}"


def _check_square(name: str, matrix: torch.Tensor) -> None:
    if matrix.dim() < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(_SQUARE_MSG.format(name=name, shape=tuple(matrix.shape)))


def _check_event(name: str, vector: torch.Tensor, L: torch.Tensor) -> None:
    if vector.dim() < 1 or vector.shape[-1] != L.shape[-1]:
        raise ValueError(_EVENT_MSG.format(name=name, d=L.shape[-1], l_shape=tuple(L.shape), shape=tuple(vector.shape)))


def _log_det_scale_tril(L: torch.Tensor) -> torch.Tensor:
    """log |det L| = Σᵢ log Lᵢᵢ = ½ log det Σ; ``L: (*B, D, D)`` → ``(*B,)``."""
    return L.diagonal(dim1=-2, dim2=-1).log().sum(-1)


def _whiten(x: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """ε = L⁻¹ x by forward substitution; ``x: (*B, D)``, ``L: (*B, D, D)`` → ``(*B, D)``.

    Batch dims of ``x`` and ``L`` broadcast; only the lower triangle of L is read.
    """
    return torch.linalg.solve_triangular(L, x.unsqueeze(-1), upper=False).squeeze(-1)  # (*B, D, 1) → (*B, D)


def _frobenius_sq(L: torch.Tensor) -> torch.Tensor:
    """‖L‖²_F = tr(L Lᵀ) = tr Σ; ``L: (*B, D, D)`` → ``(*B,)``."""
    return L.square().sum((-2, -1))


def scale_tril_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """Map an unconstrained square output to a valid Cholesky factor.

    ``L = tril(raw, −1) + diag(softplus(diag(raw)))``: the strictly lower
    triangle is kept as is (it carries the correlations), the strict upper
    triangle is zeroed, and softplus makes the diagonal strictly positive, so
    ``L Lᵀ`` is positive definite. Softplus grows linearly, unlike exp, so a
    large raw diagonal cannot overflow the scale.

    Args:
        raw: ``(*B, D, D)`` unconstrained network output.

    Returns:
        ``L: (*B, D, D)`` lower-triangular with positive diagonal, differentiable w.r.t. ``raw``.

    Source: seed 004 §2 (output-unit activations for μ and L).
    """
    _check_square("raw", raw)
    diagonal = F.softplus(raw.diagonal(dim1=-2, dim2=-1))  # (*B, D)
    return torch.tril(raw, diagonal=-1) + torch.diag_embed(diagonal)


def covariance_from_scale_tril(L: torch.Tensor) -> torch.Tensor:
    """Covariance ``Σ = L Lᵀ`` of ``z = μ + L ε`` with ε ~ N(0, I).

    Cov(z) = E[L ε εᵀ Lᵀ] = L I Lᵀ. (``Lᵀ L`` has the same determinant but is a
    different matrix whenever L is not diagonal.)

    Args:
        L: ``(*B, D, D)`` lower-triangular scale factor.

    Returns:
        ``Σ: (*B, D, D)`` symmetric positive definite.

    Source: seed 004 §2.
    """
    _check_square("L", L)
    return L @ L.mT


def rsample_full_gaussian(mu: torch.Tensor, L: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Reparameterised sample ``z = μ + L ε`` of N(μ, L Lᵀ).

    The noise ``eps`` is given, so z is a deterministic, differentiable
    function of ``mu`` and ``L`` (the reparameterisation trick).

    Args:
        mu: ``(*B, D)`` mean.
        L: ``(*B, D, D)`` lower-triangular scale factor.
        eps: ``(*B, D)`` standard-normal noise.

    Returns:
        ``z: (*B, D)``, the batch dims of the three arguments broadcast.

    Source: seed 004 §2.
    """
    _check_square("L", L)
    _check_event("mu", mu, L)
    _check_event("eps", eps, L)
    return mu + (L @ eps.unsqueeze(-1)).squeeze(-1)  # (*B, D, 1) → (*B, D)


def full_gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Log-density log N(z; μ, L Lᵀ), via the Cholesky factor only.

    With ε = L⁻¹ (z − μ) (triangular solve),
    ``log N(z; μ, L Lᵀ) = −½ ‖ε‖² − (D/2) log 2π − Σᵢ log Lᵢᵢ``,
    the change of variables z = μ + L ε applied to the density of ε.

    Args:
        z: ``(*B, D)`` points.
        mu: ``(*B, D)`` mean.
        L: ``(*B, D, D)`` lower-triangular scale factor with positive diagonal.

    Returns:
        ``(*B,)``, the batch dims of the three arguments broadcast.

    Source: seed 004 §2, eqs. (3)–(6).
    """
    _check_square("L", L)
    _check_event("z", z, L)
    _check_event("mu", mu, L)
    eps = _whiten(z - mu, L)  # (*B, D)
    d = L.shape[-1]
    return -0.5 * eps.square().sum(-1) - 0.5 * d * _LOG_2PI - _log_det_scale_tril(L)


def kl_full_gaussian_standard_normal(mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(μ, L Lᵀ) ‖ N(0, I)).

    ``KL = ½ (tr Σ + μᵀμ − D − log det Σ) = ½ (‖L‖²_F + ‖μ‖² − D) − Σᵢ log Lᵢᵢ``.

    Args:
        mu: ``(*B, D)`` mean.
        L: ``(*B, D, D)`` lower-triangular scale factor with positive diagonal.

    Returns:
        ``(*B,)`` non-negative, the batch dims of ``mu`` and ``L`` broadcast.

    Source: seed 004 §2 (the KL term of the ELBO with a full-covariance q).
    """
    _check_square("L", L)
    _check_event("mu", mu, L)
    d = L.shape[-1]
    return 0.5 * (_frobenius_sq(L) + mu.square().sum(-1) - d) - _log_det_scale_tril(L)
