"""Checks of Part D: correct solutions in any style earn full marks, each trap loses its points."""

from inspect import getsource

import pytest

from autograder.checks.compare import DTYPE_CHECK
from autograder.contract import CONTRACT
from autograder.reports.layout import plain_text
from tests.checks.conftest import failed, mutated, score
from tests.checks.test_tamper import IN_PLACE
from tests.reference.test_vq import _ema_without_smoothing

FULL = {e.qid: e.points for e in CONTRACT if e.qid[0] == "D"}

ALTERNATIVES = {
    "D1": '''
def quantize(z_e, codebook):
    flat = z_e.reshape(-1, z_e.shape[-1])
    d = torch.cdist(flat.double(), codebook.double()) ** 2
    idx = d.argmin(1).reshape(z_e.shape[:-1])
    e = codebook[idx]
    return z_e + (e - z_e).detach(), idx
''',
    "D2": '''
def vq_losses(z_e, codebook, indices, beta=0.25):
    e = codebook[indices]
    return F.mse_loss(e, z_e.detach()), beta * F.mse_loss(z_e, e.detach())
''',
    "D3": '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    K, Dm = embed_sum.shape
    flat, idx = z_e.reshape(-1, Dm), indices.reshape(-1)
    n = torch.bincount(idx, minlength=K).to(cluster_size.dtype)
    s = torch.zeros_like(embed_sum).index_add(0, idx, flat.to(embed_sum.dtype))
    N = cluster_size * decay + n * (1 - decay)
    m = embed_sum * decay + s * (1 - decay)
    total = N.sum()
    return m / ((N + eps) / (total + K * eps) * total)[:, None], N, m
''',
}


@pytest.mark.parametrize("qid", sorted(ALTERNATIVES))
def test_other_correct_styles_score_full_marks(grade, qid):
    results = grade(ALTERNATIVES[qid], qid)
    assert score(results) == FULL[qid], [plain_text(r) for r in results if r.status != "passed"]


#: Styles that touch what the runtime measures without cheating: a custom autograd.Function for the
#: straight-through estimator, a namedtuple result, in-place arithmetic on private clones.
MEASURED_STYLES = [
    ("D1", '''
import collections
Quantized = collections.namedtuple("Quantized", "z_q indices")
class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z_e, e):
        return e.clone()
    @staticmethod
    def backward(ctx, grad):
        return grad, None
def quantize(z_e, codebook):
    idx = torch.cdist(z_e.reshape(-1, z_e.shape[-1]).double(), codebook.double()).argmin(1).reshape(z_e.shape[:-1])
    return Quantized(_StraightThrough.apply(z_e, codebook[idx].detach()), idx)
'''),
    ("D3", '''
def ema_codebook_update(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    K = cluster_size.shape[0]
    onehot = F.one_hot(indices.reshape(-1), K).to(embed_sum.dtype)
    N = cluster_size.clone().mul_(decay).add_((1 - decay) * onehot.sum(0))
    m = embed_sum.clone()
    m.mul_(decay).add_((1 - decay) * onehot.T @ z_e.reshape(-1, z_e.shape[-1]).to(m.dtype))
    total = N.sum()
    return m / ((N + eps) / (total + K * eps) * total)[:, None], N, m
'''),
]


@pytest.mark.parametrize("qid, source", MEASURED_STYLES, ids=[q for q, _ in MEASURED_STYLES])
def test_styles_near_the_measurements_score_full_marks(grade, qid, source):
    results = grade(source, qid)
    assert score(results) == FULL[qid], [plain_text(r) for r in results if r.status != "passed"]


MUTANTS = [
    ("D1", "detach on the wrong side", '''
def quantize(z_e, codebook):
    idx = ((z_e[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
    return z_e.detach() + (codebook[idx] - z_e), idx
''', {"straight-through gradient: identity to z_e, nothing to the codebook"}),
    ("D1", "no straight-through at all", '''
def quantize(z_e, codebook):
    idx = ((z_e[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
    return codebook[idx], idx
''', {"straight-through gradient: identity to z_e, nothing to the codebook"}),
    ("D1", "ties to the highest index", '''
def quantize(z_e, codebook):
    d = ((z_e[..., None, :] - codebook) ** 2).sum(-1)
    K = codebook.shape[0]
    idx = K - 1 - d.flip(-1).argmin(-1)
    return z_e + (codebook[idx] - z_e).detach(), idx
''', {"ties go to the lowest index"}),
    ("D1", "distance without the square (L1)", '''
def quantize(z_e, codebook):
    idx = (z_e[..., None, :] - codebook).abs().sum(-1).argmin(-1)
    return z_e + (codebook[idx] - z_e).detach(), idx
''', {"nearest code by squared distance, z_q = codebook[indices]"}),
    ("D1", "identity when z_e requires grad, no quantiser behind it", '''
def quantize(z_e, codebook):
    idx = ((z_e[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
    return (z_e * 1.0 if z_e.requires_grad else codebook[idx]), idx
''', {"straight-through gradient: identity to z_e, nothing to the codebook"}),
    ("D2", "stop-gradients swapped", '''
def vq_losses(z_e, codebook, indices, beta=0.25):
    e = codebook[indices]
    return ((z_e - e.detach()) ** 2).mean(), beta * ((z_e.detach() - e) ** 2).mean()
''', {"each loss sends gradients only where its stop-gradient allows"}),
    ("D2", "sum instead of mean", '''
def vq_losses(z_e, codebook, indices, beta=0.25):
    e = codebook[indices]
    return ((z_e.detach() - e) ** 2).sum(), beta * ((z_e - e.detach()) ** 2).sum()
''', {"codebook and commitment loss values"}),
    ("D3", "no Laplace smoothing", getsource(_ema_without_smoothing) + "ema_codebook_update = _ema_without_smoothing\n", {"EMA update on a hand-computed example", "EMA update with empty clusters and leading dims"}),
    ("D3", "updates the running statistics in place", IN_PLACE + "ema_codebook_update = _update\n",
     {"inputs are not modified in place"}),
    ("D3", "indices sorted in place", mutated(ALTERNATIVES["D3"], """
    flat, idx = z_e.reshape(-1, Dm), indices.reshape(-1)
""", """
    flat = z_e.reshape(-1, Dm)
    order = indices.reshape(-1).argsort()
    flat, idx = flat[order], indices.view(-1).sort().values
    indices.view(-1)[:] = idx  # the caller's indices, rewritten
"""), {"inputs are not modified in place"}),
]


@pytest.mark.parametrize("qid, bug, source, expected_failures", MUTANTS, ids=[m[1] for m in MUTANTS])
def test_each_bug_loses_points_on_the_named_checks(grade, qid, bug, source, expected_failures):
    results = grade(source, qid)
    assert expected_failures <= failed(results)
    assert score(results) < FULL[qid]


DISTANCES = {
    "L1": "(z_e[..., None, :] - codebook).abs().sum(-1)",
    "max norm": "(z_e[..., None, :] - codebook).abs().amax(-1)",
    "dot product": "-(z_e @ codebook.T)",
}


@pytest.mark.parametrize("distance", sorted(DISTANCES))
def test_a_distance_other_than_the_squared_one_loses_d1_under_every_seed(grade_checks, distance):
    source = f"""
def quantize(z_e, codebook):
    idx = ({DISTANCES[distance]}).argmin(-1)
    return z_e + (codebook[idx] - z_e).detach(), idx
"""
    name = "nearest code by squared distance, z_q = codebook[indices]"
    for seed in range(10):
        assert grade_checks(source, "D1", [name], seed=seed)[0].status == "failed", seed


def test_failure_messages_show_the_call_expected_got_and_hint(grade):
    (mutant,) = [m for m in MUTANTS if m[1] == "detach on the wrong side"]
    results = grade(mutant[2], "D1")
    message = next(plain_text(r) for r in results if r.status == "failed")
    assert message.startswith('D1 quantize — gradient "straight-through gradient')
    assert "call     : quantize(z_e=" in message and "(shrunk)" in message
    assert "hint     : your dL/dz_e is minus the upstream gradient: the stop-gradient sits on the wrong term" in message


D1_UNBATCHED = "works without leading batch dimensions: z_e of shape (D,)"

#: One mistake, one deduction: each of these is right except in one respect, and loses only that check's points.
ONE_SLIP = [
    ("D1", "fails only on an unbatched (D,) z_e", '''
def quantize(z_e, codebook):
    flat = z_e.flatten(0, -2)
    idx = ((flat[:, None, :] - codebook) ** 2).sum(-1).argmin(1).reshape(z_e.shape[:-1])
    return z_e + (codebook[idx] - z_e).detach(), idx
''', {D1_UNBATCHED}),
    ("D1", "a hard-coded float32 buffer for z_q", '''
def quantize(z_e, codebook):
    idx = ((z_e[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
    z_q = torch.empty(z_e.shape)
    z_q[...] = z_e + (codebook[idx] - z_e).detach()
    return z_q, idx
''', {DTYPE_CHECK}),
    ("D3", "a hard-coded float32 buffer for the counts", mutated(ALTERNATIVES["D3"], """
    n = torch.bincount(idx, minlength=K).to(cluster_size.dtype)
    s = torch.zeros_like(embed_sum).index_add(0, idx, flat.to(embed_sum.dtype))
    N = cluster_size * decay + n * (1 - decay)
""", """
    counts = torch.zeros(K)
    counts.index_add_(0, idx, torch.ones(idx.shape[0]))
    s = torch.zeros_like(embed_sum).index_add(0, idx, flat)
    N = (cluster_size * decay + counts * (1 - decay)).float()
"""), {DTYPE_CHECK}),
]


@pytest.mark.parametrize("qid, slip, source, expected_failures", ONE_SLIP, ids=[m[1] for m in ONE_SLIP])
def test_one_slip_loses_only_the_check_about_it(grade, qid, slip, source, expected_failures):
    results = grade(source, qid)
    assert failed(results) == expected_failures, [plain_text(r) for r in results if r.status != "passed"]
    assert score(results) == FULL[qid] - sum(r.max_points for r in results if r.check in expected_failures)
    assert score(results) >= FULL[qid] - 0.5
