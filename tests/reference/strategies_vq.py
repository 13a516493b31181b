"""Hypothesis strategies for the Part D (VQ-VAE) reference tests.

Built on ``tests/strategies.py``: encoder outputs are halves and codes are
small integers, so every squared distance is exact and ties are real ties.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from tests.strategies import DTYPES, batch_shapes, small_tensors


@st.composite
def integer_codebooks(draw, k: int, d: int, dtype=torch.float64) -> torch.Tensor:
    """``(K, D)`` codes with integer entries in [−3, 3] (duplicates allowed, and likely)."""
    return draw(small_tensors((k, d), -3, 3, dtype=torch.float64)).round().to(dtype)


@st.composite
def vq_problems(draw, dtype=None, max_dims: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z_e (*B, D) in halves, codebook (K, D) in integers)`` of one dtype."""
    dtype = dtype or draw(DTYPES)
    batch = draw(batch_shapes(max_dims=max_dims))
    d, k = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    z_e = draw(small_tensors((*batch, d), -4, 4, dtype=dtype))
    return z_e, draw(integer_codebooks(k, d, dtype=dtype))


@st.composite
def index_tensors(draw, batch: tuple[int, ...], k: int) -> torch.Tensor:
    """A long ``(*B,)`` tensor of code indices in ``[0, K)``."""
    n = 1
    for s in batch:
        n *= s
    return torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=torch.long).reshape(batch)


@st.composite
def loss_problems(draw, dtype=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(z_e, codebook, indices, beta)``; indices are arbitrary, not necessarily the nearest codes."""
    z_e, codebook = draw(vq_problems(dtype))
    indices = draw(index_tensors(tuple(z_e.shape[:-1]), codebook.shape[0]))
    return z_e, codebook, indices, draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]))


@st.composite
def ema_problems(draw, dtype=None):
    """``(cluster_size (K,), embed_sum (K, D), z_e (*B, D), indices (*B,), decay, eps)``.

    Running counts are halves in [0, 6] (zeros, hence empty clusters, are common).
    """
    dtype = dtype or draw(DTYPES)
    k, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batch = draw(batch_shapes(max_dims=3))
    cluster_size = draw(small_tensors((k,), 0, 6, dtype=dtype))
    embed_sum = draw(small_tensors((k, d), -4, 4, dtype=dtype))
    z_e = draw(small_tensors((*batch, d), -4, 4, dtype=dtype))
    indices = draw(index_tensors(batch, k))
    decay = draw(st.sampled_from([0.0, 0.5, 0.75, 0.99]))
    eps = draw(st.sampled_from([1e-5, 0.25, 0.5]))
    return cluster_size, embed_sum, z_e, indices, decay, eps
