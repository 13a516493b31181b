"""Checks of E2 ``log_likelihood_mc``, E3 ``log_likelihood_is`` and E4 ``elbo``: estimators of log p(x).

Each runs on the linear-Gaussian model of ``models`` (``x | z ~ N(Wz + b, s² I)``,
z ~ N(0, I)), whose log p(x) and posterior are closed forms (E4's: ``elbo_forms``).
A random estimate is accepted within a bound of ``stats`` that holds for every
correct implementation; E1, E5 and E6 are in ``vae``.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st
from torch import distributions as D

from autograder.checks import strategies as S
from autograder.checks.compare import DTYPE_CHECK, DTYPE_HINT, expect_tensor, keeps_dtype
from autograder.checks.diagnose import Diagnosis, judge_hard_case, once
from autograder.checks.elbo_forms import encoded as _encoded, kl_std_normal as _kl_std_normal
from autograder.checks.elbo_forms import gradient_forms as _gradient_forms, reconstruction_form as _reconstruction_form
from autograder.checks.evidence import expect_exact, spread_hint, sum_mistake, where_hint
from autograder.checks.framework import Context, Failure, for_all
from autograder.checks.models import encoder as _encoder, likelihood as _likelihood, log_px as _log_px
from autograder.checks.models import posterior as _posterior, prior_weight_moments as _prior_weight_moments
from autograder.checks.registry import check
from autograder.checks.stats import FALSE_FAIL, expect_within as _expect_within
from autograder.checks.stats import quadratic_halfwidth as _quadratic_halfwidth, seeded as _seeded
from autograder.checks.stats import mean_gradients as _mean_gradients, over_calls as _over_calls
from autograder.checks.stats import weight_halfwidth as _weight_halfwidth
from autograder.checks.vae import _expect_shaped
from autograder.sandbox.runtime import builders
from autograder.sandbox.runtime.wire import Fn, Leaf


# -- the linear-Gaussian model (E2, E3, E4) --------------------------------------


@S.composite
def _models(draw, dtype=None, orthogonal=False, log_scales=(0.0, 0.5), max_j=3):
    """``(x (B, D), W (D, J), b (D,), log_scale)``; W with orthogonal columns (one nonzero each) if asked."""
    dtype = dtype or draw(S.DTYPES)
    j = draw(st.integers(1, max_j))
    d = draw(st.integers(j if orthogonal else 1, 3))
    if orthogonal:
        rows = draw(st.permutations(range(d)))[:j]
        values = draw(st.lists(st.sampled_from([-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0]), min_size=j, max_size=j))
        W = torch.zeros(d, j, dtype=torch.float64)
        W[rows, list(range(j))] = torch.tensor(values, dtype=torch.float64)
    else:
        W = draw(S.halves((d, j), -1, 1))
    b = draw(S.halves((d,), -1, 1))
    x = draw(S.halves((draw(st.integers(1, 3)), d), -2, 2, dtype))
    return x, W, b, draw(st.sampled_from(log_scales))


# -- E2 log_likelihood_mc ---------------------------------------------------------

MC_SAMPLES = 10_000


def _mc_halfwidth(example, delta: float) -> torch.Tensor:
    var, sup = _prior_weight_moments(*example)
    return _weight_halfwidth(var, sup, MC_SAMPLES, delta)


MC_EXAMPLES = 10
MC_DELTA = FALSE_FAIL / (MC_EXAMPLES * 3)


def _expect_log_px(ctx: Context, got: torch.Tensor, lp: torch.Tensor, u: torch.Tensor, n: int, hint: str,
                   dtype: torch.dtype, terms: str = "likelihoods") -> None:
    """``got`` within the band that ``|mean w − 1| ≤ u`` allows around log p(x); the hint says where it lies."""
    lo, hi = lp + torch.log1p(-u.clamp(max=1.0)), lp + torch.log1p(u)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    _expect_within(ctx, got, centre, half, n, "the estimate of log p(x)",
                   "Bernstein bound on the mean importance weight, union over the check's comparisons",
                   where_hint(got, lo, hi, n, hint, terms), dtype)


@check("E2", "(B,) estimate within Monte-Carlo error of the closed-form log p(x)", points=1.5, public=True,
       kind="statistical test",
       hint="see the contract of E2: z from the prior, the log of the mean likelihood over the S samples")
@for_all(_models().filter(lambda e: bool((_mc_halfwidth(e, MC_DELTA) <= 0.3).all())), max_examples=MC_EXAMPLES)
def _mc_value(ctx: Context, example) -> None:
    # log p̂ = log p(x) + log(mean_S w) with w = p(x|z)/p(x) ∈ [0, sup w], E w = 1: Bernstein gives
    # P(|mean w − 1| ≥ u) ≤ δ = 1e-7 / (10 examples × 3 rows); S = 10000 draws.
    x, W, b, log_scale = example
    got = ctx.call(x=x, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), z_dim=W.shape[1], n_samples=MC_SAMPLES)
    got = _expect_shaped(ctx, got, (x.shape[0],))
    _expect_log_px(ctx, got, _log_px(*example), _mc_halfwidth(example, MC_DELTA), MC_SAMPLES,
                   "see the contract of E2: z from the prior, the log of the mean likelihood over the S samples",
                   x.dtype)


@S.composite
def _tiny_likelihoods(draw):
    """W = 0 and s = e⁻⁶ with x − b ≠ 0 in its first coordinate: every log p(x|z) ≈ −2·10⁴ or below."""
    dtype = draw(S.DTYPES)
    j, d, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    b = draw(S.halves((d,), -1, 1))
    diff = draw(S.halves((n, d), -2, 2))
    diff[:, 0] = torch.tensor(draw(st.lists(st.sampled_from([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0]), min_size=n, max_size=n)))
    return (b + diff).to(dtype), torch.zeros(d, j, dtype=torch.float64), b, -6.0, draw(st.sampled_from([4, 100]))


LOGSUMEXP_HINT = ("your estimate is not finite when every log-likelihood is below −10⁴: exp of such values underflows "
                  "to 0 before the log; the contract asks an estimate that stays finite (log-sum-exp)")
_UNDERFLOW_MISTAKES = (
    Diagnosis("your estimate is −∞ when every log-likelihood is below −10⁴: exp of such values underflows to 0 "
              "before the log (a naive log of a mean of exp); the contract asks an estimate that stays finite",
              lambda expected, **_: torch.full_like(expected, -math.inf)),
    Diagnosis("your estimate is NaN when every log-likelihood is below −10⁴: exp of such values underflows to 0 "
              "before a log or a division; the contract asks an estimate that stays finite",
              lambda expected, **_: torch.full_like(expected, math.nan)),
)
MC_CONSTANT = ("log p(x|z) does not depend on z here (W = 0), so every sample gives the same likelihood: your "
               "estimate depends on z where it should not")


def _dtype_model(dtype: torch.dtype) -> dict:
    """Arguments ``x`` and ``log_px_given_z`` of E2 … E4 for their dtype checks: x (1, 2), z_dim 1."""
    x, W, b = torch.tensor([[0.5, -1.0]], dtype=dtype), torch.tensor([[1.0], [0.0]]), torch.tensor([0.0, 0.5])
    return {"x": x, "log_px_given_z": _likelihood(W, b, 0.0, dtype), "encoder": _encoder(x, W, b, 0.0)}


check("E2", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(**{k: v for k, v in _dtype_model(dtype).items() if k != "encoder"}, z_dim=1,
                                n_samples=4)))


@check("E2", "finite when every log p(x|z) is below −10⁴", points=1, public=True, kind="value", hint=LOGSUMEXP_HINT)
@for_all(_tiny_likelihoods(), max_examples=10)
def _mc_stable(ctx: Context, example) -> None:
    # W = 0: log p(x|z) does not depend on z, so the estimate is exact; with s = 1 it is an ordinary input.
    def judge(ex) -> None:
        x, W, b, log_scale, n = ex
        args = dict(x=x, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), z_dim=W.shape[1], n_samples=n)
        mistakes = (_UNDERFLOW_MISTAKES if log_scale < 0 else ()) + (sum_mistake("likelihoods"),)
        expect_exact(ctx, args, _log_px(x, W, b, log_scale).to(x.dtype), LOGSUMEXP_HINT, MC_CONSTANT, mistakes)

    judge_hard_case(ctx, judge, example, lambda ex: (*ex[:3], 0.0, ex[4]),
                    "the estimate is wrong for ordinary likelihoods too (the same model with s = 1, where log p(x|z) "
                    "is near −2)")


@check("E2", "a likelihood much narrower than the prior", points=1, kind="statistical test",
       hint="see the contract of E2: the log of the mean likelihood, z from the prior N(0, I)")
def _mc_narrow(ctx: Context) -> None:
    # W = 2I, s = 1, four rows of x: log p(x) − E_prior log p(x|z) ≥ 2.5 nats, while Bernstein
    # (Var w ≤ 4.7, sup w ≤ 11.2) bounds the error by ≤ 0.14 with probability 1 − 1e-7 (union over 4 rows).
    W, b = 2.0 * torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    x = torch.tensor([[1.0, -1.0], [0.0, 0.5], [2.0, 2.0], [-1.5, 0.0]], dtype=torch.float64)
    example = (x, W, b, 0.0)
    got = ctx.call(x=x, log_px_given_z=_likelihood(W, b, 0.0, x.dtype), z_dim=2, n_samples=MC_SAMPLES)
    got = _expect_shaped(ctx, got, (4,))
    _expect_log_px(ctx, got, _log_px(*example), _mc_halfwidth(example, FALSE_FAIL / 4), MC_SAMPLES,
                   "see the contract of E2: the log of the mean likelihood over the S samples, z from the prior",
                   x.dtype)


# -- E3 log_likelihood_is ---------------------------------------------------------


IS_EXACT_HINT = ("your estimate is not log p(x) although q is the exact posterior (so every weight equals p(x)): "
                 "see the contract of E3, the log weights and their log-mean-exp over the samples")


@check("E3", "q = the exact posterior: every weight is p(x), the estimate is log p(x) exactly", points=1.5, public=True,
       kind="property", hint=IS_EXACT_HINT)
@for_all(st.tuples(_models(orthogonal=True, log_scales=(-0.5, 0.0, 0.5)), st.sampled_from([2, 7, 64])), max_examples=10)
def _is_exact(ctx: Context, example) -> None:
    (x, W, b, log_scale), n = example
    _expect_posterior_exact(ctx, x, W, b, log_scale, n, IS_EXACT_HINT, ())


IS_CONSTANT = ("q is the exact posterior, so every weight p(x|z) p(z) / q(z|x) equals p(x) whatever z is: your log "
               "weights depend on z, so one of their three log-densities is missing or is not the density it should be")


def _expect_posterior_exact(ctx: Context, x, W, b, log_scale, n: int, hint: str,
                            mistakes: tuple[Diagnosis, ...]) -> None:
    """E3 with q the exact posterior of the model: the estimate must be log p(x) exactly."""
    args = dict(x=x, encoder=_encoder(x, W, b, log_scale), log_px_given_z=_likelihood(W, b, log_scale, x.dtype),
                n_samples=n)
    expect_exact(ctx, args, _log_px(x, W, b, log_scale).to(x.dtype), hint, IS_CONSTANT,
                  mistakes + (sum_mistake("weights"),))


def _proposal_weight_moments(m, v, mu, u) -> tuple[torch.Tensor, torch.Tensor]:
    """Var and sup of ``w = p(z|x)/q(z)`` under z ~ q, for p = N(m, diag v), q = N(mu, diag u), u > v.

    Per dimension ``E_q (p/q)² = u / √(v(2u − v)) · exp((m − mu)²/(2u − v))``; ``p/q`` peaks at
    ``z* = (m u − mu v)/(u − v)``.
    """
    log_e_w2 = (torch.log(u) - 0.5 * torch.log(v * (2 * u - v)) + (m - mu) ** 2 / (2 * u - v)).sum(-1)
    z = (m * u - mu * v) / (u - v)
    log_sup = (D.Normal(m, v.sqrt()).log_prob(z) - D.Normal(mu, u.sqrt()).log_prob(z)).sum(-1)
    return torch.expm1(log_e_w2), log_sup.exp()


@S.composite
def _wide_proposals(draw):
    """An exact-posterior model and a proposal with variance ×1.5 or ×2 and mean shifted by ≤ ½ posterior sd."""
    x, W, b, log_scale = draw(_models(orthogonal=True, log_scales=(-0.5, 0.0, 0.5)))
    c = draw(S.halves((W.shape[1],), -0.5, 0.5))
    return x, W, b, log_scale, c, draw(st.sampled_from([1.5, 2.0]))


_IS_SAMPLES, _IS_EXAMPLES = 5_000, 10
_IS_DELTA = FALSE_FAIL / (_IS_EXAMPLES * 3)


def _is_halfwidth(example, delta):
    x, W, b, log_scale, c, inflate = example
    m, V = _posterior(x, W, b, log_scale)
    v = torch.diagonal(V)
    var, sup = _proposal_weight_moments(m, v, m + c * v.sqrt(), inflate * v)
    return _weight_halfwidth(var, sup, _IS_SAMPLES, delta)


check("E3", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(**_dtype_model(dtype), n_samples=4)))


@check("E3", "a proposal wider than the posterior: estimate within Monte-Carlo error of log p(x)", points=2,
       kind="statistical test",
       hint="see the contract of E3: z from q(z|x), whose standard deviation is exp(logvar / 2), weighted by "
            "p(x|z) p(z) / q(z|x) in log space")
@for_all(_wide_proposals().filter(lambda e: bool((_is_halfwidth(e, _IS_DELTA) <= 0.3).all())), max_examples=_IS_EXAMPLES)
def _is_statistical(ctx: Context, example) -> None:
    # w = p(z|x)/q(z) ∈ [0, sup w] with E_q w = 1 (q wider than the posterior in every dimension):
    # Bernstein with S = 5000, δ = 1e-7 / (10 examples × 3 rows).
    x, W, b, log_scale, c, inflate = example
    v = torch.diagonal(_posterior(x, W, b, log_scale)[1])
    encoder = _encoder(x, W, b, log_scale, shift=c * v.sqrt(), inflate=inflate)
    got = ctx.call(x=x, encoder=encoder, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), n_samples=_IS_SAMPLES)
    got = _expect_shaped(ctx, got, (x.shape[0],))
    _expect_log_px(ctx, got, _log_px(x, W, b, log_scale), _is_halfwidth(example, _IS_DELTA), _IS_SAMPLES,
                   "see the contract of E3: the samples come from q(z|x), the weights are p(x|z) p(z) / q(z|x)",
                   x.dtype, "weights")


@S.composite
def _tiny_posteriors(draw):
    """Exact posterior, s = e⁻⁶, x − b off range(W) by ≥ ½: every log weight = log p(x) < −10⁴."""
    dtype = draw(S.DTYPES)
    x, W, b, _ = draw(_models(dtype=torch.float64, orthogonal=True, max_j=2))
    if W.shape[0] == W.shape[1]:
        W = torch.cat([W, torch.zeros(1, W.shape[1], dtype=torch.float64)])
        b, x = torch.cat([b, b.new_zeros(1)]), torch.cat([x, x.new_zeros(x.shape[0], 1)], 1)
    free = int((W == 0).all(1).nonzero()[0])  # a coordinate outside range(W)
    x[:, free] = b[free] + torch.tensor(draw(st.lists(st.sampled_from([-1.5, -0.5, 0.5, 1.5]), min_size=x.shape[0],
                                                      max_size=x.shape[0])), dtype=torch.float64)
    return x.to(dtype), W, b, -6.0, draw(st.sampled_from([4, 100]))


@check("E3", "finite when every log weight is below −10⁴", points=1, kind="value",
       hint=LOGSUMEXP_HINT)
@for_all(_tiny_posteriors(), max_examples=10)
def _is_stable(ctx: Context, example) -> None:
    def judge(ex) -> None:
        x, W, b, log_scale, n = ex
        _expect_posterior_exact(ctx, x, W, b, log_scale, n, LOGSUMEXP_HINT, _UNDERFLOW_MISTAKES if log_scale < 0 else ())

    judge_hard_case(ctx, judge, example, lambda ex: (*ex[:3], 0.0, ex[4]),
                    "the estimate is wrong for ordinary log weights too (the same model with s = 1; see the check "
                    "\"q = the exact posterior\")")


# -- E4 elbo ----------------------------------------------------------------------


@S.composite
def _encoders(draw, x: torch.Tensor, j: int) -> Fn:
    d = x.shape[1]
    return Fn("gaussian_encoder", {
        "mu_weight": draw(S.halves((j, d), -1, 1, x.dtype)), "mu_bias": draw(S.halves((j,), -1, 1, x.dtype)),
        "logvar_weight": draw(S.halves((j, d), -0.5, 0.5, x.dtype)), "logvar_bias": draw(S.halves((j,), -1, 1, x.dtype))})


@S.composite
def _elbo_inputs(draw, zero_weight=False, dtype=None, batch=None):
    x, W, b, log_scale = draw(_models(dtype=dtype))
    if batch is not None:
        x = x[:batch]
    W = torch.zeros_like(W) if zero_weight else W
    return x, W, b, log_scale, draw(_encoders(x, W.shape[1])), draw(st.sampled_from([1, 3, 8]))


ELBO_KL_HINT = "see the contract of E4: the mean of log p(x|z_s) over the samples minus the closed-form KL"


@check("E4", "W = 0: ELBO = log N(x; b, s²I) − KL(q ‖ N(0, I)) exactly", points=1.5, public=True, kind="value",
       hint=ELBO_KL_HINT)
@for_all(_elbo_inputs(zero_weight=True), max_examples=10)
def _elbo_kl(ctx: Context, example) -> None:
    # W = 0: log p(x|z) does not depend on z, so the ELBO is deterministic and the reference is exact.
    x, W, b, log_scale, encoder, n = example
    lik = _likelihood(W, b, log_scale, x.dtype)
    got = ctx.call(x=x, encoder=encoder, log_px_given_z=lik, n_samples=n)
    with _seeded(ctx.seed):
        expected = ctx.expected("elbo", x, builders.build(encoder.kind, encoder.params),
                                builders.build(lik.kind, lik.params), n)
    _expect_shaped(ctx, got, (x.shape[0],))
    expect_tensor(ctx, got, expected, what="the ELBO", dtype=x.dtype, hint=ELBO_KL_HINT)


_ELBO_SAMPLES, _ELBO_EXAMPLES = 4000, 8
#: A gradient call too large to replay (a Python loop over the samples, ~55 tensor operations each) is asked
#: again as 8 calls of 500 samples (``stats.mean_gradients``): the same 4000 samples in all.
_ELBO_SPLIT = (8, _ELBO_SAMPLES // 8)


check("E4", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(**_dtype_model(dtype), n_samples=4)))


@check("E4", "reconstruction term within Monte-Carlo error of E_q log p(x|z)", points=1, kind="statistical test",
       hint="see the contract of E4: reparameterised samples of q(z|x), one batch of S per example")
@for_all(_elbo_inputs(), max_examples=_ELBO_EXAMPLES)
def _elbo_statistical(ctx: Context, example) -> None:
    # log p(x|z) is quadratic in ε: sub-gamma bound with S = 4000 and δ = 1e-7 / (8 examples × 3 rows).
    x, W, b, log_scale, encoder, _ = example
    got = ctx.call(x=x, encoder=encoder, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), n_samples=_ELBO_SAMPLES)
    got = _expect_shaped(ctx, got, (x.shape[0],))
    mu, logvar = _encoded(x, encoder)
    mean, P, g = _reconstruction_form(x, W, b, log_scale, mu, logvar)
    half = _quadratic_halfwidth(P, g, _ELBO_SAMPLES, FALSE_FAIL / (_ELBO_EXAMPLES * 3))
    try:
        _expect_within(ctx, got, mean - _kl_std_normal(mu, logvar), half, _ELBO_SAMPLES, "the ELBO",
                       "sub-gamma bound on a mean of quadratic forms of ε, union over the check's comparisons",
                       ctx.check.hint, x.dtype)
    except Failure as failure:
        failure.hint = once(ctx, "spread", lambda: spread_hint(ctx, x.dtype, _ELBO_SAMPLES)) or (
            "your reconstruction term is off by more than Monte-Carlo error: see the contract of E4 (the mean of "
            "log p(x|z_s) over the S samples)")
        raise


@check("E4", "gradient w.r.t. the encoder's mu and logvar is the reparameterised one", points=1, kind="gradient",
       hint="see the contract of E4: z is reparameterised, a differentiable function of mu and logvar")
@for_all(_elbo_inputs(dtype=torch.float64, batch=1), max_examples=_ELBO_EXAMPLES)
def _elbo_gradient(ctx: Context, example) -> None:
    # B = 1. d/dmu_j of mean_s log p(x|z_s) is linear in ε and d/dlogvar_j quadratic: sub-gamma bound per
    # component, S = 4000 (in one call or _ELBO_SPLIT), δ = 1e-7 / (8 examples × 6 components); the KL's
    # gradient is exact.
    x, W, b, log_scale, encoder, _ = example
    params = dict(encoder.params, mu_bias=Leaf(encoder.params["mu_bias"], "mu"),
                  logvar_bias=Leaf(encoder.params["logvar_bias"], "logvar"))
    grads, n, calls = _mean_gradients(ctx, _ELBO_SPLIT, lambda value: _expect_shaped(ctx, value, (1,)), x=x,
                            encoder=Fn(encoder.kind, params), log_px_given_z=_likelihood(W, b, log_scale, x.dtype),
                            n_samples=_ELBO_SAMPLES)
    mu, logvar = _encoded(x, encoder)
    mu, logvar = mu[0], logvar[0]
    j, sigma = mu.shape[0], torch.exp(0.5 * logvar)
    delta = FALSE_FAIL / (_ELBO_EXAMPLES * 2 * j)
    for name, (e, P, g) in _gradient_forms(x[0], W, b, log_scale, mu, logvar).items():
        got = grads.get(name)
        if got is None:
            ctx.fail(f"no gradient reaches the encoder's {name}", expected=f"d ELBO / d {name} ≈ {e.tolist()}",
                     got="no gradient")
        got = _expect_shaped(ctx, got, (j,), what=f"d ELBO / d {name}")
        try:
            with _over_calls(calls, n):  # n is _ELBO_SAMPLES either way
                _expect_within(ctx, got, e, _quadratic_halfwidth(P, g, _ELBO_SAMPLES, delta), _ELBO_SAMPLES,
                               f"d ELBO / d {name}", "sub-gamma bound on a mean of quadratic forms of ε, union over "
                               "components", ctx.check.hint)
        except Failure as failure:
            kl_only = -mu if name == "mu" else -0.5 * (sigma**2 - 1)  # the KL's gradient alone
            if torch.allclose(got, kl_only, rtol=1e-6, atol=1e-8):
                failure.hint = (f"your d ELBO / d {name} is the KL term's alone: no gradient reaches {name} through "
                                "the samples (samples drawn with sample() carry none); the contract of E4 "
                                "reparameterises z")
            else:
                failure.hint = once(ctx, "spread", lambda: spread_hint(ctx, x.dtype, _ELBO_SAMPLES)) or (
                    f"your d ELBO / d {name} is off by more than Monte-Carlo error: see the contract of E4, z is "
                    "reparameterised as a differentiable function of mu and logvar")
            raise
