"""Part C (GMVAE, seed 004 §3) reference against ground truth that is not itself.

C1 against Bayes' rule with ``torch.distributions``; C2 against closed-form
cross-entropies, Monte Carlo and C3; C3 against a sympy integral; C4 against
the plain VAE ELBO, KL closed forms, the optimal γ, and log p(x) by quadrature
in a model small enough to integrate.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

from reference.gmvae import (
    expected_log_gaussian,
    expected_log_gaussian_sympy,
    gmvae_elbo,
    gmvae_responsibilities,
)
from tests.reference.strategies_gmvae import binary_tensors, broadcastable_shapes, mixture_priors
from tests.strategies import DTYPES, batch_shapes, simplex, small_tensors

F64 = torch.float64
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _diag_normal(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


def _mixture(log_pi, mu_c, logvar_c) -> MixtureSameFamily:
    return MixtureSameFamily(Categorical(logits=log_pi), _diag_normal(mu_c, logvar_c))


def _bayes_rule(z, log_pi, mu_c, logvar_c) -> torch.Tensor:
    """p(c | z) = p(c) p(z | c) / p(z), every factor from ``torch.distributions``: (B, J) → (B, K)."""
    mix = _mixture(log_pi, mu_c, logvar_c)
    log_joint = mix.mixture_distribution.logits + mix.component_distribution.log_prob(z.unsqueeze(-2))  # (B, K)
    return torch.exp(log_joint - mix.log_prob(z).unsqueeze(-1))


def _randn(*shape, g, dtype=F64, scale=1.0):
    return (scale * torch.randn(*shape, generator=g, dtype=F64)).to(dtype)


def _problem(B=4, K=3, J=2, D=5, L=2, dtype=F64, seed=0) -> dict[str, torch.Tensor]:
    """Random arguments of ``gmvae_elbo`` with the contract's names and shapes."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        x=(torch.rand(B, D, generator=g) < 0.5).to(dtype),
        x_logits=_randn(L, B, D, g=g, dtype=dtype, scale=2.0),
        mu_z=_randn(B, J, g=g, dtype=dtype),
        logvar_z=_randn(B, J, g=g, dtype=dtype, scale=0.5),
        gamma=torch.softmax(_randn(B, K, g=g), -1).to(dtype),
        log_pi=torch.log_softmax(_randn(K, g=g), -1).to(dtype),
        mu_c=_randn(K, J, g=g, dtype=dtype, scale=2.0),
        logvar_c=_randn(K, J, g=g, dtype=dtype, scale=0.5),
    )


# --------------------------------------------------------------------------- C1


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("B, K, J", [(1, 1, 1), (5, 3, 2), (7, 4, 6)])
def test_responsibilities_are_bayes_rule(dtype, B, K, J):
    g = torch.Generator().manual_seed(B * 100 + K * 10 + J)
    z, log_pi = _randn(B, J, g=g, scale=2.0), torch.log_softmax(_randn(K, g=g), -1)
    mu_c, logvar_c = _randn(K, J, g=g, scale=2.0), _randn(K, J, g=g, scale=0.5)
    expected = _bayes_rule(z, log_pi, mu_c, logvar_c)
    got = gmvae_responsibilities(*(t.to(dtype) for t in (z, log_pi, mu_c, logvar_c)))
    assert got.dtype == dtype and got.shape == (B, K)
    torch.testing.assert_close(got.double(), expected, **TOL[dtype])


@given(data=st.data(), batch=batch_shapes(max_dims=3), K=st.integers(1, 4), J=st.integers(1, 3), dtype=DTYPES)
def test_responsibilities_rows_are_distributions(data, batch, K, J, dtype):
    z = data.draw(small_tensors((*batch, J), dtype=dtype))
    log_pi, mu_c, logvar_c = data.draw(mixture_priors(K, J, dtype=dtype))
    gamma = gmvae_responsibilities(z, log_pi, mu_c, logvar_c)
    assert gamma.shape == (*batch, K) and gamma.dtype == dtype
    assert ((gamma >= 0) & (gamma <= 1)).all()
    torch.testing.assert_close(gamma.sum(-1), torch.ones(batch, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("far", [1e3, -1e3, 3e4])
def test_responsibilities_stable_far_from_every_cluster(dtype, far):
    g = torch.Generator().manual_seed(1)
    log_pi, mu_c, logvar_c = torch.log_softmax(_randn(3, g=g), -1), _randn(3, 2, g=g), _randn(3, 2, g=g, scale=0.3)
    z = torch.tensor([[far, far], [far, -far], [0.0, far]], dtype=F64)
    # Every density underflows: the naive Bayes rule is 0 / 0.
    naive = _mixture(log_pi, mu_c, logvar_c).component_distribution.log_prob(z.unsqueeze(-2)).to(dtype).exp()
    assert (naive == 0).all()
    got = gmvae_responsibilities(*(t.to(dtype) for t in (z, log_pi, mu_c, logvar_c)))
    assert torch.isfinite(got).all() and (got.sum(-1) > 0.999).all()  # no NaN, no all-zero row
    if dtype == F64 or abs(far) <= 1e3:  # float32 log-joints near 1e9 carry absolute errors ~ 50
        torch.testing.assert_close(got.double(), _bayes_rule(z, log_pi, mu_c, logvar_c), rtol=1e-4, atol=1e-4)


def test_responsibilities_ignore_normalisation_of_log_pi():
    p = _problem(K=4, J=3)
    z = p["mu_z"]
    a = gmvae_responsibilities(z, p["log_pi"], p["mu_c"], p["logvar_c"])
    b = gmvae_responsibilities(z, p["log_pi"] + 7.5, p["mu_c"], p["logvar_c"])
    torch.testing.assert_close(a, b, **TOL[F64])


def test_responsibilities_gradcheck():
    p = _problem(B=3, K=3, J=2)
    args = [t.clone().requires_grad_() for t in (p["mu_z"], p["log_pi"], p["mu_c"], p["logvar_c"])]
    assert torch.autograd.gradcheck(gmvae_responsibilities, args)


# --------------------------------------------------------------------------- C2

#: (shape of mu_q / logvar_q, shape of mu_p / logvar_p): broadcasting cases.
C2_SHAPES = [((3,), (3,)), ((4, 2), (4, 2)), ((4, 1, 3), (5, 3)), ((2, 3), (3,)), ((1, 2), (6, 1, 2))]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("shape_q, shape_p", C2_SHAPES)
def test_expected_log_gaussian_is_minus_cross_entropy(dtype, shape_q, shape_p):
    g = torch.Generator().manual_seed(len(shape_q) * 10 + len(shape_p))
    mu_q, logvar_q = _randn(*shape_q, g=g, scale=2.0), _randn(*shape_q, g=g)
    mu_p, logvar_p = _randn(*shape_p, g=g, scale=2.0), _randn(*shape_p, g=g)
    q, p = _diag_normal(mu_q, logvar_q), _diag_normal(mu_p, logvar_p)
    expected = -(kl_divergence(q, p) + q.entropy())  # ∫ q log p = −H(q) − KL(q‖p)
    got = expected_log_gaussian(*(t.to(dtype) for t in (mu_q, logvar_q, mu_p, logvar_p)))
    assert got.dtype == dtype and got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, **TOL[dtype])


def test_expected_log_gaussian_monte_carlo():
    torch.manual_seed(2024)
    mu_q = torch.tensor([[0.0, 1.0, -2.0], [3.0, 0.5, 0.0], [-1.0, -1.0, 2.0]], dtype=F64)
    logvar_q = torch.tensor([[0.0, -1.0, 1.0], [0.5, 0.0, -0.5], [1.0, 1.0, -2.0]], dtype=F64)
    mu_p = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 2.0, 1.5]], dtype=F64)
    logvar_p = torch.tensor([[0.5, 0.0, 0.0], [1.0, -1.0, 0.5], [0.0, 0.5, 0.0]], dtype=F64)
    n = 10**6
    z = _diag_normal(mu_q, logvar_q).sample((n,))  # (n, 3, 3)
    estimate = _diag_normal(mu_p, logvar_p).log_prob(z).mean(0)  # (3,)
    # Honest standard error, from the exact variance rather than the sample's:
    # log p(z) = const − ½ Σ_j (s_j ξ_j + m_j)² with ξ ~ N(0, 1), s = σ̃/σ,
    # m = (μ̃ − μ)/σ, so Var log p(z) = Σ_j (s_j⁴/2 + m_j² s_j²). With n = 10⁶
    # the CLT gives P(|error| > 6 SE) ≈ 2Φ(−6) = 2.0e-9 per row; the first
    # Edgeworth correction, |skew| (z² − 1) φ(z) / (6√n) with |skew| ≤ √8 (a
    # weighted sum of noncentral χ²₁), adds < 1e-10. Three rows: false-fail
    # probability < 1e-8 < 1e-6.
    s2 = torch.exp(logvar_q - logvar_p)
    m2 = (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)
    se = torch.sqrt((s2**2 / 2 + m2 * s2).sum(-1) / n)
    got = expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p)
    err = (got - estimate).abs()
    assert (err < 6 * se).all(), f"seed 2024, n={n}: expected {got}, Monte Carlo {estimate}, |err|/SE {err / se}"


def test_expected_log_gaussian_agrees_with_sympy_lemma():
    mu_q, s_q, mu_p, s_p = sympy.symbols("mu_q s_q mu_p s_p", positive=True)
    f = sympy.lambdify((mu_q, s_q, mu_p, s_p), expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p), "numpy")
    p = _problem(B=6, K=1, J=4)
    mu_q, logvar_q, mu_p, logvar_p = p["mu_z"], p["logvar_z"], p["mu_c"][0], p["logvar_c"][0]
    args = [t.numpy() for t in torch.broadcast_tensors(mu_q, logvar_q.mul(0.5).exp(), mu_p, logvar_p.mul(0.5).exp())]
    expected = torch.from_numpy(np.asarray(f(*args))).sum(-1)
    torch.testing.assert_close(expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p), expected, **TOL[F64])


@pytest.mark.parametrize("point", [(0, 1, 0, 1), ("1/2", "3/2", "-2", "1/4"), ("-3", "1/8", "5/2", "7")])
def test_expected_log_gaussian_matches_c3_evaluated_by_sympy(point):
    """C2 at a rational point against C3 substituted and evaluated by sympy to 30 digits (1-D, s = std)."""
    syms = sympy.symbols("mu_q s_q mu_p s_p", positive=True)
    values = [sympy.Rational(v) for v in point]
    exact = expected_log_gaussian_sympy(*syms).subs(dict(zip(syms, values))).evalf(30)
    mu_q, s_q, mu_p, s_p = (torch.tensor([[float(v)]], dtype=F64) for v in values)
    got = expected_log_gaussian(mu_q, 2 * s_q.log(), mu_p, 2 * s_p.log())
    assert got.shape == (1,)
    assert got.item() == pytest.approx(float(exact), rel=1e-13, abs=1e-13)


def test_expected_log_gaussian_gradcheck():
    p = _problem(B=3, K=1, J=2)
    args = [t.clone().requires_grad_() for t in (p["mu_z"], p["logvar_z"], p["mu_c"], p["logvar_c"])]
    assert torch.autograd.gradcheck(expected_log_gaussian, args)


@given(data=st.data(), J=st.integers(1, 3), dtype=DTYPES)
def test_expected_log_gaussian_broadcasts(data, J, dtype):
    batch, shapes = data.draw(broadcastable_shapes(4, J))
    mu_q = data.draw(small_tensors(shapes[0], dtype=dtype))
    logvar_q = data.draw(small_tensors(shapes[1], -2, 2, dtype=dtype))
    mu_p = data.draw(small_tensors(shapes[2], dtype=dtype))
    logvar_p = data.draw(small_tensors(shapes[3], -2, 2, dtype=dtype))
    got = expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p)
    assert got.shape == batch and got.dtype == dtype
    full = torch.broadcast_tensors(mu_q, logvar_q, mu_p, logvar_p)
    q, p = _diag_normal(full[0].double(), full[1].double()), _diag_normal(full[2].double(), full[3].double())
    torch.testing.assert_close(got.double(), -(kl_divergence(q, p) + q.entropy()), **TOL[dtype])


# --------------------------------------------------------------------------- C3


@functools.cache
def _lemma_by_integration(mu_q, s_q, mu_p, s_p, substitute: bool = True) -> sympy.Expr:
    """∫ N(z; μ̃, s̃²) log N(z; μ, s²) dz by sympy, directly or after z = μ̃ + s̃ t."""
    z, t = sympy.symbols("z t", real=True)
    log_p = sympy.expand_log(
        sympy.log(sympy.exp(-((z - mu_p) ** 2) / (2 * s_p**2)) / sympy.sqrt(2 * sympy.pi * s_p**2)), force=True
    )
    if substitute:
        std_normal = sympy.exp(-(t**2) / 2) / sympy.sqrt(2 * sympy.pi)
        return sympy.integrate(sympy.expand(std_normal * log_p.subs(z, mu_q + s_q * t)), (t, -sympy.oo, sympy.oo))
    q = sympy.exp(-((z - mu_q) ** 2) / (2 * s_q**2)) / sympy.sqrt(2 * sympy.pi * s_q**2)
    return sympy.integrate(sympy.expand(q * log_p), (z, -sympy.oo, sympy.oo))


#: The contract passes four positive symbols; real means must work too.
SYMBOLS = {
    "positive": lambda: sympy.symbols("mu_q s_q mu_p s_p", positive=True),
    "real means": lambda: (
        sympy.Symbol("mu_q", real=True),
        sympy.Symbol("s_q", positive=True),
        sympy.Symbol("mu_p", real=True),
        sympy.Symbol("s_p", positive=True),
    ),
}


@pytest.mark.parametrize("substitute", [True, False], ids=["z = mu_q + s_q t", "direct"])
@pytest.mark.parametrize("kind", list(SYMBOLS))
def test_sympy_lemma_equals_the_integral(kind, substitute):
    syms = SYMBOLS[kind]()
    got = expected_log_gaussian_sympy(*syms)
    assert isinstance(got, sympy.Expr) and got.free_symbols <= set(syms)
    assert sympy.simplify(got - _lemma_by_integration(*syms, substitute=substitute)) == 0


#: Wrong forms of the lemma (the common slips): each must NOT be equivalent.
WRONG_LEMMAS = {
    "no ½ on the variance ratio": "-log(2*pi*s_p**2)/2 - s_q**2/s_p**2 - (mu_q - mu_p)**2/(2*s_p**2)",
    "σ̃ instead of σ̃²": "-log(2*pi*s_p**2)/2 - s_q/(2*s_p**2) - (mu_q - mu_p)**2/(2*s_p**2)",
    "2π dropped": "-log(s_p**2)/2 - s_q**2/(2*s_p**2) - (mu_q - mu_p)**2/(2*s_p**2)",
    "log σ instead of log σ²": "-log(2*pi*s_p)/2 - s_q**2/(2*s_p**2) - (mu_q - mu_p)**2/(2*s_p**2)",
    "q's variance in the normaliser": "-log(2*pi*s_q**2)/2 - s_q**2/(2*s_p**2) - (mu_q - mu_p)**2/(2*s_p**2)",
    "no ½ on the mean term": "-log(2*pi*s_p**2)/2 - s_q**2/(2*s_p**2) - (mu_q - mu_p)**2/s_p**2",
}


@pytest.mark.parametrize("slip", list(WRONG_LEMMAS))
def test_sympy_lemma_wrong_forms_are_not_equivalent(slip):
    syms = SYMBOLS["positive"]()
    truth = _lemma_by_integration(*syms)
    wrong = sympy.sympify(WRONG_LEMMAS[slip], locals={str(x): x for x in syms})
    assert sympy.simplify(wrong - truth) != 0
    assert sympy.simplify(expected_log_gaussian_sympy(*syms) - truth) == 0


# --------------------------------------------------------------------------- C4


def _bernoulli_reconstruction(x, x_logits):
    """mean_l Σ_i log Ber(x_i | sigmoid(logits)) with torch.distributions: (L, B, D) → (B,)."""
    return Bernoulli(logits=x_logits).log_prob(x.expand_as(x_logits)).sum(-1).mean(0)


def _kl_terms(mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c, **_) -> torch.Tensor:
    """Σ_c γ_c KL(q(z|x) ‖ p(z|c)) + KL(Cat(γ) ‖ Cat(π)) from torch.distributions → (B,)."""
    q = _diag_normal(mu_z.unsqueeze(-2), logvar_z.unsqueeze(-2))
    kl_z = kl_divergence(q, _diag_normal(mu_c, logvar_c))  # (B, K)
    return (gamma * kl_z).sum(-1) + kl_divergence(Categorical(probs=gamma), Categorical(logits=log_pi))


def _elbo_from_kl(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """recon − Σ_c γ_c KL(q(z|x) ‖ p(z|c)) − KL(Cat(γ) ‖ Cat(π)).

    Expanding E_q[log p(z|c)] = −KL(q‖p_c) − H(q) shows this is the ELBO of §3.2.
    """
    return _bernoulli_reconstruction(p["x"], p["x_logits"]) - _kl_terms(**p)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("L, B, J, D", [(1, 1, 1, 1), (3, 4, 2, 5), (2, 6, 4, 3)])
def test_elbo_with_one_cluster_is_the_vae_elbo(dtype, L, B, J, D):
    p = _problem(B=B, K=1, J=J, D=D, L=L, seed=L + B + J + D)
    p["gamma"], p["log_pi"] = torch.ones(B, 1, dtype=F64), torch.zeros(1, dtype=F64)
    q, prior = _diag_normal(p["mu_z"], p["logvar_z"]), _diag_normal(p["mu_c"][0], p["logvar_c"][0])
    expected = _bernoulli_reconstruction(p["x"], p["x_logits"]) - kl_divergence(q, prior)
    got = gmvae_elbo(**{k: v.to(dtype) for k, v in p.items()})
    assert got.dtype == dtype and got.shape == (B,)
    torch.testing.assert_close(got.double(), expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_elbo_with_one_standard_normal_cluster_is_the_plain_vae_elbo(dtype):
    """K = 1, μ_1 = 0, σ_1 = 1: the plain VAE ELBO, recon − ½ Σ_j (σ̃_j² + μ̃_j² − 1 − log σ̃_j²) written out."""
    p = _problem(B=5, K=1, J=3, D=4, L=3, seed=42)
    p.update(gamma=torch.ones(5, 1, dtype=F64), log_pi=torch.zeros(1, dtype=F64))
    p.update(mu_c=torch.zeros(1, 3, dtype=F64), logvar_c=torch.zeros(1, 3, dtype=F64))
    x, logits = p["x"], p["x_logits"]
    recon = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1).mean(0)
    kl = 0.5 * (p["logvar_z"].exp() + p["mu_z"] ** 2 - 1 - p["logvar_z"]).sum(-1)
    got = gmvae_elbo(**{k: v.to(dtype) for k, v in p.items()})
    assert got.dtype == dtype and got.shape == (5,)
    torch.testing.assert_close(got.double(), recon - kl, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("seed", range(3))
def test_elbo_matches_kl_decomposition(dtype, seed):
    p = _problem(B=5, K=4, J=3, D=6, L=3, seed=seed)
    got = gmvae_elbo(**{k: v.to(dtype) for k, v in p.items()})
    torch.testing.assert_close(got.double(), _elbo_from_kl(p), **TOL[dtype])


def test_elbo_averages_over_samples():
    """Repeating the L decoded samples leaves the ELBO unchanged (mean, not sum, over L)."""
    p = _problem(L=2)
    repeated = dict(p, x_logits=p["x_logits"].repeat(3, 1, 1))
    torch.testing.assert_close(gmvae_elbo(**repeated), gmvae_elbo(**p), **TOL[F64])


def _optimal_gamma(p):
    """γ*_c ∝ π_c exp(E_q log p(z|c)), from the lemma in torch.distributions form."""
    q = _diag_normal(p["mu_z"].unsqueeze(-2), p["logvar_z"].unsqueeze(-2))
    e_log_p = -(kl_divergence(q, _diag_normal(p["mu_c"], p["logvar_c"])) + q.entropy())  # (B, K)
    return torch.softmax(p["log_pi"] + e_log_p, -1), e_log_p, q.entropy()[..., 0]


def test_elbo_is_maximised_by_the_optimal_gamma():
    p = _problem(B=4, K=5, J=2)
    gamma_star, e_log_p, entropy = _optimal_gamma(p)
    best = gmvae_elbo(**dict(p, gamma=gamma_star))
    # At γ*, Σ_c γ_c (log π_c + E log p(z|c) − log γ_c) = logsumexp_c(log π_c + E log p(z|c)).
    closed = _bernoulli_reconstruction(p["x"], p["x_logits"]) + torch.logsumexp(p["log_pi"] + e_log_p, -1) + entropy
    torch.testing.assert_close(best, closed, **TOL[F64])
    # ELBO(γ) = ELBO(γ*) − KL(Cat(γ) ‖ Cat(γ*)): γ* is the maximiser, and the gap is exactly that KL.
    torch.manual_seed(3)
    for concentration in (0.2, 1.0, 5.0):
        gammas = torch.distributions.Dirichlet(torch.full((5,), concentration, dtype=F64)).sample((200, 4))
        others = gmvae_elbo(**dict(p, gamma=gammas))  # (200, 4): broadcast over the draws
        assert (others <= best).all()
        gap = kl_divergence(Categorical(probs=gammas), Categorical(probs=gamma_star))
        torch.testing.assert_close(best - others, gap, rtol=1e-9, atol=1e-9)


def test_elbo_one_hot_gamma_is_finite():
    """γ_c = 0 terms vanish (0 · log 0 = 0); a one-hot γ is the one-cluster ELBO plus log π_c."""
    p = _problem(B=3, K=3)
    gamma = F.one_hot(torch.tensor([0, 2, 1]), 3).to(F64)
    got = gmvae_elbo(**dict(p, gamma=gamma))
    assert torch.isfinite(got).all()
    expected = _elbo_from_kl(dict(p, gamma=gamma))
    torch.testing.assert_close(got, expected, **TOL[F64])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_trap_c4_log_sigmoid_overflow(dtype):
    """Logits ±100: the reference is finite and exact; x log σ(l) + (1 − x) log(1 − σ(l)) is not.

    σ(100) rounds to 1 in both dtypes, so log(1 − σ) = −inf and 0 · log(0) = nan.
    """
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=dtype)
    x_logits = torch.tensor([[[100.0, -100.0, -100.0, 100.0], [100.0, 100.0, -100.0, -100.0]]], dtype=dtype)
    mu_x = torch.sigmoid(x_logits)
    naive = (x * torch.log(mu_x) + (1 - x) * torch.log(1 - mu_x)).sum(-1).mean(0)
    assert not torch.isfinite(naive).any()
    zeros = torch.zeros(2, 3, dtype=dtype)
    # With q = the single cluster = N(0, I), every term but the reconstruction is 0.
    got = gmvae_elbo(
        x, x_logits, zeros, zeros, torch.ones(2, 1, dtype=dtype), torch.zeros(1, dtype=dtype), zeros[:1], zeros[:1]
    )
    assert got.dtype == dtype and torch.isfinite(got).all()
    expected = torch.tensor([-2 * (100 + math.log1p(math.exp(-100))), -4 * math.log1p(math.exp(-100))], dtype=F64)
    torch.testing.assert_close(got.double(), expected, **TOL[dtype])


def test_elbo_gradcheck():
    p = _problem(B=2, K=3, J=2, D=3, L=2)
    names = ["x_logits", "mu_z", "logvar_z", "gamma", "log_pi", "mu_c", "logvar_c"]
    leaves = [p[n].clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(lambda *a: gmvae_elbo(p["x"], *a), leaves)


@given(
    data=st.data(),
    batch=batch_shapes(max_dims=2),
    L=st.integers(1, 3),
    K=st.integers(1, 3),
    J=st.integers(1, 3),
    D=st.integers(1, 4),
    dtype=DTYPES,
)
def test_elbo_shapes_and_dtype(data, batch, L, K, J, D, dtype):
    x = data.draw(binary_tensors((*batch, D), dtype=dtype))
    x_logits = data.draw(small_tensors((L, *batch, D), dtype=dtype))
    mu_z = data.draw(small_tensors((*batch, J), dtype=dtype))
    logvar_z = data.draw(small_tensors((*batch, J), -2, 2, dtype=dtype))
    gamma = data.draw(simplex(K, dtype=dtype)).expand(*batch, K)
    log_pi, mu_c, logvar_c = data.draw(mixture_priors(K, J, dtype=dtype))
    p = dict(
        x=x, x_logits=x_logits, mu_z=mu_z, logvar_z=logvar_z, gamma=gamma, log_pi=log_pi, mu_c=mu_c, logvar_c=logvar_c
    )
    got = gmvae_elbo(**p)
    assert got.shape == batch and got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), _elbo_from_kl({k: v.double() for k, v in p.items()}), **TOL[dtype])


# --- the seed's trap: the entropy must use q's own variance σ̃², and the 2π cancels


def _seed_formula(p, entropy="q", two_pi_in_entropy=False) -> torch.Tensor:
    """The §3.5 formula term by term; ``entropy="cluster"`` reads its last σ_j² as σ_c,j² (the trap).

    ½ Σ_j (1 + log σ̃_j²) is H(q) − ½ J log 2π; ``two_pi_in_entropy`` keeps that 2π
    while the lemma's is dropped (the other trap).
    """
    inv_var_c = torch.exp(-p["logvar_c"])
    mu_z, logvar_z = p["mu_z"].unsqueeze(-2), p["logvar_z"].unsqueeze(-2)  # (B, 1, J)
    mismatch = (p["logvar_c"] + logvar_z.exp() * inv_var_c + (mu_z - p["mu_c"]) ** 2 * inv_var_c).sum(-1)  # (B, K)
    gamma = p["gamma"]
    if entropy == "q":
        h = 0.5 * (1 + p["logvar_z"]).sum(-1)
    else:
        h = 0.5 * (gamma * (1 + p["logvar_c"]).sum(-1)).sum(-1)
    if two_pi_in_entropy:
        h = h + 0.5 * p["mu_z"].shape[-1] * math.log(2 * math.pi)
    categorical = (gamma * (p["log_pi"] - gamma.log())).sum(-1)
    return _bernoulli_reconstruction(p["x"], p["x_logits"]) - 0.5 * (gamma * mismatch).sum(-1) + categorical + h


SEED_TRAPS = {"entropy with σ_c²": dict(entropy="cluster"), "2π kept in the entropy": dict(two_pi_in_entropy=True)}


@pytest.mark.parametrize("trap", list(SEED_TRAPS))
def test_trap_seed004_35_entropy_uses_q_variance(trap):
    # Seed 004 §3.5's last lines put σ_j² (a cluster's variance) where H(q(z|x)) needs q's own
    # σ̃_j², and the 2π of the entropy cancels the lemma's. The reference equals the ELBO built
    # from torch.distributions KLs; both misreadings are off by > 0.1 on every row.
    p = _problem(B=4, K=3, J=3)
    truth = _elbo_from_kl(p)
    torch.testing.assert_close(_seed_formula(p), truth, **TOL[F64])  # 2π-free form, σ̃² in the entropy: correct
    torch.testing.assert_close(gmvae_elbo(**p), truth, **TOL[F64])
    assert ((_seed_formula(p, **SEED_TRAPS[trap]) - truth).abs() > 0.1).all()


# --- ELBO ≤ log p(x) in a model small enough to integrate: J = 1, decoder logits w z + b

_GRID = torch.linspace(-25.0, 25.0, 50_001, dtype=F64)  # trapezoid nodes for z, spacing 1e-3
_QUANTILES = 20_000  # deterministic "samples" z_l = μ̃ + σ̃ Φ⁻¹((l − ½)/L) for the ELBO's E_q


def _tiny_model(seed: int, B: int = 4, D: int = 3, K: int = 3, w_scale: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    model = dict(
        log_pi=torch.log_softmax(_randn(K, g=g), -1),
        mu_c=torch.linspace(-3.0, 3.0, K, dtype=F64).unsqueeze(-1),
        logvar_c=_randn(K, 1, g=g, scale=0.3),
        w=_randn(D, g=g, scale=w_scale),
        b=_randn(D, g=g),
    )
    x = (torch.rand(B, D, generator=g) < 0.5).to(F64)
    return model, x


def _log_px_by_quadrature(model, x) -> torch.Tensor:
    """log ∫ Σ_c π_c N(z; μ_c, σ_c²) Π_i Ber(x_i | sigmoid(w_i z + b_i)) dz, trapezoid on _GRID → (B,)."""
    z = _GRID
    log_prior = _mixture(model["log_pi"], model["mu_c"], model["logvar_c"]).log_prob(z.unsqueeze(-1))  # (Z,)
    logits = (z[:, None, None] * model["w"] + model["b"]).expand(-1, len(x), -1)  # (Z, B, D)
    log_lik = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)  # (Z, B)
    h = torch.full_like(z, (z[-1] - z[0]).item() / (len(z) - 1))
    h[0] = h[-1] = h[0] / 2
    return torch.logsumexp(log_prior[:, None] + log_lik + h.log()[:, None], 0)


def _elbo_by_quadrature(model, x, mu_z, logvar_z, gamma) -> torch.Tensor:
    """gmvae_elbo with L = 20 000 quantile nodes of q in place of random samples (error < 1e-4, checked)."""
    u = torch.special.ndtri((torch.arange(_QUANTILES, dtype=F64) + 0.5) / _QUANTILES)
    z = mu_z[..., 0] + torch.exp(0.5 * logvar_z[..., 0]) * u[:, None]  # (L, B)
    x_logits = z[..., None] * model["w"] + model["b"]  # (L, B, D)
    return gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, model["log_pi"], model["mu_c"], model["logvar_c"])


def _elbo_by_gauss_hermite(model, x, mu_z, logvar_z, gamma) -> torch.Tensor:
    """The exact ELBO: E_q log p(x|z) by 150-node Gauss–Hermite, the rest as KLs (see _elbo_from_kl)."""
    t, wt = (torch.from_numpy(a) for a in np.polynomial.hermite_e.hermegauss(150))
    z = mu_z[..., 0] + torch.exp(0.5 * logvar_z[..., 0]) * t[:, None]  # (T, B)
    logits = z[..., None] * model["w"] + model["b"]  # (T, B, D)
    log_lik = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)  # (T, B)
    reconstruction = (wt[:, None] / math.sqrt(2 * math.pi) * log_lik).sum(0)
    return reconstruction - _kl_terms(mu_z, logvar_z, gamma, model["log_pi"], model["mu_c"], model["logvar_c"])


@pytest.mark.parametrize("seed", range(3))
def test_elbo_is_below_log_evidence(seed):
    model, x = _tiny_model(seed)
    log_px = _log_px_by_quadrature(model, x)
    g = torch.Generator().manual_seed(100 + seed)
    tol = 2e-4  # deterministic quantile-node error is < 3e-5 here; checked against Gauss–Hermite below
    for _ in range(5):
        mu_z, logvar_z = _randn(4, 1, g=g, scale=2.0), _randn(4, 1, g=g)
        gamma = torch.softmax(_randn(4, 3, g=g, scale=2.0), -1)
        elbo = _elbo_by_quadrature(model, x, mu_z, logvar_z, gamma)
        exact = _elbo_by_gauss_hermite(model, x, mu_z, logvar_z, gamma)
        assert (elbo - exact).abs().max() < tol / 2, "quantile nodes too coarse"
        assert (exact <= log_px).all(), f"exact ELBO {exact} above log p(x) {log_px}"
        assert (elbo <= log_px + tol).all(), f"ELBO {elbo} above log p(x) {log_px}"

    # The best q in the family: the bound still holds (the mean-field gap stays, < 1.5 nats here).
    theta = torch.zeros(4, 5, dtype=F64, requires_grad=True)  # μ̃, log σ̃², γ logits
    opt = torch.optim.LBFGS([theta], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -_elbo_by_quadrature(model, x, theta[:, :1], theta[:, 1:2], torch.softmax(theta[:, 2:], -1)).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        best = _elbo_by_quadrature(model, x, theta[:, :1], theta[:, 1:2], torch.softmax(theta[:, 2:], -1))
    assert (best <= log_px + tol).all(), f"optimised ELBO {best} above log p(x) {log_px}"
    assert (log_px - best < 1.5).all(), f"optimised ELBO {best} far below log p(x) {log_px}"


def test_elbo_is_tight_when_the_posterior_is_in_the_family():
    """Decoder ignores z and clusters coincide: p(z, c | x) = π_c N(z; μ, σ²) is mean-field.

    Then q = N(μ, σ²), γ = π gives ELBO = log p(x) = Σ_i log Ber(x_i | sigmoid(b_i))
    exactly — and the seed's trap (2π kept in the entropy) exceeds the evidence.
    """
    model, x = _tiny_model(7, K=4, w_scale=0.0)
    model["mu_c"] = torch.full((4, 1), 0.7, dtype=F64)
    model["logvar_c"] = torch.full((4, 1), -0.4, dtype=F64)
    log_px = _log_px_by_quadrature(model, x)
    torch.testing.assert_close(log_px, Bernoulli(logits=model["b"]).log_prob(x).sum(-1), rtol=1e-10, atol=1e-10)
    p = dict(
        x=x,
        x_logits=model["b"].expand(2, 4, 3),
        mu_z=model["mu_c"][:1].expand(4, 1),
        logvar_z=model["logvar_c"][:1].expand(4, 1),
        gamma=model["log_pi"].exp().expand(4, 4),
        **{k: model[k] for k in ("log_pi", "mu_c", "logvar_c")},
    )
    torch.testing.assert_close(gmvae_elbo(**p), log_px, rtol=1e-10, atol=1e-10)
    assert (_seed_formula(p, two_pi_in_entropy=True) > log_px + 0.9).all()  # ½ log 2π ≈ 0.919 above
