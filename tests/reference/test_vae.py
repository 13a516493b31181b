"""Part E (seed 000 §1): the VAE reference against ground truth that is not itself.

Ground truth: a linear-Gaussian VAE whose log p(x), posterior, ELBO and
importance-weight moments are closed forms (``tests/reference/strategies_vae.py``),
``torch.distributions`` (``Categorical.log_prob``, ``kl_divergence``,
``MixtureSameFamily``), large independent Monte-Carlo samples, and gradcheck.

Statistical tests are seeded; each states its false-fail probability (the
chance that a correct implementation fails for an unlucky seed), always < 1e-6.
Unless said otherwise a statistic is a mean of n ≥ 10³ i.i.d. terms that are
polynomials in Gaussians, compared at Z_MAX = 6 standard errors: 2Φ(−6) =
2.0e-9, and Cramér's large-deviation factor exp(t³γ / 6√n) ≤ exp(216·2.9 /
(6·31.6)) < 30 for the skewness γ ≤ 2.9 of such terms, so < 6e-8 per statistic.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from torch.autograd import gradcheck
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from reference.vae import elbo, kl_mc, log_likelihood_is, log_likelihood_mc, sample_images, vae_losses
from tests.reference.strategies_vae import (
    LinearGaussian,
    categorical_images,
    gaussian_params,
    linear_gaussian_models,
)
from tests.strategies import DTYPES, small_tensors

F64 = torch.float64
Z_MAX = 6.0


def _diag_normal(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


def _assert_z(got, expected, se, what: str, seed: int, n: int, p_fail: str = "< 6e-8 per statistic"):
    z = (got - expected) / se
    assert (z.abs() <= Z_MAX).all(), (
        f"{what}: seed={seed} n={n}\n  expected {expected.tolist()}\n  got      {got.tolist()}\n"
        f"  SE {torch.as_tensor(se).tolist()}, z {z.tolist()} (threshold {Z_MAX}, false-fail probability {p_fail})"
    )


# --------------------------------------------------------------------------- E1 sample_images


def _constant_decoder(probs, h: int = 8, w: int = 8):
    """A decoder ignoring z whose every pixel has the categorical ``probs``."""
    logits = torch.tensor(probs).log().view(1, -1, 1, 1)
    return lambda z: logits.expand(z.shape[0], -1, h, w)


def _sign_decoder(h: int = 4, w: int = 4, strength: float = 8.0):
    """Every pixel is 1 with probability sigmoid(±8) = 0.9997 / 0.0003 according to the sign of z[0]."""

    def decoder(z):
        one = strength * torch.sign(z[:, 0]).view(-1, 1, 1, 1).expand(-1, 1, h, w)
        return torch.cat([torch.zeros_like(one), one], 1)  # (n, 2, h, w)

    return decoder


def _argmax_trap(decoder, n_images, z_dim):
    """Seed 000's Q1.1 as written: the most likely level instead of a sample."""
    return decoder(torch.randn(n_images, z_dim)).argmax(1)


def _z_per_pixel_trap(decoder, n_images, z_dim):
    """A fresh z for every pixel: pixel (h, w) of image i decoded from its own z."""
    h, w = decoder(torch.zeros(1, z_dim)).shape[-2:]
    logits = decoder(torch.randn(n_images * h * w, z_dim)).view(n_images, h * w, -1, h * w)
    own = logits.diagonal(dim1=1, dim2=3).movedim(-1, 1)  # (n, h·w, k): pixel p from its own z
    return Categorical(logits=own).sample().view(n_images, h, w)


@given(n=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3), k=st.integers(1, 4), j=st.integers(1, 3))
def test_e1_shape_dtype_range(n, h, w, k, j):
    A = torch.randn(j, k * h * w, generator=torch.Generator().manual_seed(k * 100 + j))
    x = sample_images(lambda z: (3 * z @ A).view(-1, k, h, w), n, j)
    assert x.shape == (n, h, w) and x.dtype == torch.long
    assert ((x >= 0) & (x < k)).all()


@pytest.mark.parametrize("sampler", [sample_images, _argmax_trap], ids=["reference", "argmax-trap"])
@pytest.mark.parametrize("probs", [(0.7, 0.3), (0.5, 0.3, 0.2)])
def test_trap_seed000_q11_pixels_are_sampled_not_argmaxed(sampler, probs):
    # Seed 000 Q1.1 "select the largest probability": wrong, pixels are sampled.
    # 200 images × 64 pixels = 12800 i.i.d. pixels. Hoeffding: P(|freq_c − p_c| ≥ 0.03)
    # ≤ 2 exp(−2 · 12800 · 0.03²) = 2.0e-10 per level; ≤ 3 levels: false-fail < 1e-9.
    # argmax puts every pixel on level 0, off by ≥ 0.3 in level 1.
    torch.manual_seed(1001)
    x = sampler(_constant_decoder(probs), 200, 3)
    freq = torch.bincount(x.flatten(), minlength=len(probs)).double() / x.numel()
    ok = bool(((freq - torch.tensor(probs, dtype=F64)).abs() < 0.03).all())
    assert ok == (sampler is sample_images), f"seed 1001, n={x.numel()}: level frequencies {freq.tolist()} vs {probs}"


@pytest.mark.parametrize("sampler", [sample_images, _z_per_pixel_trap], ids=["reference", "z-per-pixel-trap"])
def test_trap_seed000_q11_one_z_per_image(sampler):
    # Seed 000 Q1.1 "for a pixel, sample z": wrong, one z is drawn per image and shared by its pixels.
    # With one z per image, pixels follow the sign of z[0]: the agreement of a pixel with
    # pixel (0, 0) has mean (1−q)² + q² ≥ 0.9993 (q = sigmoid(−8)) and the Pearson
    # correlation of two pixels across images is ≈ 1; with one z per pixel they are
    # independent (agreement 0.5, correlation 0). Per image Y_i = fraction of its 16 pixels
    # equal to pixel (0, 0) ∈ [0, 1], i.i.d. over 500 images; Hoeffding: P(mean Y < 0.8)
    # ≤ exp(−2 · 500 · 0.199²) = 5e-18. P(pixel (0,0) = 1) = ½ exactly (z[0] symmetric):
    # P(|freq − ½| ≥ 0.13) ≤ 2 exp(−2 · 500 · 0.13²) = 9e-8. False-fail < 1e-7.
    torch.manual_seed(1002)
    x = sampler(_sign_decoder(), 500, 2).double()
    agreement = (x == x[:, :1, :1]).double().mean((1, 2)).mean().item()
    corr = torch.corrcoef(torch.stack([x[:, 0, 0], x[:, -1, -1]]))[0, 1].item()
    ones = x[:, 0, 0].mean().item()
    msg = f"seed 1002, 500 images: agreement with pixel (0,0) {agreement:.3f}, corr {corr:.3f}, P(1) {ones:.3f}"
    assert (agreement > 0.8 and abs(ones - 0.5) < 0.13) == (sampler is sample_images), msg


def test_e1_latents_are_standard_normal():
    # The decoder sees all of z: n·J = 2000 draws that must be i.i.d. N(0, 1). Exact laws:
    # mean ~ N(0, 1/2000), P(|mean| > 6/√2000) = 2.0e-9; Σ z² ~ χ²₂₀₀₀, bounded by its
    # 1e-9 and 1 − 1e-9 quantiles. False-fail < 5e-9.
    seen = []

    def decoder(z):
        seen.append(z.detach().clone())
        return torch.zeros(z.shape[0], 2, 1, 1)

    torch.manual_seed(1003)
    sample_images(decoder, 500, 4)
    z = torch.cat(seen).double()
    assert z.shape == (500, 4)
    n = z.numel()
    lo, hi = stats.chi2.ppf(1e-9, n), stats.chi2.isf(1e-9, n)
    ss = z.square().sum().item()
    assert abs(z.mean().item()) < Z_MAX / math.sqrt(n), f"seed 1003: mean of z {z.mean().item()} (n={n})"
    assert lo < ss < hi, f"seed 1003: Σz² = {ss:.1f} outside the χ²_{n} range [{lo:.1f}, {hi:.1f}]"


# --------------------------------------------------------------------------- E2, E3 against log p(x)

R_REP, S_REP = 1000, 2000  # replicates (identical batch rows) × samples per estimate
DIMS = (1, 4)


def _delta_method(moments: tuple[float, float, float], S: int) -> dict[str, float]:
    """Bias and variance of log((1/S) Σ w_s) for i.i.d. w with E w = 1, from E w², E w³, E w⁴.

    First order: bias −ρ²/2S, variance ρ²/S (ρ² = Var w). The second-order terms
    ((μ₃/3 − ¾ρ⁴)/S² for the bias, (2.5ρ⁴ − μ₃)/S² for the variance) are not
    added but allowed twice over; ``excess_kurtosis`` is that of the mean of S weights.
    """
    m2, m3, m4 = moments
    rho2 = m2 - 1
    mu3, mu4 = m3 - 3 * m2 + 2, m4 - 4 * m3 + 6 * m2 - 3
    return dict(
        bias=-rho2 / (2 * S),
        bias_slack=2 * abs(mu3 / 3 - 0.75 * rho2**2) / S**2,
        var=rho2 / S,
        var_slack=2 * abs(2.5 * rho2**2 - mu3) / S**2,
        excess_kurtosis=(mu4 / rho2**2 - 3) / S,
    )


@functools.lru_cache(maxsize=None)
def _replicates(J: int) -> dict:
    """R_REP naive (E2) and importance-sampled (E3) estimates of one log p(x), with their predicted laws.

    The model: D = J + 2, d = 3, s = 1 (posterior variance 0.1 per dim), x with
    posterior mean 0.5 in every dim. The IS proposal has its mean shifted by 0.3
    posterior SDs and 1.5 times the posterior variance.
    """
    model = LinearGaussian.random(J, J + 2, d=3.0, s=1.0, seed=J)
    x = model.x_with_posterior_mean(torch.full((1, J), 0.5, dtype=F64))
    m, log_v = model.posterior(x)
    mu_q, logvar_q = m + 0.3 * torch.exp(0.5 * log_v), log_v + math.log(1.5)
    xs = x.expand(R_REP, -1)
    torch.manual_seed(2000 + J)
    naive = log_likelihood_mc(xs, model.log_px_given_z, J, S_REP)
    encoder = lambda _: (mu_q.expand(R_REP, -1), logvar_q.expand(R_REP, -1))  # noqa: E731
    is_ = log_likelihood_is(xs, encoder, model.log_px_given_z, S_REP)
    prior = (torch.zeros_like(m), torch.zeros_like(m))
    law = {
        name: _delta_method(tuple(model.weight_moment(x, *q, n).item() for n in (2, 3, 4)), S_REP)
        for name, q in (("naive", prior), ("is", (mu_q, logvar_q)))
    }
    return dict(log_px=model.log_px(x).item(), naive=naive, is_=is_, law=law)


@pytest.mark.parametrize("J", DIMS)
@pytest.mark.parametrize("name", ["naive", "is"])
def test_e2_e3_converge_to_log_px(name, J):
    # Mean of R = 1000 i.i.d. estimates vs log p(x) + first-order bias: SE = √(ρ²/(S R));
    # see the module docstring (< 6e-8), plus twice the second-order bias as slack.
    rep = _replicates(J)
    est, law = rep["naive" if name == "naive" else "is_"], rep["law"][name]
    assert est.shape == (R_REP,) and est.dtype == F64
    expected = rep["log_px"] + law["bias"]
    se = math.sqrt(law["var"] / R_REP)
    err = est.mean().item() - expected
    assert abs(err) <= Z_MAX * se + law["bias_slack"], (
        f"{name} J={J}: seed {2000 + J}, R={R_REP}, S={S_REP}: mean estimate {est.mean().item():.6f}, "
        f"log p(x) {rep['log_px']:.6f}, predicted bias {law['bias']:.2e}, z = {err / se:.2f} "
        f"(threshold {Z_MAX}, false-fail probability < 6e-8)"
    )


def _variance_range(law: dict, R: int, p: float = 1e-8) -> tuple[float, float]:
    """Where the sample variance of R estimates lies with probability ≥ 1 − 2p.

    (R−1) v̂/σ² ~ χ²_{R−1} for normal estimates; the estimates' excess kurtosis κ
    widens it by √(1 + κ (R−1) / 2R) about 1. σ² = ρ²/S ± the second-order slack.
    """
    widen = math.sqrt(1 + law["excess_kurtosis"] * (R - 1) / (2 * R))
    lo, hi = (stats.chi2.ppf(q, R - 1) / (R - 1) for q in (p, 1 - p))
    return (
        (law["var"] - law["var_slack"]) * (1 - widen * (1 - lo)),
        (law["var"] + law["var_slack"]) * (1 + widen * (hi - 1)),
    )


def test_e3_has_lower_variance_and_the_gap_grows_with_dimension():
    # Each of the 4 sample variances is within its χ² range (probability ≥ 1 − 2e-8 each):
    # false-fail < 1e-7. The predicted ratios Var(naive)/Var(IS) are 14.8 (J = 1) and
    # 89 (J = 4) — naive relative variance (1 + ρ₁²)^J − 1 grows exponentially, IS ≈ J ρ_q²
    # — and the ranges are narrow enough (±30 %) that ratio(J=4) > 2 · ratio(J=1) follows.
    ratios = {}
    for J in DIMS:
        rep = _replicates(J)
        for name, est in (("naive", rep["naive"]), ("is", rep["is_"])):
            lo, hi = _variance_range(rep["law"][name], R_REP)
            v = est.var().item()
            assert lo <= v <= hi, f"{name} J={J}, seed {2000 + J}: sample variance {v:.3e} outside [{lo:.3e}, {hi:.3e}]"
        ratios[J] = rep["naive"].var().item() / rep["is_"].var().item()
    assert ratios[1] > 1 and ratios[4] > 2 * ratios[1], f"Var(naive)/Var(IS) by J: {ratios}"


def test_e3_is_exact_with_the_true_posterior():
    # With q = p(z|x) every weight p(x, z)/q(z|x) equals p(x): zero variance for every S.
    model = LinearGaussian.random(3, 5, d=torch.tensor([0.5, 2.0, 3.0]), s=0.7, seed=7)
    x = model.b + torch.randn(4, 5, generator=torch.Generator().manual_seed(7), dtype=F64) * 2
    torch.manual_seed(3001)
    for S in (1, 5):
        got = log_likelihood_is(x, model.posterior, model.log_px_given_z, S)
        torch.testing.assert_close(got, model.log_px(x), rtol=1e-12, atol=1e-10)


@given(model=linear_gaussian_models(), data=st.data(), S=st.integers(1, 3))
def test_e3_exact_posterior_property(model, data, S):
    x = data.draw(small_tensors((2, model.D), dtype=F64))
    got = log_likelihood_is(x, model.posterior, model.log_px_given_z, S)
    torch.testing.assert_close(got, model.log_px(x), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_trap_e2_naive_log_mean_exp_underflows(dtype):
    # log p(x|z) = −1e5 + (a proper log-likelihood): exp underflows for every sample.
    model = LinearGaussian.random(2, 3, seed=3)
    x = model.b.expand(4, -1).to(dtype)
    tiny = lambda x, z: model.log_px_given_z(x, z) - 1e5  # noqa: E731
    torch.manual_seed(3002)
    got = log_likelihood_mc(x, tiny, 2, 50)
    torch.manual_seed(3002)
    shifted = log_likelihood_mc(x, model.log_px_given_z, 2, 50) - 1e5
    assert torch.isfinite(got).all() and got.dtype == dtype and got.shape == (4,)
    torch.testing.assert_close(got, shifted, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
    torch.manual_seed(3002)
    naive_trap = torch.log(torch.exp(tiny(x, torch.randn(50, 4, 2, dtype=dtype))).mean(0))
    assert torch.isneginf(naive_trap).all()


def test_e2_integer_data_give_default_dtype():
    model = LinearGaussian.random(1, 2, seed=0)
    got = log_likelihood_mc(torch.zeros(3, 2, dtype=torch.long), model.log_px_given_z, 1, 4)
    assert got.dtype == torch.get_default_dtype() and got.shape == (3,)


@given(model=linear_gaussian_models(), data=st.data(), B=st.integers(1, 3), S=st.integers(1, 4), dtype=DTYPES)
def test_e2_e3_e4_shapes_and_dtypes(model, data, B, S, dtype):
    x = data.draw(small_tensors((B, model.D), dtype=dtype))
    mu, logvar = data.draw(gaussian_params(B, model.J, dtype=dtype))
    encoder = lambda _: (mu, logvar)  # noqa: E731
    results = {
        "E2": log_likelihood_mc(x, model.log_px_given_z, model.J, S),
        "E3": log_likelihood_is(x, encoder, model.log_px_given_z, S),
        "E4": elbo(x, encoder, model.log_px_given_z, S),
    }
    for qid, got in results.items():
        assert got.shape == (B,) and got.dtype == dtype and torch.isfinite(got).all(), (qid, got)


@given(data=st.data(), B=st.integers(1, 4), J=st.integers(1, 3), D=st.integers(1, 3), S=st.integers(1, 5), dtype=DTYPES)
def test_e2_e3_e4_batching_with_a_likelihood_that_ignores_z(data, B, J, D, S, dtype):
    """log p(x | z) = f(x) for every z: then log p(x) = f(x) and p(z | x) = N(0, I), so every estimator is exact.

    E2 = logsumexp_s f − log S = f; E3 with the encoder at the prior: log p(z) − log q(z) = 0 per
    sample, so E3 = f; E4 = f − KL(q ‖ N(0, I)) for any q. Deterministic, so each batch row,
    the batch shape and the dtype are checked exactly (no sampling error to hide behind).
    """
    x = data.draw(small_tensors((B, D), dtype=dtype))
    mu, logvar = data.draw(gaussian_params(B, J, dtype=dtype))
    f = -0.5 * x.double().square().sum(-1)  # (B,)

    def log_px_given_z(x_, z):
        assert x_.shape == (B, D) and z.shape == (S, B, J)
        return (-0.5 * x_.to(z.dtype).square().sum(-1)).expand(z.shape[0], -1)

    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    prior = lambda _: (torch.zeros(B, J, dtype=dtype), torch.zeros(B, J, dtype=dtype))  # noqa: E731
    zeros = torch.zeros(B, J, dtype=F64)
    kl = kl_divergence(_diag_normal(mu.double(), logvar.double()), _diag_normal(zeros, zeros))
    for qid, got, expected in (
        ("E2", log_likelihood_mc(x, log_px_given_z, J, S), f),
        ("E3", log_likelihood_is(x, prior, log_px_given_z, S), f),
        ("E4", elbo(x, lambda _: (mu, logvar), log_px_given_z, S), f - kl),
    ):
        assert got.shape == (B,) and got.dtype == dtype, qid
        torch.testing.assert_close(got.double(), expected, **tol, msg=qid)


def test_e2_gradcheck_wrt_x():
    model = LinearGaussian.random(2, 3, seed=6)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(6), dtype=F64).requires_grad_()

    def f(x):
        torch.manual_seed(2004)
        return log_likelihood_mc(x, model.log_px_given_z, 2, 7)

    assert gradcheck(f, (x,))


def test_e3_gradcheck_wrt_x_and_encoder_parameters():
    model = LinearGaussian.random(2, 3, seed=8)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(3, 3, generator=g, dtype=F64).requires_grad_()
    A = (0.3 * torch.randn(3, 4, generator=g, dtype=F64)).requires_grad_()
    a = (0.3 * torch.randn(4, generator=g, dtype=F64)).requires_grad_()

    def f(x, A, a):
        torch.manual_seed(3004)
        return log_likelihood_is(x, lambda x: (x @ A + a).chunk(2, -1), model.log_px_given_z, 5)

    assert gradcheck(f, (x, A, a))


# --------------------------------------------------------------------------- E4 elbo

S_ELBO = 20_000


def _elbo_problem():
    """Four rows: q the exact posterior, a shifted mean, a wider and a narrower variance."""
    model = LinearGaussian.random(3, 5, d=torch.tensor([1.0, 2.0, 0.5]), s=0.8, seed=11)
    x = model.b + torch.randn(4, 5, generator=torch.Generator().manual_seed(11), dtype=F64)
    m, log_v = model.posterior(x)
    mu = m + torch.tensor([[0.0], [0.4], [0.0], [-0.2]], dtype=F64)
    logvar = log_v + torch.tensor([[0.0], [0.0], [0.7], [-0.9]], dtype=F64)
    return model, x, mu, logvar


def test_e4_closed_form_ground_truth_is_consistent():
    # The test's own closed form: ELBO = log p(x) − KL(q ‖ p(z|x)), KL by torch.distributions.
    model, x, mu, logvar = _elbo_problem()
    gap = kl_divergence(_diag_normal(mu, logvar), _diag_normal(*model.posterior(x)))
    torch.testing.assert_close(model.exact_elbo(x, mu, logvar), model.log_px(x) - gap, rtol=1e-12, atol=1e-12)


def test_e4_matches_the_exact_elbo_and_stays_below_log_px():
    # SE from the exact variance of log p(x|z) under q (a Gaussian quadratic form); 4 rows,
    # false-fail < 4 · 6e-8. At the exact posterior (row 0) the ELBO equals log p(x), but this
    # estimator is not zero-variance: its closed-form KL is not the sampled log q − log p.
    # (E3 is — see test_e3_is_exact_with_the_true_posterior.)
    model, x, mu, logvar = _elbo_problem()
    torch.manual_seed(4001)
    got = elbo(x, lambda _: (mu, logvar), model.log_px_given_z, S_ELBO)
    exact, log_px = model.exact_elbo(x, mu, logvar), model.log_px(x)
    se = torch.sqrt(model.log_px_given_z_moments(x, mu, logvar)[1] / S_ELBO)
    _assert_z(got, exact, se, "E4 vs closed-form ELBO", 4001, S_ELBO, "< 3e-7")
    assert se[0] > 0 and torch.allclose(exact[0], log_px[0], rtol=1e-12)
    gap = log_px - exact
    assert (gap[1:] > 4 * Z_MAX * se[1:]).all(), "the suboptimal rows must be far below log p(x)"
    assert (got <= log_px + Z_MAX * se).all() and (got[1:] < log_px[1:]).all(), (got, log_px)


def test_e4_gradient_is_the_reparameterised_gradient():
    # R = 4000 identical rows with their own (mu, logvar) leaves give 4000 i.i.d. single-sample
    # gradients; their mean is compared with the gradient of the closed-form ELBO, SE from the
    # sample SD (t₃₉₉₉ ≈ normal). 6 statistics: false-fail < 4e-7. `sample()` (no path
    # through z) would leave only −∂KL, off by many SEs.
    model, x, mu, logvar = _elbo_problem()
    row = 1
    R = 4000
    mu_r = mu[row].expand(R, -1).clone().requires_grad_()
    lv_r = logvar[row].expand(R, -1).clone().requires_grad_()
    torch.manual_seed(4002)
    elbo(x[row].expand(R, -1), lambda _: (mu_r, lv_r), model.log_px_given_z, 1).sum().backward()
    mu0, lv0 = mu[row : row + 1].clone().requires_grad_(), logvar[row : row + 1].clone().requires_grad_()
    expected = torch.autograd.grad(model.exact_elbo(x[row : row + 1], mu0, lv0).sum(), (mu0, lv0))
    for name, g, e in (("mu", mu_r.grad, expected[0][0]), ("logvar", lv_r.grad, expected[1][0])):
        _assert_z(g.mean(0), e, g.std(0) / math.sqrt(R), f"E4 ∂ELBO/∂{name}", 4002, R, "< 4e-7")


def test_e4_gradcheck_wrt_encoder_parameters():
    model = LinearGaussian.random(2, 3, seed=5)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 3, generator=g, dtype=F64)
    A = (0.3 * torch.randn(3, 4, generator=g, dtype=F64)).requires_grad_()
    a = (0.3 * torch.randn(4, generator=g, dtype=F64)).requires_grad_()

    def f(A, a):
        torch.manual_seed(4003)
        return elbo(x, lambda x: (x @ A + a).chunk(2, -1), model.log_px_given_z, 3)

    assert gradcheck(f, (A, a))


# --------------------------------------------------------------------------- E5 vae_losses


def _losses_by_distributions(x, x_logits, mu, logvar):
    nll = -Categorical(logits=x_logits.movedim(1, -1)).log_prob(x).sum((1, 2))  # (B,)
    kl = kl_divergence(_diag_normal(mu, logvar), _diag_normal(torch.zeros_like(mu), torch.zeros_like(logvar)))
    return nll.mean(), kl.mean()


@given(data=st.data(), B=st.integers(1, 3), k=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3),
       J=st.integers(1, 3), dtype=DTYPES)  # fmt: skip
def test_e5_against_torch_distributions(data, B, k, h, w, J, dtype):
    x = data.draw(categorical_images(B, k, h, w))
    x_logits = data.draw(small_tensors((B, k, h, w), dtype=dtype))
    mu, logvar = data.draw(gaussian_params(B, J, dtype=dtype))
    rec, reg = vae_losses(x, x_logits, mu, logvar)
    assert rec.shape == () and reg.shape == () and rec.dtype == dtype and reg.dtype == dtype
    assert rec >= 0 and reg >= 0
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, expected in zip((rec, reg), _losses_by_distributions(x, x_logits.double(), mu.double(), logvar.double())):
        torch.testing.assert_close(got.double(), expected, **tol)


def test_e5_reductions_sum_over_pixels_and_latents_mean_over_batch():
    g = torch.Generator().manual_seed(5001)
    x, x_logits = torch.randint(0, 3, (2, 4, 5), generator=g), torch.randn(2, 3, 4, 5, generator=g, dtype=F64)
    mu, logvar = torch.randn(2, 3, generator=g, dtype=F64), torch.randn(2, 3, generator=g, dtype=F64)
    rec, reg = vae_losses(x, x_logits, mu, logvar)
    rec2, reg2 = vae_losses(x.repeat(2, 1, 1), x_logits.repeat(2, 1, 1, 1), mu.repeat(2, 1), logvar.repeat(2, 1))
    torch.testing.assert_close((rec2, reg2), (rec, reg))  # a duplicated batch: same means
    wide = vae_losses(x.repeat(1, 1, 2), x_logits.repeat(1, 1, 1, 2), mu.repeat(1, 2), logvar.repeat(1, 2))
    torch.testing.assert_close(wide, (2 * rec, 2 * reg))  # twice the pixels / latents: twice the sums


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_e5_stable_for_extreme_logits(dtype):
    x = torch.tensor([[[0, 1]]])
    x_logits = torch.tensor([[[[1e4, -1e4]], [[-1e4, 1e4]]]], dtype=dtype)  # both pixels right with certainty
    rec, _ = vae_losses(x, x_logits, torch.zeros(1, 1, dtype=dtype), torch.zeros(1, 1, dtype=dtype))
    assert rec.item() == 0.0
    rec, _ = vae_losses(1 - x, x_logits, torch.zeros(1, 1, dtype=dtype), torch.zeros(1, 1, dtype=dtype))
    torch.testing.assert_close(rec, torch.tensor(4e4, dtype=dtype))  # both wrong: 2 · 2e4, finite


def test_e5_gradcheck():
    g = torch.Generator().manual_seed(5002)
    x = torch.randint(0, 3, (2, 2, 3), generator=g)
    args = [torch.randn(*s, generator=g, dtype=F64).requires_grad_() for s in ((2, 3, 2, 3), (2, 2), (2, 2))]
    assert gradcheck(lambda *a: vae_losses(x, *a), args)


# --------------------------------------------------------------------------- E6 kl_mc

S_KL = 20_000
MU6 = torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.5, 1.5]], dtype=F64)
LOGVAR6 = torch.tensor([[0.0, 0.0], [-1.0, 0.5], [1.0, -2.0]], dtype=F64)


def _std_normal_log_prob(z):
    return Normal(torch.zeros((), dtype=z.dtype), 1.0).log_prob(z).sum(-1)


def _mixture_prior() -> MixtureSameFamily:
    loc = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]], dtype=F64)
    scale = torch.tensor([[0.5, 1.0], [1.0, 0.7], [0.8, 0.8]], dtype=F64)
    return MixtureSameFamily(Categorical(torch.tensor([0.5, 0.3, 0.2], dtype=F64)), Independent(Normal(loc, scale), 1))


def test_e5_regularization_against_a_large_monte_carlo_sample():
    # The closed-form KL of E5 against mean_n [log q(z_n) − log N(z_n; 0, I)], z_n ~ q, n = 10⁶,
    # both densities from torch.distributions. Exact per-sample variance Σ_j (μ²σ² + ½(σ² − 1)²)
    # (see test_e6_standard_normal_prior_gives_the_closed_form_kl); the batch mean of B = 3 rows
    # is one statistic, a mean of 10⁶ quadratic forms: false-fail < 6e-8 (module docstring).
    g = torch.Generator().manual_seed(5003)
    x, x_logits = torch.randint(0, 2, (3, 2, 2), generator=g), torch.randn(3, 2, 2, 2, generator=g, dtype=F64)
    _, reg = vae_losses(x, x_logits, MU6, LOGVAR6)
    n = 10**6
    torch.manual_seed(5003)
    q = _diag_normal(MU6, LOGVAR6)
    z = q.sample((n,))  # (n, 3, 2)
    terms = (q.log_prob(z) - _std_normal_log_prob(z)).mean(-1)  # (n,): the batch mean per draw
    var = LOGVAR6.exp()
    se = torch.sqrt((MU6.square() * var + 0.5 * (var - 1).square()).sum(-1).sum() / 9 / n)
    _assert_z(terms.mean(), reg, se, "E5 regularization vs a 10⁶-sample KL", 5003, n)


def test_e6_standard_normal_prior_gives_the_closed_form_kl():
    # log q(z_s) − log N(z_s; 0, I) = ½ Σ_j (μ² + 2μσε + (σ² − 1) ε² − log σ²): exact variance
    # Σ_j (μ²σ² + ½ (σ² − 1)²). Rows with σ = 1, μ = 0 have zero variance. 3 rows: < 2e-7.
    torch.manual_seed(6001)
    got = kl_mc(MU6, LOGVAR6, _std_normal_log_prob, S_KL)
    expected = kl_divergence(_diag_normal(MU6, LOGVAR6), _diag_normal(torch.zeros_like(MU6), torch.zeros_like(MU6)))
    var = LOGVAR6.exp()
    se = torch.sqrt((MU6.square() * var + 0.5 * (var - 1).square()).sum(-1) / S_KL)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-12)
    _assert_z(got[1:], expected[1:], se[1:], "E6 with a N(0, I) prior vs closed-form KL", 6001, S_KL, "< 2e-7")


def test_e6_prior_equal_to_q_gives_zero():
    # log_prior = log q itself: every sample contributes exactly 0.
    torch.manual_seed(6002)
    got = kl_mc(MU6, LOGVAR6, lambda z: _diag_normal(MU6, LOGVAR6).log_prob(z), 7)
    torch.testing.assert_close(got, torch.zeros(3, dtype=F64), rtol=0, atol=1e-12)


def test_e6_mixture_prior_against_a_large_sample():
    # Reference: N = 10⁶ independent draws of q by torch.distributions; SE of the difference
    # √(sd² (1/S + 1/N)) with sd from that sample (relative error ~ 1e-3). 3 rows: < 2e-7.
    prior, q = _mixture_prior(), _diag_normal(MU6, LOGVAR6)
    torch.manual_seed(6003)
    got = kl_mc(MU6, LOGVAR6, prior.log_prob, S_KL)
    n = 10**6
    z = q.sample((n,))  # (n, 3, 2)
    terms = q.log_prob(z) - prior.log_prob(z)  # (n, 3)
    se = terms.std(0) * math.sqrt(1 / S_KL + 1 / n)
    _assert_z(got, terms.mean(0), se, "E6 with a mixture prior vs a 10⁶-sample estimate", 6003, S_KL, "< 2e-7")


def test_e6_gradient_is_the_reparameterised_gradient():
    # N(0, I) prior: ∂/∂μ_j = mean_s (μ_j + σ_j ε_sj), SE σ_j/√S; ∂/∂logvar_j = mean_s ½ σ_j ε_sj
    # (μ_j + σ_j ε_sj) − ½, SE √(¼ σ_j² (μ_j² + 2σ_j²) / S). Expected: the closed-form gradients
    # μ and ½(σ² − 1). 12 statistics, Gaussian (μ) or quadratic: false-fail < 8e-7.
    mu, logvar = MU6.clone().requires_grad_(), LOGVAR6.clone().requires_grad_()
    torch.manual_seed(6004)
    kl_mc(mu, logvar, _std_normal_log_prob, S_KL).sum().backward()
    var = LOGVAR6.exp()
    _assert_z(mu.grad, MU6, var.sqrt() / math.sqrt(S_KL), "E6 ∂KL/∂mu", 6004, S_KL, "< 8e-7")
    se_lv = torch.sqrt(0.25 * var * (MU6.square() + 2 * var) / S_KL)
    _assert_z(logvar.grad, 0.5 * (var - 1), se_lv, "E6 ∂KL/∂logvar", 6004, S_KL, "< 8e-7")


def test_e6_gradcheck():
    prior = _mixture_prior()
    mu, logvar = MU6.clone().requires_grad_(), LOGVAR6.clone().requires_grad_()

    def f(mu, logvar):
        torch.manual_seed(6005)
        return kl_mc(mu, logvar, prior.log_prob, 5)

    assert gradcheck(f, (mu, logvar))


@given(data=st.data(), B=st.integers(1, 3), J=st.integers(1, 3), S=st.integers(1, 4), dtype=DTYPES)
def test_e6_shapes_and_dtypes(data, B, J, S, dtype):
    mu, logvar = data.draw(gaussian_params(B, J, dtype=dtype))
    got = kl_mc(mu, logvar, _std_normal_log_prob, S)
    assert got.shape == (B,) and got.dtype == dtype and torch.isfinite(got).all()
