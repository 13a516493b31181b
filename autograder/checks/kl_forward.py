"""A2 ``forward_kl_loss``: its inputs (q and samples of p), its known mistakes, and how a value is judged."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from autograder.checks import strategies as S
from autograder.checks.compare import expect_scalar_tensor
from autograder.checks.diagnose import Diagnosis, expect_diagnosed
from autograder.checks.framework import Context
from autograder.sandbox.runtime import builders
from autograder.sandbox.runtime.wire import Fn


@S.composite
def forward_inputs(draw, kinds: tuple[str, ...], dtype: torch.dtype | None = None):
    """``(kind, params, x_p)``: a builders kind of q with batch shape (), and ``x_p (N, *event)`` in halves."""
    dtype = dtype or draw(S.DTYPES)
    kind, n = draw(st.sampled_from(kinds)), draw(st.integers(1, 5))
    if kind == "normal":
        params = {"loc": draw(S.halves((), -2, 2, dtype)), "scale": draw(S.halves((), 0.5, 2, dtype))}
        return kind, params, draw(S.halves((n,), -3, 3, dtype))
    d = draw(st.integers(1, 3))
    params = {"loc": draw(S.halves((d,), -2, 2, dtype))}
    if kind == "independent_normal":
        params.update(scale=draw(S.halves((d,), 0.5, 2, dtype)), ndims=1)
    else:
        params["scale_tril"] = draw(S.scale_trils((), d, dtype))
    return kind, params, draw(S.halves((n, d), -3, 3, dtype))


FORWARD_HINT = "see the contract of A2: the Monte-Carlo cross-entropy, a mean over the N samples of p"
FORWARD_MISTAKES = (
    Diagnosis("your loss is a sum over the N samples; the contract of A2 takes their mean",
              lambda x_p, expected: x_p.shape[0] * expected),
    Diagnosis("your loss has the wrong sign: the cross-entropy is minus the mean log-density",
              lambda x_p, expected: -expected),
    Diagnosis("your loss is a sum over the samples and has the wrong sign: the contract of A2 is minus their mean",
              lambda x_p, expected: -x_p.shape[0] * expected),
)


def forward_value(ctx: Context, example) -> None:
    """The loss of ``example`` (``forward_inputs``) against the reference's, its known mistakes named."""
    kind, params, x_p = example
    got = ctx.call(q=Fn(kind, params), x_p=x_p)
    expected = ctx.expected("forward_kl_loss", builders.build(kind, params), x_p)
    expect_scalar_tensor(ctx, got, what="the loss")
    expect_diagnosed(ctx, got, expected, FORWARD_MISTAKES, {"x_p": x_p, "expected": expected}, what="the loss",
                     dtype=x_p.dtype, hint=FORWARD_HINT)
