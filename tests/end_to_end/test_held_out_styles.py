"""Held-out styles: correct notebooks written independently of reference/ and of the solution notebook
(idiomatic torch.distributions, by-hand float64 with solves and small loops, code ported in the style of public
VQ-VAE / VQ-VAE-2 / VaDE / IWAE repositories) must score full marks under several seeds; each one-bug variant
must lose points on its own question only, with feedback that names the function and gives expected vs got.

Cases from the fairness red team (issue 12); the notebooks are rebuilt here from the sources below."""

import json

import pytest

from autograder.contract import BY_ID, MAX_TOTAL, QUESTION_IDS
from autograder.grading import grade_notebook
from autograder.sandbox.process import Sandbox

pytestmark = pytest.mark.slow

SETUP_A = '''
import math
import sympy
import torch
import torch.nn.functional as F
from torch import distributions as D
'''
SETUP_B = '''
import math
import sympy
import torch

LOG2PI = math.log(2.0 * math.pi)

def _f64(*ts):
    return [t.to(torch.float64) for t in ts]
'''
SETUP_C = '''
import math
import numpy as np
import sympy
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Normal, MultivariateNormal
'''

#: Style C, complete: every contract name, ported in the style of public repositories.
STYLE_C = {
    'KL_SCENARIOS': '''
KL_SCENARIOS = {1: 'C', 2: 'B', 3: 'C'}
''',
    'forward_kl_loss': '''
def forward_kl_loss(q, x_p):
    return -torch.mean(q.log_prob(x_p))
''',
    'reverse_kl_loss': '''
def reverse_kl_loss(q, log_p_tilde, n_samples):
    samples = q.rsample(torch.Size([n_samples]))
    log_q = q.log_prob(samples)
    log_p = log_p_tilde(samples)
    return torch.mean(log_q - log_p)
''',
    'forward_kl_loss_is': '''
def forward_kl_loss_is(q, log_p_tilde, n_samples):
    samples = q.sample(torch.Size([n_samples]))
    log_q = q.log_prob(samples)
    log_w = (log_p_tilde(samples) - log_q).detach()
    w = torch.exp(log_w - torch.logsumexp(log_w, dim=0))
    return -torch.sum(w * log_q)
''',
    'fit_gaussian_to_mixture': '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale, n_steps=1000, lr=0.05, n_mc=1000):
    # common "fit q to a bimodal p" notebook: a fixed Monte-Carlo batch, Adam on (mu, log sigma)
    mu = nn.Parameter(torch.tensor([float(init_loc)]))
    log_sigma = nn.Parameter(torch.tensor([float(np.log(init_scale))]))
    optimizer = torch.optim.Adam([mu, log_sigma], lr=lr)
    if direction == 'forward':
        x = p.sample((n_mc,)).float().reshape(-1, 1)
    else:
        eps = torch.randn(n_mc, 1)
    for step in range(n_steps):
        optimizer.zero_grad()
        sigma = log_sigma.exp()
        if direction == 'forward':
            loss = -Normal(mu, sigma).log_prob(x).mean()
        elif direction == 'reverse':
            z = mu + sigma * eps
            loss = (Normal(mu, sigma).log_prob(z) - p.log_prob(z)).mean()
        else:
            raise ValueError('direction must be forward or reverse')
        loss.backward()
        optimizer.step()
    return mu.item(), log_sigma.exp().item()
''',
    'scale_tril_from_raw': '''
def scale_tril_from_raw(raw):
    d = raw.size(-1)
    mask = torch.tril(torch.ones(d, d, dtype=raw.dtype, device=raw.device), diagonal=-1)
    diag = F.softplus(raw.diagonal(dim1=-2, dim2=-1))
    return raw * mask + torch.diag_embed(diag)
''',
    'covariance_from_scale_tril': '''
def covariance_from_scale_tril(L):
    return torch.matmul(L, L.transpose(-2, -1))
''',
    'rsample_full_gaussian': '''
def rsample_full_gaussian(mu, L, eps):
    return mu + torch.matmul(L, eps[..., None])[..., 0]
''',
    'full_gaussian_log_prob': '''
def full_gaussian_log_prob(z, mu, L):
    # log N(z; mu, L L^T) via forward substitution L y = (z - mu)
    diff = (z - mu)[..., None]
    batch = torch.broadcast_shapes(diff.shape[:-2], L.shape[:-2])
    y = torch.linalg.solve_triangular(L.expand(batch + L.shape[-2:]), diff.expand(batch + diff.shape[-2:]), upper=False)[..., 0]
    half_log_det = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    d = L.shape[-1]
    return -0.5 * (y ** 2).sum(-1) - half_log_det - 0.5 * d * math.log(2 * math.pi)
''',
    'kl_full_gaussian_standard_normal': '''
def kl_full_gaussian_standard_normal(mu, L):
    d = mu.shape[-1]
    trace = (L ** 2).sum(dim=(-2, -1))
    log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + (mu ** 2).sum(-1) - d - log_det)
''',
    'gmvae_responsibilities': '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    # VaDE get_gamma, in log space
    h = (z.unsqueeze(1) - mu_c.unsqueeze(0)) ** 2 / torch.exp(logvar_c.unsqueeze(0))
    h = h + logvar_c.unsqueeze(0) + np.log(2 * np.pi)
    log_p_c_z = log_pi.unsqueeze(0) - 0.5 * torch.sum(h, dim=2)
    return torch.exp(log_p_c_z - torch.logsumexp(log_p_c_z, dim=1, keepdim=True))
''',
    'expected_log_gaussian': '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    return -0.5 * torch.sum(np.log(2 * np.pi) + logvar_p + torch.exp(logvar_q - logvar_p)
                            + (mu_q - mu_p).pow(2) / torch.exp(logvar_p), dim=-1)
''',
    'expected_log_gaussian_sympy': '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    return (-sympy.log(2 * sympy.pi) / 2 - sympy.log(s_p)
            - s_q ** 2 / (2 * s_p ** 2) - (mu_q - mu_p) ** 2 / (2 * s_p ** 2))
''',
    'gmvae_elbo': '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    # VaDE ELBO: the 2*pi of E[log p(z|c)] and of the entropy of q(z|x) cancel
    L = x_logits.shape[0]
    rec = 0.
    for l in range(L):
        rec = rec - F.binary_cross_entropy_with_logits(x_logits[l], x.type_as(x_logits), reduction='none').sum(1)
    rec = rec / L
    z_mu, z_logvar = mu_z.unsqueeze(1), logvar_z.unsqueeze(1)
    term_z = 0.5 * torch.sum(gamma * torch.sum(logvar_c.unsqueeze(0) + torch.exp(z_logvar - logvar_c.unsqueeze(0))
                                               + (z_mu - mu_c.unsqueeze(0)).pow(2) / torch.exp(logvar_c.unsqueeze(0)), 2), 1)
    term_c = torch.sum(gamma * (log_pi.unsqueeze(0) - torch.log(gamma + 1e-10)), 1)
    term_ent = 0.5 * torch.sum(1 + logvar_z, 1)
    return rec - term_z + term_c + term_ent
''',
    'quantize': '''
def quantize(z_e, codebook):
    # ported from a VQ-VAE VectorQuantizer.forward
    D = codebook.shape[1]
    flat = z_e.reshape(-1, D)
    distances = (torch.sum(flat ** 2, dim=1, keepdim=True)
                 + torch.sum(codebook ** 2, dim=1)
                 - 2 * torch.matmul(flat, codebook.t()))
    encoding_indices = torch.argmin(distances, dim=1)
    quantized = codebook[encoding_indices].view(z_e.shape)
    quantized = z_e + (quantized - z_e).detach()
    return quantized, encoding_indices.view(z_e.shape[:-1])
''',
    'vq_losses': '''
def vq_losses(z_e, codebook, indices, beta=0.25):
    quantized = codebook[indices]
    q_latent_loss = F.mse_loss(quantized, z_e.detach())
    e_latent_loss = F.mse_loss(quantized.detach(), z_e)
    return q_latent_loss, beta * e_latent_loss
''',
    'ema_codebook_update': '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    # VQ-VAE-2 Quantize.forward (training branch), on copies of the buffers
    n_embed, dim = embed_sum.shape
    flatten = z_e.reshape(-1, dim)
    embed_onehot = F.one_hot(indices.reshape(-1), n_embed).type(flatten.dtype)
    embed_onehot_sum = embed_onehot.sum(0)
    batch_embed_sum = flatten.transpose(0, 1) @ embed_onehot          # (dim, K)
    new_cluster_size = cluster_size.clone()
    new_embed_avg = embed_sum.clone()
    new_cluster_size.data.mul_(decay).add_(embed_onehot_sum, alpha=1 - decay)
    new_embed_avg.data.mul_(decay).add_(batch_embed_sum.t(), alpha=1 - decay)
    n = new_cluster_size.sum()
    smoothed = (new_cluster_size + eps) / (n + n_embed * eps) * n
    embed_normalized = new_embed_avg / smoothed.unsqueeze(1)
    return embed_normalized, new_cluster_size, new_embed_avg
''',
    'sample_images': '''
def sample_images(decoder, n_images, z_dim):
    # Gumbel-max trick: argmax(logits + Gumbel noise) is an exact categorical sample
    z = torch.randn(n_images, z_dim)
    logits = decoder(z)
    u = torch.rand_like(logits).clamp(1e-10, 1 - 1e-10)
    gumbel = -torch.log(-torch.log(u))
    return torch.argmax(logits + gumbel, dim=1)
''',
    'log_likelihood_mc': '''
def log_likelihood_mc(x, log_px_given_z, z_dim, n_samples):
    batch_size = x.size(0)
    z = torch.randn(n_samples, batch_size, z_dim).type_as(x) if x.is_floating_point() else torch.randn(n_samples, batch_size, z_dim)
    log_px = log_px_given_z(x, z)
    return torch.logsumexp(log_px, dim=0) - np.log(n_samples)
''',
    'log_likelihood_is': '''
def log_likelihood_is(x, encoder, log_px_given_z, n_samples):
    # IWAE bound with k = n_samples
    mu, logvar = encoder(x)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(n_samples, *mu.shape, dtype=mu.dtype, device=mu.device)
    z = mu.unsqueeze(0) + std.unsqueeze(0) * eps
    log_qz = Normal(mu, std).log_prob(z).sum(-1)
    log_pz = Normal(torch.zeros_like(mu), torch.ones_like(std)).log_prob(z).sum(-1)
    log_w = log_px_given_z(x, z) + log_pz - log_qz
    return torch.logsumexp(log_w, 0) - math.log(n_samples)
''',
    'elbo': '''
def elbo(x, encoder, log_px_given_z, n_samples):
    mu, logvar = encoder(x)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std.expand(n_samples, *std.shape))
    z = mu + eps * std
    rec = log_px_given_z(x, z).mean(0)
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return rec - kld
''',
    'vae_losses': '''
def vae_losses(x, x_logits, mu, logvar):
    B = x.size(0)
    nll = F.nll_loss(F.log_softmax(x_logits, dim=1), x, reduction='none').view(B, -1).sum(1)
    kld = torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1), dim=0)
    return nll.mean(), kld
''',
    'kl_mc': '''
def kl_mc(mu, logvar, log_prior, n_samples):
    std = torch.exp(0.5 * logvar)
    z = Normal(mu, std).rsample((n_samples,))
    log_qz = Normal(mu, std).log_prob(z).sum(-1)
    return torch.mean(log_qz - log_prior(z), dim=0)
''',
}

#: Style A (torch.distributions, functions reusing A2/A3/C2) replacing some of style C's cells.
STYLE_A = {
    'fit_gaussian_to_mixture': '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    dtype = p.mean.dtype
    loc = torch.tensor(float(init_loc), dtype=dtype, requires_grad=True)
    log_scale = torch.tensor(math.log(init_scale), dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([loc, log_scale], lr=0.05)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[800, 1200], gamma=0.2)
    if direction == "forward":
        data = p.sample((2000,))
    elif direction != "reverse":
        raise ValueError(direction)
    for _ in range(1500):
        opt.zero_grad()
        q = D.Normal(loc, log_scale.exp())
        if direction == "forward":
            loss = forward_kl_loss(q, data)
        else:
            loss = reverse_kl_loss(q, p.log_prob, 256)
        loss.backward()
        opt.step()
        sched.step()
    return loc.item(), log_scale.exp().item()
''',
    'full_gaussian_log_prob': '''
def full_gaussian_log_prob(z, mu, L):
    return D.MultivariateNormal(mu, scale_tril=L).log_prob(z)
''',
    'kl_full_gaussian_standard_normal': '''
def kl_full_gaussian_standard_normal(mu, L):
    d = L.shape[-1]
    q = D.MultivariateNormal(mu, scale_tril=L)
    eye = torch.eye(d, dtype=L.dtype, device=L.device)
    p = D.MultivariateNormal(torch.zeros_like(mu), scale_tril=eye)
    return D.kl_divergence(q, p)
''',
    'gmvae_elbo': '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    target = x.to(x_logits.dtype).expand_as(x_logits)
    recon = -F.binary_cross_entropy_with_logits(x_logits, target, reduction="none").sum(-1).mean(0)
    e_log_pz_c = expected_log_gaussian(mu_z.unsqueeze(1), logvar_z.unsqueeze(1), mu_c, logvar_c)  # (B, K)
    e_log_pz = (gamma * e_log_pz_c).sum(-1)
    e_log_pc = (gamma * log_pi).sum(-1)
    ent_c = -torch.special.xlogy(gamma, gamma).sum(-1)
    ent_z = D.Normal(mu_z, torch.exp(0.5 * logvar_z)).entropy().sum(-1)
    return recon + e_log_pz + e_log_pc + ent_c + ent_z
''',
    'sample_images': '''
def sample_images(decoder, n_images, z_dim):
    z = torch.randn(n_images, z_dim)
    logits = decoder(z)                                     # (n, k, H, W)
    return D.Categorical(logits=logits.permute(0, 2, 3, 1)).sample()
''',
    'elbo': '''
def elbo(x, encoder, log_px_given_z, n_samples):
    mu, logvar = encoder(x)
    q = D.Normal(mu, torch.exp(0.5 * logvar))
    prior = D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.rsample((n_samples,))
    return log_px_given_z(x, z).mean(0) - D.kl_divergence(q, prior).sum(-1)
''',
}

#: Style B (by-hand float64, quadrature descent, sympy.integrate, per-code loops) replacing others.
STYLE_B = {
    'fit_gaussian_to_mixture': '''
def _hermite_rule(n=64):
    # Golub-Welsch: nodes/weights for E f(t), t ~ N(0, 1)
    k = torch.arange(1, n, dtype=torch.float64)
    J = torch.diag(k.sqrt(), 1) + torch.diag(k.sqrt(), -1)
    nodes, vecs = torch.linalg.eigh(J)
    return nodes, vecs[0] ** 2

def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    w = p.mixture_distribution.probs.detach().to(torch.float64)
    m = p.component_distribution.loc.detach().to(torch.float64)
    s = p.component_distribution.scale.detach().to(torch.float64)
    t, tw = _hermite_rule()

    def log_p(x):  # x (...,) -> (...,)
        comp = -0.5 * ((x[..., None] - m) / s) ** 2 - torch.log(s) - 0.5 * LOG2PI
        return torch.logsumexp(comp + torch.log(w), dim=-1)

    def objective(theta):
        a, log_sig = theta[0], theta[1]
        sig = torch.exp(log_sig)
        if direction == "forward":
            # H(p, q) = sum_k w_k E_{N(m_k, s_k)} [-log q(x)]
            x = m[:, None] + s[:, None] * t[None, :]          # (K, T)
            nlq = 0.5 * ((x - a) / sig) ** 2 + log_sig + 0.5 * LOG2PI
            return (w[:, None] * tw[None, :] * nlq).sum()
        # KL(q || p) = -H(q) - E_q log p
        entropy = log_sig + 0.5 * (1.0 + LOG2PI)
        return -entropy - (tw * log_p(a + sig * t)).sum()

    if direction not in ("forward", "reverse"):
        raise ValueError(direction)
    theta = torch.tensor([float(init_loc), math.log(float(init_scale))], dtype=torch.float64)
    lr = 0.02
    for it in range(6000):
        theta = theta.detach().requires_grad_(True)
        value = objective(theta)
        g, = torch.autograd.grad(value, theta)
        if float(g.norm()) < 1e-10:
            break
        theta = theta - lr * g
    return float(theta[0]), float(torch.exp(theta[1]))
''',
    'full_gaussian_log_prob': '''
def full_gaussian_log_prob(z, mu, L):
    out_dtype = torch.promote_types(torch.promote_types(z.dtype, mu.dtype), L.dtype)
    z64, mu64, L64 = _f64(z, mu, L)
    d = L.shape[-1]
    diff = z64 - mu64
    batch = torch.broadcast_shapes(diff.shape[:-1], L64.shape[:-2])
    diff = diff.expand(*batch, d)
    L64 = L64.expand(*batch, d, d)
    white = torch.linalg.solve_triangular(L64, diff.unsqueeze(-1), upper=False).squeeze(-1)   # L^{-1} diff
    maha = torch.einsum("...i,...i->...", white, white)
    logdet = 2.0 * torch.log(torch.diagonal(L64, dim1=-2, dim2=-1)).sum(-1)
    return (-0.5 * (d * LOG2PI + logdet + maha)).to(out_dtype)
''',
    'expected_log_gaussian_sympy': '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    z = sympy.Symbol("z", real=True)
    q = sympy.exp(-(z - mu_q) ** 2 / (2 * s_q ** 2)) / sympy.sqrt(2 * sympy.pi * s_q ** 2)
    log_p = -sympy.log(sympy.sqrt(2 * sympy.pi) * s_p) - (z - mu_p) ** 2 / (2 * s_p ** 2)
    return sympy.integrate(sympy.expand(q * log_p), (z, -sympy.oo, sympy.oo))
''',
    'gmvae_elbo': '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    dt = x_logits.dtype
    x, lg, mz, lz, g, lpi, mc, lc = _f64(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c)
    # x*l - softplus(l) = log Bernoulli(x; sigmoid(l)), softplus written stably
    softplus = torch.clamp(lg, min=0) + torch.log1p(torch.exp(-lg.abs()))
    recon = (x * lg - softplus).sum(-1).mean(0)                                  # (B,)
    vq = torch.exp(lz)[:, None, :]
    diff2 = (mz[:, None, :] - mc[None]) ** 2
    e_log_p = -0.5 * (LOG2PI + lc[None] + (vq + diff2) / torch.exp(lc[None])).sum(-1)   # (B, K)
    safe_log_g = torch.log(torch.where(g > 0, g, torch.ones_like(g)))
    cat = (g * (lpi[None] - safe_log_g)).sum(-1)
    ent = 0.5 * (1.0 + LOG2PI + lz).sum(-1)
    return (recon + (g * e_log_p).sum(-1) + cat + ent).to(dt)
''',
    'quantize': '''
def quantize(z_e, codebook):
    K = codebook.shape[0]
    best = None
    idx = None
    for k in range(K):   # strict < keeps the lowest index on ties
        dk = ((z_e - codebook[k]) ** 2).sum(-1)
        if best is None:
            best = dk
            idx = torch.zeros(dk.shape, dtype=torch.long, device=z_e.device)
        else:
            better = dk < best
            best = torch.where(better, dk, best)
            idx = torch.where(better, torch.full_like(idx, k), idx)
    e = codebook.detach()[idx]
    z_q = e + (z_e - z_e.detach())
    return z_q, idx
''',
    'ema_codebook_update': '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    K, Dm = embed_sum.shape
    flat = z_e.reshape(-1, Dm)
    idx = indices.reshape(-1)
    counts, sums = [], []
    for k in range(K):
        mask = (idx == k)
        counts.append(mask.sum().to(cluster_size.dtype))
        sums.append(flat[mask].sum(0).to(embed_sum.dtype))
    n = torch.stack(counts)
    s = torch.stack(sums)
    N_new = cluster_size * decay + n * (1.0 - decay)
    m_new = embed_sum * decay + s * (1.0 - decay)
    tot = N_new.sum()
    N_tilde = (N_new + eps) / (tot + K * eps) * tot
    codebook = m_new / N_tilde[:, None]
    return codebook, N_new, m_new
''',
    'sample_images': '''
def sample_images(decoder, n_images, z_dim):
    z = torch.randn(n_images, z_dim)
    logits = decoder(z)
    n, k, H, W = logits.shape
    probs = torch.softmax(logits.to(torch.float64), dim=1)
    flat = probs.permute(0, 2, 3, 1).reshape(-1, k)
    draws = torch.multinomial(flat, num_samples=1, replacement=True)
    return draws.reshape(n, H, W)
''',
}

#: (student, style, question that must lose points, function, one-bug source).
BUGS = [
    ('bug_e2_no_log_s', 'a', 'E2', 'log_likelihood_mc', '''
def log_likelihood_mc(x, log_px_given_z, z_dim, n_samples):
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    z = torch.randn(n_samples, x.shape[0], z_dim, dtype=dtype, device=x.device)
    return torch.logsumexp(log_px_given_z(x, z), dim=0)
'''),
    ('bug_d3_inplace_buffers', 'c', 'D3', 'ema_codebook_update', '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    # VQ-VAE-2 port that updates the buffers in place (no clone)
    n_embed, dim = embed_sum.shape
    flatten = z_e.reshape(-1, dim)
    embed_onehot = F.one_hot(indices.reshape(-1), n_embed).type(flatten.dtype)
    embed_onehot_sum = embed_onehot.sum(0)
    batch_embed_sum = flatten.transpose(0, 1) @ embed_onehot
    cluster_size.data.mul_(decay).add_(embed_onehot_sum, alpha=1 - decay)
    embed_sum.data.mul_(decay).add_(batch_embed_sum.t(), alpha=1 - decay)
    n = cluster_size.sum()
    smoothed = (cluster_size + eps) / (n + n_embed * eps) * n
    return embed_sum / smoothed.unsqueeze(1), cluster_size, embed_sum
'''),
    ('bug_c1_vade_underflow', 'c', 'C1', 'gmvae_responsibilities', '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    # VaDE get_gamma as published: exp then +1e-10, normalised in probability space
    h = (z.unsqueeze(1) - mu_c.unsqueeze(0)) ** 2 / torch.exp(logvar_c.unsqueeze(0))
    h = h + logvar_c.unsqueeze(0) + np.log(2 * np.pi)
    p_c_z = torch.exp(log_pi.unsqueeze(0) - 0.5 * torch.sum(h, dim=2)) + 1e-10
    return p_c_z / torch.sum(p_c_z, dim=1, keepdim=True)
'''),
    ('bug_c2_var_as_std', 'a', 'C2', 'expected_log_gaussian', '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    # q's spread entered as a standard deviation instead of a variance
    var_p = logvar_p.exp()
    per_dim = math.log(2 * math.pi) + logvar_p + (torch.exp(0.5 * logvar_q) + (mu_q - mu_p) ** 2) / var_p
    return -0.5 * per_dim.sum(-1)
'''),
    ('bug_a3_no_entropy', 'a', 'A3', 'reverse_kl_loss', '''
def reverse_kl_loss(q, log_p_tilde, n_samples):
    # forgot the log q term: only the cross term of KL(q||p)
    x = q.rsample((n_samples,))
    return -torch.mean(log_p_tilde(x))
'''),
    ('slip_e1_float_output', 'a', 'E1', 'sample_images', '''
def sample_images(decoder, n_images, z_dim):
    z = torch.randn(n_images, z_dim)
    logits = decoder(z)
    return D.Categorical(logits=logits.permute(0, 2, 3, 1)).sample().float()
'''),
]


def _cell(kind: str, source: str) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": source + "\n"}
    return {**cell, "outputs": [], "execution_count": None} if kind == "code" else cell


def _notebook(style: str, replace: tuple[str, str] | None = None) -> bytes:
    """Style C's cells, with style A's or B's forms swapped in for ``style`` "a" / "b", and one cell replaced."""
    sources = dict(STYLE_C)
    sources.update({"a": STYLE_A, "b": STYLE_B}.get(style, {}))
    if replace is not None:
        sources[replace[0]] = replace[1]
    cells = [_cell("markdown", "# Homework"), _cell("code", SETUP_C), _cell("code", SETUP_A), _cell("code", SETUP_B)]
    cells += [_cell("code", src) for src in sources.values()]
    return json.dumps({"cells": cells, "metadata": {"language_info": {"name": "python"}},
                       "nbformat": 4, "nbformat_minor": 5}).encode()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


#: Known fairness defects found by these cases (non-strict: they pass once the grader is fixed).
KINK = pytest.mark.xfail(strict=False, reason="C4's gradient check shrinks logits to exactly 0, where the textbook stable "
                         "form max(l, 0) + log1p(exp(-|l|)) has autograd subgradient 1 instead of sigmoid(0) = 0.5")
CARRY = pytest.mark.xfail(strict=False, reason="issue 12: error carried forward; a caller is charged for its dependency")
SLIP = pytest.mark.xfail(strict=False, reason="issue 12: a float-returning sampler loses every E1 check, not one dtype check")
EXPECTED_DEFECT = {"b": KINK, "bug_c2_var_as_std": CARRY, "bug_a3_no_entropy": CARRY, "slip_e1_float_output": SLIP}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("style", [pytest.param(s, marks=EXPECTED_DEFECT.get(s, ())) for s in "abc"])
def test_a_correct_notebook_in_another_style_scores_full_marks(sandbox, style, seed):
    result = grade_notebook(_notebook(style), sandbox=sandbox, seed=seed)
    assert {r.qid: r.message for r in result.checks if r.status != "passed"} == {}
    assert result.total == MAX_TOTAL and result.status == "ok"


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("bug", [pytest.param(b, id=b[0], marks=EXPECTED_DEFECT.get(b[0], ())) for b in BUGS])
def test_one_bug_costs_only_its_own_question(sandbox, bug, seed):
    student, style, qid, name, source = bug
    result = grade_notebook(_notebook(style, (name, source)), sandbox=sandbox, seed=seed)
    losing = {q for q in QUESTION_IDS if result.scores[q] < BY_ID[q].points}
    assert losing == {qid}, {r.qid: r.message for r in result.checks if r.status != "passed"}
    failures = [r for r in result.checks if r.qid == qid and r.status != "passed"]
    assert failures and all(f"{qid} {name}" in r.message and "expected :" in r.message and "got      :" in r.message
                            and "hint     :" in r.message for r in failures)
    assert all(source.strip().splitlines()[-1].strip() not in r.message for r in failures)
