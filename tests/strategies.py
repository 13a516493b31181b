"""Shared hypothesis strategies for tensors used across the reference tests.

Values are small integers or halves so that ties and boundaries are exact in
floating point, and shrinking lands on readable inputs.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

DTYPES = st.sampled_from([torch.float32, torch.float64])


def batch_shapes(max_dims: int = 2, max_side: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """Leading batch shapes ``(*B)``, including the empty shape."""
    return st.lists(st.integers(1, max_side), max_size=max_dims).map(tuple)


@st.composite
def small_tensors(draw, shape: tuple[int, ...], lo: int = -6, hi: int = 6, dtype=torch.float64) -> torch.Tensor:
    """A tensor of ``shape`` whose entries are halves in ``[lo, hi]``."""
    n = 1
    for s in shape:
        n *= s
    vals = draw(st.lists(st.integers(2 * lo, 2 * hi), min_size=n, max_size=n))
    return (torch.tensor(vals, dtype=torch.float64).reshape(shape) / 2).to(dtype)


@st.composite
def scale_trils(draw, batch: tuple[int, ...], d: int, dtype=torch.float64) -> torch.Tensor:
    """Lower-triangular ``(*B, d, d)`` factors with diagonal in {0.5, 1, ..., 3}."""
    raw = draw(small_tensors((*batch, d, d), -4, 4, dtype=torch.float64))
    diag = draw(small_tensors((*batch, d), 1, 6, dtype=torch.float64)) / 2
    L = torch.tril(raw, -1) + torch.diag_embed(diag)
    return L.to(dtype)


@st.composite
def simplex(draw, k: int, dtype=torch.float64) -> torch.Tensor:
    """Probability vectors of length ``k`` with entries proportional to 1..8."""
    w = torch.tensor(draw(st.lists(st.integers(1, 8), min_size=k, max_size=k)), dtype=torch.float64)
    return (w / w.sum()).to(dtype)
