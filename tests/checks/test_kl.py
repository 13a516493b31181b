"""Checks of Part A: correct solutions in any style earn full marks, each trap loses its points."""

import math

import pytest
import torch

from autograder.checks import QUESTIONS
from autograder.checks import kl as checks
from autograder.checks import kl_quadrature
from autograder.checks.compare import DTYPE_CHECK
from autograder.contract import CONTRACT
from autograder.reports.layout import plain_text
from tests.checks.conftest import failed, is_convention, mutated, reference_source, score

FULL = {e.qid: e.points for e in CONTRACT if e.qid[0] == "A"}

ALTERNATIVES = {
    "A1": 'KL_SCENARIOS = {1: "c", "2": " b", 3: "C"}\n',
    "A2": '''
def forward_kl_loss(q, x_p):
    # float64 arithmetic, one sample at a time, cast back to q's dtype
    dtype = x_p.dtype
    terms = torch.stack([q.log_prob(x.double()) for x in x_p])
    return (-terms.sum() / x_p.shape[0]).to(dtype)
''',
    "A3": '''
def reverse_kl_loss(q, log_p_tilde, n_samples):
    # by hand, noise drawn in another order than rsample
    eps = torch.randn((*q.event_shape, n_samples), dtype=q.mean.dtype).movedim(-1, 0)
    x = q.mean + q.stddev * eps
    return torch.mean(q.log_prob(x) - log_p_tilde(x))
''',
    "A4": '''
def forward_kl_loss_is(q, log_p_tilde, n_samples):
    x = q.rsample((n_samples,)).detach()
    log_w = (log_p_tilde(x) - q.log_prob(x)).detach().double()
    w = (log_w - torch.logsumexp(log_w, 0)).exp().to(x.dtype)
    return -torch.dot(w, q.log_prob(x))
''',
    "A5": '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    # plain gradient steps on a Monte-Carlo objective, 1000 samples drawn once: the noisy end of correct
    theta = torch.tensor([float(init_loc), math.log(init_scale)], requires_grad=True)
    eps, x_p = torch.randn(1000), p.sample((1000,)).float()
    for _ in range(800):
        loc, scale = theta[0], theta[1].exp()
        q = D.Normal(loc, scale)
        if direction == "forward":
            loss = -q.log_prob(x_p).mean()
        else:
            x = loc + scale * eps
            loss = (q.log_prob(x) - p.log_prob(x)).mean()
        (g,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            theta -= 0.1 * g
    return theta[0].item(), theta[1].exp().item()
''',
}

GRADIENT_A3 = "reparameterised gradient of KL(q‖p) w.r.t. q's loc"
GRADIENT_A4 = "gradient estimates ∇ H(p, q) w.r.t. q's loc (weights and samples held constant)"
VALUE_A3 = "value estimates KL(q‖p) − log Z, float32 and float64"
VALUE_A4 = "value estimates the cross-entropy H(p, q), float32 and float64"
FAR_A4 = "stable when log_p_tilde is far from 0 (±1e4)"
FORWARD_A5 = "forward KL lands on moment matching"
RIGHT_A5 = "reverse KL from a start right of the centre seeks the right-hand mode"
LEFT_A5 = "reverse KL from a start left of the centre seeks the left-hand mode"
SCENARIOS = [c.name for c in QUESTIONS["A1"] if c.points]
FORMAT_A1 = "KL_SCENARIOS maps 1, 2, 3 to letters A-D"
A2_CHECKS = {c.name for c in QUESTIONS["A2"]}
A2_GRAD = "differentiable w.r.t. q's parameters"


def test_points_match_the_contract_with_public_checks():
    for qid, full in FULL.items():
        assert sum(c.points for c in QUESTIONS[qid]) == full
        assert 1 <= sum(c.visibility == "public" and not is_convention(c.name) for c in QUESTIONS[qid]) <= 2


@pytest.mark.parametrize("qid", sorted(ALTERNATIVES))
def test_other_correct_styles_score_full_marks(grade, qid):
    results = grade(ALTERNATIVES[qid], qid)
    assert score(results) == FULL[qid], [plain_text(r) for r in results if r.status != "passed"]


#: The plain A3 and A4 answers; some mutants below are one of these with one bug.
A3_PLAIN = '''
def reverse_kl_loss(q, log_p_tilde, n_samples):
    x = q.rsample((n_samples,))
    return (q.log_prob(x) - log_p_tilde(x)).mean()
'''
A4_PLAIN = '''
def forward_kl_loss_is(q, log_p_tilde, n_samples):
    x = q.sample((n_samples,))
    w = torch.softmax(log_p_tilde(x) - q.log_prob(x), 0).detach()
    return -(w * q.log_prob(x)).sum()
'''

MUTANTS = [
    ("A1", "forward only in scenario 1", 'KL_SCENARIOS = {1: "B", 2: "B", 3: "C"}', {SCENARIOS[0]}),
    ("A1", "both directions in scenario 2", 'KL_SCENARIOS = {1: "C", 2: "C", 3: "C"}', {SCENARIOS[1]}),
    ("A1", "reverse only with an unnormalised p", 'KL_SCENARIOS = {1: "C", 2: "B", 3: "A"}', {SCENARIOS[2]}),
    ("A1", "a list instead of a dict", 'KL_SCENARIOS = ["C", "B", "C"]', {FORMAT_A1, *SCENARIOS}),
    ("A2", "sum instead of mean", '''
def forward_kl_loss(q, x_p):
    return -q.log_prob(x_p).sum()
''', A2_CHECKS - {DTYPE_CHECK}),
    ("A2", "log-likelihood of the sample mean", '''
def forward_kl_loss(q, x_p):
    return -q.log_prob(x_p.mean(0))
''', A2_CHECKS - {DTYPE_CHECK}),
    ("A2", "detached loss", '''
def forward_kl_loss(q, x_p):
    return -q.log_prob(x_p).mean().detach()
''', {A2_GRAD}),
    ("A2", "Python float", '''
def forward_kl_loss(q, x_p):
    return -q.log_prob(x_p).mean().item()
''', A2_CHECKS),
    ("A2", "hard-coded float64", '''
def forward_kl_loss(q, x_p):
    return -q.log_prob(x_p).double().mean()
''', {DTYPE_CHECK}),
    ("A3", "sample() instead of rsample()", mutated(A3_PLAIN, "q.rsample(", "q.sample("), {GRADIENT_A3}),
    ("A3", "log Z estimated and removed", mutated(A3_PLAIN, "\n    return (q.log_prob(x) - log_p_tilde(x)).mean()", """
    d = q.log_prob(x) - log_p_tilde(x)
    return d.mean() + torch.logsumexp(-d, 0) - math.log(n_samples)"""), {VALUE_A3, GRADIENT_A3}),
    ("A3", "sum instead of mean", mutated(A3_PLAIN, ").mean()", ").sum()"), {VALUE_A3, GRADIENT_A3}),
    ("A4", "gradient through the weights", mutated(A4_PLAIN, ", 0).detach()", ", 0)"), {GRADIENT_A4}),
    ("A4", "rsample: the samples carry gradient", mutated(A4_PLAIN, "q.sample(", "q.rsample("), {GRADIENT_A4}),
    ("A4", "weights by exp, normalised afterwards", '''
def forward_kl_loss_is(q, log_p_tilde, n_samples):
    with torch.no_grad():
        x = q.sample((n_samples,))
        w = torch.exp(log_p_tilde(x) - q.log_prob(x))
        w = w / w.sum()
    return -(w * q.log_prob(x)).sum()
''', {FAR_A4}),
    ("A4", "no importance weights", '''
def forward_kl_loss_is(q, log_p_tilde, n_samples):
    x = q.sample((n_samples,))
    return -q.log_prob(x).mean()
''', {VALUE_A4, FAR_A4, GRADIENT_A4}),
    ("A5", "directions swapped", reference_source("fit_gaussian_to_mixture") + '''
_fit = fit_gaussian_to_mixture
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    return _fit(p, {"forward": "reverse", "reverse": "forward"}[direction], init_loc, init_scale)
''', {FORWARD_A5, RIGHT_A5, LEFT_A5}),
    ("A5", "start ignored: the centre optimum", reference_source("fit_gaussian_to_mixture") + '''
_fit = fit_gaussian_to_mixture
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    return _fit(p, direction, 0.0, 2.0)
''', {RIGHT_A5, LEFT_A5}),
    ("A5", "variance instead of scale", reference_source("fit_gaussian_to_mixture") + '''
_fit = fit_gaussian_to_mixture
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    loc, scale = _fit(p, direction, init_loc, init_scale)
    return loc, scale ** 2
''', {FORWARD_A5, RIGHT_A5, LEFT_A5}),  # drawn reverse scales are far from 1, where s² ≈ s
    ("A5", "the contract's example optima, memorised", '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    if direction == "forward":
        return 0.0, math.sqrt(10.0)
    return (2.984306, 1.023369) if init_loc > p.mean.item() else (-2.984306, 1.023369)
''', {FORWARD_A5, RIGHT_A5, LEFT_A5}),
    ("A5", "no descent: the start returned", '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    return float(init_loc), float(init_scale)
''', {FORWARD_A5, RIGHT_A5, LEFT_A5}),
    ("A5", "tensors instead of floats", reference_source("fit_gaussian_to_mixture") + '''
_fit = fit_gaussian_to_mixture
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    return tuple(torch.tensor(v) for v in _fit(p, direction, init_loc, init_scale))
''', {FORWARD_A5, RIGHT_A5, LEFT_A5}),
]


ADAM_A5 = '''
def fit_gaussian_to_mixture(p, direction, init_loc, init_scale):
    loc = torch.tensor(float(init_loc), requires_grad=True)
    log_s = torch.tensor(math.log(init_scale), requires_grad=True)
    opt = torch.optim.Adam([loc, log_s], lr=0.05)
    eps, x_p = torch.randn(1000), p.sample((1000,)).float()
    for _ in range(1000):
        opt.zero_grad()
        q = D.Normal(loc, log_s.exp())
        loss = -q.log_prob(x_p).mean() if direction == "forward" else (q.log_prob(loc + log_s.exp() * eps) - p.log_prob(loc + log_s.exp() * eps)).mean()
        loss.backward()
        opt.step()
    return loc.item(), log_s.exp().item()
'''


def test_torch_optim_in_the_sandbox(grade):
    results = grade(ADAM_A5, "A5")
    assert score(results) == FULL["A5"], [plain_text(r) for r in results if r.status != "passed"]


@pytest.mark.parametrize("qid, bug, source, expected_failures", MUTANTS, ids=[m[1] for m in MUTANTS])
def test_each_bug_loses_points_on_the_named_checks(grade, qid, bug, source, expected_failures):
    results = grade(source, qid)
    assert failed(results) == expected_failures, [plain_text(r) for r in results if r.status != "passed"]
    assert score(results) < FULL[qid]


def test_statistical_failure_reports_call_statistic_and_hint(grade):
    (mutant,) = [m for m in MUTANTS if m[1] == "sample() instead of rsample()"]
    (message,) = [plain_text(r) for r in grade(mutant[2], "A3") if r.status == "failed"]
    assert message.startswith(f'A3 reverse_kl_loss — statistical test "{GRADIENT_A3}" failed (hidden)')
    assert "call     : reverse_kl_loss(q=<normal(loc=" in message and "n_samples=4096)" in message
    assert "n = 4096 samples" in message and "threshold |z| ≤ 5.33" in message and "false-fail probability" in message
    assert "hint     : your gradient w.r.t. loc is not the reparameterised one" in message


def test_a1_failure_names_the_expected_letter(grade):
    results = grade('KL_SCENARIOS = {1: "C", 2: "C", 3: "C"}', "A1")
    (message,) = [plain_text(r) for r in results if r.status == "failed"]
    assert "expected : 'B'" in message and "got      : 'C'" in message and "call     : KL_SCENARIOS" in message


def test_a1_missing_keys_hint_at_the_format(grade):
    results = grade('KL_SCENARIOS = {1: "C", 2: "B"}', "A1")
    assert failed(results) == {FORMAT_A1, SCENARIOS[2]}
    message = next(plain_text(r) for r in results if r.check == FORMAT_A1)
    assert "no entry for scenario 3" in message and "see the contract of A1" in message


# The reverse targets' table, wrong answers and basins: tests/hostile/test_leftovers_a5.py.


@pytest.mark.parametrize("seed", range(0, 4000, 97))
def test_drawn_forward_fits_keep_every_wrong_answer_beyond_twice_the_tolerance(seed):
    case = checks._forward_case(seed)
    for wrong in [(0.0, math.sqrt(10.0)), (2.984306, 1.023369), (-2.984306, 1.023369), case.start]:
        assert any(abs(w - e) > 2 * t for w, e, t in zip(wrong, case.expected, case.tol)), (wrong, case)


def test_drawn_targets_are_not_the_contracts_example():
    reverse = {tuple(checks._reverse_case(seed, 1).params["locs"].tolist()) for seed in range(200)}
    forward = {tuple(checks._forward_case(seed).params["locs"].tolist()) for seed in range(200)}
    assert (-3.0, 3.0) not in reverse and len(reverse) > 150 and len(forward) > 150


def test_statistics_per_check_keep_the_false_fail_probability_below_1e6():
    assert kl_quadrature.TAIL == pytest.approx(9.82e-8, rel=1e-3)  # P(|Z| > 5.33)
    assert 6 * kl_quadrature.TAIL < 1e-6
