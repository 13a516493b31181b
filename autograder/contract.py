"""The published contract (``shared/ASSIGNMENT.md``) as data: ids, names, points, arguments.

The gradebook's columns and the checks' registry are keyed by these ids.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    qid: str
    name: str
    points: int
    params: tuple[str, ...]


CONTRACT: tuple[Entry, ...] = (
    Entry("A1", "KL_SCENARIOS", 6, ()),
    Entry("A2", "forward_kl_loss", 3, ("q", "x_p")),
    Entry("A3", "reverse_kl_loss", 4, ("q", "log_p_tilde", "n_samples")),
    Entry("A4", "forward_kl_loss_is", 4, ("q", "log_p_tilde", "n_samples")),
    Entry("A5", "fit_gaussian_to_mixture", 3, ("p", "direction", "init_loc", "init_scale")),
    Entry("B1", "scale_tril_from_raw", 3, ("raw",)),
    Entry("B2", "covariance_from_scale_tril", 2, ("L",)),
    Entry("B3", "rsample_full_gaussian", 3, ("mu", "L", "eps")),
    Entry("B4", "full_gaussian_log_prob", 4, ("z", "mu", "L")),
    Entry("B5", "kl_full_gaussian_standard_normal", 3, ("mu", "L")),
    Entry("C1", "gmvae_responsibilities", 6, ("z", "log_pi", "mu_c", "logvar_c")),
    Entry("C2", "expected_log_gaussian", 5, ("mu_q", "logvar_q", "mu_p", "logvar_p")),
    Entry("C3", "expected_log_gaussian_sympy", 3, ("mu_q", "s_q", "mu_p", "s_p")),
    Entry("C4", "gmvae_elbo", 11, ("x", "x_logits", "mu_z", "logvar_z", "gamma", "log_pi", "mu_c", "logvar_c")),
    Entry("D1", "quantize", 6, ("z_e", "codebook")),
    Entry("D2", "vq_losses", 4, ("z_e", "codebook", "indices", "beta")),
    Entry("D3", "ema_codebook_update", 5, ("cluster_size", "embed_sum", "z_e", "indices", "decay", "eps")),
    Entry("E1", "sample_images", 5, ("decoder", "n_images", "z_dim")),
    Entry("E2", "log_likelihood_mc", 4, ("x", "log_px_given_z", "z_dim", "n_samples")),
    Entry("E3", "log_likelihood_is", 5, ("x", "encoder", "log_px_given_z", "n_samples")),
    Entry("E4", "elbo", 4, ("x", "encoder", "log_px_given_z", "n_samples")),
    Entry("E5", "vae_losses", 4, ("x", "x_logits", "mu", "logvar")),
    Entry("E6", "kl_mc", 3, ("mu", "logvar", "log_prior", "n_samples")),
)

BY_ID: dict[str, Entry] = {e.qid: e for e in CONTRACT}
QUESTION_IDS: tuple[str, ...] = tuple(BY_ID)
MAX_TOTAL = sum(e.points for e in CONTRACT)
