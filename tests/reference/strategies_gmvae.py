"""Hypothesis strategies for the Part C (GMVAE) reference tests.

Built on ``tests/strategies.py``: entries are halves, so shrunk examples read
as short exact numbers.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from tests.strategies import batch_shapes, simplex, small_tensors


@st.composite
def binary_tensors(draw, shape: tuple[int, ...], dtype=torch.float64) -> torch.Tensor:
    """A tensor of ``shape`` with entries in {0, 1}."""
    n = 1
    for s in shape:
        n *= s
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return torch.tensor(bits, dtype=dtype).reshape(shape)


@st.composite
def mixture_priors(draw, k: int, j: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log_pi (K,), mu_c (K, J), logvar_c (K, J))`` with log-variances in [−2, 2]."""
    log_pi = draw(simplex(k, dtype=torch.float64)).log().to(dtype)
    mu_c = draw(small_tensors((k, j), -4, 4, dtype=dtype))
    logvar_c = draw(small_tensors((k, j), -2, 2, dtype=dtype))
    return log_pi, mu_c, logvar_c


@st.composite
def broadcastable_shapes(draw, n: int, j: int) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """``(batch, shapes)``: ``n`` shapes ``(*B_i, J)`` whose leading dims broadcast to ``batch``.

    Each ``B_i`` is ``batch`` with some leading dims dropped and some sides set to 1.
    """
    batch = draw(batch_shapes(max_dims=3))
    shapes = []
    for _ in range(n):
        kept = batch[draw(st.integers(0, len(batch))) :]
        sides = tuple(draw(st.sampled_from([s, 1])) for s in kept)
        shapes.append((*sides, j))
    full = torch.broadcast_shapes(*shapes)[:-1] if shapes else ()
    return tuple(full), shapes
