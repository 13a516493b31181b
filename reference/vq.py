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

__all__ = ["quantize", "vq_losses", "ema_codebook_update"]


def _squared_distances(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``‖z − e_k‖²`` for every code; ``z_e: (*B, D)``, ``codebook: (K, D)`` → ``(*B, K)``.

    A sum of squared differences, not the expanded ``‖z‖² − 2 z·e + ‖e‖²``:
    the expanded form cancels catastrophically, so two equidistant codes can
    come out unequal and a tie is broken by rounding. Here every term is exact
    when the inputs are small integers or halves, so ties stay ties.
    """
    return (z_e.unsqueeze(-2) - codebook).square().sum(-1)  # (*B, 1, D) − (K, D) → (*B, K, D) → (*B, K)


def _straight_through(z_e: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """The straight-through estimator: forward value ``e``, Jacobian w.r.t. ``z_e`` the identity.

    Written ``sg[e] + (z_e − sg[z_e])``, the same estimator as the usual
    ``z_e + sg[e − z_e]`` (both have gradient ``I`` w.r.t. ``z_e`` and none
    w.r.t. ``e``), but its value is *exactly* ``e`` for every finite ``z_e``:
    ``z_e − sg[z_e]`` is an exact zero. ``z_e + sg[e − z_e]`` rounds twice and
    can miss ``e`` by about one ulp of ``max(|z_e|, |e|)`` (in float32,
    ``z_e = 1e8`` and ``e = 1`` give 0); on small integers and halves the two
    forms agree exactly.
    """
    return e.detach() + (z_e - z_e.detach())


def quantize(z_e: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-code quantisation with the straight-through gradient.

    ``k(z) = argmin_k ‖z − e_k‖²``, ties to the lowest index (``argmin``
    returns the first minimum), and ``z_q = sg[e_k] + (z_e − sg[z_e])``.

    Forward value: ``z_q == codebook[indices]`` exactly (for finite ``z_e``).
    Gradient: the Jacobian of ``z_q`` w.r.t. ``z_e`` is the identity; the
    codebook receives no gradient through ``z_q`` (it is trained by
    :func:`vq_losses` or :func:`ema_codebook_update`). No input is modified
    in place.

    Args:
        z_e: ``(*B, D)`` encoder outputs.
        codebook: ``(K, D)`` code vectors.

    Returns:
        ``z_q: (*B, D)`` in ``z_e``'s dtype and ``indices: (*B,)`` long.

    Source: seed 004 §4.2–4.3; van den Oord et al. (2017), §3.1–3.2.
    """
    indices = _squared_distances(z_e, codebook).argmin(-1)  # (*B,); first minimum: lowest index on ties
    e = codebook[indices].to(z_e.dtype)  # (*B, D)
    return _straight_through(z_e, e), indices


def vq_losses(
    z_e: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor, beta: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """The codebook and commitment losses of VQ-VAE.

    With ``e = codebook[indices]`` and means over all ``|B|·D`` elements::

        codebook_loss   = mean((sg[z_e] − e)²)        # moves the codes towards the encoder outputs
        commitment_loss = β · mean((z_e − sg[e])²)    # keeps the encoder close to its codes

    Forward values: both are mean squared distances; the two differ only by β.
    Gradient: ``codebook_loss`` reaches only the codebook (rows ``indices``,
    ``2 (e − z_e) / (|B|·D)`` each, summed over repeats); ``commitment_loss``
    reaches only ``z_e`` (``2β (z_e − e) / (|B|·D)``). No input is modified
    in place.

    Args:
        z_e: ``(*B, D)``; codebook: ``(K, D)``; indices: ``(*B,)`` long.
        beta: the commitment weight β.

    Returns:
        two 0-dim tensors ``(codebook_loss, commitment_loss)``.

    Source: seed 004 §4.4; van den Oord et al. (2017), eq. (3).
    """
    e = codebook[indices]  # (*B, D)
    codebook_loss = (z_e.detach() - e).square().mean()
    commitment_loss = beta * (z_e - e.detach()).square().mean()
    return codebook_loss, commitment_loss


def _cluster_counts_and_sums(
    z_e: torch.Tensor, indices: torch.Tensor, k: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """This batch's ``n_k = #{i : k_i = k}`` and ``s_k = Σ_{i : k_i = k} z_i``: ``(K,)`` and ``(K, D)``.

    Built with ``index_add`` into fresh zero tensors, so a code no input chose
    gets ``n_k = 0`` and ``s_k = 0``, and an index outside ``[0, K)`` raises.
    """
    flat_z = z_e.reshape(-1, z_e.shape[-1]).to(dtype)  # (*B, D) → (N, D)
    flat_idx = indices.reshape(-1)  # (*B,) → (N,)
    counts = torch.zeros(k, dtype=dtype, device=z_e.device).index_add(0, flat_idx, torch.ones_like(flat_z[:, 0]))
    sums = torch.zeros(k, flat_z.shape[-1], dtype=dtype, device=z_e.device).index_add(0, flat_idx, flat_z)
    return counts, sums


def _laplace_smoothed_counts(cluster_size: torch.Tensor, eps: float) -> torch.Tensor:
    """``Ñ_k = (N_k + eps) / (Σ_j N_j + K·eps) · Σ_j N_j``: positive for every k, same total ``Σ N``."""
    total = cluster_size.sum()
    return (cluster_size + eps) / (total + cluster_size.shape[0] * eps) * total


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
    finite (without it, a code never chosen divides ``m'_k`` by a count that
    decays towards 0).

    Forward value: ``(codebook, N', m')`` as above. Gradient: none — the
    update is an online k-means step, not trained by backpropagation, so the
    inputs are read through ``detach()`` and the results never carry a graph
    (no encoder graph is kept alive in the running statistics). No input is
    modified in place: all three results are new tensors.

    Args:
        cluster_size: ``(K,)`` running counts N.
        embed_sum: ``(K, D)`` running sums m.
        z_e: ``(*B, D)`` this batch's encoder outputs.
        indices: ``(*B,)`` long, the codes ``z_e`` was assigned to.
        decay: the EMA factor γ in [0, 1).
        eps: the Laplace-smoothing pseudo-count ε.

    Returns:
        ``(codebook (K, D), N' (K,), m' (K, D))``.

    Source: seed 004 §4.4; van den Oord et al. (2017), Appendix A.1.
    """
    cluster_size, embed_sum, z_e = cluster_size.detach(), embed_sum.detach(), z_e.detach()
    counts, sums = _cluster_counts_and_sums(z_e, indices, cluster_size.shape[0], embed_sum.dtype)
    new_size = decay * cluster_size + (1 - decay) * counts  # (K,)
    new_sum = decay * embed_sum + (1 - decay) * sums  # (K, D)
    codebook = new_sum / _laplace_smoothed_counts(new_size, eps).unsqueeze(-1)  # (K, D) / (K, 1)
    return codebook, new_size, new_sum
