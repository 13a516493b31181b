"""Hypothesis strategies of Part B's inputs: raw matrices, Cholesky factors with vectors, broadcasting batches.

Values are halves (``strategies``), so that ``L ε``, ``L Lᵀ`` and forward
substitution are exact in float32 and float64 alike.
"""

from __future__ import annotations

from hypothesis import strategies as st

from autograder.checks import strategies as S


@S.composite
def raws(draw, dtype=None, batch=None):
    """``raw (*B, d, d)`` in halves of [−4, 4], at least one batch dimension unless ``batch`` is given."""
    dtype = dtype or draw(S.DTYPES)
    batch = draw(S.batch_shapes(max_dims=2, max_side=2, min_dims=1)) if batch is None else batch
    d = draw(st.integers(1, 3))
    return draw(S.halves((*batch, d, d), -4, 4, dtype))


@S.composite
def gaussians(draw, n_vectors: int, dtype=None, batch=None):
    """``(L, vectors)``: a factor ``(*B, d, d)`` and ``n_vectors`` halves ``(*B, d)``, all with one batch shape
    (at least one batch dimension unless ``batch`` is given)."""
    dtype = dtype or draw(S.DTYPES)
    batch = draw(S.batch_shapes(max_dims=2, max_side=2, min_dims=1)) if batch is None else batch
    d = draw(st.integers(1, 3))
    L = draw(S.scale_trils(batch, d, dtype))
    return L, [draw(S.halves((*batch, d), -3, 3, dtype)) for _ in range(n_vectors)]


@S.composite
def broadcasting(draw, n_vectors: int):
    """Like ``gaussians``, but one argument has the batch ``(a, b)`` and the others ``(b,)``, ``(a, 1)`` or ``(1, b)``.

    With ``a, b ≥ 2`` every smaller batch really broadcasts: flattening each
    argument's batch dims separately gives sizes that do not match.
    """
    dtype = draw(S.DTYPES)
    a, b = draw(st.integers(2, 3)), draw(st.integers(2, 3))
    d = draw(st.integers(1, 3))
    full = draw(st.integers(0, n_vectors))  # the argument with the whole batch; index n_vectors is L
    shapes = [(a, b) if i == full else draw(st.sampled_from([(b,), (a, 1), (1, b)])) for i in range(n_vectors + 1)]
    L = draw(S.scale_trils(shapes[-1], d, dtype))
    return L, [draw(S.halves((*shape, d), -3, 3, dtype)) for shape in shapes[:-1]]
