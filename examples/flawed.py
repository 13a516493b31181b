"""The example class's flawed students: the solution notebook with one graded cell rewritten.

Each flaw is one of the traps listed in ``shared/ASSIGNMENT.md`` ("Known
traps"), written as a student would write it. ``student_template/build.py``
turns each into ``examples/submissions/<student>.ipynb``; the tests assert
that exactly ``qid`` loses points.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flaw:
    student: str
    qid: str
    name: str
    trap: str
    source: str


FLAWS: tuple[Flaw, ...] = (
    Flaw("argmax_sampler", "E1", "sample_images", "seed 000 Q1.1: a z per pixel and argmax instead of sampling", '''
def sample_images(decoder, n_images, z_dim):
    # For each pixel, draw z from the prior and pick the most likely intensity.
    images = []
    for _ in range(n_images):
        z = torch.randn(1, z_dim)
        logits = decoder(z)[0]                      # (k, H, W)
        k, H, W = logits.shape
        image = torch.empty(H, W, dtype=torch.long)
        for i in range(H):
            for j in range(W):
                z = torch.randn(1, z_dim)
                image[i, j] = decoder(z)[0, :, i, j].argmax()
        images.append(image)
    return torch.stack(images)
'''),
    Flaw("transposed_cholesky", "B2", "covariance_from_scale_tril", "L^T L instead of L L^T", '''
def covariance_from_scale_tril(L):
    return L.transpose(-1, -2) @ L
'''),
    Flaw("exp_diagonal", "B1", "scale_tril_from_raw", "exp instead of softplus on the diagonal", '''
def scale_tril_from_raw(raw):
    strict = torch.tril(raw, diagonal=-1)
    return strict + torch.diag_embed(torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)))
'''),
    Flaw("sample_not_rsample", "A3", "reverse_kl_loss", "sample() instead of rsample(): no pathwise gradient", '''
def reverse_kl_loss(q, log_p_tilde, n_samples):
    x = q.sample((n_samples,))
    return (q.log_prob(x) - log_p_tilde(x)).mean()
'''),
    Flaw("log_sigmoid", "C4", "gmvae_elbo", "log(sigmoid(.)) reconstruction overflows for large logits", '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    p = torch.sigmoid(x_logits)                                           # (L, B, D)
    recon = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1).mean(0)  # (B,)
    var_q = logvar_z.exp()[:, None, :]                                    # (B, 1, J)
    var_c = logvar_c.exp()[None]                                          # (1, K, J)
    cross = (logvar_c[None] + var_q / var_c + (mu_z[:, None, :] - mu_c[None]) ** 2 / var_c).sum(-1)  # (B, K)
    prior_z = -0.5 * (gamma * cross).sum(-1)
    prior_c = (gamma * (log_pi[None] - torch.log(gamma.clamp_min(1e-30)))).sum(-1)
    entropy = 0.5 * (1 + logvar_z).sum(-1)
    return recon + prior_z + prior_c + entropy
'''),
    Flaw("seed_entropy", "C4", "gmvae_elbo", "seed 004 §3.5: the entropy with the cluster variance and 2π kept", '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    recon = -F.binary_cross_entropy_with_logits(x_logits, x.expand_as(x_logits), reduction="none").sum(-1).mean(0)
    var_q = logvar_z.exp()[:, None, :]
    var_c = logvar_c.exp()[None]
    cross = (logvar_c[None] + var_q / var_c + (mu_z[:, None, :] - mu_c[None]) ** 2 / var_c).sum(-1)
    prior_z = -0.5 * (gamma * cross).sum(-1)
    prior_c = (gamma * (log_pi[None] - torch.log(gamma.clamp_min(1e-30)))).sum(-1)
    # entropy written as in the seed's last lines: sigma_j^2 of the clusters and log(2 pi sigma^2)
    entropy = 0.5 * (gamma[:, :, None] * (1 + math.log(2 * math.pi) + logvar_c[None])).sum((1, 2))
    return recon + prior_z + prior_c + entropy
'''),
    Flaw("naive_logmeanexp", "E2", "log_likelihood_mc", "log(mean(exp(.))) underflows to -inf", '''
def log_likelihood_mc(x, log_px_given_z, z_dim, n_samples):
    z = torch.randn(n_samples, x.shape[0], z_dim, dtype=x.dtype)
    return torch.log(torch.exp(log_px_given_z(x, z)).mean(0))
'''),
    Flaw("detach_wrong_side", "D1", "quantize", "straight-through with the detach on the wrong side", '''
def quantize(z_e, codebook):
    d = ((z_e[..., None, :] - codebook) ** 2).sum(-1)
    indices = d.argmin(-1)
    e = codebook[indices]
    z_q = z_e.detach() + (e - z_e)
    return z_q, indices
'''),
    Flaw("ema_no_smoothing", "D3", "ema_codebook_update", "EMA without Laplace smoothing", '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    K = cluster_size.shape[0]
    onehot = F.one_hot(indices.reshape(-1), K).to(z_e.dtype)      # (N, K)
    n = onehot.sum(0)
    s = onehot.T @ z_e.reshape(-1, z_e.shape[-1])
    N = decay * cluster_size + (1 - decay) * n
    m = decay * embed_sum + (1 - decay) * s
    return m / N.clamp_min(eps)[:, None], N, m
'''),
    Flaw("logvar_as_variance", "E5", "vae_losses", "log-variance used as a variance in the KL", '''
def vae_losses(x, x_logits, mu, logvar):
    nll = F.cross_entropy(x_logits, x, reduction="none").sum((1, 2))
    kl = 0.5 * (logvar + mu ** 2 - 1 - torch.log(logvar)).sum(-1)
    return nll.mean(), kl.mean()
'''),
)
