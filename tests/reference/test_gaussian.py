"""Part B (seed 004 §2): the Cholesky-parameterised Gaussian against independent ground truth.

Ground truth is never ``reference.gaussian`` itself: hand-built factors,
``torch.distributions.MultivariateNormal`` (``log_prob``, ``covariance_matrix``,
``kl_divergence``), ``scipy.stats``, Monte Carlo with standard errors derived
in closed form, and gradcheck. Each known student trap (``Lᵀ L``, an exp
diagonal, the explicit ``Σ⁻¹`` form, ``z = μ + Lᵀ ε``) has a test showing that
the data used here tells it apart from the reference.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, kl_divergence

from reference.gaussian import (
    covariance_from_scale_tril,
    full_gaussian_log_prob,
    kl_full_gaussian_standard_normal,
    rsample_full_gaussian,
    scale_tril_from_raw,
)
from tests.strategies import DTYPES, batch_shapes, scale_trils, small_tensors

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)
#: assert_close tolerances per dtype for values of order one.
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}
#: Tolerances where the reference computation is exact up to the final roundings.
EXACT_TOL = {torch.float32: dict(rtol=1e-6, atol=1e-6), torch.float64: dict(rtol=1e-13, atol=1e-13)}
#: log2 of the diagonal entries of the ill-conditioned factors: 2^-14 ≈ 6.1e-5 … 2.
DIAG_EXPONENTS = (-14, -10, -6, -1, 0, 1)

#: Monte-Carlo tests: |statistic| ≤ Z_MAX standard errors, SEs in closed form.
#: A sample mean of Gaussians is exactly normal, so 2Φ(−6) = 2.0e-9 bounds its
#: false-fail chance. Second-moment and KL statistics are means of n ≥ 2·10⁵
#: i.i.d. Gaussian quadratic forms (skewness γ ≤ 2√2); Cramér's large-deviation
#: correction at t = 6 is at most exp(t³γ / 6√n) ≤ 1.3, so their two-sided tail
#: is < 2 · 2.0e-9. With at most 9 statistics per test, a correct
#: implementation fails a test with probability < 9 · 4.0e-9 < 1e-7 (< 1e-6).
Z_MAX = 6.0
N_MC = 200_000


# --------------------------------------------------------------------------- strategies


@st.composite
def broadcast_partner(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A batch shape that broadcasts with ``shape`` to ``shape``: leading dims dropped, sides set to 1."""
    keep = draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - keep :]
    return tuple(1 if draw(st.booleans()) else s for s in tail)


@st.composite
def gaussian_params(draw, n_vectors: int = 1):
    """``(dtype, batch, L, vectors)``: L and ``n_vectors`` ``(*B_i, D)`` tensors broadcasting to ``batch``.

    L's batch and all but the first vector's are random broadcast partners;
    the first vector has the full batch, so the broadcast result is ``batch``.
    """
    dtype = draw(DTYPES)
    batch = draw(batch_shapes(max_dims=3))
    d = draw(st.integers(1, 4))
    L = draw(scale_trils(draw(broadcast_partner(batch)), d, dtype=dtype))
    vectors = [draw(small_tensors((*draw(broadcast_partner(batch)), d), -4, 4, dtype=dtype)) for _ in range(n_vectors)]
    if vectors:
        vectors[0] = vectors[0].expand(*batch, d).clone()
    return dtype, batch, L, vectors


def _std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) in closed form; ``(*B, D)`` → ``(*B,)``."""
    return -0.5 * z.square().sum(-1) - 0.5 * z.shape[-1] * LOG_2PI


@st.composite
def dyadic_gaussian_points(draw):
    """``(dtype, batch, L, mu, eps, Σ log L_ii)`` with ill-conditioned L and exact ``z = μ + L ε``.

    L has diagonal 2^k, k ∈ DIAG_EXPONENTS (down to 6e-5) and strict lower part
    in halves of [−2, 2]; μ, ε are halves. Every product and partial sum then
    fits in 24 bits, so z and a forward substitution are exact in float32 and
    the true log-density is log N(ε; 0, I) − Σ log L_ii, while cond(L) ~ 1e4^(D−1).
    """
    dtype = draw(DTYPES)
    batch = draw(batch_shapes(max_dims=3))
    d = draw(st.integers(1, 6))
    batch_L = draw(broadcast_partner(batch))
    n_diag = math.prod(batch_L) * d
    exponents = draw(st.lists(st.sampled_from(DIAG_EXPONENTS), min_size=n_diag, max_size=n_diag))
    diag = 2.0 ** torch.tensor(exponents, dtype=F64).reshape(*batch_L, d)
    L = draw(small_tensors((*batch_L, d, d), -2, 2, dtype=dtype)).tril(-1) + torch.diag_embed(diag).to(dtype)
    mu = draw(small_tensors((*draw(broadcast_partner(batch)), d), -4, 4, dtype=dtype))
    eps = draw(small_tensors((*batch, d), -2, 2, dtype=dtype))
    return dtype, batch, L, mu, eps, diag.log().sum(-1)


# A non-diagonal factor whose L Lᵀ and Lᵀ L differ by O(1) in every block.
L3 = torch.tensor([[1.0, 0.0, 0.0], [1.5, 0.5, 0.0], [-1.0, 2.0, 0.8]], dtype=F64)
MU3 = torch.tensor([0.5, -1.0, 2.0], dtype=F64)


# --------------------------------------------------------------------------- B1 scale_tril_from_raw


def _softplus_inverse(y: float) -> float:
    return math.log(math.expm1(y))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_b1_hand_built(dtype):
    raw = torch.tensor(
        [[0.0, 5.0, -7.0], [2.0, _softplus_inverse(2.0), 9.0], [-3.0, 0.5, _softplus_inverse(0.5)]], dtype=F64
    ).to(dtype)
    expected = torch.tensor([[math.log(2.0), 0.0, 0.0], [2.0, 2.0, 0.0], [-3.0, 0.5, 0.5]], dtype=F64).to(dtype)
    raw_before = raw.clone()
    L = scale_tril_from_raw(raw)
    assert L.dtype == dtype
    torch.testing.assert_close(L, expected, rtol=4 * torch.finfo(dtype).eps, atol=4 * torch.finfo(dtype).eps)
    assert torch.equal(raw, raw_before), "raw was modified in place"


def test_trap_b1_exp_instead_of_softplus_diagonal():
    """Students often use exp on the diagonal: same shape, but a different factor (and overflow)."""
    raw = torch.tensor([[0.0, 1.0], [2.0, 100.0]], dtype=F64)
    L = scale_tril_from_raw(raw)
    exp_variant = torch.tril(raw, -1) + torch.diag_embed(raw.diagonal().exp())
    assert (L.diagonal() - exp_variant.diagonal()).abs().min() > 0.3
    # softplus grows linearly: the factor stays finite where exp is ~2.7e43
    assert L[1, 1].item() == pytest.approx(100.0)
    assert torch.isinf(scale_tril_from_raw(raw.float())).sum() == 0
    assert torch.isinf(torch.exp(raw.float())).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_b1_diagonal_positive_for_very_negative_raw(dtype):
    L = scale_tril_from_raw(torch.full((2, 3, 3), -50.0, dtype=dtype))
    assert (L.diagonal(dim1=-2, dim2=-1) > 0).all() and torch.isfinite(L).all()


@given(st.data())
def test_b1_properties(data):
    dtype = data.draw(DTYPES)
    batch = data.draw(batch_shapes(max_dims=3))
    d = data.draw(st.integers(1, 4))
    raw = data.draw(small_tensors((*batch, d, d), dtype=dtype))
    L = scale_tril_from_raw(raw)
    assert L.shape == raw.shape and L.dtype == dtype
    assert torch.equal(L.triu(1), torch.zeros_like(L))
    assert torch.equal(L.tril(-1), raw.tril(-1))
    assert (L.diagonal(dim1=-2, dim2=-1) > 0).all()
    torch.testing.assert_close(
        L.diagonal(dim1=-2, dim2=-1), torch.log1p(raw.diagonal(dim1=-2, dim2=-1).double().exp()).to(dtype), **TOL[dtype]
    )


# --------------------------------------------------------------------------- B2 covariance_from_scale_tril


def test_b2_hand_built():
    L = torch.tensor([[2.0, 0.0], [1.0, 3.0]], dtype=F64)
    expected = torch.tensor([[4.0, 2.0], [2.0, 10.0]], dtype=F64)
    assert torch.equal(covariance_from_scale_tril(L), expected)


def test_trap_b2_lt_l_instead_of_l_lt():
    """``Lᵀ L`` has the same determinant but is another matrix when L is not diagonal."""
    sigma = covariance_from_scale_tril(L3)
    torch.testing.assert_close(sigma, L3 @ L3.mT)
    assert (sigma - L3.mT @ L3).abs().max() > 1.0


@given(st.data())
def test_b2_properties(data):
    dtype, batch, L, _ = data.draw(gaussian_params(n_vectors=0))
    sigma = covariance_from_scale_tril(L)
    assert sigma.shape == L.shape and sigma.dtype == dtype
    torch.testing.assert_close(sigma, sigma.mT, rtol=0, atol=0)
    torch.testing.assert_close(sigma, L @ L.mT, **TOL[dtype])
    expected = MultivariateNormal(torch.zeros(L.shape[:-1], dtype=F64), scale_tril=L.double()).covariance_matrix
    torch.testing.assert_close(sigma, expected.to(dtype), **TOL[dtype])
    assert (torch.linalg.eigvalsh(sigma.double()) > 0).all()


# --------------------------------------------------------------------------- B3 rsample_full_gaussian


def test_b3_hand_built():
    mu = torch.tensor([1.0, -1.0], dtype=F64)
    L = torch.tensor([[2.0, 0.0], [1.0, 3.0]], dtype=F64)
    eps = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]], dtype=F64)
    expected = torch.tensor([[3.0, 0.0], [1.0, 2.0], [3.0, -3.0]], dtype=F64)
    assert torch.equal(rsample_full_gaussian(mu, L, eps), expected)


@given(st.data())
def test_b3_properties(data):
    dtype, batch, L, (eps, mu) = data.draw(gaussian_params(n_vectors=2))
    z = rsample_full_gaussian(mu, L, eps)
    assert z.shape == (*batch, L.shape[-1]) and z.dtype == dtype
    expected = mu.double() + torch.einsum("...ij,...j->...i", L.double(), eps.double())
    torch.testing.assert_close(z, expected.to(dtype), **TOL[dtype])


def _moment_statistics(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Standardised errors of the sample mean ``(D,)`` and second moments ``(D(D+1)/2,)`` of ``z: (N, D)``.

    SE(z̄_j) = √(Σ_jj / N); with the known mean, S_jk = mean (z−μ)_j (z−μ)_k is
    unbiased for Σ_jk with SE √((Σ_jj Σ_kk + Σ_jk²) / N) (Isserlis).
    """
    n = z.shape[0]
    x = z.double() - mu
    mean_stat = x.mean(0) / (sigma.diagonal() / n).sqrt()
    S = x.mT @ x / n
    var = sigma.diagonal()[:, None] * sigma.diagonal()[None, :] + sigma.square()
    rows, cols = torch.tril_indices(*sigma.shape)
    cov_stat = ((S - sigma) / (var / n).sqrt())[rows, cols]
    return torch.cat([mean_stat, cov_stat])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_b3_sample_mean_and_covariance(dtype):
    seed = 4002
    eps = torch.randn(N_MC, 3, dtype=F64, generator=torch.Generator().manual_seed(seed)).to(dtype)
    z = rsample_full_gaussian(MU3.to(dtype), L3.to(dtype), eps)
    stats = _moment_statistics(z, MU3, L3 @ L3.mT)
    worst = stats.abs().max().item()
    assert worst <= Z_MAX, (
        f"seed={seed} n={N_MC}: max |standardised error| of mean/covariance = {worst:.2f} > {Z_MAX} "
        f"(false-fail probability < 1e-7); statistics: {stats.tolist()}"
    )


def test_trap_b3_mu_plus_lt_eps_has_covariance_lt_l():
    """The same statistic tells ``z = μ + Lᵀ ε`` (covariance Lᵀ L) apart: the B2 trap in a sampler.

    Its (0, 0) entry has mean (Lᵀ L − L Lᵀ)_00 / SE ≈ 1028 and standard deviation
    √(2 (Lᵀ L)_00² / 2 (L Lᵀ)_00²) ≈ 4.3 under the wrong law, so falling below 60 needs a
    deviation of > 200 of its standard deviations: false-fail probability far below 1e-100.
    """
    eps = torch.randn(N_MC, 3, dtype=F64, generator=torch.Generator().manual_seed(4002))
    z_wrong = MU3 + eps @ L3  # rows μ + Lᵀ ε
    assert _moment_statistics(z_wrong, MU3, L3 @ L3.mT).abs().max() > 10 * Z_MAX


def test_b3_is_reparameterised():
    mu = MU3.clone().requires_grad_()
    L = L3.clone().requires_grad_()
    eps = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]], dtype=F64)
    rsample_full_gaussian(mu, L, eps).sum().backward()
    torch.testing.assert_close(mu.grad, torch.full((3,), 2.0, dtype=F64))
    torch.testing.assert_close(L.grad.tril(), eps.sum(0).expand(3, 3).tril())  # ∂Σ_n z_ni / ∂L_ij = Σ_n ε_nj


# --------------------------------------------------------------------------- B4 full_gaussian_log_prob


@given(st.data())
def test_b4_properties(data):
    dtype, batch, L, (z, mu) = data.draw(gaussian_params(n_vectors=2))
    out = full_gaussian_log_prob(z, mu, L)
    assert out.shape == batch and out.dtype == dtype
    expected = MultivariateNormal(mu.double(), scale_tril=L.double()).log_prob(z.double())
    torch.testing.assert_close(out, expected.to(dtype), **TOL[dtype])


@given(st.data())
def test_b4_change_of_variables(data):
    """At z = μ + L ε: log N(z; μ, L Lᵀ) = log N(ε; 0, I) − Σ log L_ii."""
    dtype, batch, L, (eps, mu) = data.draw(gaussian_params(n_vectors=2))
    z = rsample_full_gaussian(mu, L, eps)
    expected = _std_normal_log_prob(eps) - L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    torch.testing.assert_close(full_gaussian_log_prob(z, mu, L), expected.expand(batch), **TOL[dtype])


def test_b4_against_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    z = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 3.5], [-4.0, 1.0, 0.0]], dtype=F64)
    expected = scipy_stats.multivariate_normal(MU3.numpy(), (L3 @ L3.mT).numpy()).logpdf(z.numpy())
    torch.testing.assert_close(full_gaussian_log_prob(z, MU3, L3), torch.from_numpy(expected), rtol=1e-10, atol=1e-10)


def _dyadic_case(batch_L, batch_mu, batch_eps, d, dtype, seed, exponents=DIAG_EXPONENTS):
    """Ill-conditioned dyadic data (see :func:`dyadic_gaussian_points`), fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    halves = lambda shape, k: (torch.randint(-2 * k, 2 * k + 1, shape, generator=g) / 2).to(dtype)  # noqa: E731
    diag = 2.0 ** torch.tensor(exponents, dtype=F64)[torch.randint(len(exponents), (*batch_L, d), generator=g)]
    L = halves((*batch_L, d, d), 2).tril(-1) + torch.diag_embed(diag).to(dtype)
    mu, eps = halves((*batch_mu, d), 4), halves((*batch_eps, d), 2)
    return L, mu, eps, diag.log().sum(-1)


DYADIC_CASES = [
    pytest.param(dtype, d, exponents, id=f"{str(dtype)[6:]}-D{d}-{tag}")
    for dtype in (torch.float32, torch.float64)
    for d in (2, 5, 8)
    for exponents, tag in ((DIAG_EXPONENTS, "mixed"), ((-14,), "all-6e-5"))
]


@pytest.mark.parametrize("dtype,d,exponents", DYADIC_CASES)
def test_b4_ill_conditioned_exact_and_matches_mvn(dtype, d, exponents):
    L, mu, eps, log_det = _dyadic_case((4, 1), (5,), (3, 4, 5), d, dtype, seed=d, exponents=exponents)
    z = rsample_full_gaussian(mu, L, eps)  # (3, 4, 5, D), exact
    out = full_gaussian_log_prob(z, mu, L)
    assert out.shape == (3, 4, 5) and out.dtype == dtype
    exact = _std_normal_log_prob(eps.double()) - log_det
    torch.testing.assert_close(out.double(), exact, **EXACT_TOL[dtype])
    torch.testing.assert_close(out, MultivariateNormal(mu, scale_tril=L).log_prob(z), **EXACT_TOL[dtype])


@given(dyadic_gaussian_points())
def test_b4_ill_conditioned_property(case):
    dtype, batch, L, mu, eps, log_det = case
    out = full_gaussian_log_prob(rsample_full_gaussian(mu, L, eps), mu, L)
    assert out.shape == batch and out.dtype == dtype
    exact = _std_normal_log_prob(eps.double()) - log_det
    torch.testing.assert_close(out.double(), exact.expand(batch), **EXACT_TOL[dtype])


@pytest.mark.parametrize("dtype,d", [(torch.float32, 3), (torch.float32, 5), (torch.float32, 8), (torch.float64, 8)])
def test_b4_ill_conditioned_rejects_explicit_inverse(dtype, d):
    """The explicit form −½ xᵀ Σ⁻¹ x − ½ log det Σ breaks down on the same data."""
    L, mu, eps, log_det = _dyadic_case((16,), (16,), (16,), d, dtype, seed=d)
    z = rsample_full_gaussian(mu, L, eps)
    sigma = L @ L.mT
    x = (z - mu).unsqueeze(-1)
    quad = (x.mT @ torch.linalg.inv_ex(sigma).inverse @ x)[..., 0, 0]
    naive = -0.5 * quad - 0.5 * d * LOG_2PI - 0.5 * torch.logdet(sigma)
    exact = _std_normal_log_prob(eps.double()) - log_det
    rel = ((naive.double() - exact).abs() / exact.abs().clamp_min(1)).nan_to_num(nan=math.inf)
    assert rel.max() > 1e-2


def _random_ill_conditioned(d: int, dtype: torch.dtype, seed: int):
    """Non-dyadic factors ``L (3, 4, D, D)``: diagonal log-uniform in [1e-4, 1] with one entry exactly 1e-4
    per factor, Gaussian strict lower part; ``mu (4, D)`` broadcasting against L's batch."""
    g = torch.Generator().manual_seed(seed)
    diag = 10 ** (-4 * torch.rand(3, 4, d, generator=g, dtype=F64))
    diag[..., 0] = 1e-4
    L = torch.randn(3, 4, d, d, generator=g, dtype=F64).tril(-1) + torch.diag_embed(diag)
    mu = torch.randn(4, d, generator=g, dtype=F64)
    return L.to(dtype), mu.to(dtype), g


def _high_precision_log_prob(z: torch.Tensor, mu: torch.Tensor, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact log N(z; μ, L Lᵀ) of the given floating-point numbers, and the error any stable float evaluation may make.

    The value: forward substitution in 80-digit mpmath on the inputs taken as exact binary numbers.
    The bound, first order in the unit roundoff u of the inputs' dtype: forming b = z − μ rounds
    componentwise (|δb| ≤ u|b|), and forward substitution is componentwise backward stable,
    (L + ΔL) ε̂ = b̂ with |ΔL| ≤ D u |L| (Higham, *Accuracy and Stability*, Thm 8.5), so
    |δε| ≤ u |L⁻¹| (|b| + D |L| |ε|). Then ½‖ε‖² moves by ≤ ‖ε‖ ‖δε‖ + D u ‖ε‖², Σ log L_ii by
    ≤ D u (Σ |log L_ii| + 1), and the final roundings by u |value|; the bound is 4× their sum.
    Shapes: ``z, mu: (*B, D)``, ``L: (*B, D, D)`` broadcast → two float64 ``(*B,)``.
    """
    mpmath.mp.dps = 80
    u = torch.finfo(z.dtype).eps / 2
    batch = torch.broadcast_shapes(z.shape[:-1], mu.shape[:-1], L.shape[:-2])
    d = L.shape[-1]
    zs = z.double().expand(*batch, d).reshape(-1, d).tolist()
    mus = mu.double().expand(*batch, d).reshape(-1, d).tolist()
    Ls = L.double().expand(*batch, d, d).reshape(-1, d, d).tolist()
    values, bounds = [], []
    for z_, mu_, L_ in zip(zs, mus, Ls):
        Lm = mpmath.matrix(L_)
        b = [mpmath.mpf(zi) - mpmath.mpf(mi) for zi, mi in zip(z_, mu_)]
        eps = mpmath.lu_solve(Lm, mpmath.matrix(b))
        inv_abs = [[abs(x) for x in row] for row in (Lm**-1).tolist()]
        L_abs_eps = [sum(abs(Lm[i, j]) * abs(eps[j]) for j in range(d)) for i in range(d)]
        rhs = [abs(b[i]) + d * L_abs_eps[i] for i in range(d)]
        delta = [u * sum(inv_abs[i][j] * rhs[j] for j in range(d)) for i in range(d)]
        norm_eps2 = sum(e**2 for e in eps)
        log_diag = [mpmath.log(Lm[i, i]) for i in range(d)]
        value = -norm_eps2 / 2 - d * mpmath.log(2 * mpmath.pi) / 2 - sum(log_diag)
        bound = (
            mpmath.sqrt(norm_eps2) * mpmath.sqrt(sum(x**2 for x in delta))
            + d * u * norm_eps2
            + d * u * (sum(abs(x) for x in log_diag) + 1)
            + u * abs(value)
        )
        values.append(float(value))
        bounds.append(4 * float(bound))
    return torch.tensor(values, dtype=F64).reshape(batch), torch.tensor(bounds, dtype=F64).reshape(batch)


@pytest.mark.parametrize("dtype,d", [(F64, 2), (F64, 4), (F64, 6), (torch.float32, 2), (torch.float32, 4)])
def test_b4_b5_random_ill_conditioned_factors_match_torch_distributions(dtype, d):
    """Diagonal down to exactly 1e-4 (cond(L) up to ~1e18), batched and broadcast, on and off the distribution.

    Ground truth is the high-precision value for the very floats passed in; both the reference
    and ``MultivariateNormal(mu, scale_tril=L)`` must lie within the forward-error bound of a
    stable evaluation (:func:`_high_precision_log_prob`), so they agree with each other to
    twice that. Where L is well enough conditioned the bound is tight (≲ 1e-12 relative in
    float64); for cond(L) ~ 1e18 no float64 method can do better than it allows.
    """
    L, mu, g = _random_ill_conditioned(d, dtype, seed=10 + d)
    eps = torch.randn(5, 3, 4, d, generator=g, dtype=F64).to(dtype)
    off = (3 * torch.randn(5, 3, 4, d, generator=g, dtype=F64)).to(dtype)
    for z in (rsample_full_gaussian(mu, L, eps), off):
        out = full_gaussian_log_prob(z, mu, L)
        assert out.shape == (5, 3, 4) and out.dtype == dtype
        exact, bound = _high_precision_log_prob(z, mu, L)
        mvn = MultivariateNormal(mu, scale_tril=L).log_prob(z)
        for name, got in (("reference", out), ("MultivariateNormal", mvn)):
            err = (got.double() - exact).abs()
            assert (err <= bound).all(), f"{name}: max error/bound {(err / bound).max().item():.3g}"
        # The bound has teeth: the explicit form −½ xᵀ Σ⁻¹ x − ½ log det Σ breaks it (at 33–92 % of these points).
        x = (z - mu).unsqueeze(-1)
        sigma = L @ L.mT
        naive = -0.5 * (x.mT @ torch.linalg.inv(sigma) @ x)[..., 0, 0] - 0.5 * d * LOG_2PI - 0.5 * torch.logdet(sigma)
        assert ((naive.double() - exact).abs() > bound).any()
    kl = kl_full_gaussian_standard_normal(mu, L)
    assert kl.shape == (3, 4) and kl.dtype == dtype
    tol = TOL[dtype]
    torch.testing.assert_close(kl, _kl_reference(mu, L), **tol)
    torch.testing.assert_close(kl.double(), _kl_reference(mu.double(), L.double()), **tol)


# --------------------------------------------------------------------------- B5 kl_full_gaussian_standard_normal


def _kl_reference(mu: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    q = MultivariateNormal(mu, scale_tril=L)
    d = L.shape[-1]
    p = MultivariateNormal(torch.zeros(d, dtype=L.dtype), scale_tril=torch.eye(d, dtype=L.dtype))
    return kl_divergence(q, p)


@given(st.data())
def test_b5_properties(data):
    dtype, batch, L, (mu,) = data.draw(gaussian_params(n_vectors=1))
    out = kl_full_gaussian_standard_normal(mu, L)
    assert out.shape == batch and out.dtype == dtype
    torch.testing.assert_close(out, _kl_reference(mu.double(), L.double()).to(dtype), **TOL[dtype])
    assert (out.double() >= -TOL[dtype]["atol"]).all()


def test_b5_zero_at_standard_normal_and_diagonal_closed_form():
    for d in (1, 3):
        assert kl_full_gaussian_standard_normal(torch.zeros(d), torch.eye(d)).item() == 0.0
    mu = torch.tensor([0.5, -1.0], dtype=F64)
    sigma = torch.tensor([2.0, 0.25], dtype=F64)
    expected = (0.5 * (sigma**2 + mu**2 - 1) - sigma.log()).sum()
    torch.testing.assert_close(kl_full_gaussian_standard_normal(mu, torch.diag(sigma)), expected)


@pytest.mark.parametrize("dtype,d,exponents", DYADIC_CASES)
def test_b5_ill_conditioned_matches_kl_divergence(dtype, d, exponents):
    L, mu, _, _ = _dyadic_case((4, 1), (5,), (), d, dtype, seed=d, exponents=exponents)
    out = kl_full_gaussian_standard_normal(mu, L)
    assert out.shape == (4, 5) and out.dtype == dtype
    torch.testing.assert_close(out, _kl_reference(mu, L), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_b5_equals_monte_carlo_of_b4(dtype):
    """KL = E_q[log q(z) − log N(z; 0, I)], with log q from B4 and z from B3.

    With z = μ + L ε the integrand is ½ εᵀ A ε + μᵀ L ε + const, A = Lᵀ L − I,
    so its variance is ½ tr(A²) + ‖Lᵀ μ‖² exactly, which gives the SE.
    """
    seed = 4005
    mu = torch.stack([MU3, torch.zeros(3, dtype=F64), -0.5 * MU3])  # (3, D)
    L = torch.stack([L3, torch.eye(3, dtype=F64), 0.5 * L3 + 0.2 * torch.eye(3, dtype=F64)])  # (3, D, D)
    eps = torch.randn(N_MC, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))  # (N, 3, D)
    z = rsample_full_gaussian(mu.to(dtype), L.to(dtype), eps.to(dtype))
    integrand = full_gaussian_log_prob(z, mu.to(dtype), L.to(dtype)).double() - _std_normal_log_prob(z.double())
    A = L.mT @ L - torch.eye(3, dtype=F64)
    variance = 0.5 * (A @ A).diagonal(dim1=-2, dim2=-1).sum(-1) + (L.mT @ mu[..., None]).square().sum((-2, -1))
    se = (variance / N_MC).sqrt()
    closed = kl_full_gaussian_standard_normal(mu.to(dtype), L.to(dtype)).double()
    # the rounding of log q in ``dtype`` adds a deterministic atol (q = N(0, I) has SE 0)
    stats = (integrand.mean(0) - closed) / (se + TOL[dtype]["atol"] / Z_MAX)
    assert stats.abs().max() <= Z_MAX, (
        f"seed={seed} n={N_MC}: |MC − closed form| / SE = {stats.tolist()} > {Z_MAX} "
        f"(false-fail probability < 1e-7); closed form {closed.tolist()}, MC {integrand.mean(0).tolist()}"
    )


# --------------------------------------------------------------------------- gradients and errors


def _gradcheck_inputs():
    g = torch.Generator().manual_seed(7)
    diag = torch.rand(2, 1, 3, dtype=F64, generator=g) + 0.5  # away from 0 for finite differences
    L = torch.randn(2, 1, 3, 3, dtype=F64, generator=g).tril(-1) + torch.diag_embed(diag)  # broadcasts with mu: (4, D)
    mu = torch.randn(4, 3, dtype=F64, generator=g)
    v = torch.randn(1, 4, 3, dtype=F64, generator=g)
    raw = torch.randn(2, 3, 3, dtype=F64, generator=g)
    return [t.requires_grad_() for t in (raw, L, mu, v)]


GRADCHECK_CASES = {
    "B1": lambda raw, L, mu, v: (scale_tril_from_raw, (raw,)),
    "B2": lambda raw, L, mu, v: (covariance_from_scale_tril, (L,)),
    "B3": lambda raw, L, mu, v: (rsample_full_gaussian, (mu, L, v)),
    "B4": lambda raw, L, mu, v: (full_gaussian_log_prob, (v, mu, L)),
    "B5": lambda raw, L, mu, v: (kl_full_gaussian_standard_normal, (mu, L)),
}


@pytest.mark.parametrize("qid", sorted(GRADCHECK_CASES))
def test_gradcheck(qid):
    fn, args = GRADCHECK_CASES[qid](*_gradcheck_inputs())
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)


SHAPE_ERRORS = [
    (lambda: scale_tril_from_raw(torch.zeros(2, 3)), r"raw must have shape \(\*B, D, D\).*got \(2, 3\)"),
    (lambda: covariance_from_scale_tril(torch.zeros(3)), r"L must have shape \(\*B, D, D\).*got \(3,\)"),
    (lambda: rsample_full_gaussian(torch.zeros(2), torch.eye(3), torch.zeros(3)), r"mu must have .* D = 3"),
    (lambda: full_gaussian_log_prob(torch.zeros(4), torch.zeros(3), torch.eye(3)), r"z must have shape .* got \(4,\)"),
    (lambda: kl_full_gaussian_standard_normal(torch.zeros(3), torch.eye(2)), r"mu must have shape .*D = 2"),
]


@pytest.mark.parametrize("call,message", SHAPE_ERRORS)
def test_shape_errors_name_parameter_and_shape(call, message):
    with pytest.raises(ValueError, match=message):
        call()
