"""Part D (VQ-VAE, seed 004 §4) reference against ground truth that is not itself.

D1 against brute-force distances computed with Python loops (ties to the
lowest index), ``codebook[indices]`` and the identity Jacobian; D2 against
hand-computed values and gradients; D3 against the EMA equations of
van den Oord et al. (2017, Appendix A.1) written out element by element and a
hand-computed K = 3, D = 2 example.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.autograd.gradcheck import GradcheckError

from reference.vq import _laplace_smoothed_counts, ema_codebook_update, quantize, vq_losses
from tests.reference.strategies_vq import ema_problems, index_tensors, integer_codebooks, loss_problems, vq_problems
from tests.strategies import DTYPES, batch_shapes, small_tensors

F64 = torch.float64
TOL = {torch.float32: dict(rtol=1e-6, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _t(values, dtype=F64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _nearest_by_loops(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """argmin_k Σ_d (z_d − e_kd)², first minimum wins, by plain Python loops: (*B, D) → (*B,)."""
    codes = codebook.double().tolist()
    best = []
    for z in z_e.double().reshape(-1, z_e.shape[-1]).tolist():
        best_k, best_d = 0, float("inf")
        for k, e in enumerate(codes):
            d = sum((zi - ei) ** 2 for zi, ei in zip(z, e))
            if d < best_d:  # strict: a later code at the same distance never replaces an earlier one
                best_k, best_d = k, d
        best.append(best_k)
    return torch.tensor(best, dtype=torch.long).reshape(z_e.shape[:-1])


def _ema_by_the_equations(cluster_size, embed_sum, z_e, indices, decay, eps):
    """The update of Appendix A.1 element by element, in Python floats: returns float64 tensors."""
    N, m = cluster_size.double().tolist(), embed_sum.double().tolist()
    zs, ks = z_e.double().reshape(-1, z_e.shape[-1]).tolist(), indices.reshape(-1).tolist()
    K, D = len(N), len(m[0])
    n = [sum(1 for k_i in ks if k_i == k) for k in range(K)]
    s = [[sum(z[d] for z, k_i in zip(zs, ks) if k_i == k) for d in range(D)] for k in range(K)]
    N_new = [decay * N[k] + (1 - decay) * n[k] for k in range(K)]
    m_new = [[decay * m[k][d] + (1 - decay) * s[k][d] for d in range(D)] for k in range(K)]
    total = sum(N_new)
    N_smooth = [(N_new[k] + eps) / (total + K * eps) * total for k in range(K)]
    codebook = [[m_new[k][d] / N_smooth[k] for d in range(D)] for k in range(K)]
    return _t(codebook), _t(N_new), _t(m_new)


# --------------------------------------------------------------------------- D1 quantize

TIES = [
    # (z_e, codebook, expected indices): every case has two or more nearest codes
    ([[1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]], [0]),  # duplicate code
    ([[0.0]], [[1.0], [-1.0]], [0]),  # equidistant on either side
    ([[0.0]], [[3.0], [-1.0], [1.0]], [1]),  # tie between indices 1 and 2
    ([[0.5, 0.5]], [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]], [0]),  # centre of a square
    ([[2.0, 0.0], [0.0, 0.0]], [[5.0, 5.0], [2.0, 1.0], [2.0, -1.0], [1.0, 0.0]], [1, 3]),
]


@pytest.mark.parametrize("z_e, codebook, expected", TIES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_quantize_ties_go_to_the_lowest_index(z_e, codebook, expected, dtype):
    z_e, codebook = _t(z_e, dtype), _t(codebook, dtype)
    _, idx = quantize(z_e, codebook)
    assert idx.tolist() == expected == _nearest_by_loops(z_e, codebook).tolist()


@given(problem=vq_problems())
def test_quantize_matches_brute_force_distances(problem):
    z_e, codebook = problem
    z_q, idx = quantize(z_e, codebook)
    assert idx.dtype == torch.long and idx.shape == z_e.shape[:-1]
    assert torch.equal(idx, _nearest_by_loops(z_e, codebook))
    assert z_q.dtype == z_e.dtype and z_q.shape == z_e.shape
    assert torch.equal(z_q, codebook[idx])  # exact, not close


@given(problem=vq_problems(), repeats=st.integers(2, 3))
def test_quantize_duplicated_codebook_picks_the_first_copy(problem, repeats):
    z_e, codebook = problem
    _, idx = quantize(z_e, codebook)
    _, idx_dup = quantize(z_e, codebook.repeat(repeats, 1))  # every nearest code is now a tie
    assert torch.equal(idx_dup, idx)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("seed", range(3))
def test_quantize_matches_brute_force_on_random_floats(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    scales = 10.0 ** torch.randint(-3, 4, (4, 5, 1), generator=g)  # rows from 1e-3 to 1e3
    z_e = (torch.randn(4, 5, 3, generator=g, dtype=F64) * scales).to(dtype)
    codebook = torch.randn(7, 3, generator=g, dtype=F64).to(dtype)
    z_q, idx = quantize(z_e, codebook)
    assert torch.equal(idx, _nearest_by_loops(z_e, codebook))
    assert torch.equal(z_q, codebook[idx])  # exact for any finite input, not only on halves
    # the textbook z_e + sg[e − z_e] is within about one ulp of max(|z_e|, |e|), as the docstring says
    e = codebook[idx]
    assert ((z_e + (e - z_e) - e).abs() <= 2 * torch.finfo(dtype).eps * torch.maximum(z_e.abs(), e.abs())).all()


def test_quantize_keeps_ties_that_the_expanded_distance_breaks():
    # All three codes are at squared distance 1 from z; in float32 the shortcut
    # ‖z‖² − 2 z·e + ‖e‖² subtracts numbers near 1.8e7 and rounds the tie away.
    z_e = _t([[3000.5, 2999.5]], torch.float32)
    codebook = _t([[3001.5, 2999.5], [3000.5, 3000.5], [2999.5, 2999.5]], torch.float32)
    expanded = (z_e**2).sum(-1, keepdim=True) - 2 * (z_e.unsqueeze(-2) * codebook).sum(-1) + (codebook**2).sum(-1)
    assert expanded.argmin(-1).tolist() != [0]  # the shortcut picks a later code ...
    assert quantize(z_e, codebook)[1].tolist() == [0] == _nearest_by_loops(z_e, codebook).tolist()  # ... not so here


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_quantize_value_is_exactly_the_code_where_the_textbook_form_rounds(dtype):
    # z_e + sg[e − z_e] rounds twice; the reference's sg[e] + (z_e − sg[z_e]) returns e itself.
    big = 1e8 if dtype == torch.float32 else 1e17
    z_e, codebook = _t([[big], [-0.1], [3.3]], dtype), _t([[1.0], [0.3], [1e-3]], dtype)
    z_q, idx = quantize(z_e, codebook)
    assert torch.equal(z_q, codebook[idx])
    e = codebook[idx]
    textbook = z_e + (e - z_e)
    assert textbook[0, 0] != e[0, 0] and textbook[0, 0] == 0  # it loses the code next to a large z_e


@given(problem=vq_problems())
def test_quantize_value_agrees_with_the_textbook_straight_through(problem):
    z_e, codebook = problem
    z_q, idx = quantize(z_e, codebook)
    e = codebook[idx]
    assert torch.equal(z_q, z_e + (e - z_e).detach())  # on halves and integers both forms are exact


@given(problem=vq_problems(max_dims=2), dtype=DTYPES)
def test_quantize_jacobian_is_identity_and_codebook_gets_nothing(problem, dtype):
    z_e, codebook = (t.to(dtype).requires_grad_() for t in problem)
    z_q, idx = quantize(z_e, codebook)
    assert z_q.requires_grad and not idx.requires_grad
    jac = torch.autograd.functional.jacobian(lambda z: quantize(z, codebook.detach())[0], z_e.detach())
    n = z_e.numel()
    assert torch.equal(jac.reshape(n, n), torch.eye(n, dtype=dtype))
    cotangent = torch.arange(1.0, n + 1, dtype=dtype).reshape(z_e.shape)
    g_z, g_code = torch.autograd.grad(z_q, (z_e, codebook), cotangent, allow_unused=True)
    assert torch.equal(g_z, cotangent)
    assert g_code is None or not g_code.any()


def _near_codes(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z_e (2, 2, 3), codebook (5, 3))`` in float64, each z within 0.05 of its code (no tie nearby)."""
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(5, 3, generator=g, dtype=F64)
    z_e = codebook[torch.tensor([[0, 3], [4, 1]])] + 0.1 * torch.rand(2, 2, 3, generator=g, dtype=F64) - 0.05
    return z_e, codebook


def test_quantize_gradient_is_the_straight_through_surrogate_not_the_true_derivative():
    # The forward value is piecewise constant, so its true derivative is 0 and gradcheck of z_q
    # against finite differences must fail: straight-through replaces that 0 by the identity.
    z_e, codebook = _near_codes()
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(lambda z: quantize(z, codebook)[0], (z_e.requires_grad_(),))
    z_plus = z_e.detach() + 1e-6
    assert torch.equal(quantize(z_plus, codebook)[0], quantize(z_e.detach(), codebook)[0])


def test_quantize_passes_the_decoder_gradient_at_the_code_to_z_e():
    # With a decoder f after quantisation, d f(z_q) / d z_e is f's gradient evaluated *at z_q = e*
    # (not at z_e), copied unchanged to z_e.
    z_e, codebook = _near_codes()
    f = lambda z: (z**3).sum() + (z[..., 0] * z[..., 1]).sum()  # noqa: E731
    e = quantize(z_e, codebook)[0].detach()
    z_e.requires_grad_()
    (got,) = torch.autograd.grad(f(quantize(z_e, codebook)[0]), z_e)
    (at_e,) = torch.autograd.grad(f(e.requires_grad_()), e)
    torch.testing.assert_close(got, at_e, rtol=0, atol=0)
    (at_z,) = torch.autograd.grad(f(z_e), z_e)
    assert not torch.allclose(got, at_z)  # the gradient at z_e itself is a different vector


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_trap_d1_straight_through_detach_on_the_wrong_side(dtype):
    """``e + sg[z_e − e]`` (the detach on the wrong side) is wrong twice.

    Its value is z_e, not the code, so the decoder never sees a quantised vector; and it
    sends the decoder's gradient to the codebook rows, none to z_e. The reference's value is
    exactly ``codebook[indices]`` and its gradient reaches z_e unchanged and not the codebook.
    """
    z_e, codebook = (t.to(dtype) for t in _near_codes())
    z_e.requires_grad_()
    codebook.requires_grad_()
    cotangent = torch.linspace(-1.0, 2.0, z_e.numel(), dtype=dtype).reshape(z_e.shape)
    z_q, idx = quantize(z_e, codebook)
    g_z, g_code = torch.autograd.grad(z_q, (z_e, codebook), cotangent, allow_unused=True)
    assert torch.equal(g_z, cotangent) and (g_code is None or not g_code.any())
    e = codebook[idx]
    wrong = e + (z_e - e).detach()
    assert torch.equal(z_q, e)
    torch.testing.assert_close(wrong, z_e, rtol=0, atol=4 * torch.finfo(dtype).eps)  # the value is z_e ...
    assert (wrong - e).abs().max() > 1e-3  # ... not the code (each z_e is up to 0.05 from its code)
    g_z, g_code = torch.autograd.grad(wrong, (z_e, codebook), cotangent, allow_unused=True)
    assert g_z is None or not g_z.any()  # the encoder gets nothing ...
    expected = torch.zeros_like(codebook).index_add(0, idx.reshape(-1), cotangent.reshape(-1, codebook.shape[-1]))
    torch.testing.assert_close(g_code, expected)  # ... and the used codes get the decoder's gradient


@given(data=st.data(), batch=batch_shapes(max_dims=3), k=st.integers(1, 4), d=st.integers(1, 3), dtype=DTYPES)
def test_quantize_leading_dims_act_like_a_flat_batch(data, batch, k, d, dtype):
    z_e = data.draw(small_tensors((*batch, d), dtype=dtype))
    codebook = data.draw(integer_codebooks(k, d, dtype=dtype))
    z_q, idx = quantize(z_e, codebook)
    z_flat, idx_flat = quantize(z_e.reshape(-1, d), codebook)
    assert z_q.shape == (*batch, d) and idx.shape == batch
    assert torch.equal(z_q.reshape(-1, d), z_flat) and torch.equal(idx.reshape(-1), idx_flat)


@given(problem=vq_problems())
def test_quantize_does_not_modify_its_inputs(problem):
    z_e, codebook = problem
    before = z_e.clone(), codebook.clone()
    quantize(z_e, codebook)
    assert torch.equal(z_e, before[0]) and torch.equal(codebook, before[1])


# --------------------------------------------------------------------------- D2 vq_losses

# Hand example: z_e = [[1, 2], [3, 0]], codebook = [[0, 0], [2, 2]], indices = [1, 1]
#   e = [[2, 2], [2, 2]],  z_e − e = [[−1, 0], [1, −2]],  squares 1, 0, 1, 4 → mean 6/4 = 1.5
#   codebook_loss = 1.5;  commitment_loss = β · 1.5
#   d codebook_loss / d e_1 = Σ_rows 2 (e_1 − z_i) / 4 = ([2, 0] + [−2, 4]) / 4 = [0, 1];  e_0 unused → 0
#   d commitment / d z_e = 2β (z_e − e) / 4 = (β/2) · [[−1, 0], [1, −2]]
HAND_Z, HAND_CODEBOOK, HAND_IDX = [[1.0, 2.0], [3.0, 0.0]], [[0.0, 0.0], [2.0, 2.0]], [1, 1]


@pytest.mark.parametrize("beta", [0.25, 1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_losses_hand_example_values_and_gradients(beta, dtype):
    z_e, codebook = _t(HAND_Z, dtype).requires_grad_(), _t(HAND_CODEBOOK, dtype).requires_grad_()
    codebook_loss, commitment = vq_losses(z_e, codebook, torch.tensor(HAND_IDX), beta)
    assert codebook_loss.shape == () == commitment.shape
    assert codebook_loss.dtype == dtype == commitment.dtype
    assert codebook_loss.item() == 1.5 and commitment.item() == beta * 1.5

    g_z, g_code = torch.autograd.grad(codebook_loss, (z_e, codebook), allow_unused=True)
    assert g_z is None or not g_z.any()
    assert torch.equal(g_code, _t([[0.0, 0.0], [0.0, 1.0]], dtype))

    g_z, g_code = torch.autograd.grad(commitment, (z_e, codebook), allow_unused=True)
    assert torch.equal(g_z, beta / 2 * _t([[-1.0, 0.0], [1.0, -2.0]], dtype))
    assert g_code is None or not g_code.any()


def test_losses_default_beta_is_a_quarter():
    z_e, codebook, idx = _t(HAND_Z), _t(HAND_CODEBOOK), torch.tensor(HAND_IDX)
    assert vq_losses(z_e, codebook, idx)[1].item() == 0.375


@given(problem=loss_problems())
def test_losses_are_means_over_all_elements(problem):
    z_e, codebook, idx, beta = problem
    codebook_loss, commitment = vq_losses(z_e, codebook, idx, beta)
    codes, rows = codebook.double().tolist(), z_e.double().reshape(-1, z_e.shape[-1]).tolist()
    sq = [(zi - codes[k][d]) ** 2 for z, k in zip(rows, idx.reshape(-1).tolist()) for d, zi in enumerate(z)]
    mean = sum(sq) / len(sq)
    assert codebook_loss.shape == () and codebook_loss.dtype == z_e.dtype == commitment.dtype
    torch.testing.assert_close(codebook_loss, torch.tensor(mean, dtype=z_e.dtype), **TOL[z_e.dtype])
    torch.testing.assert_close(commitment, torch.tensor(beta * mean, dtype=z_e.dtype), **TOL[z_e.dtype])
    torch.testing.assert_close(codebook_loss, F.mse_loss(codebook[idx], z_e))


@given(problem=loss_problems(F64), beta=st.sampled_from([0.1, 0.25, 3.0]))
def test_losses_beta_scales_only_the_commitment(problem, beta):
    z_e, codebook, idx, _ = problem
    c1, m1 = vq_losses(z_e, codebook, idx, 1.0)
    c_beta, m_beta = vq_losses(z_e, codebook, idx, beta)
    assert torch.equal(c1, c_beta)
    torch.testing.assert_close(m_beta, beta * m1, **TOL[F64])


@given(problem=loss_problems(F64))
def test_losses_send_gradients_only_where_the_stop_gradients_allow(problem):
    z_e, codebook, idx, beta = problem
    z_e, codebook = z_e.requires_grad_(), codebook.requires_grad_()
    codebook_loss, commitment = vq_losses(z_e, codebook, idx, beta)
    g_z, g_code = torch.autograd.grad(codebook_loss, (z_e, codebook), allow_unused=True)
    assert g_z is None or not g_z.any()
    # d/d e_k of mean((z − e)²): 2 Σ_{i: k_i = k} (e_k − z_i) / (|B|·D)
    expected = torch.zeros_like(codebook)
    for z, k in zip(z_e.detach().reshape(-1, z_e.shape[-1]), idx.reshape(-1).tolist()):
        expected[k] += 2 * (codebook[k].detach() - z) / z_e.numel()
    torch.testing.assert_close(g_code, expected, **TOL[F64])
    g_z, g_code = torch.autograd.grad(commitment, (z_e, codebook), allow_unused=True)
    assert g_code is None or not g_code.any()
    torch.testing.assert_close(g_z, 2 * beta * (z_e - codebook[idx]).detach() / z_e.numel(), **TOL[F64])


@pytest.mark.parametrize("which", [0, 1])
def test_losses_gradcheck(which):
    g = torch.Generator().manual_seed(which)
    z_e, codebook = torch.randn(2, 3, 4, generator=g, dtype=F64), torch.randn(5, 4, generator=g, dtype=F64)
    idx = torch.tensor([[0, 2, 2], [4, 0, 1]])
    if which == 0:  # codebook loss: a function of the codebook only (z_e is behind the stop-gradient)
        assert torch.autograd.gradcheck(lambda c: vq_losses(z_e, c, idx, 0.5)[0], (codebook.requires_grad_(),))
    else:  # commitment loss: a function of z_e only
        assert torch.autograd.gradcheck(lambda z: vq_losses(z, codebook, idx, 0.5)[1], (z_e.requires_grad_(),))


@given(problem=loss_problems())
def test_losses_do_not_modify_their_inputs(problem):
    z_e, codebook, idx, beta = problem
    before = z_e.clone(), codebook.clone(), idx.clone()
    vq_losses(z_e, codebook, idx, beta)
    assert all(torch.equal(a, b) for a, b in zip((z_e, codebook, idx), before))


# --------------------------------------------------------------------------- D3 ema_codebook_update

# Hand example, K = 3 codes, D = 2, decay γ = 0.5, eps ε = 0.5:
#   N = [2, 1, 0],  m = [[2, 0], [0, 1], [2, −2]]      (code 2: no count, but a stale sum)
#   z_e = [[1, 1], [3, 1], [0, 2]],  indices = [0, 0, 1]
#   batch: n = [2, 1, 0],  s = [[4, 2], [0, 2], [0, 0]]
#   N' = ½N + ½n = [2, 1, 0]
#   m' = ½m + ½s = [[1, 0], [0, ½], [1, −1]] + [[2, 1], [0, 1], [0, 0]] = [[3, 1], [0, 3/2], [1, −1]]
#   ΣN' = 3, K·ε = 3/2:  Ñ = (N' + ½) / (9/2) · 3 = [5/2, 3/2, 1/2] · 2/3 = [5/3, 1, 1/3]   (Σ Ñ = 3)
#   codebook = m' / Ñ = [[9/5, 3/5], [0, 3/2], [3, −3]]
#   Without smoothing, code 2 would be [1, −1] / 0 = [inf, −inf].
HAND_EMA = dict(
    cluster_size=[2.0, 1.0, 0.0],
    embed_sum=[[2.0, 0.0], [0.0, 1.0], [2.0, -2.0]],
    z_e=[[1.0, 1.0], [3.0, 1.0], [0.0, 2.0]],
    indices=[0, 0, 1],
)
HAND_EMA_RESULT = ([[1.8, 0.6], [0.0, 1.5], [3.0, -3.0]], [2.0, 1.0, 0.0], [[3.0, 1.0], [0.0, 1.5], [1.0, -1.0]])


def _hand_ema_args(dtype=F64):
    args = {name: _t(v, dtype) for name, v in HAND_EMA.items() if name != "indices"}
    return dict(args, indices=torch.tensor(HAND_EMA["indices"]))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_ema_hand_example(dtype):
    got = ema_codebook_update(**_hand_ema_args(dtype), decay=0.5, eps=0.5)
    for g, e in zip(got, HAND_EMA_RESULT):
        assert g.dtype == dtype
        torch.testing.assert_close(g, _t(e, dtype), **TOL[dtype])


def test_ema_hand_example_with_the_default_decay_and_eps():
    # γ = 0.99, ε = 1e-5, same data: N' = 0.99·[2, 1, 0] + 0.01·[2, 1, 0] = [2, 1, 0]
    #   m'_0 = 0.99·[2, 0] + 0.01·[4, 2] = [2.02, 0.02];  m'_1 = [0, 0.99 + 0.02] = [0, 1.01]
    #   m'_2 = 0.99·[2, −2] = [1.98, −1.98]
    #   Ñ_k = (N'_k + 1e-5) / (3 + 3e-5) · 3
    codebook, N, m = ema_codebook_update(**_hand_ema_args())
    s0, s1, s2 = ((n + 1e-5) / (3 + 3e-5) * 3 for n in (2.0, 1.0, 0.0))
    expected = [[2.02 / s0, 0.02 / s0], [0.0, 1.01 / s1], [1.98 / s2, -1.98 / s2]]
    torch.testing.assert_close(N, _t([2.0, 1.0, 0.0]), **TOL[F64])
    torch.testing.assert_close(m, _t([[2.02, 0.02], [0.0, 1.01], [1.98, -1.98]]), **TOL[F64])
    torch.testing.assert_close(codebook, _t(expected), **TOL[F64])
    assert codebook[2, 0] > 1e5  # the empty code is finite but far away: smoothing only averts the division by 0


def _ema_without_smoothing(cluster_size, embed_sum, z_e, indices, decay=0.99, eps=1e-5):
    """The trap: divide m' by N' directly (eps only as a floor), no Laplace smoothing."""
    K = cluster_size.shape[0]
    onehot = F.one_hot(indices.reshape(-1), K).to(embed_sum.dtype)
    N = decay * cluster_size + (1 - decay) * onehot.sum(0)
    m = decay * embed_sum + (1 - decay) * onehot.T @ z_e.reshape(-1, z_e.shape[-1])
    return m / N.clamp_min(eps)[:, None], N, m


def test_trap_d3_ema_without_laplace_smoothing():
    # An empty cluster (N'_2 = 0) with a stale sum: the unsmoothed update divides by 0 or by a floor
    # and lands elsewhere; the reference is finite and equals the hand-computed HAND_EMA_RESULT.
    args = _hand_ema_args()
    trap, _, _ = _ema_without_smoothing(**args, decay=0.5, eps=0.5)
    got, _, _ = ema_codebook_update(**args, decay=0.5, eps=0.5)
    assert not torch.allclose(trap, got)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _t(HAND_EMA_RESULT[0]), **TOL[F64])
    no_floor = (_t(HAND_EMA_RESULT[2]) / _t(HAND_EMA_RESULT[1])[:, None])[2]
    assert torch.isinf(no_floor).all()  # m'_2 / N'_2 = [1, −1] / 0


@given(problem=ema_problems())
def test_ema_matches_the_equations_written_out(problem):
    got = ema_codebook_update(*problem)
    expected = _ema_by_the_equations(*problem)
    dtype = problem[0].dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-10  # Python floats are float64: float32 is off by its rounding
    for g, e in zip(got, expected):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), e, rtol=tol, atol=tol)


@given(problem=ema_problems())
def test_ema_does_not_modify_or_alias_its_inputs(problem):
    before = [t.clone() if isinstance(t, torch.Tensor) else t for t in problem]
    got = ema_codebook_update(*problem)
    assert all(torch.equal(a, b) for a, b in zip(problem[:4], before[:4]))
    inputs = {t.untyped_storage().data_ptr() for t in problem[:3]}
    assert not any(out.untyped_storage().data_ptr() in inputs for out in got)


@given(data=st.data(), batch=batch_shapes(max_dims=3).filter(lambda b: len(b) >= 2))
def test_ema_leading_dims_act_like_a_flat_batch(data, batch):
    cluster_size, embed_sum, _, _, decay, eps = data.draw(ema_problems(F64))
    k, d = embed_sum.shape
    z_e, idx = data.draw(small_tensors((*batch, d))), data.draw(index_tensors(batch, k))
    nested = ema_codebook_update(cluster_size, embed_sum, z_e, idx, decay, eps)
    flat = ema_codebook_update(cluster_size, embed_sum, z_e.reshape(-1, d), idx.reshape(-1), decay, eps)
    for a, b in zip(nested, flat):
        torch.testing.assert_close(a, b, **TOL[F64])


def test_ema_with_no_memory_is_a_k_means_step():
    # decay 0 and a tiny eps: each used code moves to the mean of the points assigned to it.
    g = torch.Generator().manual_seed(0)
    z_e, idx = torch.randn(3, 4, 2, generator=g, dtype=F64), torch.tensor([[0, 2, 2, 0], [2, 0, 0, 2], [0, 0, 2, 2]])
    old_size, old_sum = torch.ones(3, dtype=F64), torch.ones(3, 2, dtype=F64)
    codebook, N, _ = ema_codebook_update(old_size, old_sum, z_e, idx, decay=0.0, eps=1e-12)
    assert N.tolist() == [6.0, 0.0, 6.0]
    for k in (0, 2):
        torch.testing.assert_close(codebook[k], z_e[idx == k].mean(0), rtol=1e-9, atol=1e-9)
    assert (codebook[1] == 0).all()  # empty with no memory: zero sum over a positive smoothed count


@given(problem=ema_problems(F64))
def test_laplace_smoothing_keeps_the_total_and_every_count_positive(problem):
    _, N, _ = ema_codebook_update(*problem)
    smoothed = _laplace_smoothed_counts(N, problem[5])
    assert (smoothed > 0).all()
    torch.testing.assert_close(smoothed.sum(), N.sum(), **TOL[F64])


def test_ema_carries_no_graph():
    args = {k: v.requires_grad_() if v.is_floating_point() else v for k, v in _hand_ema_args().items()}
    assert not any(out.requires_grad for out in ema_codebook_update(**args))


def test_ema_rejects_indices_outside_the_codebook():
    args = dict(_hand_ema_args(), indices=torch.tensor([0, 3, 1]))
    with pytest.raises((IndexError, RuntimeError)):
        ema_codebook_update(**args)
