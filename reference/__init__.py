"""Reference solutions of the assignment, one module per part.

Every public name is the one in ``shared/ASSIGNMENT.md``; each is pinned by
``tests/reference`` to ground truth that is not itself (closed forms,
``torch.distributions``, quadrature, Monte Carlo, ``sympy``).
"""

from reference.gaussian import (
    covariance_from_scale_tril,
    full_gaussian_log_prob,
    kl_full_gaussian_standard_normal,
    rsample_full_gaussian,
    scale_tril_from_raw,
)
from reference.gmvae import (
    expected_log_gaussian,
    expected_log_gaussian_sympy,
    gmvae_elbo,
    gmvae_responsibilities,
)
from reference.kl import (
    KL_SCENARIOS,
    fit_gaussian_to_mixture,
    forward_kl_loss,
    forward_kl_loss_is,
    reverse_kl_loss,
)
from reference.vae import (
    elbo,
    kl_mc,
    log_likelihood_is,
    log_likelihood_mc,
    sample_images,
    vae_losses,
)
from reference.vq import ema_codebook_update, quantize, vq_losses

#: Question id → public name, in the contract's order.
QUESTION_NAMES: dict[str, str] = {
    "A1": "KL_SCENARIOS",
    "A2": "forward_kl_loss",
    "A3": "reverse_kl_loss",
    "A4": "forward_kl_loss_is",
    "A5": "fit_gaussian_to_mixture",
    "B1": "scale_tril_from_raw",
    "B2": "covariance_from_scale_tril",
    "B3": "rsample_full_gaussian",
    "B4": "full_gaussian_log_prob",
    "B5": "kl_full_gaussian_standard_normal",
    "C1": "gmvae_responsibilities",
    "C2": "expected_log_gaussian",
    "C3": "expected_log_gaussian_sympy",
    "C4": "gmvae_elbo",
    "D1": "quantize",
    "D2": "vq_losses",
    "D3": "ema_codebook_update",
    "E1": "sample_images",
    "E2": "log_likelihood_mc",
    "E3": "log_likelihood_is",
    "E4": "elbo",
    "E5": "vae_losses",
    "E6": "kl_mc",
}

__all__ = ["QUESTION_NAMES", *QUESTION_NAMES.values()]
