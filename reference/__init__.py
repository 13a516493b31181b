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
