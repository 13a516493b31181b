"""``compare.expect_close`` and ``diagnose``'s closeness judge every pair of tensors as their plain definitions do
(element-wise, NaN and infinities only where expected): the same verdict and the same message."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checks import diagnose
from autograder.checks.compare import coarsest, expect_close, tolerance
from autograder.checks.framework import Context, Failure

CTX = SimpleNamespace(fail=lambda *args, **kwargs: Context.fail(None, *args, **kwargs))
HINT = "compute with a numerically stable form (logsumexp, log_softmax, softplus)"


def _plain_expect_close(ctx, got, expected, *, what="the result", rtol=None, atol=None, hint="", dtype=None):
    """expect_close by its definition, step by step."""
    d_rtol, d_atol = tolerance(coarsest(got.dtype, expected.dtype, dtype))
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    g, e = got.detach().to(torch.float64), expected.detach().to(torch.float64)
    g_nan, e_nan = torch.isnan(g), torch.isnan(e)
    if not torch.equal(g_nan, e_nan):
        ctx.fail(f"{what} has NaN where the reference has a number" if g_nan.any() else f"{what} is a number where NaN is expected",
                 expected=expected, got=got, hint=hint or HINT)
    finite = torch.isfinite(e)
    g_inf, e_inf = torch.isinf(g), torch.isinf(e)
    if not torch.equal(g_inf, e_inf) or not torch.equal(g[e_inf], e[e_inf]):
        ctx.fail(f"{what} is infinite where the reference is finite (or the other way)", expected=expected, got=got,
                 hint=hint or HINT)
    if not finite.any():
        return
    scale = max(1.0, e[finite].abs().max().item())
    err = (g - e).abs()[finite]
    bound = atol * scale + rtol * e[finite].abs()
    if (err > bound).any():
        rel = (err / e[finite].abs().clamp_min(1e-300)).max().item()
        ctx.fail(f"{what} differs from the reference", expected=expected, got=got,
                 detail=f"max abs error {err.max().item():.3g}, max rel error {rel:.3g} (rtol {rtol:g}, atol {atol * scale:.3g})",
                 hint=hint)


def _plain_close(got, value):
    if tuple(got.shape) != tuple(value.shape) or got.numel() > 1_000_000:
        return False
    if not (got.is_floating_point() or value.is_floating_point()):
        return torch.equal(got.to(value.dtype), value)
    rtol, atol = tolerance(got.dtype if got.is_floating_point() else torch.float64)
    g, v = got.detach().to(torch.float64), value.detach().to(torch.float64)
    if not torch.equal(torch.isnan(g), torch.isnan(v)) or not torch.equal(torch.isinf(g), torch.isinf(v)):
        return False
    if not torch.equal(g[torch.isinf(v)], v[torch.isinf(v)]):
        return False
    finite = torch.isfinite(v)
    if not finite.any():
        return True
    scale = max(1.0, v[finite].abs().max().item())
    return bool(((g - v).abs()[finite] <= atol * scale + rtol * v[finite].abs()).all())


_VALUES = st.sampled_from([0.0, -0.0, 1.0, 1.0 + 1e-7, 1.0 + 1e-3, -2.5, 1e3, 1e-300, 1.7e308, -1.7e308, float("nan"), float("inf"),
                           float("-inf")])


@st.composite
def _pairs(draw):
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    other = shape if draw(st.integers(0, 5)) else tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    n, m = int(torch.Size(shape).numel()), int(torch.Size(other).numel())
    e = torch.tensor(draw(st.lists(_VALUES, min_size=n, max_size=n)), dtype=torch.float64).reshape(shape)
    near = draw(st.lists(st.sampled_from([0.0, 1e-9, 1e-5, 1e-2]), min_size=n, max_size=n))
    g = e + torch.tensor(near, dtype=torch.float64).reshape(shape) if other == shape else \
        torch.tensor(draw(st.lists(_VALUES, min_size=m, max_size=m)), dtype=torch.float64).reshape(other)
    if other == shape and n and draw(st.booleans()):
        g.view(-1)[draw(st.integers(0, n - 1))] = draw(_VALUES)
    dtypes = st.sampled_from([torch.float64, torch.float32, torch.float16, torch.int64])
    return g.to(draw(dtypes)), e.to(draw(dtypes))


def _verdict(judge, *args, **kwargs):
    try:
        judge(CTX, *args, **kwargs)
    except Failure as f:
        return f.summary, f.expected, f.got, f.detail, f.hint
    return None


@settings(max_examples=500, deadline=None)
@given(_pairs(), st.sampled_from([{}, {"rtol": 0.0, "atol": 1e-4}, {"rtol": 3.0}, {"hint": "h", "what": "z"}, {"dtype": torch.float32}]))
def test_expect_close_is_its_definition(pair, options):
    got, expected = pair
    assert _verdict(expect_close, got, expected, **options) == _verdict(_plain_expect_close, got, expected, **options)


@settings(max_examples=500, deadline=None)
@given(_pairs())
def test_matching_a_mistake_is_its_definition(pair):
    got, value = pair
    assert diagnose._close(got, value) == _plain_close(got, value)
