"""The contract's common student bugs that span several parts (ASSIGNMENT.md, "Known traps").

One test per bug. Each pins the reference to ground truth that is not itself
(``torch.distributions``, closed forms written out) on data where the buggy
variant is far off, and computes that variant to show the data tell them
apart. Bugs that belong to one question have their ``test_trap_*`` in that
part's file: ``Lᵀ L`` (test_gaussian), exp diagonal (test_gaussian),
``sample()`` (test_kl), ``log(sigmoid(·))`` (test_gmvae), naive
``log(mean(exp(·)))`` (test_vae), straight-through detach (test_vq), EMA
without smoothing (test_vq), and the seeds' own traps (test_kl, test_gmvae,
test_vae). Nothing here is random beyond fixed seeds; no test is statistical.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal, kl_divergence

import reference
from reference.gaussian import full_gaussian_log_prob, kl_full_gaussian_standard_normal
from reference.gmvae import expected_log_gaussian, gmvae_elbo, gmvae_responsibilities
from reference.kl import forward_kl_loss
from reference.vae import log_likelihood_is, vae_losses
from reference.vq import vq_losses

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)
FAR = 1e-2  # a buggy variant is off by more than this (the reference is held to 1e-10 or 1e-12)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _diag_normal(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    """N(mu, diag exp(logvar)) with scale = exp(½ logvar): the one correct reading of a log-variance."""
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


def _far(buggy: torch.Tensor, truth: torch.Tensor) -> bool:
    return bool((buggy - truth).abs().max() > FAR)


# --------------------------------------------------------------------------- variance vs log-variance vs std

#: What a buggy reading takes for the variance σ², given the log-variance argument ℓ.
#: Feeding the reference log(σ²_buggy) in place of ℓ makes it compute exactly that bug.
MISREADINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "log-variance used as the variance": lambda lv: lv,
    "log-variance used as the std": lambda lv: lv**2,
    "exp(log-variance) used as the std": lambda lv: torch.exp(2 * lv),
    "exp(½ log-variance) used as the variance": lambda lv: torch.exp(0.5 * lv),
}


def _misread(logvar: torch.Tensor, how: str) -> torch.Tensor:
    return torch.log(MISREADINGS[how](logvar))


def _logvars(*shape: int, seed: int) -> torch.Tensor:
    """Log-variances in [0.5, 2]: positive (so every misreading is defined) and away from 0 (where some coincide)."""
    return 0.5 + 1.5 * torch.rand(*shape, generator=_g(seed), dtype=F64)


def _c1_case():
    g = _g(11)
    z, log_pi = torch.randn(4, 2, generator=g, dtype=F64), torch.log_softmax(torch.randn(3, generator=g, dtype=F64), -1)
    mu_c = torch.randn(3, 2, generator=g, dtype=F64)
    logvar_c = _logvars(3, 2, seed=12)

    def truth():
        mix = MixtureSameFamily(Categorical(logits=log_pi), _diag_normal(mu_c, logvar_c))
        return torch.exp(log_pi + mix.component_distribution.log_prob(z.unsqueeze(-2)) - mix.log_prob(z).unsqueeze(-1))

    return (lambda lv: gmvae_responsibilities(z, log_pi, mu_c, lv)), logvar_c, truth


def _c2_case():
    g = _g(21)
    mu_q, mu_p = torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    logvar_q, logvar_p = _logvars(4, 3, seed=22), _logvars(4, 3, seed=23)
    q, p = _diag_normal(mu_q, logvar_q), _diag_normal(mu_p, logvar_p)
    # misread both log-variances the same way
    fn = lambda lv: expected_log_gaussian(mu_q, lv[0], mu_p, lv[1])  # noqa: E731
    return fn, torch.stack([logvar_q, logvar_p]), lambda: -(kl_divergence(q, p) + q.entropy())


def _c4_case():
    g = _g(31)
    x = (torch.rand(3, 4, generator=g) < 0.5).to(F64)
    x_logits, mu_z = torch.randn(2, 3, 4, generator=g, dtype=F64), torch.randn(3, 2, generator=g, dtype=F64)
    gamma = torch.softmax(torch.randn(3, 2, generator=g, dtype=F64), -1)
    log_pi = torch.log_softmax(torch.randn(2, generator=g, dtype=F64), -1)
    mu_c = torch.randn(2, 2, generator=g, dtype=F64)
    logvar_z, logvar_c = _logvars(3, 2, seed=32), _logvars(2, 2, seed=33)

    def truth():
        recon = torch.distributions.Bernoulli(logits=x_logits).log_prob(x.expand_as(x_logits)).sum(-1).mean(0)
        q = _diag_normal(mu_z.unsqueeze(-2), logvar_z.unsqueeze(-2))
        kl_z = (gamma * kl_divergence(q, _diag_normal(mu_c, logvar_c))).sum(-1)
        return recon - kl_z - kl_divergence(Categorical(probs=gamma), Categorical(logits=log_pi))

    fn = lambda lv: gmvae_elbo(x, x_logits, mu_z, lv[:3], gamma, log_pi, mu_c, lv[3:])  # noqa: E731
    return fn, torch.cat([logvar_z, logvar_c]), truth


def _e5_case():
    g = _g(41)
    x, x_logits = torch.randint(0, 3, (4, 2, 2), generator=g), torch.randn(4, 3, 2, 2, generator=g, dtype=F64)
    mu = torch.randn(4, 3, generator=g, dtype=F64)
    logvar = _logvars(4, 3, seed=42)
    standard = _diag_normal(torch.zeros_like(mu), torch.zeros_like(mu))
    truth = lambda: kl_divergence(_diag_normal(mu, logvar), standard).mean()  # noqa: E731
    return (lambda lv: vae_losses(x, x_logits, mu, lv)[1]), logvar, truth


def _e3_case():
    # Linear-Gaussian, 1-D: z ~ N(0, 1), x | z ~ N(2z, 1): p(z | x) = N(2x/5, 1/5), p(x) = N(x; 0, 5).
    # With the true posterior every importance weight is p(x), so E3 is exact for every S.
    x = torch.tensor([[-1.0], [0.5], [2.0]], dtype=F64)
    log_px_given_z = lambda x, z: Normal(2 * z[..., 0], 1.0).log_prob(x[..., 0])  # noqa: E731
    logvar = torch.full((3, 1), math.log(0.2), dtype=F64)

    def fn(lv):
        torch.manual_seed(51)
        return log_likelihood_is(x, lambda _: (0.4 * x, lv), log_px_given_z, 8)

    return fn, logvar, lambda: Normal(torch.zeros((), dtype=F64), torch.tensor(5.0, dtype=F64).sqrt()).log_prob(x[:, 0])


LOGVAR_CASES = {"C1": _c1_case, "C2": _c2_case, "C4": _c4_case, "E5": _e5_case, "E3": _e3_case}


@pytest.mark.parametrize("qid", list(LOGVAR_CASES))
def test_trap_variance_vs_logvar_vs_std(qid):
    fn, logvar, truth = LOGVAR_CASES[qid]()
    expected = truth()
    torch.testing.assert_close(fn(logvar), expected, rtol=1e-10, atol=1e-10)
    for how, variance in MISREADINGS.items():
        if (variance(logvar) <= 0).any():  # E3's log σ² = log(1/5) < 0 cannot be read as a variance
            continue
        assert _far(fn(_misread(logvar, how)), expected), f"{qid}: {how} is not told apart"


# --------------------------------------------------------------------------- missing ½ factors


def _b_case():
    L = torch.tensor([[1.5, 0.0, 0.0], [0.7, 0.4, 0.0], [-1.2, 0.9, 2.0]], dtype=F64)
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], dtype=F64)
    z = torch.tensor([[1.0, -2.0, 3.0], [-0.5, 0.5, 1.0]], dtype=F64)
    return L, mu, z


def test_trap_missing_half_factors():
    L, mu, z = _b_case()
    d, logdet_L = 3, L.diagonal().log().sum()
    eps = torch.linalg.solve_triangular(L, (z - mu).unsqueeze(-1), upper=False).squeeze(-1)
    # B4: −½‖ε‖² − (D/2) log 2π − Σ log L_ii; dropping either ½ changes it
    truth = MultivariateNormal(mu, scale_tril=L).log_prob(z)
    torch.testing.assert_close(full_gaussian_log_prob(z, mu, L), truth, rtol=1e-12, atol=1e-12)
    assert _far(-eps.square().sum(-1) - 0.5 * d * LOG_2PI - logdet_L, truth)
    assert _far(-0.5 * eps.square().sum(-1) - 0.5 * d * LOG_2PI - 2 * logdet_L, truth)  # log det Σ without its ½
    # B5: ½(tr Σ + ‖μ‖² − D) − Σ log L_ii
    standard = MultivariateNormal(torch.zeros(d, dtype=F64), scale_tril=torch.eye(d, dtype=F64))
    truth = kl_divergence(MultivariateNormal(mu, scale_tril=L), standard)
    torch.testing.assert_close(kl_full_gaussian_standard_normal(mu, L), truth, rtol=1e-12, atol=1e-12)
    assert _far(L.square().sum() + mu.square().sum(-1) - d - logdet_L, truth)
    # C2 / E5: the lemma's three halves and the diagonal KL's
    g = _g(61)
    mu_q, mu_p = torch.randn(4, 2, generator=g, dtype=F64) * 2, torch.randn(4, 2, generator=g, dtype=F64)
    lv_q, lv_p = _logvars(4, 2, seed=62), _logvars(4, 2, seed=63)
    q, p = _diag_normal(mu_q, lv_q), _diag_normal(mu_p, lv_p)
    truth = -(kl_divergence(q, p) + q.entropy())
    torch.testing.assert_close(expected_log_gaussian(mu_q, lv_q, mu_p, lv_p), truth, rtol=1e-12, atol=1e-12)
    ratio, mean_term = (lv_q - lv_p).exp(), (mu_q - mu_p) ** 2 * (-lv_p).exp()
    for slips in ((1, 0.5, 0.5), (0.5, 1, 0.5), (0.5, 0.5, 1)):  # one ½ dropped at a time
        buggy = -(slips[0] * (LOG_2PI + lv_p) + slips[1] * ratio + slips[2] * mean_term).sum(-1)
        assert _far(buggy, truth), slips
    x, x_logits = torch.zeros(4, 1, 1, dtype=torch.long), torch.zeros(4, 2, 1, 1, dtype=F64)
    truth = kl_divergence(q, _diag_normal(torch.zeros_like(mu_q), torch.zeros_like(mu_q))).mean()
    torch.testing.assert_close(vae_losses(x, x_logits, mu_q, lv_q)[1], truth, rtol=1e-12, atol=1e-12)
    assert _far((lv_q.exp() + mu_q**2 - 1 - lv_q).sum(-1).mean(), truth)


# --------------------------------------------------------------------------- sum vs mean reductions


def test_trap_sum_vs_mean_reductions():
    g = _g(71)
    # E5: sum over pixels, mean over the batch (per-image NLL, then the batch mean)
    x, x_logits = torch.randint(0, 3, (4, 3, 5), generator=g), torch.randn(4, 3, 3, 5, generator=g, dtype=F64)
    mu, logvar = torch.randn(4, 2, generator=g, dtype=F64), torch.randn(4, 2, generator=g, dtype=F64)
    rec, reg = vae_losses(x, x_logits, mu, logvar)
    nll = -Categorical(logits=x_logits.movedim(1, -1)).log_prob(x)  # (B, H, W)
    kl = kl_divergence(_diag_normal(mu, logvar), _diag_normal(torch.zeros_like(mu), torch.zeros_like(mu)))  # (B,)
    torch.testing.assert_close((rec, reg), (nll.sum((1, 2)).mean(), kl.mean()), rtol=1e-12, atol=1e-12)
    for wrong in (nll.mean(), nll.sum(), nll.mean((1, 2)).mean()):
        assert _far(wrong, rec)
    for wrong in (kl.sum(), (0.5 * (logvar.exp() + mu**2 - 1 - logvar)).mean()):
        assert _far(wrong, reg)
    # D2: means over all |B|·D elements, not sums, not per-vector sums
    z_e, codebook = torch.randn(2, 3, 4, generator=g, dtype=F64), torch.randn(5, 4, generator=g, dtype=F64)
    idx = torch.tensor([[0, 2, 4], [1, 1, 3]])
    codebook_loss, commitment = vq_losses(z_e, codebook, idx, beta=0.25)
    sq = (z_e - codebook[idx]).square()
    torch.testing.assert_close((codebook_loss, commitment), (sq.mean(), 0.25 * sq.mean()), rtol=1e-12, atol=1e-12)
    for wrong in (sq.sum(), sq.sum(-1).mean()):
        assert _far(wrong, codebook_loss)
    # A2: the mean over the N samples of p, not their sum
    q = Normal(torch.tensor(0.3, dtype=F64), torch.tensor(1.2, dtype=F64))
    x_p = torch.randn(50, generator=g, dtype=F64)
    loss = forward_kl_loss(q, x_p)
    by_hand = (0.5 * ((x_p - 0.3) / 1.2) ** 2 + math.log(1.2) + 0.5 * LOG_2PI).mean()
    torch.testing.assert_close(loss, by_hand, rtol=1e-12, atol=1e-12)
    assert _far(50 * by_hand, loss)
    # C4: the mean over the L decoded samples (repeating them changes nothing), not their sum
    xb = (torch.rand(3, 4, generator=g) < 0.5).to(F64)
    logits = torch.randn(2, 3, 4, generator=g, dtype=F64)
    args = (torch.zeros(3, 2, dtype=F64), torch.zeros(3, 2, dtype=F64), torch.ones(3, 1, dtype=F64))
    prior = (torch.zeros(1, dtype=F64), torch.zeros(1, 2, dtype=F64), torch.zeros(1, 2, dtype=F64))
    one = gmvae_elbo(xb, logits, *args, *prior)  # q = the one cluster = N(0, I): ELBO = reconstruction
    recon = -F.binary_cross_entropy_with_logits(logits, xb.expand_as(logits), reduction="none").sum(-1)  # (L, B)
    torch.testing.assert_close(one, recon.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gmvae_elbo(xb, logits.repeat(3, 1, 1), *args, *prior), one, rtol=1e-12, atol=1e-12)
    assert _far(recon.sum(0), one)


# --------------------------------------------------------------------------- in-place mutation


def _mixture_1d() -> MixtureSameFamily:
    components = Normal(torch.tensor([-3.0, 3.0]), torch.ones(2))
    return MixtureSameFamily(Categorical(probs=torch.tensor([0.5, 0.5])), components)


def _calls():
    """question id → (inputs, call): every tensor the reference may see is in ``inputs``."""
    g = _g(81)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    L = r(2, 3, 3).tril(-1) + torch.diag_embed(r(2, 3).abs() + 0.5)
    mu3, eps3 = r(2, 3), r(2, 3)
    loc, scale = r(()), r(()).abs() + 0.5
    x01, xlog = (torch.rand(2, 4, generator=g) < 0.5).to(F64), r(3, 2, 4)
    mu_z, lv_z, gamma = r(2, 2), r(2, 2), torch.softmax(r(2, 3), -1)
    log_pi, mu_c, lv_c = torch.log_softmax(r(3), -1), r(3, 2), r(3, 2)
    z_e, codebook, idx = r(2, 3, 2), r(4, 2), torch.tensor([[0, 3, 3], [1, 0, 2]])
    size, embed = r(4).abs(), r(4, 2)
    logits_img = r(3, 4, 2, 2)
    x_img = torch.randint(0, 4, (3, 2, 2), generator=g)
    xd, mu_e, lv_e = r(3, 2), r(3, 2), r(3, 2)
    log_px = lambda x, z: -0.5 * (x - z).square().sum(-1)  # noqa: E731
    encoder = lambda x: (mu_e, lv_e)  # noqa: E731
    log_prior = lambda z: -0.5 * z.square().sum(-1)  # noqa: E731
    mix = _mixture_1d()
    return {
        "A2": ([loc, scale, xd[:, 0]], lambda: reference.forward_kl_loss(Normal(loc, scale), xd[:, 0])),
        "A3": ([loc, scale], lambda: reference.reverse_kl_loss(Normal(loc, scale), lambda x: -x.square(), 5)),
        "A4": ([loc, scale], lambda: reference.forward_kl_loss_is(Normal(loc, scale), lambda x: -x.square(), 5)),
        "A5": (
            [mix.mixture_distribution.probs, mix.component_distribution.loc, mix.component_distribution.scale],
            lambda: reference.fit_gaussian_to_mixture(mix, "reverse", 1.5, 1.0),
        ),
        "B1": ([L], lambda: reference.scale_tril_from_raw(L)),
        "B2": ([L], lambda: reference.covariance_from_scale_tril(L)),
        "B3": ([mu3, L, eps3], lambda: reference.rsample_full_gaussian(mu3, L, eps3)),
        "B4": ([eps3, mu3, L], lambda: reference.full_gaussian_log_prob(eps3, mu3, L)),
        "B5": ([mu3, L], lambda: reference.kl_full_gaussian_standard_normal(mu3, L)),
        "C1": ([mu_z, log_pi, mu_c, lv_c], lambda: reference.gmvae_responsibilities(mu_z, log_pi, mu_c, lv_c)),
        "C2": (
            [mu_z, lv_z, mu_c, lv_c],
            lambda: reference.expected_log_gaussian(mu_z.unsqueeze(-2), lv_z.unsqueeze(-2), mu_c, lv_c),
        ),
        "C4": (
            [x01, xlog, mu_z, lv_z, gamma, log_pi, mu_c, lv_c],
            lambda: reference.gmvae_elbo(x01, xlog, mu_z, lv_z, gamma, log_pi, mu_c, lv_c),
        ),
        "D1": ([z_e, codebook], lambda: reference.quantize(z_e, codebook)),
        "D2": ([z_e, codebook, idx], lambda: reference.vq_losses(z_e, codebook, idx)),
        "D3": ([size, embed, z_e, idx], lambda: reference.ema_codebook_update(size, embed, z_e, idx)),
        "E1": ([logits_img], lambda: reference.sample_images(lambda z: logits_img, 3, 2)),
        "E2": ([xd], lambda: reference.log_likelihood_mc(xd, log_px, 2, 4)),
        "E3": ([xd, mu_e, lv_e], lambda: reference.log_likelihood_is(xd, encoder, log_px, 4)),
        "E4": ([xd, mu_e, lv_e], lambda: reference.elbo(xd, encoder, log_px, 4)),
        "E5": ([x_img, logits_img, mu_e, lv_e], lambda: reference.vae_losses(x_img, logits_img, mu_e, lv_e)),
        "E6": ([mu_e, lv_e], lambda: reference.kl_mc(mu_e, lv_e, log_prior, 4)),
    }


@pytest.mark.parametrize("qid", sorted(_calls()))
def test_trap_in_place_mutation(qid):
    """No reference function writes into a tensor it is given (bitwise equal after the call, version unchanged)."""
    inputs, call = _calls()[qid]
    before = [(t.clone(), t._version) for t in inputs]
    torch.manual_seed(82)
    call()
    for i, (t, (copy, version)) in enumerate(zip(inputs, before)):
        assert torch.equal(t, copy) and t._version == version, f"{qid}: input {i} was modified in place"
