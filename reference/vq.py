"""Reference for Part D: vector quantisation in a VQ-VAE (seed 004 §4).

The encoder's continuous output ``z_e`` is replaced by its nearest code
vector; the straight-through estimator copies the decoder's gradient past the
non-differentiable lookup; two stop-gradient losses (or an exponential moving
average) train the codebook. Source: van den Oord, Vinyals and Kavukcuoglu,
"Neural Discrete Representation Learning" (2017), §3.2 and Appendix A.1.

Shapes: ``K`` codes of size ``D``; ``*B`` any leading dims of ``z_e``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["quantize", "vq_losses", "ema_codebook_update"]


def _squared_distances(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """‖z − e_k‖² for every code; ``z_e: (*B, D)``, ``codebook: (K, D)`` → ``(*B, K)``.

    Computed as a sum of squared differences (not ‖z‖² − 2 z·e + ‖e‖²), so it
    is exact whenever the inputs are small integers or halves and ties stay ties.
    """
    return (z_e.unsqueeze(-2) - codebook).square().sum(-1)  # (*B, K, D) → (*B, K)


def quantize(z_e: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-code quantisation with the straight-through gradient.

    ``k(z) = argmin_k ‖z − e_k‖²`` (ties to the lowest index), and
    ``z_q = z_e + sg[e_k − z_e]``: forward value ``e_k``, Jacobian w.r.t.
    ``z_e`` the identity, no gradient to the codebook. No input is modified.

    Args:
        z_e: ``(*B, D)`` encoder outputs.
        codebook: ``(K, D)`` code vectors.

    Returns:
        ``z_q: (*B, D)`` in ``z_e``'s dtype and ``indices: (*B,)`` long.
    """
    indices = _squared_distances(z_e, codebook).argmin(-1)  # first minimum: lowest index on ties
    e = codebook[indices].to(z_e.dtype)
    return z_e + (e - z_e).detach(), indices


def vq_losses(
    z_e: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor, beta: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """The codebook and commitment losses of VQ-VAE.

    ``codebook_loss = mean((sg[z_e] − e)²)`` moves the codes towards the
    encoder outputs; ``commitment_loss = β · mean((z_e − sg[e])²)`` keeps the
    encoder close to its codes. ``e = codebook[indices]``; means over all elements.

    Args:
        z_e: ``(*B, D)``; codebook: ``(K, D)``; indices: ``(*B,)`` long.

    Returns:
        two scalars: the first has gradient only w.r.t. the codebook, the
        second only w.r.t. ``z_e``.
    """
    e = codebook[indices]
    codebook_loss = (z_e.detach() - e).square().mean()
    commitment_loss = beta * (z_e - e.detach()).square().mean()
    return codebook_loss, commitment_loss


def ema_codebook_update(
    cluster_size: torch.Tensor,
    embed_sum: torch.Tensor,
    z_e: torch.Tensor,
    indices: torch.Tensor,
    decay: float = 0.99,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exponential-moving-average dictionary update with Laplace smoothing.

    With this batch's counts ``n_k`` and sums ``s_k`` of the encoder outputs
    assigned to code k::

        N' = decay·N + (1 − decay)·n          m' = decay·m + (1 − decay)·s
        Ñ_k = (N'_k + eps) / (Σ N' + K·eps) · Σ N'
        codebook_k = m'_k / Ñ_k

    Smoothing keeps an empty cluster's count positive, so its code stays
    finite. New tensors are returned; no input is modified in place, and
    nothing here needs gradients (the update is not trained by backprop).

    Args:
        cluster_size: ``(K,)`` running counts N; embed_sum: ``(K, D)`` running sums m;
        z_e: ``(*B, D)``; indices: ``(*B,)`` long, the codes ``z_e`` was assigned to.

    Returns:
        ``(codebook (K, D), N' (K,), m' (K, D))``.
    """
    k = cluster_size.shape[0]
    flat = z_e.reshape(-1, z_e.shape[-1]).to(embed_sum.dtype)  # (N, D)
    onehot = F.one_hot(indices.reshape(-1), k).to(embed_sum.dtype)  # (N, K)
    counts = onehot.sum(0)  # (K,)
    sums = onehot.T @ flat  # (K, D)
    new_size = decay * cluster_size + (1 - decay) * counts
    new_sum = decay * embed_sum + (1 - decay) * sums
    total = new_size.sum()
    smoothed = (new_size + eps) / (total + k * eps) * total
    return new_sum / smoothed.unsqueeze(-1), new_size, new_sum
