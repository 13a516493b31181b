"""A correct answer that loops in Python over its Monte-Carlo samples keeps the gradient checks (A3, E4, E6).

The grader replays each call's recorded tensor operations (at most 50 000 a call), so when one call
is too large those checks ask again the mean of several calls of fewer samples
(``stats.mean_gradients``); a trace still too large is named as such, never blamed on ``sample()``.
"""

import pytest

from autograder.reports.layout import plain_text
from tests.checks.conftest import mutated
from tests.checks.test_kl import GRADIENT_A3
from tests.checks.test_vae import ELBO_GRAD, KL_GRAD

#: Correct answers looping over the samples: ~44, ~16 and ~52 tensor operations a sample.
LOOPS = {
    "A3": ('''
def reverse_kl_loss(q, log_p_tilde, n_samples):
    losses = []
    for _ in range(n_samples):
        x = q.rsample((1,))
        losses.append(q.log_prob(x)[0] - log_p_tilde(x)[0])
    return sum(losses) / n_samples
''', GRADIENT_A3),
    "E4": ('''
def elbo(x, encoder, log_px_given_z, n_samples):
    mu, logvar = encoder(x)
    std = torch.sqrt(torch.exp(logvar))
    rec = 0
    for _ in range(n_samples):
        z = mu + std * torch.randn_like(std)
        rec = rec + log_px_given_z(x, z[None])[0]
    kl = 0.5 * (std ** 2 + mu ** 2 - 1 - torch.log(std ** 2)).sum(dim=1)
    return rec / n_samples - kl
''', ELBO_GRAD),
    "E6": ('''
def kl_mc(mu, logvar, log_prior, n_samples):
    std = torch.exp(0.5 * logvar)
    total = torch.zeros(mu.shape[0], dtype=mu.dtype, device=mu.device)
    for _ in range(n_samples):
        z = (mu + std * torch.randn_like(mu)).unsqueeze(0)
        log_q = D.Normal(mu, std).log_prob(z).sum(-1)
        total = total + (log_q - log_prior(z))[0]
    return total / n_samples
''', KL_GRAD),
}


@pytest.mark.slow  # 1-2 min each: the replay of 360 000 to 520 000 recorded tensor operations
@pytest.mark.parametrize("qid", sorted(LOOPS))
def test_a_loop_over_the_samples_passes_the_gradient_check(grade_checks, qid):
    source, name = LOOPS[qid]
    (result,) = grade_checks(source, qid, [name])
    assert result.status == "passed", plain_text(result)


def test_a_trace_too_large_to_replay_is_named_not_blamed_on_sample(grade_checks):
    source, name = LOOPS["A3"]
    source = mutated(source, "x = q.rsample((1,))", "x = q.rsample((1,))\n        for _ in range(150):\n"
                                                    "            x = x * 1.0")  # ~190 operations a sample
    (result,) = grade_checks(source, "A3", [name])
    message = plain_text(result)
    assert result.status == "failed" and "too many tensor operations to replay" in message, message
    assert "more than 50000 tensor operations" in message and "vectorise over the samples" in message
    assert "sample()" not in message
