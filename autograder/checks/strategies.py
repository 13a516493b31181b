"""Hypothesis strategies for check inputs.

Values are small integers or halves so that distances, ties and boundaries
are exact in float32 and float64 alike, and a shrunk input reads well.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

DTYPES = st.sampled_from([torch.float32, torch.float64])


def batch_shapes(max_dims: int = 2, max_side: int = 3, min_dims: int = 0) -> st.SearchStrategy[tuple[int, ...]]:
    """Leading batch shapes ``(*B)``, the empty shape included when ``min_dims`` is 0."""
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def halves(draw, shape: tuple[int, ...], lo: float, hi: float, dtype: torch.dtype = torch.float64, step: float = 0.5) -> torch.Tensor:
    """A tensor of ``shape`` with entries in ``{lo, lo + step, …, hi}``."""
    n = math.prod(shape)
    steps = int(round((hi - lo) / step))
    ints = draw(st.lists(st.integers(0, steps), min_size=n, max_size=n))
    return (lo + step * torch.tensor(ints, dtype=torch.float64)).reshape(shape).to(dtype)


@st.composite
def scale_trils(draw, batch: tuple[int, ...], d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Lower-triangular ``(*B, d, d)`` with off-diagonals in halves and diagonal in {0.5, …, 2}."""
    off = draw(halves((*batch, d, d), -2, 2, torch.float64))
    diag = draw(halves((*batch, d), 0.5, 2, torch.float64))
    return (torch.tril(off, -1) + torch.diag_embed(diag)).to(dtype)


@st.composite
def simplex(draw, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Probability vectors along the last dim of ``shape``, proportional to integers 1…8."""
    w = draw(halves(shape, 1, 8, torch.float64, step=1))
    return (w / w.sum(-1, keepdim=True)).to(dtype)
