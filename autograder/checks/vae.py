"""Checks of Part E (VAE basics): E1 ``sample_images`` … E6 ``kl_mc``.

All but E5 return random numbers, and a correct answer may draw them in any
order, so nothing random is compared with the reference bit for bit. Each
statistical check instead fixes a model whose truth is known (a closed form,
an exact posterior, or a large reference sample), decides its acceptance
region here from a bound that holds for every correct implementation, and
reports n, the statistic, the threshold and the false-fail probability.

The models: ``categorical_decoder`` (logits affine in z or in sign(z)), a
linear-Gaussian likelihood ``x | z ~ N(Wz + b, s² I)`` with prior N(0, I), so
``p(x) = N(x; b, WWᵀ + s² I)`` and, when W has orthogonal columns, the exact
posterior is a diagonal Gaussian that an affine ``gaussian_encoder`` can
represent; and ``diag_gaussian_mixture_log_prior`` (one component: a Gaussian
prior with a closed-form KL).

Bounds used (each per compared number, then a union bound over a check):
- binomial counts: the exact binomial acceptance interval;
- means of importance weights w ∈ [0, M] with E w = 1 (E2, E3): Bernstein's inequality;
- means of quadratic forms εᵀPε + gᵀε of ε ~ N(0, I) (E4, E6): the sub-gamma
  (Laurent–Massart) bound ``P(|mean − E| ≥ √(2vt/n) + ct/n) ≤ 2e^{-t}``, with
  ``v = Σ 2λ² + g²`` and ``c = 2 max|λ|`` in P's eigenbasis.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from hypothesis import strategies as st
from torch import distributions as D

import reference
from autograder.checks import strategies as S
from autograder.checks.compare import expect_close, expect_scalar_tensor, expect_tensor, tolerance
from autograder.checks.diagnose import Diagnosis, diagnose, expect_diagnosed
from autograder.checks.framework import Context, for_all
from autograder.checks.registry import check
from autograder.sandbox.runtime import builders
from autograder.sandbox.runtime.wire import Fn, Leaf

#: Probability that a correct solution fails one statistical check, at most.
FALSE_FAIL = 1e-7

STAT_DETAIL = ("seed {seed}, n = {n}: {statistic}; accepted {region}; "
               "a correct solution fails this check with probability < {p:.0e}")


@contextmanager
def _seeded(seed: int):
    """Grader-side draws (reference samples) from their own seed, leaving the global generator alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _expect_shaped(ctx: Context, got, shape: tuple[int, ...], dtype: torch.dtype,
                   what: str = "the result") -> torch.Tensor:
    """``got`` must be a tensor of ``shape`` and ``dtype`` (values are judged elsewhere)."""
    if not isinstance(got, torch.Tensor):
        ctx.fail(f"{what} is not a tensor", expected=f"a tensor of shape {shape}", got=got, hint="return a torch.Tensor")
    if tuple(got.shape) != shape:
        ctx.fail(f"{what} has the wrong shape", expected=f"shape {shape}", got=f"shape {tuple(got.shape)}",
                 hint="see the contract: one value per example (the reduction runs over the samples only)")
    if got.dtype != dtype:
        ctx.fail(f"{what} has the wrong dtype", expected=str(dtype), got=str(got.dtype),
                 hint="your result changes dtype: the contract keeps the input's dtype, the noise's included")
    return got.detach().to(torch.float64)


# -- acceptance regions ---------------------------------------------------------


def _binomial_region(n: int, p: float, alpha: float) -> tuple[int, int]:
    """``[lo, hi]`` with ``P(X < lo) ≤ α/2`` and ``P(X > hi) ≤ α/2`` for X ~ Bin(n, p), exactly."""
    k = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = (math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
               + k * math.log(p) + (n - k) * math.log1p(-p))
    pmf = log_pmf.exp()
    cdf, sf = pmf.cumsum(0), pmf.flip(0).cumsum(0).flip(0)  # P(X ≤ k), P(X ≥ k)
    return int((cdf <= alpha / 2).sum()), n - int((sf <= alpha / 2).sum())


def _expect_count(ctx: Context, count: int, n: int, p: float, alpha: float, what: str, hint: str) -> None:
    lo, hi = _binomial_region(n, p, alpha)
    if not lo <= count <= hi:
        ctx.fail(f"{what} is not plausible for a correct sampler", expected=f"{lo} … {hi} (mean {n * p:.1f})",
                 got=str(count), hint=hint,
                 detail=STAT_DETAIL.format(seed=ctx.seed, n=n, statistic=f"{what} = {count}, Bin(n, {p:.4f}) if correct",
                                           region=f"[{lo}, {hi}] (exact binomial tails)", p=FALSE_FAIL))


def _weight_halfwidth(var: torch.Tensor, sup: torch.Tensor, n: int, delta: float) -> torch.Tensor:
    """u with ``P(|mean_n w − 1| ≥ u) ≤ δ`` for iid ``w ∈ [0, sup]``, ``E w = 1``, ``Var w = var`` (Bernstein)."""
    L = math.log(2 / delta)
    a = 2 * torch.clamp(sup - 1, min=1.0) * L / 3
    return (a + torch.sqrt(a**2 + 8 * n * var * L)) / (2 * n)


def _quadratic_halfwidth(P: torch.Tensor, g: torch.Tensor, n: int, delta: float) -> torch.Tensor:
    """h with ``P(|mean of n iid f − E f| ≥ h) ≤ δ`` for ``f(ε) = εᵀPε + gᵀε``, ε ~ N(0, I) (sub-gamma).

    ``P (..., J, J)`` symmetric, ``g (..., J)`` → ``(...)``.
    """
    lam, U = torch.linalg.eigh(P)
    g_rot = (U.mT @ g[..., None])[..., 0]
    v = (2 * lam**2 + g_rot**2).sum(-1)
    c = 2 * lam.abs().amax(-1)
    t = math.log(2 / delta)
    return torch.sqrt(2 * v * t / n) + c * t / n


def _expect_within(ctx: Context, got: torch.Tensor, expected: torch.Tensor, half: torch.Tensor, n: int,
                   what: str, bound: str, hint: str, dtype: torch.dtype = torch.float64) -> None:
    """Every entry of ``got`` within ``half`` of ``expected`` (float64 tensors of one shape), plus the
    rounding tolerance of ``dtype`` (the student's arithmetic)."""
    rtol, atol = tolerance(dtype)
    half = half + atol * expected.abs().clamp(min=1.0) + rtol * expected.abs()
    err = (got - expected).abs()
    bad = ~(err <= half)  # NaN fails too
    if bad.any():
        i = int(bad.reshape(-1).nonzero()[0])
        e, h, g_ = expected.reshape(-1)[i].item(), half.reshape(-1)[i].item(), got.reshape(-1)[i].item()
        statistic = f"entry {i}: {g_:.6g}, |error| {abs(g_ - e):.3g}"
        ctx.fail(f"{what} is further from its expectation than Monte-Carlo error allows",
                 expected=f"{e:.6g} ± {h:.3g}", got=got,
                 detail=STAT_DETAIL.format(seed=ctx.seed, n=n, statistic=statistic,
                                           region=f"|error| ≤ {h:.3g} ({bound})", p=FALSE_FAIL),
                 hint=hint)


# -- E1 sample_images -----------------------------------------------------------


def _decoder(weight: torch.Tensor, bias: torch.Tensor, k: int, h: int, w: int, sign: bool = False) -> Fn:
    return Fn("categorical_decoder", {"weight": weight, "bias": bias, "k": k, "height": h, "width": w, "sign": sign})


def _images(ctx: Context, got, n: int, h: int, w: int, k: int) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        ctx.fail("sample_images must return a tensor", expected=f"a long tensor of shape {(n, h, w)}", got=got)
    if tuple(got.shape) != (n, h, w):
        ctx.fail("the images have the wrong shape", expected=f"shape {(n, h, w)}", got=f"shape {tuple(got.shape)}",
                 hint="see the contract of E1: the decoder's logits are (n, k, H, W), the images (n_images, H, W)")
    if got.dtype != torch.long:
        ctx.fail("the images are not a long tensor", expected="torch.int64", got=str(got.dtype),
                 hint="see the contract of E1: pixels are level indices, a long tensor (not probabilities)")
    if bool(((got < 0) | (got >= k)).any()):
        ctx.fail(f"pixel values outside [0, {k})", expected=f"integers in [0, {k})", got=got,
                 hint="see the contract of E1: each pixel is one of the k levels, the class dimension 1 of the logits")
    return got


@st.composite
def _layout_decoders(draw):
    """A decoder whose bias makes one class per pixel certain (margin 40 over |Wz|), plus its target image."""
    dtype = draw(S.DTYPES)
    k, n = draw(st.integers(2, 4)), draw(st.integers(1, 4))
    h, w, j = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    weight = draw(S.halves((k * h * w, j), -1, 1, dtype))
    target = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=h * w, max_size=h * w)))
    bias = (40.0 * torch.nn.functional.one_hot(target, k).T).reshape(-1).to(dtype)  # (k·H·W,)
    return weight, bias, k, h, w, j, n, draw(st.booleans()), target.reshape(h, w)


@check("E1", "long (n_images, H, W) in [0, k); pixel (h, w) drawn from logits[:, :, h, w]", points=1, public=True,
       kind="property", hint="see the contract of E1: pixel (h, w) is drawn from the levels at (h, w), class dimension 1")
@for_all(_layout_decoders(), max_examples=10)
def _sample_layout(ctx: Context, example) -> None:
    # A class other than the target has probability ≤ exp(−40 + 2 Σ_j |z_j|) (|W| ≤ 1): < 4e-14 per pixel
    # in expectation, < 1e-10 over the check's ≤ 360 pixels.
    weight, bias, k, h, w, j, n, sign, target = example
    got = _images(ctx, ctx.call(decoder=_decoder(weight, bias, k, h, w, sign), n_images=n, z_dim=j), n, h, w, k)
    expect_tensor(ctx, got, target.expand(n, h, w), what="the images",
                  hint="your pixels are not drawn from their own logits: here each pixel's logits put all the mass "
                       "(margin 40) on one level, class dimension 1 of (n, k, H, W)")


SAMPLED_PROBS = (0.5, 0.3, 0.2)
_SAMPLER_MISTAKES = (
    Diagnosis("every pixel is its most likely level: an argmax gives the mode, not a sample; the contract of E1 "
              "draws every pixel from its categorical (the trap of seed 000 Q1.1)", lambda logits: logits.argmax(1)),
)


@check("E1", "pixels are sampled from their categorical, not argmax-ed", points=2, public=True, kind="statistical test",
       hint="see the contract of E1 and seed 000 Q1.1: every pixel is drawn from its categorical")
def _sample_frequencies(ctx: Context) -> None:
    # Constant probabilities (0.5, 0.3, 0.2) at every pixel (W = 0): the counts of classes 1 and 2 over
    # n = 100 images × 6 pixels are Bin(600, 0.3) and Bin(600, 0.2); exact binomial regions at α/2 each.
    # Argmax gives only class 0.
    k, h, w, n = 3, 2, 3, 100
    bias = torch.tensor(SAMPLED_PROBS).log().repeat_interleave(h * w)
    decoder = _decoder(torch.zeros(k * h * w, 2), bias, k, h, w)
    got = _images(ctx, ctx.call(decoder=decoder, n_images=n, z_dim=2), n, h, w, k)
    hint = diagnose(got, _SAMPLER_MISTAKES, {"logits": bias.reshape(1, k, h, w).expand(n, k, h, w)},
                    "your level frequencies are not the categorical's: see the contract of E1, every pixel is drawn "
                    "from its categorical")
    for c in (1, 2):
        _expect_count(ctx, int((got == c).sum()), n * h * w, SAMPLED_PROBS[c], FALSE_FAIL / 2, f"count of class {c}",
                      hint)


@check("E1", "one z per image: its pixels share it, images are independent", points=1, kind="statistical test",
       hint="see the contract of E1 and seed 000 Q1.1: one z per image, shared by all its pixels, fresh for every image")
def _sample_one_z_per_image(ctx: Context) -> None:
    # Logit of class 1 = 16·sign(z_0) at all 15 pixels: given its z, a pixel differs from the image's
    # class w.p. sigmoid(-16) ≈ 1e-7. Statistic 1: the fraction of pixels outside their image's majority
    # (z per pixel: ≈ 0.4), threshold 0.05, false-fail < 1e-100. Statistic 2: images whose majority is
    # class 1 ~ Bin(200, 1/2) exactly; exact region at α. One z for all images gives 0 or 200.
    k, h, w, n = 2, 3, 5, 200
    weight = torch.zeros(k * h * w, 2)
    weight[h * w:, 0] = 16.0
    got = _images(ctx, ctx.call(decoder=_decoder(weight, torch.zeros(k * h * w), k, h, w, sign=True), n_images=n, z_dim=2),
                  n, h, w, k)
    ones = (got == 1).reshape(n, -1).sum(1)
    minority = torch.minimum(ones, h * w - ones).sum().item() / (n * h * w)
    if minority > 0.05:
        ctx.fail("pixels of one image do not share a z", expected="≤ 5% of pixels outside their image's majority",
                 hint="your pixels of one image disagree as if each had its own z: the contract of E1 draws one z per "
                      "image (the trap of seed 000 Q1.1)",
                 got=f"{100 * minority:.1f}%",
                 detail=STAT_DETAIL.format(seed=ctx.seed, n=n * h * w, statistic=f"{100 * minority:.1f}% minority pixels "
                                           "(a pixel leaves its image's class w.p. 1e-7 if z is shared)",
                                           region="≤ 5%", p=1e-100))
    _expect_count(ctx, int((ones > h * w // 2).sum()), n, 0.5, FALSE_FAIL, "images whose pixels are mostly 1",
                  "your images look alike as if they shared one z: the contract of E1 draws a fresh z for every image")


def _prior_probability() -> float:
    """E[sigmoid(3z − 3)] for z ~ N(0, 1), by the trapezoid rule (error < 1e-12)."""
    z = torch.linspace(-14, 14, 56001, dtype=torch.float64)
    return torch.trapezoid(torch.sigmoid(3 * z - 3) * torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi), z).item()


@check("E1", "z ~ N(0, I): pixel frequencies match the prior", points=1, kind="statistical test",
       hint="see the contract of E1: z comes from the prior N(0, I) in z_dim dimensions")
def _sample_prior(ctx: Context) -> None:
    # Pixel 0 has logit 3 z_0 − 3, pixel 1 has logit −3 z_1 − 3 (class 0: logit 0). With z ~ N(0, I),
    # either count over 1000 images is Bin(1000, p), p = E[sigmoid(3z − 3)] by quadrature; exact regions at α/2.
    k, h, w, n = 2, 1, 2, 1000
    weight = torch.zeros(k * h * w, 2)
    weight[2, 0], weight[3, 1] = 3.0, -3.0
    bias = torch.tensor([0.0, 0.0, -3.0, -3.0])
    got = _images(ctx, ctx.call(decoder=_decoder(weight, bias, k, h, w), n_images=n, z_dim=2), n, h, w, k)
    p = _prior_probability()
    for pixel in (0, 1):
        _expect_count(ctx, int((got[:, 0, pixel] == 1).sum()), n, p, FALSE_FAIL / 2, f"count of 1s at pixel (0, {pixel})",
                      "your z is not N(0, I) in every dimension (a uniform draw or a scaling?): see the contract of E1")


# -- the linear-Gaussian model (E2, E3, E4) --------------------------------------


def _likelihood(W: torch.Tensor, b: torch.Tensor, log_scale: float, dtype: torch.dtype) -> Fn:
    return Fn("linear_gaussian_likelihood", {"weight": W.to(dtype), "bias": b.to(dtype), "log_scale": float(log_scale)})


def _log_px(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, log_scale: float) -> torch.Tensor:
    """log p(x) = log N(x; b, WWᵀ + s² I); ``x (B, D)`` → ``(B,)`` in float64."""
    W, b = W.double(), b.double()
    L = torch.linalg.cholesky(W @ W.T + math.exp(2 * log_scale) * torch.eye(W.shape[0], dtype=torch.float64))
    r = torch.linalg.solve_triangular(L, (x.double() - b).T, upper=False)  # (D, B)
    return -0.5 * (r**2).sum(0) - torch.diagonal(L).log().sum() - 0.5 * W.shape[0] * math.log(2 * math.pi)


def _posterior(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, log_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """p(z | x) = N(m, V): ``V = (I + WᵀW/s²)⁻¹``, ``m = V Wᵀ(x − b)/s²``; m ``(B, J)``, V ``(J, J)``."""
    W, b, s2 = W.double(), b.double(), math.exp(2 * log_scale)
    V = torch.linalg.inv(torch.eye(W.shape[1], dtype=torch.float64) + W.T @ W / s2)
    return (x.double() - b) @ W @ V / s2, V


@st.composite
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


def _prior_weight_moments(x, W, b, log_scale) -> tuple[torch.Tensor, torch.Tensor]:
    """Var and sup of ``w = p(x|z)/p(x)`` under z ~ N(0, I), per example (closed forms).

    ``E w² = (4πs²)^{-D/2} N(x; b, WWᵀ + s²/2 I) / p(x)²``; ``sup w = max_z p(x|z)/p(x)`` at the least-squares z.
    """
    d, s2 = W.shape[0], math.exp(2 * log_scale)
    lp = _log_px(x, W, b, log_scale)
    log_e_w2 = -0.5 * d * math.log(4 * math.pi * s2) + _log_px(x, W, b, 0.5 * math.log(s2 / 2)) - 2 * lp
    r = x.double() - b - (torch.linalg.pinv(W) @ (x.double() - b).T).T @ W.T  # residual off range(W)
    log_sup = (-0.5 * r**2 / s2 - 0.5 * math.log(2 * math.pi * s2)).sum(-1) - lp
    return torch.expm1(log_e_w2), log_sup.exp()


def _mc_halfwidth(example, delta: float) -> torch.Tensor:
    var, sup = _prior_weight_moments(*example)
    return _weight_halfwidth(var, sup, MC_SAMPLES, delta)


MC_EXAMPLES = 10
MC_DELTA = FALSE_FAIL / (MC_EXAMPLES * 3)


def _expect_log_px(ctx: Context, got: torch.Tensor, lp: torch.Tensor, u: torch.Tensor, n: int, hint: str,
                   dtype: torch.dtype) -> None:
    """``got`` within the band that ``|mean w − 1| ≤ u`` allows around log p(x)."""
    lo, hi = lp + torch.log1p(-u.clamp(max=1.0)), lp + torch.log1p(u)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    _expect_within(ctx, got, centre, half, n, "the estimate of log p(x)",
                   "Bernstein bound on the mean importance weight, union over the check's comparisons", hint, dtype)


@check("E2", "(B,) estimate within Monte-Carlo error of the closed-form log p(x)", points=2, public=True,
       kind="statistical test",
       hint="see the contract of E2: z from the prior, the log of the mean likelihood over the S samples")
@for_all(_models().filter(lambda e: bool((_mc_halfwidth(e, MC_DELTA) <= 0.3).all())), max_examples=MC_EXAMPLES)
def _mc_value(ctx: Context, example) -> None:
    # log p̂ = log p(x) + log(mean_S w) with w = p(x|z)/p(x) ∈ [0, sup w], E w = 1: Bernstein gives
    # P(|mean w − 1| ≥ u) ≤ δ = 1e-7 / (10 examples × 3 rows); S = 10000 draws.
    x, W, b, log_scale = example
    got = ctx.call(x=x, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), z_dim=W.shape[1], n_samples=MC_SAMPLES)
    got = _expect_shaped(ctx, got, (x.shape[0],), x.dtype)
    _expect_log_px(ctx, got, _log_px(*example), _mc_halfwidth(example, MC_DELTA), MC_SAMPLES,
                   "your estimate is off: the contract of E2 takes the log of the mean likelihood (not the mean of "
                   "the log-likelihoods), z from the prior",
                   x.dtype)


@st.composite
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
              lambda expected: torch.full_like(expected, -math.inf)),
    Diagnosis("your estimate is NaN when every log-likelihood is below −10⁴: exp of such values underflows to 0 "
              "before a log or a division; the contract asks an estimate that stays finite",
              lambda expected: torch.full_like(expected, math.nan)),
)


@check("E2", "finite when every log p(x|z) is below −10⁴", points=1, public=True, kind="value", hint=LOGSUMEXP_HINT)
@for_all(_tiny_likelihoods(), max_examples=10)
def _mc_stable(ctx: Context, example) -> None:
    x, W, b, log_scale, n = example  # W = 0: log p(x|z) does not depend on z, so the estimate is exact
    got = ctx.call(x=x, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), z_dim=W.shape[1], n_samples=n)
    _expect_shaped(ctx, got, (x.shape[0],), x.dtype)
    expected = _log_px(x, W, b, log_scale).to(x.dtype)
    expect_diagnosed(ctx, got, expected, _UNDERFLOW_MISTAKES, {"expected": expected}, what="the estimate of log p(x)",
                     dtype=x.dtype, hint=LOGSUMEXP_HINT)


@check("E2", "a likelihood much narrower than the prior", points=1, kind="statistical test",
       hint="see the contract of E2: the log of the mean likelihood, z from the prior N(0, I)")
def _mc_narrow(ctx: Context) -> None:
    # W = 2I, s = 1, four rows of x: log p(x) − E_prior log p(x|z) ≥ 2.5 nats, while Bernstein
    # (Var w ≤ 4.7, sup w ≤ 11.2) bounds the error by ≤ 0.14 with probability 1 − 1e-7 (union over 4 rows).
    W, b = 2.0 * torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    x = torch.tensor([[1.0, -1.0], [0.0, 0.5], [2.0, 2.0], [-1.5, 0.0]], dtype=torch.float64)
    example = (x, W, b, 0.0)
    got = ctx.call(x=x, log_px_given_z=_likelihood(W, b, 0.0, x.dtype), z_dim=2, n_samples=MC_SAMPLES)
    got = _expect_shaped(ctx, got, (4,), x.dtype)
    _expect_log_px(ctx, got, _log_px(*example), _mc_halfwidth(example, FALSE_FAIL / 4), MC_SAMPLES,
                   "your estimate is below log p(x) by more than Monte-Carlo error: a mean of log-likelihoods is only "
                   "a lower bound; the contract of E2 takes the log of the mean likelihood",
                   x.dtype)


# -- E3 log_likelihood_is ---------------------------------------------------------


def _encoder(x, W, b, log_scale, shift: torch.Tensor | None = None, inflate: float = 1.0) -> Fn:
    """The affine encoder of the exact posterior (W with orthogonal columns), its mean shifted by
    ``shift`` and its variance multiplied by ``inflate``."""
    _, V = _posterior(x, W, b, log_scale)
    s2, var = math.exp(2 * log_scale), torch.diagonal(V) * inflate
    shift = torch.zeros(W.shape[1], dtype=torch.float64) if shift is None else shift
    d, dtype = W.shape[0], x.dtype
    params = {"mu_weight": V @ W.T.double() / s2, "mu_bias": -(V @ W.T.double() @ b.double()) / s2 + shift,
              "logvar_weight": torch.zeros(W.shape[1], d, dtype=torch.float64), "logvar_bias": var.log()}
    return Fn("gaussian_encoder", {k: v.to(dtype) for k, v in params.items()})


IS_EXACT_HINT = ("your estimate is not log p(x) although q is the exact posterior (so every weight equals p(x)): "
                 "see the contract of E3, the log weights and their log-mean-exp over the samples")


@check("E3", "q = the exact posterior: every weight is p(x), the estimate is log p(x) exactly", points=2, public=True,
       kind="property", hint=IS_EXACT_HINT)
@for_all(st.tuples(_models(orthogonal=True, log_scales=(-0.5, 0.0, 0.5)), st.sampled_from([2, 7, 64])), max_examples=10)
def _is_exact(ctx: Context, example) -> None:
    (x, W, b, log_scale), n = example
    encoder = _encoder(x, W, b, log_scale)
    got = ctx.call(x=x, encoder=encoder, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), n_samples=n)
    _expect_shaped(ctx, got, (x.shape[0],), x.dtype)
    expect_tensor(ctx, got, _log_px(x, W, b, log_scale).to(x.dtype), what="the estimate of log p(x)", dtype=x.dtype,
                  hint=IS_EXACT_HINT)


def _proposal_weight_moments(m, v, mu, u) -> tuple[torch.Tensor, torch.Tensor]:
    """Var and sup of ``w = p(z|x)/q(z)`` under z ~ q, for p = N(m, diag v), q = N(mu, diag u), u > v.

    Per dimension ``E_q (p/q)² = u / √(v(2u − v)) · exp((m − mu)²/(2u − v))``; ``p/q`` peaks at
    ``z* = (m u − mu v)/(u − v)``.
    """
    log_e_w2 = (torch.log(u) - 0.5 * torch.log(v * (2 * u - v)) + (m - mu) ** 2 / (2 * u - v)).sum(-1)
    z = (m * u - mu * v) / (u - v)
    log_sup = (D.Normal(m, v.sqrt()).log_prob(z) - D.Normal(mu, u.sqrt()).log_prob(z)).sum(-1)
    return torch.expm1(log_e_w2), log_sup.exp()


@st.composite
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
    got = _expect_shaped(ctx, got, (x.shape[0],), x.dtype)
    _expect_log_px(ctx, got, _log_px(x, W, b, log_scale), _is_halfwidth(example, _IS_DELTA), _IS_SAMPLES,
                   "your estimate is off by more than Monte-Carlo error: see the contract of E3 (the samples come "
                   "from q(z|x), the weights are p(x|z) p(z) / q(z|x))",
                   x.dtype)


@st.composite
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
    x, W, b, log_scale, n = example
    encoder = _encoder(x, W, b, log_scale)
    got = ctx.call(x=x, encoder=encoder, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), n_samples=n)
    _expect_shaped(ctx, got, (x.shape[0],), x.dtype)
    expected = _log_px(x, W, b, log_scale).to(x.dtype)
    expect_diagnosed(ctx, got, expected, _UNDERFLOW_MISTAKES, {"expected": expected}, what="the estimate of log p(x)",
                     dtype=x.dtype, hint=LOGSUMEXP_HINT)


# -- E4 elbo ----------------------------------------------------------------------


@st.composite
def _encoders(draw, x: torch.Tensor, j: int) -> Fn:
    d = x.shape[1]
    return Fn("gaussian_encoder", {
        "mu_weight": draw(S.halves((j, d), -1, 1, x.dtype)), "mu_bias": draw(S.halves((j,), -1, 1, x.dtype)),
        "logvar_weight": draw(S.halves((j, d), -0.5, 0.5, x.dtype)), "logvar_bias": draw(S.halves((j,), -1, 1, x.dtype))})


@st.composite
def _elbo_inputs(draw, zero_weight=False, dtype=None, batch=None):
    x, W, b, log_scale = draw(_models(dtype=dtype))
    if batch is not None:
        x = x[:batch]
    W = torch.zeros_like(W) if zero_weight else W
    return x, W, b, log_scale, draw(_encoders(x, W.shape[1])), draw(st.sampled_from([1, 3, 8]))


ELBO_KL_HINT = "see the contract of E4: the mean of log p(x|z_s) over the samples minus the closed-form KL"


@check("E4", "W = 0: ELBO = log N(x; b, s²I) − KL(q ‖ N(0, I)) exactly", points=2, public=True, kind="value",
       hint=ELBO_KL_HINT)
@for_all(_elbo_inputs(zero_weight=True), max_examples=10)
def _elbo_kl(ctx: Context, example) -> None:
    # W = 0: log p(x|z) does not depend on z, so the ELBO is deterministic and the reference is exact.
    x, W, b, log_scale, encoder, n = example
    lik = _likelihood(W, b, log_scale, x.dtype)
    got = ctx.call(x=x, encoder=encoder, log_px_given_z=lik, n_samples=n)
    with _seeded(ctx.seed):
        expected = reference.elbo(x, builders.build(encoder.kind, encoder.params), builders.build(lik.kind, lik.params), n)
    _expect_shaped(ctx, got, (x.shape[0],), x.dtype)
    expect_tensor(ctx, got, expected, what="the ELBO", dtype=x.dtype, hint=ELBO_KL_HINT)


def _encoded(x: torch.Tensor, encoder: Fn) -> tuple[torch.Tensor, torch.Tensor]:
    mu, logvar = builders.build(encoder.kind, {k: (v.tensor if isinstance(v, Leaf) else v).double()
                                               for k, v in encoder.params.items()})(x.double())
    return mu, logvar


def _reconstruction_form(x, W, b, log_scale, mu, logvar):
    """log p(x | mu + σ ⊙ ε) = c + εᵀPε + gᵀε per example: (E, P (B, J, J), g (B, J)); E its expectation."""
    s2, W = math.exp(2 * log_scale), W.double()
    A = W * torch.exp(0.5 * logvar)[:, None, :]  # W diag(σ), (B, D, J)
    r = x.double() - mu @ W.T - b.double()  # (B, D)
    P = -A.mT @ A / (2 * s2)
    g = (A.mT @ r[..., None])[..., 0] / s2
    const = -0.5 * W.shape[0] * math.log(2 * math.pi * s2) - (r**2).sum(-1) / (2 * s2)
    return const + torch.diagonal(P, dim1=-2, dim2=-1).sum(-1), P, g


def _kl_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(torch.zeros_like(mu), 1.0)).sum(-1)


_ELBO_SAMPLES, _ELBO_EXAMPLES = 4000, 8


@check("E4", "reconstruction term within Monte-Carlo error of E_q log p(x|z)", points=1, kind="statistical test",
       hint="see the contract of E4: reparameterised samples of q(z|x), one batch of S per example")
@for_all(_elbo_inputs(), max_examples=_ELBO_EXAMPLES)
def _elbo_statistical(ctx: Context, example) -> None:
    # log p(x|z) is quadratic in ε: sub-gamma bound with S = 4000 and δ = 1e-7 / (8 examples × 3 rows).
    x, W, b, log_scale, encoder, _ = example
    got = ctx.call(x=x, encoder=encoder, log_px_given_z=_likelihood(W, b, log_scale, x.dtype), n_samples=_ELBO_SAMPLES)
    got = _expect_shaped(ctx, got, (x.shape[0],), x.dtype)
    mu, logvar = _encoded(x, encoder)
    mean, P, g = _reconstruction_form(x, W, b, log_scale, mu, logvar)
    half = _quadratic_halfwidth(P, g, _ELBO_SAMPLES, FALSE_FAIL / (_ELBO_EXAMPLES * 3))
    _expect_within(ctx, got, mean - _kl_std_normal(mu, logvar), half, _ELBO_SAMPLES, "the ELBO",
                   "sub-gamma bound on a mean of quadratic forms of ε, union over the check's comparisons",
                   "your reconstruction term is off by more than Monte-Carlo error: see the contract of E4 (the "
                   "standard deviation of q is exp(logvar / 2); average over the S samples)", x.dtype)


@check("E4", "gradient w.r.t. the encoder's mu and logvar is the reparameterised one", points=1, kind="gradient",
       hint="see the contract of E4: z is reparameterised, a differentiable function of mu and logvar")
@for_all(_elbo_inputs(dtype=torch.float64, batch=1), max_examples=_ELBO_EXAMPLES)
def _elbo_gradient(ctx: Context, example) -> None:
    # B = 1. d/dmu_j of mean_s log p(x|z_s) is linear in ε and d/dlogvar_j quadratic: sub-gamma bound per
    # component, S = 4000, δ = 1e-7 / (8 examples × 6 components); the KL's gradient is exact.
    x, W, b, log_scale, encoder, _ = example
    params = dict(encoder.params, mu_bias=Leaf(encoder.params["mu_bias"], "mu"),
                  logvar_bias=Leaf(encoder.params["logvar_bias"], "logvar"))
    reply = ctx.reply(x=x, encoder=Fn(encoder.kind, params), log_px_given_z=_likelihood(W, b, log_scale, x.dtype),
                      n_samples=_ELBO_SAMPLES, grad=[{"output": None}])
    _expect_shaped(ctx, reply.value, (1,), x.dtype)
    mu, logvar = _encoded(x, encoder)
    mu, logvar = mu[0], logvar[0]
    s2, W, j = math.exp(2 * log_scale), W.double(), mu.shape[0]
    sigma = torch.exp(0.5 * logvar)
    A, r = W * sigma, x[0].double() - W @ mu - b.double()
    eye = torch.eye(j, dtype=torch.float64)
    # d/dmu_j: W_jᵀ(r − Aε)/s² − mu_j;  d/dlogvar_j: (σ_j/2s²) ε_j W_jᵀ(r − Aε) − ½(σ_j² − 1)
    P_mu, g_mu = torch.zeros(j, j, j, dtype=torch.float64), -(A.T @ W).T / s2
    e_mu = W.T @ r / s2 - mu
    a = (A.T @ W).T  # a_j = Aᵀ W_j, (J, J)
    outer = eye[:, :, None] * a[:, None, :]  # e_j a_jᵀ, (J, J, J)
    P_lv = -(sigma / (2 * s2))[:, None, None] * 0.5 * (outer + outer.mT)
    g_lv = (sigma * (W.T @ r) / (2 * s2))[:, None] * eye
    e_lv = -(sigma**2) * (W**2).sum(0) / (2 * s2) - 0.5 * (sigma**2 - 1)
    delta = FALSE_FAIL / (_ELBO_EXAMPLES * 2 * j)
    for name, e, P, g in (("mu", e_mu, P_mu, g_mu), ("logvar", e_lv, P_lv, g_lv)):
        got = reply.grads[0].get(name) if reply.grads else None
        if got is None:
            ctx.fail(f"no gradient reaches the encoder's {name}", expected=f"d ELBO / d {name} ≈ {e.tolist()}",
                     got="no gradient")
        got = _expect_shaped(ctx, got, (j,), x.dtype, what=f"d ELBO / d {name}")
        _expect_within(ctx, got, e, _quadratic_halfwidth(P, g, _ELBO_SAMPLES, delta), _ELBO_SAMPLES, f"d ELBO / d {name}",
                       "sub-gamma bound on a mean of quadratic forms of ε, union over components",
                       "your gradient is not the reparameterised one: samples drawn with sample() carry no gradient; "
                       "the contract of E4 reparameterises z")


# -- E5 vae_losses ----------------------------------------------------------------


@st.composite
def _loss_inputs(draw, logit_lo=-4.0, logit_hi=4.0, logit_step=0.5):
    dtype = draw(S.DTYPES)
    n, k, h, w, j = (draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                     draw(st.integers(1, 3)))
    x = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=n * h * w, max_size=n * h * w))).reshape(n, h, w)
    logits = draw(S.halves((n, k, h, w), logit_lo, logit_hi, dtype, step=logit_step))
    return x, logits, draw(S.halves((n, j), -2, 2, dtype)), draw(S.halves((n, j), -2, 2, dtype))


def _losses(ctx: Context, example) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    x, logits, mu, logvar = example
    got = ctx.call(x=x, x_logits=logits, mu=mu, logvar=logvar)
    if not (isinstance(got, tuple) and len(got) == 2):
        ctx.fail("vae_losses must return a pair", expected="(reconstruction, regularization)", got=got)
    for name, value in zip(("reconstruction", "regularization"), got):
        expect_scalar_tensor(ctx, value, what=name)
        if value.dtype != logits.dtype:
            ctx.fail(f"{name} has the wrong dtype", expected=str(logits.dtype), got=str(value.dtype),
                     hint="your loss changes dtype: the contract of E5 keeps the logits' dtype")
    return got, reference.vae_losses(x, logits, mu, logvar)


@check("E5", "reconstruction: per-image sum of the categorical NLL, batch mean", points=1, public=True, kind="property",
       hint="see the contract of E5: the categorical NLL summed over each image's pixels, averaged over the batch")
@for_all(_loss_inputs(), max_examples=12)
def _losses_reconstruction(ctx: Context, example) -> None:
    got, expected = _losses(ctx, example)
    x = example[0]
    expect_diagnosed(ctx, got[0], expected[0], _RECONSTRUCTION_MISTAKES,
                     {"expected": expected[0], "batch": x.shape[0], "pixels": x[0].numel()}, what="reconstruction",
                     hint="see the contract of E5: the NLL summed over each image's pixels, the levels are dimension 1 "
                          "of x_logits")


REG_HINT = "see the contract of E5: the closed-form KL, summed over z, averaged over the batch; logvar is a log-variance"
_RECONSTRUCTION_MISTAKES = (
    Diagnosis("your reconstruction averages over the pixels; the contract of E5 sums over each image's pixels",
              lambda expected, batch, pixels: expected / pixels),
    Diagnosis("your reconstruction sums over the batch; the contract of E5 averages over it",
              lambda expected, batch, pixels: expected * batch),
    Diagnosis("your reconstruction has the wrong sign: it is a negative log-likelihood", lambda expected, **_: -expected),
)
_REGULARIZATION_MISTAKES = (
    Diagnosis("your KL treats logvar as a variance; it is a log-variance", lambda mu, logvar, **_: (
        0.5 * (logvar + mu**2 - 1 - logvar.log()).sum(-1)).mean()),
    Diagnosis("your KL treats logvar as a standard deviation; it is a log-variance", lambda mu, logvar, **_: (
        0.5 * (logvar**2 + mu**2 - 1 - (logvar**2).log()).sum(-1)).mean()),
    Diagnosis("your KL is twice the closed form: the ½ is missing", lambda expected, **_: 2 * expected),
    Diagnosis("your KL sums over the batch; the contract of E5 averages over it",
              lambda mu, expected, **_: mu.shape[0] * expected),
    Diagnosis("your KL averages over the latent dimensions; the contract of E5 sums over them",
              lambda mu, expected, **_: expected / mu.shape[-1]),
)


@check("E5", "regularization: closed-form KL(N(mu, diag exp logvar) ‖ N(0, I)), batch mean", points=2, public=True,
       kind="property", hint=REG_HINT)
@for_all(_loss_inputs(), max_examples=12)
def _losses_regularization(ctx: Context, example) -> None:
    got, expected = _losses(ctx, example)
    _, _, mu, logvar = example
    expect_diagnosed(ctx, got[1], expected[1], _REGULARIZATION_MISTAKES,
                     {"mu": mu.double(), "logvar": logvar.double(), "expected": expected[1]}, what="regularization",
                     hint=REG_HINT)


_STABLE_HINT = ("your reconstruction goes wrong for logits of ±1000: softmax underflows to 0 there and its log is "
                "−∞; the contract of E5 computes the NLL from the logits stably")


@check("E5", "reconstruction finite for logits of ±1000", points=1, kind="value", hint=_STABLE_HINT)
@for_all(_loss_inputs(-1000.0, 1000.0, 250.0), max_examples=10)
def _losses_stable(ctx: Context, example) -> None:
    got, expected = _losses(ctx, example)
    expect_close(ctx, got[0], expected[0], what="reconstruction", hint=_STABLE_HINT)


# -- E6 kl_mc ---------------------------------------------------------------------

KL_SAMPLES, KL_EXAMPLES = 10_000, 8


@st.composite
def _kl_inputs(draw, dtype=None):
    """``(mu, logvar) (B, J)`` and a one-component prior N(m, diag exp(lv)) (its KL has a closed form)."""
    dtype = dtype or draw(S.DTYPES)
    n, j = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (draw(S.halves((n, j), -1, 1, dtype)), draw(S.halves((n, j), -1, 1, dtype)),
            draw(S.halves((1, j), -1, 1, dtype)), draw(S.halves((1, j), -1, 1, dtype)))


def _mixture_prior(logits, locs, logvars) -> Fn:
    return Fn("diag_gaussian_mixture_log_prior", {"logits": logits, "mu": locs, "logvar": logvars})


def _gaussian_kl_terms(mu, logvar, m, lv):
    """KL(q ‖ N(m, diag e^lv)) by torch.distributions, and the summand's quadratic form per dimension:
    ``log q(z) − log p(z) = Σ_j λ_j ε_j² + g_j ε_j + const`` with λ = ½(σ²/v − 1), g = σ(mu − m)/v."""
    mu, logvar, m, lv = mu.double(), logvar.double(), m.double(), lv.double()
    kl = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(m, torch.exp(0.5 * lv))).sum(-1)
    sigma, v = torch.exp(0.5 * logvar), torch.exp(lv)
    return kl, 0.5 * (sigma**2 / v - 1), sigma * (mu - m) / v


@check("E6", "Gaussian prior: estimate within Monte-Carlo error of the closed-form KL", points=1, public=True,
       kind="statistical test",
       hint="see the contract of E6: reparameterised samples of q(z|x), the mean of log q − log_prior over them")
@for_all(_kl_inputs(), max_examples=KL_EXAMPLES)
def _kl_gaussian(ctx: Context, example) -> None:
    # log q − log p is quadratic in ε: sub-gamma bound, S = 10000, δ = 1e-7 / (8 examples × 3 rows).
    mu, logvar, m, lv = example
    prior = _mixture_prior(torch.zeros(1, dtype=mu.dtype), m, lv)
    got = ctx.call(mu=mu, logvar=logvar, log_prior=prior, n_samples=KL_SAMPLES)
    got = _expect_shaped(ctx, got, (mu.shape[0],), mu.dtype)
    kl, lam, g = _gaussian_kl_terms(mu, logvar, m, lv)
    # The larger of two bounds: also accepts −H(q) in closed form minus mean_s log p(z_s) (λ + ½ instead of λ).
    delta = FALSE_FAIL / (KL_EXAMPLES * 3)
    half = torch.maximum(*(_quadratic_halfwidth(torch.diag_embed(lam + shift), g, KL_SAMPLES, delta)
                           for shift in (0.0, 0.5)))
    _expect_within(ctx, got, kl, half, KL_SAMPLES, "the KL estimate",
                   "sub-gamma bound on a mean of quadratic forms of ε, union over the check's comparisons",
                   "your estimate is off by more than Monte-Carlo error: see the contract of E6 (q's variance is "
                   "exp(logvar); average over the S samples)",
                   mu.dtype)


@check("E6", "gradients w.r.t. mu and logvar are reparameterised", points=1, public=True, kind="gradient",
       hint="see the contract of E6: z is reparameterised, so the estimate is differentiable w.r.t. mu and logvar")
@for_all(_kl_inputs(torch.float64), max_examples=KL_EXAMPLES)
def _kl_gradient(ctx: Context, example) -> None:
    # Per sample: d/dmu_j = (z_j − m_j)/v_j (linear in ε), d/dlogvar_j = ½(σ_j² ε_j² + (mu_j − m_j)σ_j ε_j)/v_j
    # − ½ (quadratic): sub-gamma bound per entry, S = 10000, δ = 1e-7 / (8 examples × 18 entries).
    mu, logvar, m, lv = example
    reply = ctx.reply(mu=Leaf(mu, "mu"), logvar=Leaf(logvar, "logvar"), n_samples=KL_SAMPLES,
                      log_prior=_mixture_prior(torch.zeros(1, dtype=mu.dtype), m, lv), grad=[{"output": None}])
    _expect_shaped(ctx, reply.value, (mu.shape[0],), mu.dtype)
    leaves = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    expected = torch.autograd.grad(_gaussian_kl_terms(*leaves, m, lv)[0].sum(), leaves)
    sigma, v = torch.exp(0.5 * logvar), torch.exp(lv)
    forms = {"mu": (torch.zeros_like(mu), sigma / v), "logvar": (sigma**2 / (2 * v), (mu - m) * sigma / (2 * v))}
    delta = FALSE_FAIL / (KL_EXAMPLES * 2 * mu.numel())
    for (name, (lam, g)), e in zip(forms.items(), expected):
        got = reply.grads[0].get(name) if reply.grads else None
        if got is None:
            ctx.fail(f"no gradient reaches {name}", expected=f"d KL / d {name} ≈ {e.tolist()}", got="no gradient")
        got = _expect_shaped(ctx, got, tuple(mu.shape), mu.dtype, what=f"d KL / d {name}")
        half = _quadratic_halfwidth(lam[..., None, None], g[..., None], KL_SAMPLES, delta)
        _expect_within(ctx, got, e, half, KL_SAMPLES, f"d KL / d {name}",
                       "sub-gamma bound per entry, union over the check's comparisons",
                       "your gradient is not the reparameterised one: samples drawn with sample() carry no gradient "
                       "through the prior term; the contract of E6 reparameterises z")


_MIXTURE_SAMPLES, _MIXTURE_REFERENCE, _MIXTURE_Z = 10_000, 40_000, 6.0


@check("E6", "mixture prior: agrees with a large reference sample", points=1, kind="statistical test",
       hint="see the contract of E6: log_prior takes z of shape (S, B, J); the estimate averages over the S samples")
def _kl_mixture(ctx: Context) -> None:
    # A 3-component prior, two rows. Reference: 40000 one-sample estimates per row (mean and sd). z-test of
    # the student's S = 10000 mean at |z| ≤ 6: two-sided 2e-9 per row under the normal approximation, so
    # < 1e-7 for both rows with ample room for the summand's skew (Edgeworth term ≈ 0.06·skew at S = 10000).
    mu = torch.tensor([[1.0, -0.5], [-1.5, 0.0]])
    logvar = torch.tensor([[-1.0, 0.5], [0.0, -0.5]])
    prior = _mixture_prior(torch.tensor([0.0, -0.5, 0.5]), torch.tensor([[-2.0, 0.0], [0.0, 1.5], [1.5, -1.0]]),
                           torch.tensor([[-0.5, 0.0], [0.0, -1.0], [0.5, 0.0]]))
    got = ctx.call(mu=mu, logvar=logvar, log_prior=prior, n_samples=_MIXTURE_SAMPLES)
    got = _expect_shaped(ctx, got, (2,), mu.dtype)
    r = _MIXTURE_REFERENCE
    with _seeded(ctx.seed):
        single = reference.kl_mc(mu.double().repeat(r, 1), logvar.double().repeat(r, 1),
                                 builders.build(prior.kind, {k: v.double() for k, v in prior.params.items()}), 1)
    single = single.reshape(r, 2)  # (R, B): R independent one-sample estimates per row
    mean, sd = single.mean(0), single.std(0)
    half = _MIXTURE_Z * sd * math.sqrt(1 / _MIXTURE_SAMPLES + 1 / r)
    _expect_within(ctx, got, mean, half, _MIXTURE_SAMPLES, "the KL estimate",
                   f"z-test at |z| ≤ {_MIXTURE_Z:g} against {r} reference draws",
                   "your estimate is off by more than Monte-Carlo error for a mixture prior: see the contract of E6",
                   mu.dtype)
