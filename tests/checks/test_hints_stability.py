"""Hints name what was measured, never a wrong diagnosis (issue 12).

A check about a hard case (extreme values, an ill-conditioned L, broadcasting,
L > 1) says "unstable" only when the same function is right on the same input
without the hard part (``diagnose.judge_hard_case``); other hints come from
measured evidence (a ratio, an offset of log S, a second run, a probe). The
one-bug functions are those of the fairness corpus (``/work/notes/fair_h``),
run in this process on the checks of their own question.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest
import torch

from autograder.checks import QUESTIONS, run_check
from autograder.checks import strategies as S
from autograder.checks.diagnose import Diagnosis, expect_diagnosed, judge_hard_case, near_miss
from autograder.checks.framework import Failure
from autograder.local import LocalSession
from tests.checks.test_hints import solution_code

PRELUDE = "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import distributions as D\n"


def _session(source: str) -> LocalSession:
    namespace: dict = {"__name__": "__main__"}
    exec(compile(PRELUDE + source, "<corpus>", "exec"), namespace)  # noqa: S102 - the tests' own code
    return LocalSession(namespace)


def _results(source: str, qid: str, words: str, seed: int = 0) -> dict[str, object]:
    """Every check of ``qid`` whose name contains ``words``, run on ``source``: name → result."""
    session = _session(source)
    return {c.name: run_check(session, c, seed, time.monotonic() + 300) for c in QUESTIONS[qid] if words in c.name}


def _hint(result) -> str:
    assert result.status != "passed", result.check
    return result.failure.hint


# -- the rule itself, on a stand-in context --------------------------------------------------------


class _Ctx(SimpleNamespace):
    __hash__ = object.__hash__  # weak-referenceable and hashable, as Context is


def _ctx() -> _Ctx:
    return _Ctx(last_call="the hard call", check=SimpleNamespace(hint="unstable"))


def _judge(wrong_on: set[str], diagnosed: str = ""):
    def judge(example: str) -> None:
        if example in wrong_on:
            raise Failure("wrong", hint=diagnosed if example == "ordinary" and diagnosed else "unstable")
    return judge


def _hint_of(judge, ctx=None) -> str:
    ctx = ctx or _ctx()
    with pytest.raises(Failure) as failure:
        judge_hard_case(ctx, judge, "hard", lambda _: "ordinary", "wrong on ordinary inputs too")
    assert ctx.last_call == "the hard call"  # the failure keeps the hard call
    return failure.value.hint


def test_unstable_only_when_right_on_ordinary_inputs():
    assert _hint_of(_judge({"hard"})) == "unstable"
    assert _hint_of(_judge({"hard", "ordinary"})) == "wrong on ordinary inputs too"
    assert _hint_of(_judge({"hard", "ordinary"}, "your sum is a mean")) == (
        "wrong on ordinary inputs too — your sum is a mean")
    judge_hard_case(_ctx(), _judge(set()), "hard", lambda _: "ordinary", "elsewhere")  # right: nothing raised


def test_a_mistake_diagnosed_on_the_hard_case_keeps_its_hint():
    def judge(example: str) -> None:
        raise Failure("wrong", hint="your gamma is uniform")
    assert _hint_of(judge) == "your gamma is uniform"


def test_the_ordinary_input_is_judged_once_per_check_run():
    calls = []

    def judge(example: str) -> None:
        calls.append(example)
        raise Failure("wrong", hint="unstable")
    ctx = _ctx()
    for _ in range(5):  # as while hypothesis shrinks
        assert _hint_of(judge, ctx) == "wrong on ordinary inputs too"
    assert calls.count("ordinary") == 1


def test_a_near_miss_is_said_with_its_size_and_only_in_float64():
    expected = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert "within 6e-08" in near_miss(expected + 6e-8, expected, "gamma")
    assert near_miss(expected + 1e-3, expected) is None  # a real mistake
    assert near_miss(expected.float() + 6e-8, expected.float()) is None
    assert near_miss(expected, expected) is None
    ctx = _ctx()
    ctx.fail = lambda summary, **kw: (_ for _ in ()).throw(Failure(summary, **kw))
    with pytest.raises(Failure) as failure:
        expect_diagnosed(ctx, expected + 3e-6, expected, (Diagnosis("doubled", lambda e: 2 * e),), {"e": expected},
                         hint="pointer", what="gamma")  # outside float64's rtol 1e-6, inside the near miss
    assert failure.value.hint.startswith("gamma is within 3e-06")


def test_only_well_posed_ill_conditioned_inputs_are_drawn():
    # The red team's case: cond(L) ≈ 4e20, where one ulp of the inputs moves the log-density by more than 1e-6.
    d = 5
    L = torch.tril(torch.full((d, d), -2.0, dtype=torch.float64), -1) + 2.0**-13 * torch.eye(d, dtype=torch.float64)
    mu = torch.full((d,), -4.0, dtype=torch.float64)
    z = mu + L @ torch.tensor([-2.0, 2.0, 2.0, 2.0, 2.0], dtype=torch.float64)
    assert not S.well_posed_log_density(z[None], mu[None], L[None], 1e-6, 1e-8)
    L_ok = torch.tril(torch.full((d, d), -2.0, dtype=torch.float64), -1) + torch.eye(d, dtype=torch.float64)
    assert S.well_posed_log_density(z[None], mu[None], L_ok[None], 1e-6, 1e-8)


# -- the corpus's one-bug functions -----------------------------------------------------------------

CHOLESKY_SOLVE = '''
def full_gaussian_log_prob(z, mu, L):
    d = L.shape[-1]
    diff = z.double() - mu.double()
    batch = torch.broadcast_shapes(diff.shape[:-1], L.shape[:-2])
    diff, L64 = diff.expand(*batch, d), L.double().expand(*batch, d, d)
    sol = torch.cholesky_solve(diff.unsqueeze(-1), L64, upper=False).squeeze(-1)
    maha = torch.einsum("...i,...i->...", diff, sol)
    logdet = 2.0 * torch.log(torch.diagonal(L64, dim1=-2, dim2=-1)).sum(-1)
    return (-0.5 * (d * math.log(2 * math.pi) + logdet + maha)).to(z.dtype)
'''
UPPER_SOLVE = '''
def full_gaussian_log_prob(z, mu, L):
    y = torch.linalg.solve_triangular(L.mT, (z - mu)[..., None], upper=True)[..., 0]
    d = L.shape[-1]
    return -0.5 * (y ** 2).sum(-1) - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1) - 0.5 * d * math.log(2 * math.pi)
'''
E2_NO_LOG_S = '''
def log_likelihood_mc(x, log_px_given_z, z_dim, n_samples):
    z = torch.randn(n_samples, x.shape[0], z_dim, dtype=x.dtype)
    return torch.logsumexp(log_px_given_z(x, z), dim=0)
'''
E3_NO_PRIOR = '''
def log_likelihood_is(x, encoder, log_px_given_z, n_samples):
    mu, logvar = encoder(x)
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(n_samples, *mu.shape, dtype=mu.dtype)
    log_w = log_px_given_z(x, z) - D.Normal(mu, std).log_prob(z).sum(-1)
    return torch.logsumexp(log_w, 0) - math.log(n_samples)
'''
E4_VARIANCE = '''
def elbo(x, encoder, log_px_given_z, n_samples):
    mu, logvar = encoder(x)
    z = mu + torch.exp(logvar) * torch.randn((n_samples,) + tuple(mu.shape), dtype=mu.dtype)
    kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(-1)
    return log_px_given_z(x, z).mean(0) - kl
'''
E5_PIXEL_MEAN = '''
def vae_losses(x, x_logits, mu, logvar):
    nll = F.cross_entropy(x_logits, x)
    return nll, torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
'''
C1_VADE = '''
def gmvae_responsibilities(z, log_pi, mu_c, logvar_c):
    h = (z.unsqueeze(1) - mu_c.unsqueeze(0)) ** 2 / torch.exp(logvar_c.unsqueeze(0))
    h = h + logvar_c.unsqueeze(0) + np.log(2 * np.pi)
    p = torch.exp(log_pi.unsqueeze(0) - 0.5 * torch.sum(h, dim=2)) + 1e-10
    return p / torch.sum(p, dim=1, keepdim=True)
'''
C4_PIXEL_MEAN = '''
def gmvae_elbo(x, x_logits, mu_z, logvar_z, gamma, log_pi, mu_c, logvar_c):
    recon = (x * x_logits - F.softplus(x_logits)).mean(-1).mean(0)
    vq = torch.exp(logvar_z)[:, None, :]
    e_log_p = -0.5 * (math.log(2 * math.pi) + logvar_c[None] + (vq + (mu_z[:, None] - mu_c[None]) ** 2)
                      / torch.exp(logvar_c[None])).sum(-1)
    safe = torch.log(torch.where(gamma > 0, gamma, torch.ones_like(gamma)))
    ent = 0.5 * (1.0 + math.log(2 * math.pi) + logvar_z).sum(-1)
    return recon + (gamma * e_log_p).sum(-1) + (gamma * (log_pi[None] - safe)).sum(-1) + ent
'''
UNSTABLE = ("ill-conditioned", "not finite", "underflow", "goes wrong for", "large logits")

CASES = [  # (source, question, words of the checks, words each hint must hold)
    (UPPER_SOLVE, "B4", "log N(z; μ, L Lᵀ) values", "entries below its diagonal"),
    (UPPER_SOLVE, "B4", "ill-conditioned", "wrong for a well-conditioned L too"),
    (E2_NO_LOG_S, "E2", "", "log S"),
    (E3_NO_PRIOR, "E3", "exact posterior", "changes from one run to the next"),
    (E3_NO_PRIOR, "E3", "below −10⁴", "wrong for ordinary log weights too"),
    (E4_VARIANCE, "E4", "Monte-Carlo error", "their spread is not q's"),
    (E4_VARIANCE, "E4", "gradient", "their spread is not q's"),
    (E5_PIXEL_MEAN, "E5", "reconstruction", "averages over the pixels"),
    (C1_VADE, "C1", "Bayes' rule", "within 6e-08"),
    (C4_PIXEL_MEAN, "C4", "ELBO values", "divided by D"),
    (C4_PIXEL_MEAN, "C4", "gradients", "divided by D"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("source", "qid", "words", "hint_words"), CASES, ids=[f"{c[1]}-{c[3][:20]}" for c in CASES])
def test_a_one_bug_function_gets_the_hint_its_evidence_shows(source, qid, words, hint_words):
    results = _results(source, qid, words)
    judged = {name: r for name, r in results.items() if r.status != "passed"}
    assert judged, results
    for name, result in judged.items():
        hint = _hint(result)
        assert hint_words in hint, (name, hint)
        assert not any(w in hint for w in UNSTABLE) or "too" in hint, (name, hint)
        assert not solution_code(hint), hint


@pytest.mark.slow
def test_b4_transposed_solve_is_not_called_unstable():
    (result,) = _results(UPPER_SOLVE, "B4", "ill-conditioned").values()
    assert _hint(result).startswith("the log-density is wrong for a well-conditioned L too"), result.failure


def test_e2_without_the_log_s_is_told_it_is_log_s_too_high():
    (result,) = _results(E2_NO_LOG_S, "E2", "below −10⁴").values()
    assert "log p(x) + log S" in _hint(result) and "not finite" not in _hint(result)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_b4_cholesky_solve_scores_full_marks_under_every_seed(seed):
    assert all(r.status == "passed" for r in _results(CHOLESKY_SOLVE, "B4", "", seed).values())


@pytest.mark.slow
def test_b4_cholesky_solve_passes_the_ill_conditioned_check():
    assert all(r.status == "passed" for r in _results(CHOLESKY_SOLVE, "B4", "ill-conditioned").values())


def test_the_measured_texts_hold_no_solution_code():
    from autograder.checks import evidence

    probe_texts = [evidence.sum_mistake("weights").label, evidence.where_hint(
        torch.tensor([math.log(4.0)]), torch.zeros(1), torch.zeros(1), 4, "pointer", "weights")]
    assert all(not solution_code(t) for t in probe_texts), probe_texts
