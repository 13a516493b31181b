"""Checks of Part B: correct solutions in any style earn full marks, each trap loses its points."""

import pytest

from autograder.checks.compare import DTYPE_CHECK, UNBATCHED
from autograder.contract import CONTRACT
from autograder.reports.layout import plain_text
from tests.checks.conftest import failed, score

FULL = {e.qid: e.points for e in CONTRACT if e.qid[0] == "B"}

# Check names, as registered in autograder/checks/gaussian.py.
B1_VALUES = "L keeps raw below the diagonal, zeros above it, softplus on it"
B1_GRAD = "gradient w.r.t. raw: zero above, identity below, sigmoid on the diagonal"
B2_KNOWN = "Σ = L Lᵀ for a hand-checkable batch of factors"
B2_RANDOM = "Σ over random batches of factors in float32 and float64"
B3_VALUES = "z = μ + L ε, same batch shape, float32 and float64"
B3_BROADCAST = "batch dims of mu, L and eps broadcast against each other"
B3_GRAD = "reparameterised: gradients w.r.t. mu and the lower triangle of L"
B4_VALUES = "log N(z; μ, L Lᵀ) values, float32 and float64"
B4_BROADCAST = "batch dims of z, mu and L broadcast in the log-density"
B4_STABLE = "stable for ill-conditioned L (diagonal down to 1.2e-4), float64"
B5_KNOWN = "KL on hand-checkable means and factors"
B5_RANDOM = "KL closed form on random batches, float32 and float64"
B5_BROADCAST = "batch dims of mu and L broadcast in the KL"

ALTERNATIVES = [
    ("B1", "where-mask, log1p(exp) in float64", '''
def scale_tril_from_raw(raw):
    d = raw.shape[-1]
    below = torch.ones(d, d, dtype=torch.bool).tril(-1)
    diag = torch.log1p(torch.exp(raw.double().diagonal(dim1=-2, dim2=-1))).to(raw.dtype)
    return torch.where(below, raw, torch.zeros((), dtype=raw.dtype)) + torch.diag_embed(diag)
'''),
    ("B1", "clone, then overwrite the diagonal of the copy", '''
def scale_tril_from_raw(raw):
    L = torch.tril(raw).clone()
    L.diagonal(dim1=-2, dim2=-1).copy_(F.softplus(raw.diagonal(dim1=-2, dim2=-1)))
    return L
'''),
    ("B2", "einsum", '''
def covariance_from_scale_tril(L):
    return torch.einsum("...ik,...jk->...ij", L, L)
'''),
    ("B2", "torch.distributions", '''
def covariance_from_scale_tril(L):
    return D.MultivariateNormal(torch.zeros(L.shape[:-1], dtype=L.dtype), scale_tril=L).covariance_matrix
'''),
    ("B3", "einsum", '''
def rsample_full_gaussian(mu, L, eps):
    return mu + torch.einsum("...ij,...j->...i", L, eps)
'''),
    ("B3", "tril first, broadcast product, float64 inside", '''
def rsample_full_gaussian(mu, L, eps):
    z = mu.double() + (torch.tril(L).double() * eps.double().unsqueeze(-2)).sum(-1)
    return z.to(mu.dtype)
'''),
    ("B4", "MultivariateNormal(scale_tril=L)", '''
def full_gaussian_log_prob(z, mu, L):
    return D.MultivariateNormal(mu, scale_tril=L).log_prob(z)
'''),
    ("B4", "forward substitution by hand", '''
def full_gaussian_log_prob(z, mu, L):
    x = z - mu
    d = L.shape[-1]
    L = L.expand(*torch.broadcast_shapes(L.shape[:-2], x.shape[:-1]), d, d)
    x = x.expand(*L.shape[:-1])
    e = []
    for i in range(d):
        s = x[..., i]
        for j in range(i):
            s = s - L[..., i, j] * e[j]
        e.append(s / L[..., i, i])
    e = torch.stack(e, -1)
    return -0.5 * (e * e).sum(-1) - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1) - d / 2 * math.log(2 * math.pi)
'''),
    ("B4", "float64 inside, Normal(0, 1) on the whitened point", '''
def full_gaussian_log_prob(z, mu, L):
    L64 = L.double()
    e = torch.linalg.solve_triangular(L64, (z.double() - mu.double())[..., None], upper=False)[..., 0]
    out = D.Normal(0.0, 1.0).log_prob(e).sum(-1) - torch.log(torch.prod(L64.diagonal(dim1=-2, dim2=-1), -1))
    return out.to(z.dtype)
'''),
    # Judged on accuracy, not on method: on the checks' data Σ = L Lᵀ is exact and its
    # Cholesky factor is L again, so this form is as accurate as the triangular solve.
    ("B4", "MultivariateNormal(covariance_matrix=L Lᵀ)", '''
def full_gaussian_log_prob(z, mu, L):
    return D.MultivariateNormal(mu, covariance_matrix=L @ L.transpose(-1, -2)).log_prob(z)
'''),
    ("B5", "torch.distributions.kl_divergence", '''
def kl_full_gaussian_standard_normal(mu, L):
    d = L.shape[-1]
    q = D.MultivariateNormal(mu, scale_tril=L)
    p = D.MultivariateNormal(torch.zeros(d, dtype=mu.dtype), scale_tril=torch.eye(d, dtype=mu.dtype))
    return D.kl_divergence(q, p)
'''),
    ("B5", "trace of Σ, float64 inside", '''
def kl_full_gaussian_standard_normal(mu, L):
    L64, mu64 = L.double(), mu.double()
    trace = (L64 @ L64.transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1)
    logdet = 2 * torch.log(torch.diagonal(L64, dim1=-2, dim2=-1)).sum(-1)
    return (0.5 * (trace + (mu64 * mu64).sum(-1) - L.shape[-1] - logdet)).to(mu.dtype)
'''),
]


@pytest.mark.parametrize("qid, style, source", ALTERNATIVES, ids=[f"{a[0]}-{a[1]}" for a in ALTERNATIVES])
def test_other_correct_styles_score_full_marks(grade, qid, style, source):
    results = grade(source, qid)
    assert score(results) == FULL[qid], [plain_text(r) for r in results if r.status != "passed"]


MUTANTS = [
    ("B1", "exp on the diagonal", '''
def scale_tril_from_raw(raw):
    strict = torch.tril(raw, diagonal=-1)
    return strict + torch.diag_embed(torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)))
''', {B1_VALUES, B1_GRAD}),
    ("B1", "softplus as log(1 + exp) in the input's dtype", '''
def scale_tril_from_raw(raw):
    diag = torch.log(1 + torch.exp(raw.diagonal(dim1=-2, dim2=-1)))
    return torch.tril(raw, diagonal=-1) + torch.diag_embed(diag)
''', {B1_VALUES}),
    ("B1", "upper triangle kept", '''
def scale_tril_from_raw(raw):
    diag = raw.diagonal(dim1=-2, dim2=-1)
    return raw - torch.diag_embed(diag) + torch.diag_embed(F.softplus(diag))
''', {B1_VALUES, B1_GRAD}),
    ("B1", "tril without softplus", '''
def scale_tril_from_raw(raw):
    return torch.tril(raw)
''', {B1_VALUES, B1_GRAD}),
    ("B1", "softplus on the whole lower triangle", '''
def scale_tril_from_raw(raw):
    return torch.tril(F.softplus(raw))
''', {B1_VALUES, B1_GRAD}),
    ("B1", "raw overwritten in place", '''
def scale_tril_from_raw(raw):
    raw.diagonal(dim1=-2, dim2=-1).copy_(F.softplus(raw.diagonal(dim1=-2, dim2=-1)))
    return torch.tril(raw)
''', {B1_VALUES, B1_GRAD}),
    ("B1", "lower triangle detached", '''
def scale_tril_from_raw(raw):
    return torch.tril(raw.detach(), -1) + torch.diag_embed(F.softplus(raw.diagonal(dim1=-2, dim2=-1)))
''', {B1_GRAD}),
    ("B2", "Lᵀ L", '''
def covariance_from_scale_tril(L):
    return L.transpose(-1, -2) @ L
''', {B2_KNOWN, B2_RANDOM}),
    ("B2", "L L without the transpose", '''
def covariance_from_scale_tril(L):
    return L @ L
''', {B2_KNOWN, B2_RANDOM}),
    ("B3", "Lᵀ ε (eps @ L)", '''
def rsample_full_gaussian(mu, L, eps):
    return mu + (eps.unsqueeze(-2) @ L).squeeze(-2)
''', {B3_VALUES, B3_BROADCAST, B3_GRAD}),
    ("B3", "L detached", '''
def rsample_full_gaussian(mu, L, eps):
    return mu + (L.detach() @ eps.unsqueeze(-1)).squeeze(-1)
''', {B3_GRAD}),
    ("B3", "flattened batch: no broadcasting", '''
def rsample_full_gaussian(mu, L, eps):
    d = L.shape[-1]
    z = torch.bmm(L.reshape(-1, d, d), eps.reshape(-1, d, 1)).reshape(eps.shape)
    return mu + z
''', {B3_BROADCAST}),
    ("B4", "explicit Σ⁻¹ and logdet Σ", '''
def full_gaussian_log_prob(z, mu, L):
    S = L @ L.transpose(-1, -2)
    x = (z - mu).unsqueeze(-1)
    quad = (x.transpose(-1, -2) @ torch.inverse(S) @ x)[..., 0, 0]
    return -0.5 * quad - 0.5 * torch.logdet(S) - L.shape[-1] / 2 * math.log(2 * math.pi)
''', {B4_STABLE}),
    ("B4", "linalg.solve with Σ", '''
def full_gaussian_log_prob(z, mu, L):
    S = L @ L.transpose(-1, -2)
    x = (z - mu).unsqueeze(-1)
    quad = (x.transpose(-1, -2) @ torch.linalg.solve(S, x))[..., 0, 0]
    return -0.5 * quad - L.diagonal(dim1=-2, dim2=-1).log().sum(-1) - L.shape[-1] / 2 * math.log(2 * math.pi)
''', {B4_STABLE}),
    ("B4", "triangular solve but torch.logdet(Σ)", '''
def full_gaussian_log_prob(z, mu, L):
    e = torch.linalg.solve_triangular(L, (z - mu).unsqueeze(-1), upper=False).squeeze(-1)
    return -0.5 * e.square().sum(-1) - 0.5 * torch.logdet(L @ L.mT) - L.shape[-1] / 2 * math.log(2 * math.pi)
''', {B4_STABLE}),
    ("B4", "missing ½ on the Mahalanobis term", '''
def full_gaussian_log_prob(z, mu, L):
    e = torch.linalg.solve_triangular(L, (z - mu).unsqueeze(-1), upper=False).squeeze(-1)
    return -e.square().sum(-1) - L.diagonal(dim1=-2, dim2=-1).log().sum(-1) - L.shape[-1] / 2 * math.log(2 * math.pi)
''', {B4_VALUES, B4_BROADCAST, B4_STABLE}),
    ("B4", "log det Σ not halved", '''
def full_gaussian_log_prob(z, mu, L):
    e = torch.linalg.solve_triangular(L, (z - mu).unsqueeze(-1), upper=False).squeeze(-1)
    return -0.5 * e.square().sum(-1) - 2 * L.diagonal(dim1=-2, dim2=-1).log().sum(-1) - L.shape[-1] / 2 * math.log(2 * math.pi)
''', {B4_VALUES, B4_BROADCAST, B4_STABLE}),
    ("B4", "solve with Lᵀ (upper=True on L.mT)", '''
def full_gaussian_log_prob(z, mu, L):
    e = torch.linalg.solve_triangular(L.mT, (z - mu).unsqueeze(-1), upper=True).squeeze(-1)
    return -0.5 * e.square().sum(-1) - L.diagonal(dim1=-2, dim2=-1).log().sum(-1) - L.shape[-1] / 2 * math.log(2 * math.pi)
''', {B4_VALUES, B4_BROADCAST, B4_STABLE}),
    ("B4", "flattened batch: no broadcasting", '''
def full_gaussian_log_prob(z, mu, L):
    d = L.shape[-1]
    x = (z - mu).reshape(-1, d, 1)
    e = torch.linalg.solve_triangular(L.reshape(-1, d, d), x, upper=False).reshape(z.shape)
    return -0.5 * e.square().sum(-1) - L.diagonal(dim1=-2, dim2=-1).log().sum(-1) - d / 2 * math.log(2 * math.pi)
''', {B4_BROADCAST}),
    ("B5", "missing ½", '''
def kl_full_gaussian_standard_normal(mu, L):
    log_diag = L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return L.square().sum((-2, -1)) + mu.square().sum(-1) - L.shape[-1] - 2 * log_diag
''', {B5_KNOWN, B5_RANDOM, B5_BROADCAST}),
    ("B5", "log det L in place of log det Σ", '''
def kl_full_gaussian_standard_normal(mu, L):
    log_det_L = L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (L.square().sum((-2, -1)) + mu.square().sum(-1) - L.shape[-1] - log_det_L)
''', {B5_KNOWN, B5_RANDOM, B5_BROADCAST}),
    ("B5", "trace of L in place of ‖L‖²_F", '''
def kl_full_gaussian_standard_normal(mu, L):
    trace = L.diagonal(dim1=-2, dim2=-1).sum(-1)
    return 0.5 * (trace + mu.square().sum(-1) - L.shape[-1]) - L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
''', {B5_KNOWN, B5_RANDOM, B5_BROADCAST}),
    ("B4", "log det Σ as the log of a determinant", '''
def full_gaussian_log_prob(z, mu, L):
    d = z.shape[-1]
    diff = (z - mu).unsqueeze(-1)
    eps = torch.linalg.solve_triangular(L, diff, upper=False).squeeze(-1)
    log_det = torch.log(torch.linalg.det(L @ L.mT))
    return -0.5 * (eps.square().sum(-1) + log_det + d * math.log(2 * math.pi))
''', {B4_VALUES, B4_STABLE}),
    ("B5", "flattened batch: no broadcasting", '''
def kl_full_gaussian_standard_normal(mu, L):
    d = L.shape[-1]
    Lf, muf = L.reshape(-1, d, d), mu.reshape(-1, d)
    kl = 0.5 * (Lf.square().sum((1, 2)) + muf.square().sum(1) - d) - Lf.diagonal(dim1=1, dim2=2).log().sum(1)
    return kl.reshape(mu.shape[:-1])
''', {B5_BROADCAST}),
]


@pytest.mark.parametrize("qid, bug, source, expected_failures", MUTANTS, ids=[f"{m[0]}-{m[1]}" for m in MUTANTS])
def test_each_bug_loses_points_on_the_named_checks(grade, qid, bug, source, expected_failures):
    results = grade(source, qid)
    assert {r.check for r in results} >= expected_failures, "a check name changed"
    assert failed(results) == expected_failures, [plain_text(r) for r in results if r.status != "passed"]
    assert score(results) < FULL[qid]


#: (bug, question, check, how its message starts, what else it must say)
MESSAGES = [
    ("exp on the diagonal", "B1", B1_VALUES, f'B1 scale_tril_from_raw — property "{B1_VALUES}" failed (public)',
     ["call     : scale_tril_from_raw(raw=", "(shrunk)", "the diagonal of L differs from the reference",
      "hint     : your diagonal is exp(raw_ii); the contract of B1 asks softplus(raw_ii)"]),
    ("softplus as log(1 + exp) in the input's dtype", "B1", B1_VALUES, "",
     ["call     : scale_tril_from_raw(raw=tensor([[[100.", "hint     : your diagonal is log(1 + exp(raw_ii)) computed"]),
    ("log det Σ as the log of a determinant", "B4", B4_VALUES, "", ["call     : full_gaussian_log_prob(z=", "inf"]),
    ("Lᵀ L", "B2", B2_KNOWN, f'B2 covariance_from_scale_tril — value "{B2_KNOWN}" failed (public)',
     ["call     : covariance_from_scale_tril(L=tensor(", "hint     : your Σ equals Lᵀ L; the contract of B2 asks L Lᵀ"]),
    ("explicit Σ⁻¹ and logdet Σ", "B4", B4_STABLE,
     f'B4 full_gaussian_log_prob — property "{B4_STABLE}" failed (hidden)',
     ["call     : full_gaussian_log_prob(z=", "0.00012207", "ill-conditioned L (cond(L) up to",
      "hint     : your log-density drifts when L is ill-conditioned", "triangular solve"]),
    ("log det L in place of log det Σ", "B5", B5_KNOWN, "",
     ["call     : kl_full_gaussian_standard_normal(mu=tensor(",
      "hint     : your log det Σ is Σᵢ log L_ii; for Σ = L Lᵀ it is twice that"]),
]


@pytest.mark.parametrize("bug, qid, check, start, fragments", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_failure_message_shows_the_call_and_names_the_mistake(grade, bug, qid, check, start, fragments):
    (mutant,) = [m for m in MUTANTS if m[1] == bug]
    message = next(plain_text(r) for r in grade(mutant[2], qid) if r.check == check)
    assert message.startswith(start), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


#: One mistake, one deduction: each is right but in one respect, and loses only the check about it.
ONE_SLIP = [
    ("B2", "a batched matrix product that needs a leading dimension", '''
def covariance_from_scale_tril(L):
    flat = L.flatten(0, -3)
    return torch.bmm(flat, flat.mT).reshape(L.shape)
''', {UNBATCHED}),
    ("B5", "a hard-coded float32 buffer for the KL", '''
def kl_full_gaussian_standard_normal(mu, L):
    out = torch.zeros(torch.broadcast_shapes(mu.shape[:-1], L.shape[:-2]))
    out += 0.5 * ((L ** 2).sum((-2, -1)) + (mu ** 2).sum(-1) - mu.shape[-1]) - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return out
''', {DTYPE_CHECK}),
]


@pytest.mark.parametrize("qid, slip, source, expected_failures", ONE_SLIP, ids=[m[1] for m in ONE_SLIP])
def test_one_slip_loses_only_the_check_about_it(grade, qid, slip, source, expected_failures):
    results = grade(source, qid)
    assert failed(results) == expected_failures, [plain_text(r) for r in results if r.status != "passed"]
    assert score(results) == FULL[qid] - 0.25
