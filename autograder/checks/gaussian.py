"""Checks of Part B (full-covariance Gaussian via its Cholesky factor): B1 … B5.

Inputs are halves (``gaussian_strategies``; powers of two on ill-conditioned
diagonals), so that ``L ε``, ``L Lᵀ`` and forward substitution are exact and
any correct order of operations gives the reference's value. Expected
log-densities and KL values are computed by the reference in float64 and
judged with the tolerance of the student's dtype.
"""

from __future__ import annotations

import math

import torch

from autograder.checks import strategies as S
from autograder.checks.compare import DTYPE_CHECK, DTYPE_HINT, UNBATCHED, expect_shape, expect_tensor, expect_unbatched
from autograder.checks.compare import keeps_dtype, tolerance
from autograder.checks.diagnose import Diagnosis, expect_diagnosed, judge_hard_case, once
from autograder.checks.evidence import log_density_probe
from autograder.checks.framework import Context, Failure, for_all
from autograder.checks.gaussian_strategies import broadcasting as _broadcasting, gaussians as _gaussians
from autograder.checks.gaussian_strategies import raws as _raws
from autograder.checks.registry import check
from autograder.sandbox.runtime.wire import Leaf

F64 = torch.float64

SOLVE_HINT = "see the contract of B4: a triangular solve with L, and log det Σ from the diagonal of L (seed 004 §2)"
STABLE_HINT = ("your log-density drifts when L is ill-conditioned: forming Σ, its inverse or its determinant loses "
               "digits as cond(Σ) = cond(L)² grows; " + SOLVE_HINT)
KL_HINT = "see the contract of B5 and seed 004 §2: the closed-form KL of N(mu, L Lᵀ) from N(0, I)"
LOG_PROB_HINT = "see the contract of B4: the log-density of N(mu, L Lᵀ) at z (seed 004 §2)"


def _sum_log_diagonal(L: torch.Tensor) -> torch.Tensor:
    """Σᵢ log L_ii (the contract's log det Σ is twice it)."""
    return torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(dim=-1)


_LOG_DET_LABEL = "your log det Σ is Σᵢ log L_ii; for Σ = L Lᵀ it is twice that"
_LOG_PROB_MISTAKES = (
    Diagnosis("your log-density lacks the constant −(d/2) log 2π",
              lambda z, expected, **_: expected + z.shape[-1] / 2 * math.log(2 * math.pi)),
    Diagnosis(_LOG_DET_LABEL, lambda L, expected, **_: expected + _sum_log_diagonal(L) / 2),
)
_KL_MISTAKES = (
    Diagnosis("your KL is twice the closed form: the ½ in front is missing", lambda expected, **_: 2 * expected),
    Diagnosis(_LOG_DET_LABEL, lambda L, expected, **_: expected + _sum_log_diagonal(L) / 2),
    Diagnosis("your KL lacks the −d (the dimension) inside the ½ (…)",
              lambda mu, expected, **_: expected + mu.shape[-1] / 2),
    Diagnosis("your tr Σ counts only the diagonal of L: tr(L Lᵀ) is the sum of squares of every entry of L",
              lambda L, expected, **_: expected - (L.tril(-1) ** 2).sum((-2, -1)) / 2),
)


_SHAPE_HINT = "see the contract of B1: L has raw's shape, every leading batch dimension and the (d, d) matrix"
#: A small factor, mean and point with one batch dimension, for the dtype checks (converted to each dtype).
_L, _MU, _Z = torch.tensor([[[1.0, 0.0], [0.5, 2.0]]]), torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 0.5]])


def _expect_grad(ctx: Context, got, expected: torch.Tensor, what: str, hint: str) -> None:
    if got is None:
        ctx.fail(f"no gradient reaches {what}", expected=expected, got="no gradient",
                 hint="your result is cut off from the inputs' graph (a detach, numpy, a new tensor or an in-place "
                      "copy on the way): the contract asks a differentiable result")
    expect_tensor(ctx, got, expected, what=f"the gradient w.r.t. {what}", hint=hint)


# -- B1 scale_tril_from_raw ----------------------------------------------------

_TRIL_HINT = "see the contract of B1: raw's strictly lower part, zeros above the diagonal, softplus on it"
_DIAGONAL_MISTAKES = (
    # first: on the hand-made input exp(raw_ii) is close to it too (inf at 100, ~0 at −20)
    Diagnosis("your diagonal is log(1 + exp(raw_ii)) computed as written: exp overflows in float32 once raw_ii > 88 "
              "(and 1 + exp(raw_ii) rounds to 1 far below 0); softplus stays finite and positive",
              lambda raw: torch.log(1 + torch.exp(raw.diagonal(dim1=-2, dim2=-1)))),
    Diagnosis("your diagonal is exp(raw_ii); the contract of B1 asks softplus(raw_ii)",
              lambda raw: raw.diagonal(dim1=-2, dim2=-1).exp()),
    Diagnosis("your diagonal is raw_ii unchanged; the contract of B1 passes it through softplus",
              lambda raw: raw.diagonal(dim1=-2, dim2=-1)),
    Diagnosis("your diagonal is |raw_ii|; the contract of B1 asks softplus(raw_ii)",
              lambda raw: raw.diagonal(dim1=-2, dim2=-1).abs()),
)
_LOWER_MISTAKES = (
    Diagnosis("your part below the diagonal went through softplus too; the contract of B1 keeps raw's values there",
              lambda raw: torch.nn.functional.softplus(raw).tril(-1)),
    Diagnosis("your part below the diagonal went through exp too; the contract of B1 keeps raw's values there",
              lambda raw: raw.exp().tril(-1)),
    Diagnosis("your L is zero below the diagonal; the contract of B1 keeps raw's values there",
              lambda raw: torch.zeros_like(raw)),
    Diagnosis("your part below the diagonal is raw's upper part transposed; the contract of B1 keeps raw's own "
              "lower part", lambda raw: raw.mT.tril(-1)),
)


def _softplus_telling() -> list[torch.Tensor]:
    """A float32 raw with diagonal entries 100 and −20, where log(1 + exp(·)) over- and underflows (the drawn raws
    are small halves, where every form of softplus agrees)."""
    return [torch.tensor([[[100.0, 0.0], [-1.5, -20.0]]])]


@check("B1", "L keeps raw below the diagonal, zeros above it, softplus on it", points=1.5, public=True, kind="property",
       hint=_TRIL_HINT)
@for_all(_raws(), max_examples=12, examples=_softplus_telling)
def _tril_values(ctx: Context, raw: torch.Tensor) -> None:
    reply = ctx.reply(raw=raw, return_args=True)
    expected = ctx.expected("scale_tril_from_raw", raw)
    got = expect_shape(ctx, reply.value, tuple(raw.shape), what="L", hint=_SHAPE_HINT)
    upper = got.triu(1)
    if bool((upper != 0).any()):
        kept = torch.equal(upper, raw.triu(1))
        ctx.fail("L has nonzero entries above the diagonal", expected=expected, got=got,
                 hint="your L keeps raw's entries above the diagonal; the contract of B1 sets them to zero" if kept
                 else "see the contract of B1: L is zero above the diagonal")
    expect_diagnosed(ctx, got.diagonal(dim1=-2, dim2=-1), expected.diagonal(dim1=-2, dim2=-1), _DIAGONAL_MISTAKES,
                     {"raw": raw}, what="the diagonal of L", hint="see the contract of B1: the diagonal of L")
    expect_diagnosed(ctx, got.tril(-1), expected.tril(-1), _LOWER_MISTAKES, {"raw": raw},
                     what="the part of L below the diagonal", hint="see the contract of B1: L below the diagonal")
    after = reply.args_after["kwargs"]["raw"]
    if not torch.equal(after, raw):
        ctx.fail("raw was modified in place", expected=raw, got=after,
                 hint="your function writes into raw; the contract of B1 leaves it unchanged")


@check("B1", UNBATCHED, points=0.25, public=True, kind="property",
       hint="see the contract of B1: raw (..., d, d) may have no leading dimension at all")
@for_all(_raws(batch=()), max_examples=8)
def _tril_unbatched(ctx: Context, raw: torch.Tensor) -> None:
    expect_unbatched(ctx, {"raw": raw}, ("raw",), ctx.expected("scale_tril_from_raw", raw), names=("L",), hint=_TRIL_HINT)


check("B1", DTYPE_CHECK, points=0.25, public=True, kind="value", hint=DTYPE_HINT)(
    keeps_dtype(lambda ctx, dtype: ctx.call(raw=_L.to(dtype)), ("L",)))


@check("B1", "gradient w.r.t. raw: zero above, identity below, sigmoid on the diagonal", points=1, kind="gradient",
       hint="see the contract of B1: L is a differentiable function of raw")
@for_all(_raws(F64), max_examples=8)
def _tril_gradient(ctx: Context, raw: torch.Tensor) -> None:
    cotangent = torch.arange(1, raw.numel() + 1, dtype=F64).reshape(raw.shape)
    reply = ctx.reply(raw=Leaf(raw, "raw"), grad=[{"output": None, "cotangent": cotangent}])
    expect_shape(ctx, reply.value, tuple(raw.shape), what="L", hint=_SHAPE_HINT)
    leaf = raw.clone().requires_grad_()
    _, (expected,) = ctx.expected_grad("scale_tril_from_raw", leaf, wrt=(leaf,), cotangent=cotangent)
    _expect_grad(ctx, reply.grads[0].get("raw"), expected, "raw",
                 "your dL/draw differs: below the diagonal it passes the upstream gradient, above it is zero, "
                 "and on the diagonal it is the derivative of softplus times it")


# -- B2 covariance_from_scale_tril ---------------------------------------------

_COV_HINT = "see the contract of B2 and seed 004 §2: the covariance of mu + L ε with ε ~ N(0, I)"
_COV_MISTAKES = (
    Diagnosis("your Σ equals Lᵀ L; the contract of B2 asks L Lᵀ (the transpose on the right factor)",
              lambda L: L.mT @ L),
    Diagnosis("your Σ equals L L, without a transpose; the contract of B2 asks L Lᵀ", lambda L: L @ L),
    Diagnosis("your Σ squares L entry by entry; the contract of B2 asks the matrix product L Lᵀ", lambda L: L * L),
    Diagnosis("your Σ equals L; the contract of B2 asks L Lᵀ", lambda L: L),
)


@check("B2", "Σ = L Lᵀ for a hand-checkable batch of factors", points=1, public=True, kind="value", hint=_COV_HINT)
def _cov_known(ctx: Context) -> None:
    L = torch.tensor([[[1.0, 0.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 1.0]],
                      [[1.0, 0.0, 0.0], [1.5, 0.5, 0.0], [-1.0, 2.0, 0.5]]])  # L Lᵀ and Lᵀ L differ in every block
    got = ctx.call(L=L)
    expect_diagnosed(ctx, got, ctx.expected("covariance_from_scale_tril", L), _COV_MISTAKES, {"L": L}, what="Σ",
                     dtype=L.dtype, hint=_COV_HINT)


@check("B2", "Σ over random batches of factors in float32 and float64", points=0.5, kind="property", hint=_COV_HINT,
       keeps_inputs=True)
@for_all(_gaussians(0).map(lambda e: e[0]), max_examples=10)
def _cov_random(ctx: Context, L: torch.Tensor) -> None:
    got = ctx.call(L=L)
    expect_diagnosed(ctx, got, ctx.expected("covariance_from_scale_tril", L), _COV_MISTAKES, {"L": L}, what="Σ",
                     dtype=L.dtype, hint=_COV_HINT)


@check("B2", UNBATCHED, points=0.25, public=True, kind="property",
       hint="see the contract of B2: L (..., d, d) may have no leading dimension at all")
@for_all(_gaussians(0, batch=()).map(lambda e: e[0]), max_examples=8)
def _cov_unbatched(ctx: Context, L: torch.Tensor) -> None:
    expect_unbatched(ctx, {"L": L}, ("L",), ctx.expected("covariance_from_scale_tril", L), names=("Σ",), hint=_COV_HINT)


check("B2", DTYPE_CHECK, points=0.25, public=True, kind="value", hint=DTYPE_HINT)(
    keeps_dtype(lambda ctx, dtype: ctx.call(L=_L.to(dtype)), ("Σ",)))


# -- B3 rsample_full_gaussian --------------------------------------------------

_RSAMPLE_HINT = "see the contract of B3: mu plus L times eps, one matrix-vector product per batch element"
_RSAMPLE_MISTAKES = (
    Diagnosis("your z is mu + Lᵀ eps: row i of L must multiply eps, not column i",
              lambda mu, L, eps: mu + (L.mT @ eps[..., None])[..., 0]),
    Diagnosis("your z is L eps without mu", lambda mu, L, eps: (L @ eps[..., None])[..., 0]),
    Diagnosis("your z scales eps by the diagonal of L only; the contract of B3 multiplies by the whole L",
              lambda mu, L, eps: mu + L.diagonal(dim1=-2, dim2=-1) * eps),
    Diagnosis("your z is mu + L L eps", lambda mu, L, eps: mu + (L @ L @ eps[..., None])[..., 0]),
)


@check("B3", "z = μ + L ε, same batch shape, float32 and float64", points=0.5, public=True, kind="property",
       keeps_inputs=True, hint=_RSAMPLE_HINT)
@for_all(_gaussians(2), max_examples=12)
def _rsample_values(ctx: Context, example) -> None:
    L, (mu, eps) = example
    got = ctx.call(mu=mu, L=L, eps=eps)
    expect_diagnosed(ctx, got, ctx.expected("rsample_full_gaussian", mu, L, eps), _RSAMPLE_MISTAKES,
                     {"mu": mu, "L": L, "eps": eps}, what="z", dtype=mu.dtype, hint=_RSAMPLE_HINT)


@check("B3", UNBATCHED, points=0.25, public=True, kind="property",
       hint="see the contract of B3: mu (..., d), L (..., d, d) and eps (..., d) may have no leading dimension at all")
@for_all(_gaussians(2, batch=()), max_examples=8)
def _rsample_unbatched(ctx: Context, example) -> None:
    L, (mu, eps) = example
    expect_unbatched(ctx, {"mu": mu, "L": L, "eps": eps}, ("mu", "L", "eps"),
                     ctx.expected("rsample_full_gaussian", mu, L, eps), names=("z",), hint=_RSAMPLE_HINT)


check("B3", DTYPE_CHECK, points=0.25, public=True, kind="value", hint=DTYPE_HINT)(
    keeps_dtype(lambda ctx, dtype: ctx.call(mu=_MU.to(dtype), L=_L.to(dtype), eps=_Z.to(dtype)), ("z",)))


@check("B3", "batch dims of mu, L and eps broadcast against each other", points=1, kind="property",
       hint="see the contract of B3: the leading dimensions of mu, L and eps broadcast against each other")
@for_all(_broadcasting(2), max_examples=10)
def _rsample_broadcast(ctx: Context, example) -> None:
    L, (eps, mu) = example
    got = ctx.call(mu=mu, L=L, eps=eps)
    expect_tensor(ctx, got, ctx.expected("rsample_full_gaussian", mu, L, eps), what="z", dtype=mu.dtype)


@check("B3", "reparameterised: gradients w.r.t. mu and the lower triangle of L", points=1, kind="gradient",
       hint="see the contract of B3: z is a differentiable function of mu and L")
@for_all(_gaussians(2, F64), max_examples=8)
def _rsample_gradient(ctx: Context, example) -> None:
    L, (mu, eps) = example
    cotangent = torch.arange(1, mu.numel() + 1, dtype=F64).reshape(mu.shape) / 2
    reply = ctx.reply(mu=Leaf(mu, "mu"), L=Leaf(L, "L"), eps=eps, grad=[{"output": None, "cotangent": cotangent}])
    expect_tensor(ctx, reply.value, ctx.expected("rsample_full_gaussian", mu, L, eps), what="z", dtype=F64)
    leaves = mu.clone().requires_grad_(), L.clone().requires_grad_()
    _, (g_mu, g_L) = ctx.expected_grad("rsample_full_gaussian", *leaves, eps, wrt=leaves, cotangent=cotangent)
    grads = reply.grads[0]
    _expect_grad(ctx, grads.get("mu"), g_mu, "mu", "your dz/dmu is not the identity")
    got_L = grads.get("L")
    # Only the lower triangle is compared: a solution that applies tril(L) first is correct too.
    _expect_grad(ctx, None if got_L is None else got_L.tril(), g_L.tril(), "L (lower triangle)",
                 "your gradient w.r.t. L differs: dz_i/dL_ij is eps_j (seed 004 §2)")


# -- B4 full_gaussian_log_prob -------------------------------------------------


def _log_prob64(ctx: Context, z: torch.Tensor, mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return ctx.expected("full_gaussian_log_prob", z.to(F64), mu.to(F64), L.to(F64))


def _determinant_telling() -> list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
    """Float32 factors of d = 64 whose det Σ under- and overflows (2^±384): a log-density that takes the log of a
    determinant is -inf or inf there, one from the diagonal of L is exact (the drawn factors are too small)."""
    d = 64
    eye, sub = torch.eye(d), torch.diag(torch.full((d - 1,), 0.5), -1)
    L = torch.stack([0.125 * eye + 0.125 * sub, 8 * eye + sub])
    z = torch.arange(2 * d, dtype=torch.float32).reshape(2, d) % 3 / 2
    return [(L, (z, torch.zeros(2, d)))]


@check("B4", "log N(z; μ, L Lᵀ) values, float32 and float64", points=1, public=True, kind="property",
       keeps_inputs=True, hint=LOG_PROB_HINT)
@for_all(_gaussians(2), max_examples=12, examples=_determinant_telling)
def _log_prob_values(ctx: Context, example) -> None:
    L, (z, mu) = example
    _check_log_prob(ctx, z, mu, L, LOG_PROB_HINT)


def _check_log_prob(ctx: Context, z: torch.Tensor, mu: torch.Tensor, L: torch.Tensor, hint: str) -> None:
    """The student's log-density against the reference's; a mismatch no diagnosis names is probed."""
    got = ctx.call(z=z, mu=mu, L=L)
    expected = _log_prob64(ctx, z, mu, L)
    try:
        expect_diagnosed(ctx, got, expected, _LOG_PROB_MISTAKES, {"z": z, "L": L.to(F64), "expected": expected},
                         what="the log-density", dtype=z.dtype, hint=hint)
    except Failure as failure:
        if failure.hint == hint:
            failure.hint = once(ctx, "probed", lambda: log_density_probe(ctx, z, mu, L)) or hint
        raise


@check("B4", UNBATCHED, points=0.25, public=True, kind="property",
       hint="see the contract of B4: z, mu (..., d) and L (..., d, d) may have no leading dimension at all; the "
            "log-density is then 0-dim")
@for_all(_gaussians(2, batch=()), max_examples=8)
def _log_prob_unbatched(ctx: Context, example) -> None:
    L, (z, mu) = example
    expect_unbatched(ctx, {"z": z, "mu": mu, "L": L}, ("z", "mu", "L"), _log_prob64(ctx, z, mu, L),
                     names=("the log-density",), hint=LOG_PROB_HINT)


check("B4", DTYPE_CHECK, points=0.25, public=True, kind="value", hint=DTYPE_HINT)(
    keeps_dtype(lambda ctx, dtype: ctx.call(z=_Z.to(dtype), mu=_MU.to(dtype), L=_L.to(dtype)), ("the log-density",)))


@check("B4", "batch dims of z, mu and L broadcast in the log-density", points=1, kind="property",
       hint="see the contract of B4: the leading dimensions of z, mu and L broadcast against each other")
@for_all(_broadcasting(2), max_examples=10)
def _log_prob_broadcast(ctx: Context, example) -> None:
    L, (z, mu) = example

    def judge(ex: tuple[torch.Tensor, ...]) -> None:
        if ex is not args:
            _check_log_prob(ctx, *ex, ctx.check.hint)
            return
        expect_tensor(ctx, ctx.call(z=z, mu=mu, L=L), _log_prob64(ctx, z, mu, L), what="the log-density",
                      dtype=z.dtype, hint=ctx.check.hint)

    def expanded(ex: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        batch = torch.broadcast_shapes(z.shape[:-1], mu.shape[:-1], L.shape[:-2])
        return z.expand(*batch, -1).clone(), mu.expand(*batch, -1).clone(), L.expand(*batch, -1, -1).clone()

    args = (z, mu, L)
    judge_hard_case(ctx, judge, args, expanded, "the log-density is wrong with z, mu and L expanded to one batch shape "
                    "too (see the check \"log N(z; μ, L Lᵀ) values\")")


@check("B4", "stable for ill-conditioned L (diagonal down to 1.2e-4), float64", points=1.5, kind="property",
       hint=STABLE_HINT)
@for_all(S.ill_conditioned_gaussians().filter(lambda e: S.well_posed_log_density(*e, *tolerance(F64))),
         max_examples=15)
def _log_prob_ill_conditioned(ctx: Context, example) -> None:
    def judge(ex: tuple[torch.Tensor, ...]) -> None:
        if ex is not example:
            _check_log_prob(ctx, *ex, STABLE_HINT)
            return
        z, mu, L = ex
        got = ctx.call(z=z, mu=mu, L=L)
        cond = torch.linalg.cond(L).max().item()
        expect_tensor(ctx, got, _log_prob64(ctx, z, mu, L), dtype=F64, hint=STABLE_HINT,
                      what=f"the log-density for an ill-conditioned L (cond(L) up to {cond:.1e}, cond(Σ) = cond(L)²)")

    judge_hard_case(ctx, judge, example, S.well_conditioned,
                    "the log-density is wrong for a well-conditioned L too (the same point with L's small diagonal "
                    "entries raised to 1; see the check \"log N(z; μ, L Lᵀ) values\")")


# -- B5 kl_full_gaussian_standard_normal ---------------------------------------


def _kl64(ctx: Context, mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    return ctx.expected("kl_full_gaussian_standard_normal", mu.to(F64), L.to(F64))


@check("B5", "KL on hand-checkable means and factors", points=1, public=True, kind="value", hint=KL_HINT)
def _kl_known(ctx: Context) -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]])
    L = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],  # N(0, I): KL 0
                      [[2.0, 0.0], [1.0, 1.0]],  # ½ (6 + 5 − 2) − log 2
                      [[0.5, 0.0], [-1.5, 2.0]],  # ½ (6.5 + 1.25 − 2) − log 1
                      [[0.5, 0.0], [0.0, 0.5]]])  # ½ (0.5 − 2) + 2 log 2
    got = ctx.call(mu=mu, L=L)
    expected = _kl64(ctx, mu, L)
    expect_diagnosed(ctx, got, expected, _KL_MISTAKES, {"mu": mu, "L": L.to(F64), "expected": expected},
                     what="the KL", dtype=mu.dtype, hint=KL_HINT)


@check("B5", "KL closed form on random batches, float32 and float64", points=0.5, kind="property", hint=KL_HINT,
       keeps_inputs=True)
@for_all(_gaussians(1), max_examples=12)
def _kl_random(ctx: Context, example) -> None:
    L, (mu,) = example
    got = ctx.call(mu=mu, L=L)
    expect_tensor(ctx, got, _kl64(ctx, mu, L), what="the KL", dtype=mu.dtype)


@check("B5", UNBATCHED, points=0.25, public=True, kind="property",
       hint="see the contract of B5: mu (..., d) and L (..., d, d) may have no leading dimension at all; the KL is "
            "then 0-dim")
@for_all(_gaussians(1, batch=()), max_examples=8)
def _kl_unbatched(ctx: Context, example) -> None:
    L, (mu,) = example
    expect_unbatched(ctx, {"mu": mu, "L": L}, ("mu", "L"), _kl64(ctx, mu, L), names=("the KL",), hint=KL_HINT)


check("B5", DTYPE_CHECK, points=0.25, public=True, kind="value", hint=DTYPE_HINT)(
    keeps_dtype(lambda ctx, dtype: ctx.call(mu=_MU.to(dtype), L=_L.to(dtype)), ("the KL",)))


@check("B5", "batch dims of mu and L broadcast in the KL", points=1, kind="property",
       hint="see the contract of B5: the leading dimensions of mu and L broadcast against each other")
@for_all(_broadcasting(1), max_examples=10)
def _kl_broadcast(ctx: Context, example) -> None:
    L, (mu,) = example
    got = ctx.call(mu=mu, L=L)
    expect_tensor(ctx, got, _kl64(ctx, mu, L), what="the KL", dtype=mu.dtype)
