"""Checks of Part C: correct solutions in any style earn full marks, each trap loses its points."""

import pytest

from autograder.checks.gmvae_elbo import STABLE_LOGITS_CHECK
from autograder.checks.compare import DTYPE_CHECK, UNBATCHED
from autograder.contract import CONTRACT
from autograder.reports.layout import plain_text
from examples.flawed import FLAWS
from tests.checks.conftest import failed, is_convention, score

FULL = {e.qid: e.points for e in CONTRACT if e.qid[0] == "C"}


def _elbo(recon="-F.binary_cross_entropy_with_logits(x_logits, x.expand_as(x_logits), reduction='none').sum(-1).mean(0)",
          cross="(logvar_c[None] + var_q / var_c + (mu_z[:, None, :] - mu_c[None]) ** 2 / var_c).sum(-1)",
          prior_c="(gamma * log_pi[None]).sum(-1) - torch.xlogy(gamma, gamma).sum(-1)",
          entropy="0.5 * (1 + logvar_z).sum(-1)", mu="mu_z") -> str:
    """A by-hand ELBO with one term replaced."""
    return f'''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    mu_z = {mu}
    var_q = logvar_z.exp()[:, None, :]
    var_c = logvar_c.exp()[None]
    recon = {recon}
    cross = {cross}
    return recon - 0.5 * (gamma * cross).sum(-1) + {prior_c} + {entropy}
'''


ALTERNATIVES = [
    ("C4", "by hand (the base of the C4 mutants below)", _elbo()),
    # A textbook stable form with a kink at logit 0: autograd's subgradient there is not sigmoid(0).
    ("C4", "reconstruction as −(max(ℓ, 0) − ℓx + log1p(exp(−|ℓ|)))", _elbo(
        recon="-(x_logits.clamp(min=0) - x_logits * x + torch.log1p(torch.exp(-x_logits.abs()))).sum(-1).mean(0)")),
    ("C1", "torch.distributions and softmax", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    comp = D.Independent(D.Normal(mu_c, torch.exp(0.5 * logvar_c)), 1)
    return torch.softmax(log_pi + comp.log_prob(z[:, None, :]), dim=-1)
'''),
    ("C1", "by hand in float64, max subtracted, cast back", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    zz, lp, m, lv = (t.double() for t in (z, log_pi, mu_c, logvar_c))
    sq = ((zz[:, None, :] - m[None]) ** 2 / lv.exp()[None]).sum(-1)           # (B, K)
    lj = lp - 0.5 * (m.shape[1] * math.log(2 * math.pi) + lv.sum(1) + sq)
    p = torch.exp(lj - lj.max(dim=1, keepdim=True).values)
    return (p / p.sum(dim=1, keepdim=True)).to(z.dtype)
'''),
    ("C2", "log_prob at the mean minus the spread term", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    p = D.Normal(mu_p, torch.exp(0.5 * logvar_p))
    return (p.log_prob(mu_q) - 0.5 * torch.exp(logvar_q - logvar_p)).sum(-1)
'''),
    ("C2", "minus entropy minus KL, float64 inside", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    dt = torch.promote_types(mu_q.dtype, mu_p.dtype)
    a, b, c, d = (t.double() for t in (mu_q, logvar_q, mu_p, logvar_p))
    q = D.Normal(a, torch.exp(0.5 * b))
    p = D.Normal(c, torch.exp(0.5 * d))
    return (-q.entropy() - D.kl_divergence(q, p)).sum(-1).to(dt)
'''),
    ("C3", "log of the normaliser split, one fraction", '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    return -sympy.log(s_p) - sympy.log(2 * sympy.pi) / 2 - (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2)
'''),
    ("C3", "floats and log of a reciprocal square root", '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    var = s_p * s_p
    return sympy.log(1 / sympy.sqrt(2 * math.pi * var)) - 0.5 * (mu_q**2 - 2 * mu_q * mu_p + mu_p**2 + s_q**2) / var
'''),
    ("C4", "torch.distributions throughout, 2π kept on both sides", '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    recon = D.Bernoulli(logits=x_logits).log_prob(x.expand_as(x_logits)).sum(-1).mean(0)
    q = D.Normal(mu_z[:, None, :], torch.exp(0.5 * logvar_z)[:, None, :])
    p = D.Normal(mu_c[None], torch.exp(0.5 * logvar_c)[None])
    cross = (-q.entropy() - D.kl_divergence(q, p)).sum(-1)                    # (B, K) E_q log p(z|c)
    entropy = D.Normal(mu_z, torch.exp(0.5 * logvar_z)).entropy().sum(-1)
    kl_c = D.kl_divergence(D.Categorical(probs=gamma), D.Categorical(logits=log_pi))
    return recon + (gamma * cross).sum(-1) - kl_c + entropy
'''),
    ("C4", "by hand in float64 with logsigmoid and xlogy, cast back", '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    dt = x_logits.dtype
    x, l, m, lv, g, lp, mc, lc = (t.double() for t in (x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c))
    recon = (x * F.logsigmoid(l) + (1 - x) * F.logsigmoid(-l)).sum(-1).mean(0)
    inv = torch.exp(-lc)                                                       # (K, J)
    mis = torch.einsum("kj,bkj->bk", inv, torch.exp(lv)[:, None, :] + (m[:, None, :] - mc[None]) ** 2)
    mis = mis + lc.sum(-1)
    elbo = recon - 0.5 * (g * mis).sum(-1) + (g * lp).sum(-1) - torch.xlogy(g, g).sum(-1) + 0.5 * (1 + lv).sum(-1)
    return elbo.to(dt)
'''),
]


@pytest.mark.parametrize("qid, style, source", ALTERNATIVES, ids=[f"{a[0]}-{a[1]}" for a in ALTERNATIVES])
def test_other_correct_styles_score_full_marks(grade, qid, style, source):
    results = grade(source, qid)
    assert score(results) == FULL[qid], [plain_text(r) for r in results if r.status != "passed"]


def test_points_match_the_contract():
    from autograder.checks import QUESTIONS
    from autograder.contract import BY_ID

    for qid in FULL:
        checks = QUESTIONS[qid]
        assert sum(c.points for c in checks) == BY_ID[qid].points == FULL[qid]
        assert 1 <= sum(c.visibility == "public" and not is_convention(c.name) for c in checks) <= 2


_FLAW = {f.student: f.source for f in FLAWS}
FAR = {"far from every cluster: finite rows that sum to 1", "far from every cluster: the mass goes to the most likely cluster"}
STABLE = STABLE_LOGITS_CHECK
C4_ENTROPY = {"K = 1 reduces to the VAE ELBO", "the entropy of q(z|x) uses q's own variance σ̃²"}


MUTANTS = [
    ("C1", "exp then normalise", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    dens = D.Independent(D.Normal(mu_c, torch.exp(0.5 * logvar_c)), 1).log_prob(z[:, None, :]).exp()
    w = log_pi.exp() * dens
    return w / w.sum(-1, keepdim=True)
''', FAR),
    ("C1", "densities clamped away from zero", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    dens = D.Independent(D.Normal(mu_c, torch.exp(0.5 * logvar_c)), 1).log_prob(z[:, None, :]).exp()
    w = log_pi.exp() * dens.clamp_min(1e-300)
    return w / w.sum(-1, keepdim=True)
''', {"far from every cluster: the mass goes to the most likely cluster"}),
    ("C1", "log-variance normaliser left out", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    sq = ((z[:, None, :] - mu_c) ** 2 * torch.exp(-logvar_c)).sum(-1)
    return torch.softmax(log_pi - 0.5 * sq, dim=-1)
''', {"clusters that differ only in their variances", "responsibilities are p(c | z) by Bayes' rule"}),
    ("C1", "log-variance used as a log-std", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    comp = D.Independent(D.Normal(mu_c, torch.exp(logvar_c)), 1)
    return torch.softmax(log_pi + comp.log_prob(z[:, None, :]), dim=-1)
''', {"responsibilities are p(c | z) by Bayes' rule"}),
    ("C1", "normalised over the batch", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    comp = D.Independent(D.Normal(mu_c, torch.exp(0.5 * logvar_c)), 1)
    return torch.softmax(log_pi + comp.log_prob(z[:, None, :]), dim=0)
''', {"responsibilities are p(c | z) by Bayes' rule"}),
    ("C2", "missing ½ on the variance ratio", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    return (-0.5 * (math.log(2 * math.pi) + logvar_p) - torch.exp(logvar_q - logvar_p)
            - 0.5 * (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)).sum(-1)
''', {"the lemma on a hand-computed example", "the lemma on random inputs, float32 and float64"}),
    ("C2", "log-variances used as variances", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    var_q, var_p = logvar_q, logvar_p
    return (-0.5 * torch.log(2 * math.pi * var_p) - var_q / (2 * var_p) - (mu_q - mu_p) ** 2 / (2 * var_p)).sum(-1)
''', {"the lemma on a hand-computed example", "the lemma on random inputs, float32 and float64"}),
    ("C2", "standard deviations used as variances", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    var_q, var_p = torch.exp(0.5 * logvar_q), torch.exp(0.5 * logvar_p)
    return (-0.5 * torch.log(2 * math.pi * var_p) - var_q / (2 * var_p) - (mu_q - mu_p) ** 2 / (2 * var_p)).sum(-1)
''', {"the lemma on a hand-computed example", "the lemma on random inputs, float32 and float64"}),
    ("C2", "2π counted once, not per dimension", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    terms = logvar_p + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)
    return -0.5 * (math.log(2 * math.pi) + terms.sum(-1))
''', {"the lemma on a hand-computed example", "the lemma on random inputs, float32 and float64"}),
    ("C2", "arguments reshaped to the first one's shape", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    shape = mu_q.shape
    logvar_q, mu_p, logvar_p = (t.expand(shape) for t in (logvar_q, mu_p, logvar_p))
    terms = math.log(2 * math.pi) + logvar_p + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)
    return -0.5 * terms.sum(-1)
''', {"arguments with different leading shapes broadcast"}),
    ("C3", "2π left out of the normaliser", '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    return -sympy.log(s_p) - s_q**2 / (2 * s_p**2) - (mu_q - mu_p) ** 2 / (2 * s_p**2)
''', {"symbolically equal to the lemma", "built from the symbols it is given"}),
    ("C3", "standard deviations used as variances", '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    return -sympy.log(2 * sympy.pi * s_p) / 2 - s_q / (2 * s_p) - (mu_q - mu_p) ** 2 / (2 * s_p)
''', {"symbolically equal to the lemma", "built from the symbols it is given"}),
    ("C3", "missing ½ on q's spread", '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    return -sympy.log(2 * sympy.pi * s_p**2) / 2 - s_q**2 / s_p**2 - (mu_q - mu_p) ** 2 / (2 * s_p**2)
''', {"symbolically equal to the lemma", "built from the symbols it is given"}),
    ("C3", "own symbols instead of the arguments", '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    mu_q, s_q, mu_p, s_p = sympy.symbols("mu_q s_q mu_p s_p", positive=True)
    return -sympy.log(2 * sympy.pi * s_p**2) / 2 - s_q**2 / (2 * s_p**2) - (mu_q - mu_p) ** 2 / (2 * s_p**2)
''', {"built from the symbols it is given"}),
    ("C3", "an unevaluated integral", '''
def expected_log_gaussian_sympy(mu_q, s_q, mu_p, s_p):
    z = sympy.Symbol("z", real=True)
    q = sympy.exp(-(z - mu_q) ** 2 / (2 * s_q**2)) / sympy.sqrt(2 * sympy.pi * s_q**2)
    return sympy.Integral(q * (-(z - mu_p) ** 2 / (2 * s_p**2)), (z, -sympy.oo, sympy.oo))
''', {"symbolically equal to the lemma", "built from the symbols it is given"}),
    ("C4", "log(sigmoid(·)) reconstruction", _FLAW["log_sigmoid"], {STABLE}),
    # Right at ±100 only, where BCE's clamp of log at −100 happens to coincide with the truth.
    ("C4", "BCE of sigmoid(·) reconstruction", _elbo(recon="-F.binary_cross_entropy(torch.sigmoid(x_logits), "
                                                   "x.expand_as(x_logits), reduction='none').sum(-1).mean(0)"),
     {STABLE}),
    ("C4", "seed §3.5 entropy: cluster variances and 2π", _FLAW["seed_entropy"],
     {"ELBO values with one sample (L = 1)"} | C4_ENTROPY),
    ("C4", "entropy with the cluster variances, 2π dropped",
     _elbo(entropy="0.5 * (gamma[:, :, None] * (1 + logvar_c[None])).sum((1, 2))"), C4_ENTROPY),
    ("C4", "entropy without its ½", _elbo(entropy="(1 + logvar_z).sum(-1)"),
     {"ELBO values with one sample (L = 1)"} | C4_ENTROPY),
    ("C4", "samples summed over L", _elbo(recon="-F.binary_cross_entropy_with_logits(x_logits, x.expand_as(x_logits), "
                                              "reduction='none').sum((0, 2))"), {"L > 1 samples are averaged"}),
    ("C4", "gamma * log(gamma)", _elbo(prior_c="(gamma * (log_pi[None] - torch.log(gamma))).sum(-1)"),
     {"γ with zero entries: 0 · log 0 = 0"}),
    ("C4", "log-variances used as variances in the cross term",
     _elbo(cross="(logvar_c[None] + logvar_z[:, None, :] / logvar_c.abs()[None].clamp_min(0.5) "
                 "+ (mu_z[:, None, :] - mu_c[None]) ** 2 / var_c).sum(-1)"), {"ELBO values with one sample (L = 1)"}),
    ("C4", "μ̃ detached", _elbo(mu="mu_z.detach()"), {"gradients w.r.t. x_logits, mu_z, logvar_z and gamma"}),
]


@pytest.mark.parametrize("qid, bug, source, expected_failures", MUTANTS, ids=[f"{m[0]}-{m[1]}" for m in MUTANTS])
def test_each_bug_loses_points_on_the_named_checks(grade, qid, bug, source, expected_failures):
    results = grade(source, qid)
    assert expected_failures <= failed(results), [plain_text(r) for r in results if r.status != "passed"]
    assert score(results) < FULL[qid]


def _mutant(bug: str, qid: str | None = None) -> tuple[str, str]:
    (m,) = [m for m in MUTANTS if m[1] == bug and qid in (None, m[0])]
    return m[0], m[2]


def test_failure_message_for_log_sigmoid_shows_the_call_and_hint(grade):
    qid, source = _mutant("log(sigmoid(·)) reconstruction")
    results = grade(source, qid)
    message = next(plain_text(r) for r in results if r.check == STABLE)
    assert message.startswith(f'C4 gmvae_elbo — property "{STABLE}" failed (public)')
    assert "call     : gmvae_elbo(x=" in message and "(shrunk)" in message
    assert "hint     : your reconstruction goes wrong for large logits: log(sigmoid(ℓ))" in message


def test_failure_message_for_exp_normalise_names_the_stable_form(grade):
    qid, source = _mutant("exp then normalise")
    results = grade(source, qid)
    message = next(plain_text(r) for r in results if r.check == "far from every cluster: finite rows that sum to 1")
    assert "call     : gmvae_responsibilities(z=" in message
    assert "NaN" in message and "hint     : your gamma breaks far from the clusters" in message


@pytest.mark.parametrize("bug, says", [
    ("2π left out of the normaliser", ["differ by a constant", "off by a constant: check the normaliser's 2π"]),
    ("standard deviations used as variances", ["wrong dependence on", "standard deviations, not variances"]),
    ("missing ½ on q's spread", ["wrong dependence on s_q", "check its power and its ½"]),
    # the integral is evaluated (C3 accepts one that evaluates); this one lacks the normaliser's log term
    ("an unevaluated integral", ["not equal to E_q[log p]", "wrong dependence on s_p"]),
])
def test_symbolic_failures_say_which_term_is_wrong(grade, bug, says):
    qid, source = _mutant(bug, "C3")
    results = grade(source, qid)
    message = next(plain_text(r) for r in results if r.check == "symbolically equal to the lemma")
    assert 'C3 expected_log_gaussian_sympy — symbolic check "symbolically equal to the lemma" failed' in message
    for text in says:
        assert text in message, message


#: One mistake, one deduction: each is right but in one respect, and loses only the check about it.
ONE_SLIP = [
    ("C1", "a hard-coded float32 buffer for gamma", '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    log_p = -0.5 * (logvar_c[None] + (z[:, None, :] - mu_c[None]) ** 2 / logvar_c.exp()[None]).sum(-1)
    gamma = torch.empty(z.shape[0], log_pi.shape[0])
    gamma[:] = torch.softmax(log_pi[None] + log_p, dim=-1)
    return gamma
''', {DTYPE_CHECK}, 0.5),
    ("C2", "a reduction that needs a leading dimension", '''
def expected_log_gaussian(mu_q, logvar_q, mu_p, logvar_p):
    terms = -0.5 * (math.log(2 * math.pi) + logvar_p + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp())
    return terms.flatten(0, -2).sum(1).reshape(terms.shape[:-1])
''', {UNBATCHED}, 0.25),
]


@pytest.mark.parametrize("qid, slip, source, expected_failures, lost", ONE_SLIP, ids=[m[1] for m in ONE_SLIP])
def test_one_slip_loses_only_the_check_about_it(grade, qid, slip, source, expected_failures, lost):
    results = grade(source, qid)
    assert failed(results) == expected_failures, [plain_text(r) for r in results if r.status != "passed"]
    assert score(results) == FULL[qid] - lost


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stable_form_with_a_kink_at_logit_zero_keeps_full_marks_under_every_seed(grade, seed):
    source = next(a[2] for a in ALTERNATIVES if a[1].startswith("reconstruction as −(max"))
    results = grade(source, "C4", seed=seed)
    assert score(results) == FULL["C4"], [plain_text(r) for r in results if r.status != "passed"]
