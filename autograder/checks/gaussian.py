"""Checks of Part B (full-covariance Gaussian via its Cholesky factor): B1 … B5.

Inputs are halves (and powers of two on ill-conditioned diagonals), so that
``L ε``, ``L Lᵀ`` and forward substitution are exact and any correct order of
operations gives the reference's value. Expected log-densities and KL values
are computed by the reference in float64 and judged with the tolerance of the
student's dtype.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

import reference
from autograder.checks import strategies as S
from autograder.checks.compare import expect_close, expect_tensor
from autograder.checks.framework import Context, for_all
from autograder.checks.registry import check
from autograder.sandbox.runtime.wire import Leaf

F64 = torch.float64

SOLVE_HINT = ("solve L ε = z − μ with torch.linalg.solve_triangular(L, (z - mu).unsqueeze(-1), upper=False) "
              "and use log det Σ = 2 Σᵢ log L_ii")
STABLE_HINT = ("do not form Σ, Σ⁻¹ or det Σ (their rounding errors grow with cond(Σ) = cond(L)²): "
               + SOLVE_HINT)
KL_HINT = "KL = ½ (‖L‖²_F + ‖μ‖² − d) − Σᵢ log L_ii: tr Σ is the sum of squares of L, and log det Σ = 2 Σᵢ log L_ii"


# -- strategies ----------------------------------------------------------------


@st.composite
def _raws(draw, dtype=None):
    """``raw (*B, d, d)`` in halves of [−4, 4]."""
    dtype = dtype or draw(S.DTYPES)
    batch = draw(S.batch_shapes(max_dims=2, max_side=2))
    d = draw(st.integers(1, 3))
    return draw(S.halves((*batch, d, d), -4, 4, dtype))


@st.composite
def _gaussians(draw, n_vectors: int, dtype=None):
    """``(L, vectors)``: a factor ``(*B, d, d)`` and ``n_vectors`` halves ``(*B, d)``, all with one batch shape."""
    dtype = dtype or draw(S.DTYPES)
    batch = draw(S.batch_shapes(max_dims=2, max_side=2))
    d = draw(st.integers(1, 3))
    L = draw(S.scale_trils(batch, d, dtype))
    return L, [draw(S.halves((*batch, d), -3, 3, dtype)) for _ in range(n_vectors)]


@st.composite
def _broadcasting(draw, n_vectors: int):
    """Like ``_gaussians``, but one argument has the batch ``(a, b)`` and the others ``(b,)``, ``(a, 1)`` or ``(1, b)``.

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


def _expect_shape_dtype(ctx: Context, got, shape: tuple[int, ...], dtype: torch.dtype, what: str) -> torch.Tensor:
    """``got`` must be a tensor of ``shape`` and ``dtype`` (before its values are judged part by part)."""
    if not isinstance(got, torch.Tensor):
        ctx.fail(f"{what} is not a tensor", expected=f"a tensor of shape {shape}", got=got, hint="return a torch.Tensor")
    if tuple(got.shape) != shape:
        ctx.fail(f"{what} has the wrong shape", expected=f"shape {shape}", got=f"shape {tuple(got.shape)}",
                 hint="keep the input's shape: every leading batch dimension and the (d, d) matrix")
    if got.dtype != dtype:
        ctx.fail(f"{what} has the wrong dtype", expected=str(dtype), got=str(got.dtype),
                 hint="keep the input's dtype: do not hard-code float32 or call .float()/.double()")
    return got


def _expect_grad(ctx: Context, got, expected: torch.Tensor, what: str, hint: str) -> None:
    if got is None:
        ctx.fail(f"no gradient reaches {what}", expected=expected, got="no gradient",
                 hint="build the result from the input tensors with torch operations (no .detach(), numpy or torch.tensor(...))")
    expect_tensor(ctx, got, expected, what=f"the gradient w.r.t. {what}", hint=hint)


# -- B1 scale_tril_from_raw ----------------------------------------------------


@check("B1", "L keeps raw below the diagonal, zeros above it, softplus on it", points=2, public=True, kind="property",
       hint="L = torch.tril(raw, -1) + torch.diag_embed(F.softplus(raw.diagonal(dim1=-2, dim2=-1)))")
@for_all(_raws(), max_examples=12)
def _tril_values(ctx: Context, raw: torch.Tensor) -> None:
    reply = ctx.reply(raw=raw, return_args=True)
    expected = reference.scale_tril_from_raw(raw)
    got = _expect_shape_dtype(ctx, reply.value, tuple(raw.shape), raw.dtype, "L")
    upper = got.triu(1)
    if bool((upper != 0).any()):
        ctx.fail("L has nonzero entries above the diagonal", expected=expected, got=got,
                 hint="zero the strict upper triangle: torch.tril(raw, -1) keeps only the part below the diagonal")
    expect_close(ctx, got.diagonal(dim1=-2, dim2=-1), expected.diagonal(dim1=-2, dim2=-1), what="the diagonal of L",
                 hint="the diagonal is softplus(raw_ii) = log(1 + exp(raw_ii)): not exp(raw_ii), not raw_ii itself")
    expect_close(ctx, got.tril(-1), expected.tril(-1), what="the part of L below the diagonal",
                 hint="keep raw's strictly lower triangle unchanged (torch.tril(raw, -1))")
    after = reply.args_after["kwargs"]["raw"]
    if not torch.equal(after, raw):
        ctx.fail("raw was modified in place", expected=raw, got=after,
                 hint="build a new tensor (torch.tril, torch.diag_embed); do not write into raw")


@check("B1", "gradient w.r.t. raw: zero above, identity below, sigmoid on the diagonal", points=1, kind="gradient",
       hint="L must be built from raw by differentiable operations: tril(raw, -1) + diag_embed(softplus(diagonal))")
@for_all(_raws(F64), max_examples=8)
def _tril_gradient(ctx: Context, raw: torch.Tensor) -> None:
    cotangent = torch.arange(1, raw.numel() + 1, dtype=F64).reshape(raw.shape)
    reply = ctx.reply(raw=Leaf(raw, "raw"), grad=[{"output": None, "cotangent": cotangent}])
    _expect_shape_dtype(ctx, reply.value, tuple(raw.shape), raw.dtype, "L")
    leaf = raw.clone().requires_grad_()
    (expected,) = torch.autograd.grad(reference.scale_tril_from_raw(leaf), leaf, cotangent)
    _expect_grad(ctx, reply.grads[0].get("raw"), expected, "raw",
                 "dL/draw is the upstream gradient below the diagonal, zero above it, "
                 "and sigmoid(raw_ii) times it on the diagonal (softplus' derivative)")


# -- B2 covariance_from_scale_tril ---------------------------------------------

_COV_HINT = "Σ = L Lᵀ (L @ L.mT), not Lᵀ L: Cov(μ + L ε) = L Cov(ε) Lᵀ"


@check("B2", "Σ = L Lᵀ for a hand-checkable batch of factors", points=1, public=True, kind="value", hint=_COV_HINT)
def _cov_known(ctx: Context) -> None:
    L = torch.tensor([[[1.0, 0.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 1.0]],
                      [[1.0, 0.0, 0.0], [1.5, 0.5, 0.0], [-1.0, 2.0, 0.5]]])  # L Lᵀ and Lᵀ L differ in every block
    got = ctx.call(L=L)
    expect_tensor(ctx, got, reference.covariance_from_scale_tril(L), what="Σ", dtype=L.dtype, hint=_COV_HINT)


@check("B2", "Σ over random batches of factors in float32 and float64", points=1, kind="property", hint=_COV_HINT)
@for_all(_gaussians(0).map(lambda e: e[0]), max_examples=10)
def _cov_random(ctx: Context, L: torch.Tensor) -> None:
    got = ctx.call(L=L)
    expect_tensor(ctx, got, reference.covariance_from_scale_tril(L), what="Σ", dtype=L.dtype, hint=_COV_HINT)


# -- B3 rsample_full_gaussian --------------------------------------------------

_RSAMPLE_HINT = ("z = mu + (L @ eps.unsqueeze(-1)).squeeze(-1): row i of L times eps; "
                 "eps @ L or L.mT would compute Lᵀ ε")


@check("B3", "z = μ + L ε, same batch shape, float32 and float64", points=1, public=True, kind="property",
       hint=_RSAMPLE_HINT)
@for_all(_gaussians(2), max_examples=12)
def _rsample_values(ctx: Context, example) -> None:
    L, (mu, eps) = example
    got = ctx.call(mu=mu, L=L, eps=eps)
    expect_tensor(ctx, got, reference.rsample_full_gaussian(mu, L, eps), what="z", dtype=mu.dtype, hint=_RSAMPLE_HINT)


@check("B3", "batch dims of mu, L and eps broadcast against each other", points=1, kind="property",
       hint="use a batched product that broadcasts: L @ eps.unsqueeze(-1), or torch.einsum('...ij,...j->...i', L, eps)")
@for_all(_broadcasting(2), max_examples=10)
def _rsample_broadcast(ctx: Context, example) -> None:
    L, (eps, mu) = example
    got = ctx.call(mu=mu, L=L, eps=eps)
    expect_tensor(ctx, got, reference.rsample_full_gaussian(mu, L, eps), what="z", dtype=mu.dtype)


@check("B3", "reparameterised: gradients w.r.t. mu and the lower triangle of L", points=1, kind="gradient",
       hint="z must stay a differentiable function of mu and L: no .detach(), torch.no_grad() or sample()")
@for_all(_gaussians(2, F64), max_examples=8)
def _rsample_gradient(ctx: Context, example) -> None:
    L, (mu, eps) = example
    cotangent = torch.arange(1, mu.numel() + 1, dtype=F64).reshape(mu.shape) / 2
    reply = ctx.reply(mu=Leaf(mu, "mu"), L=Leaf(L, "L"), eps=eps, grad=[{"output": None, "cotangent": cotangent}])
    expect_tensor(ctx, reply.value, reference.rsample_full_gaussian(mu, L, eps), what="z", dtype=F64)
    leaves = mu.clone().requires_grad_(), L.clone().requires_grad_()
    g_mu, g_L = torch.autograd.grad(reference.rsample_full_gaussian(leaves[0], leaves[1], eps), leaves, cotangent)
    grads = reply.grads[0]
    _expect_grad(ctx, grads.get("mu"), g_mu, "mu", "dz/dmu is the identity")
    got_L = grads.get("L")
    # Only the lower triangle is compared: a solution that applies tril(L) first is correct too.
    _expect_grad(ctx, None if got_L is None else got_L.tril(), g_L.tril(), "L (lower triangle)",
                 "dz_i/dL_ij = eps_j: the gradient w.r.t. L is the outer product of the upstream gradient and eps")


# -- B4 full_gaussian_log_prob -------------------------------------------------


def _log_prob64(z: torch.Tensor, mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return reference.full_gaussian_log_prob(z.to(F64), mu.to(F64), L.to(F64))


@check("B4", "log N(z; μ, L Lᵀ) values, float32 and float64", points=1, public=True, kind="property",
       hint="log N = −½ ‖ε‖² − Σᵢ log L_ii − (d/2) log 2π with ε = L⁻¹(z − μ); " + SOLVE_HINT)
@for_all(_gaussians(2), max_examples=12)
def _log_prob_values(ctx: Context, example) -> None:
    L, (z, mu) = example
    got = ctx.call(z=z, mu=mu, L=L)
    expect_tensor(ctx, got, _log_prob64(z, mu, L), what="the log-density", dtype=z.dtype)


@check("B4", "batch dims of z, mu and L broadcast in the log-density", points=1, kind="property",
       hint="torch.linalg.solve_triangular broadcasts batch dims: solve with L against (z - mu).unsqueeze(-1)")
@for_all(_broadcasting(2), max_examples=10)
def _log_prob_broadcast(ctx: Context, example) -> None:
    L, (z, mu) = example
    got = ctx.call(z=z, mu=mu, L=L)
    expect_tensor(ctx, got, _log_prob64(z, mu, L), what="the log-density", dtype=z.dtype)


@st.composite
def _ill_conditioned(draw):
    """``(z, mu, L)`` in float64, ``d`` 3…5, ``L`` with diagonal 2^k down to 1.2e-4 and off-diagonals in [−2, 2].

    The diagonal entries are powers of two and everything else halves, so
    ``z = μ + L ε`` and any forward substitution are exact in float64: the
    reference's value is the true log-density, while cond(L) reaches 1e12 and
    more (cond(Σ) = cond(L)²), where Σ⁻¹, det Σ and solves with Σ break down.
    """
    diag_exponents = (-13, -12, -11, -7, -1, 0, 1)  # the minimal (shrunk) diagonal entry is 2^-13 ≈ 1.2e-4
    d = draw(st.integers(3, 5))
    batch = draw(S.batch_shapes(max_dims=2, min_dims=1))  # one batch for z, mu and L: B4's broadcasting is checked apart
    n = math.prod(batch) * d
    exponents = draw(st.lists(st.sampled_from(diag_exponents), min_size=n, max_size=n))
    diagonal = torch.tensor([2.0**k for k in exponents], dtype=F64).reshape(*batch, d)
    L = torch.tril(draw(S.halves((*batch, d, d), -2, 2)), -1) + torch.diag_embed(diagonal)
    mu = draw(S.halves((*batch, d), -4, 4))
    eps = draw(S.halves((*batch, d), -2, 2))  # the whitened point: ε = L⁻¹ (z − μ) exactly
    z = mu + torch.einsum("...ij,...j->...i", L, eps)  # exact (dyadic)
    return z, mu, L


@check("B4", "stable for ill-conditioned L (diagonal down to 1.2e-4), float64", points=2, kind="property",
       hint=STABLE_HINT)
@for_all(_ill_conditioned(), max_examples=15)
def _log_prob_ill_conditioned(ctx: Context, example) -> None:
    z, mu, L = example
    got = ctx.call(z=z, mu=mu, L=L)
    cond = torch.linalg.cond(L).max().item()
    expect_tensor(ctx, got, _log_prob64(z, mu, L), dtype=F64, hint=STABLE_HINT,
                  what=f"the log-density for an ill-conditioned L (cond(L) up to {cond:.1e}, cond(Σ) = cond(L)²)")


# -- B5 kl_full_gaussian_standard_normal ---------------------------------------


def _kl64(mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return reference.kl_full_gaussian_standard_normal(mu.to(F64), L.to(F64))


@check("B5", "KL on hand-checkable means and factors", points=1, public=True, kind="value", hint=KL_HINT)
def _kl_known(ctx: Context) -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])
    L = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],  # N(0, I): KL 0
                      [[2.0, 0.0], [1.0, 1.0]],  # ½ (6 + 5 − 2) − log 2
                      [[0.5, 0.0], [-1.5, 2.0]],  # ½ (6.5 + 1.25 − 2) − log 1
                      [[0.5, 0.0], [0.0, 0.5]]])  # ½ (0.5 − 2) + 2 log 2
    got = ctx.call(mu=mu, L=L)
    expect_tensor(ctx, got, _kl64(mu, L), what="the KL", dtype=mu.dtype, hint=KL_HINT)


@check("B5", "KL closed form on random batches, float32 and float64", points=1, kind="property", hint=KL_HINT)
@for_all(_gaussians(1), max_examples=12)
def _kl_random(ctx: Context, example) -> None:
    L, (mu,) = example
    got = ctx.call(mu=mu, L=L)
    expect_tensor(ctx, got, _kl64(mu, L), what="the KL", dtype=mu.dtype)


@check("B5", "batch dims of mu and L broadcast in the KL", points=1, kind="property",
       hint="reduce over the last dim of mu and the last two of L, then let the batch dims broadcast")
@for_all(_broadcasting(1), max_examples=10)
def _kl_broadcast(ctx: Context, example) -> None:
    L, (mu,) = example
    got = ctx.call(mu=mu, L=L)
    expect_tensor(ctx, got, _kl64(mu, L), what="the KL", dtype=mu.dtype)
