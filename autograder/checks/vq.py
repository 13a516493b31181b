"""Checks of Part D (VQ-VAE): D1 ``quantize``, D2 ``vq_losses``, D3 ``ema_codebook_update``."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import reference
from autograder.checks import strategies as S
from autograder.checks.compare import expect_close, expect_scalar_tensor, expect_tensor
from autograder.checks.framework import Context, for_all
from autograder.checks.registry import check
from autograder.sandbox.runtime.wire import Leaf


@st.composite
def _vq_inputs(draw, dtype=None):
    """``z_e (*B, D)`` in halves, ``codebook (K, D)`` in small integers (exact distances and ties)."""
    dtype = dtype or draw(S.DTYPES)
    batch = draw(S.batch_shapes(max_dims=2))
    d, k = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    z_e = draw(S.halves((*batch, d), -4, 4, dtype))
    codebook = draw(S.halves((k, d), -3, 3, dtype, step=1))
    return z_e, codebook


def _quantize_parts(ctx: Context, got, z_e: torch.Tensor, codebook: torch.Tensor):
    if not (isinstance(got, tuple) and len(got) == 2):
        ctx.fail("quantize must return a pair (z_q, indices)", expected="(z_q, indices)", got=got)
    return got


@check("D1", "nearest code by squared distance, z_q = codebook[indices]", points=2, public=True, kind="property",
       hint="distances are ((z_e[..., None, :] - codebook) ** 2).sum(-1); take argmin over the codes")
@for_all(_vq_inputs())
def _quantize_values(ctx: Context, example) -> None:
    z_e, codebook = example
    z_q, idx = _quantize_parts(ctx, ctx.call(z_e=z_e, codebook=codebook), z_e, codebook)
    exp_q, exp_idx = reference.quantize(z_e, codebook)
    expect_tensor(ctx, idx, exp_idx, what="indices", dtype=torch.long,
                  hint="indices must be a long tensor of shape z_e.shape[:-1] (argmin over codes)")
    expect_tensor(ctx, z_q, exp_q, what="z_q", dtype=z_e.dtype, rtol=0, atol=0,
                  hint="z_q must equal codebook[indices] in value")


@check("D1", "ties go to the lowest index", points=1, kind="property",
       hint="torch.argmin returns the first minimum; do not break ties another way")
@for_all(_vq_inputs().map(lambda e: (e[0], torch.cat([e[1], e[1]]))))
def _quantize_ties(ctx: Context, example) -> None:
    z_e, codebook = example  # every code appears twice: each nearest code is a tie
    _, idx = _quantize_parts(ctx, ctx.call(z_e=z_e, codebook=codebook), z_e, codebook)
    _, exp_idx = reference.quantize(z_e, codebook)
    expect_tensor(ctx, idx, exp_idx, what="indices")


@check("D1", "straight-through gradient: identity to z_e, nothing to the codebook", points=2, public=True,
       kind="gradient", hint="z_q = z_e + (e - z_e).detach(): the detach goes on the difference, not on z_e")
@for_all(_vq_inputs(torch.float64), max_examples=10)
def _quantize_straight_through(ctx: Context, example) -> None:
    z_e, codebook = example
    cotangent = torch.arange(1, z_e.numel() + 1, dtype=z_e.dtype).reshape(z_e.shape)
    reply = ctx.reply(z_e=Leaf(z_e, "z_e"), codebook=Leaf(codebook, "codebook"),
                      grad=[{"output": 0, "cotangent": cotangent}])
    _quantize_parts(ctx, reply.value, z_e, codebook)
    grads = reply.grads[0]
    if grads.get("z_e") is None:
        ctx.fail("no gradient reaches z_e through z_q", expected=f"dL/dz_e = the upstream gradient {cotangent.tolist()}",
                 got="no gradient", hint="z_q = z_e + (e - z_e).detach() keeps z_e in the graph")
    expect_tensor(ctx, grads["z_e"], cotangent, what="dL/dz_e",
                  hint="the Jacobian of z_q w.r.t. z_e must be the identity (straight-through)")
    g_code = grads.get("codebook")
    if g_code is not None and bool((g_code != 0).any()):
        ctx.fail("z_q sends gradient to the codebook", expected="no gradient (None or zeros)", got=g_code,
                 hint="detach the codebook term: z_q = z_e + (e - z_e).detach()")


@check("D1", "any leading batch dims, float32 and float64", points=1, kind="property",
       hint="flatten the leading dims, or broadcast z_e[..., None, :] against the codebook")
@for_all(_vq_inputs().filter(lambda e: e[0].dim() >= 3))
def _quantize_batch(ctx: Context, example) -> None:
    z_e, codebook = example
    z_q, idx = _quantize_parts(ctx, ctx.call(z_e=z_e, codebook=codebook), z_e, codebook)
    exp_q, exp_idx = reference.quantize(z_e, codebook)
    expect_tensor(ctx, idx, exp_idx, what="indices")
    expect_tensor(ctx, z_q, exp_q, what="z_q", dtype=z_e.dtype)


@st.composite
def _losses_inputs(draw, dtype=None):
    z_e, codebook = draw(_vq_inputs(dtype))
    _, idx = reference.quantize(z_e, codebook)
    beta = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    return z_e, codebook, idx, beta


@check("D2", "codebook and commitment loss values", points=2, public=True, kind="property",
       hint="both are means over all elements; only the commitment loss is scaled by beta")
@for_all(_losses_inputs())
def _losses_values(ctx: Context, example) -> None:
    z_e, codebook, idx, beta = example
    got = ctx.call(z_e=z_e, codebook=codebook, indices=idx, beta=beta)
    if not (isinstance(got, tuple) and len(got) == 2):
        ctx.fail("vq_losses must return a pair", expected="(codebook_loss, commitment_loss)", got=got)
    expected = reference.vq_losses(z_e, codebook, idx, beta)
    for name, g, e in zip(("codebook_loss", "commitment_loss"), got, expected):
        expect_scalar_tensor(ctx, g, what=name)
        expect_close(ctx, g, e, what=name)


@check("D2", "each loss sends gradients only where its stop-gradient allows", points=2, kind="gradient",
       hint="codebook_loss = mean((z_e.detach() - e)**2) trains the codebook; "
            "commitment = beta * mean((z_e - e.detach())**2) trains the encoder")
@for_all(_losses_inputs(torch.float64), max_examples=10)
def _losses_gradients(ctx: Context, example) -> None:
    z_e, codebook, idx, beta = example
    reply = ctx.reply(z_e=Leaf(z_e, "z_e"), codebook=Leaf(codebook, "codebook"), indices=idx, beta=beta,
                      grad=[{"output": 0}, {"output": 1}])
    leaves = (z_e.clone().requires_grad_(), codebook.clone().requires_grad_())
    expected = reference.vq_losses(*leaves, idx, beta)
    for k, (loss_name, own, other) in enumerate((("codebook_loss", "codebook", "z_e"), ("commitment_loss", "z_e", "codebook"))):
        e_own = torch.autograd.grad(expected[k], leaves[0 if own == "z_e" else 1])[0]
        got = reply.grads[k]
        if got.get(own) is None:
            ctx.fail(f"{loss_name} sends no gradient to {own}", expected=e_own, got="no gradient")
        expect_tensor(ctx, got[own], e_own, what=f"d {loss_name} / d {own}")
        g_other = got.get(other)
        if g_other is not None and bool((g_other != 0).any()):
            ctx.fail(f"{loss_name} sends gradient to {other}", expected="no gradient (stop-gradient)", got=g_other)


@check("D3", "EMA update on a hand-computed example", points=2, public=True, kind="value",
       hint="N' = decay·N + (1−decay)·n, m' = decay·m + (1−decay)·s, then Laplace-smooth N' before dividing")
def _ema_known(ctx: Context) -> None:
    cluster_size = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    embed_sum = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    z_e = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    indices = torch.tensor([0, 0, 1])
    got = ctx.call(cluster_size=cluster_size, embed_sum=embed_sum, z_e=z_e, indices=indices, decay=0.5, eps=0.5)
    _expect_ema(ctx, got, reference.ema_codebook_update(cluster_size, embed_sum, z_e, indices, 0.5, 0.5))


def _expect_ema(ctx: Context, got, expected) -> None:
    if not (isinstance(got, tuple) and len(got) == 3):
        ctx.fail("ema_codebook_update must return a triple", expected="(codebook, N', m')", got=got)
    for name, g, e in zip(("codebook", "cluster_size N'", "embed_sum m'"), got, expected):
        expect_tensor(ctx, g, e, what=name, dtype=e.dtype,
                      hint="Laplace smoothing: Ñ_k = (N'_k + eps) / (ΣN' + K·eps) · ΣN'; codebook_k = m'_k / Ñ_k")


@st.composite
def _ema_inputs(draw):
    dtype = draw(S.DTYPES)
    k, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batch = draw(S.batch_shapes(max_dims=2))
    cluster_size = draw(S.halves((k,), 0, 6, dtype))
    embed_sum = draw(S.halves((k, d), -4, 4, dtype))
    z_e = draw(S.halves((*batch, d), -4, 4, dtype))
    idx = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=z_e[..., 0].numel(), max_size=z_e[..., 0].numel())),
                       dtype=torch.long).reshape(batch)
    decay = draw(st.sampled_from([0.5, 0.75, 0.99]))
    eps = draw(st.sampled_from([1e-5, 0.5]))
    return cluster_size, embed_sum, z_e, idx, decay, eps


@check("D3", "EMA update with empty clusters and leading dims", points=2, kind="property",
       hint="count assignments with one_hot or bincount(minlength=K); empty clusters keep a smoothed count")
@for_all(_ema_inputs())
def _ema_random(ctx: Context, example) -> None:
    got = ctx.call(cluster_size=example[0], embed_sum=example[1], z_e=example[2], indices=example[3],
                   decay=example[4], eps=example[5])
    _expect_ema(ctx, got, reference.ema_codebook_update(*example))


@check("D3", "inputs are not modified in place", points=1, kind="property",
       hint="build new tensors (decay * N + ...), do not use mul_/add_/index_add_ on the inputs")
@for_all(_ema_inputs(), max_examples=10)
def _ema_pure(ctx: Context, example) -> None:
    names = ("cluster_size", "embed_sum", "z_e", "indices", "decay", "eps")
    reply = ctx.reply(return_args=True, **dict(zip(names, example)))
    after = reply.args_after["kwargs"]
    for name, before in zip(names[:3], example[:3]):
        if not torch.equal(after[name], before):
            ctx.fail(f"{name} was modified in place", expected=before, got=after[name],
                     hint="return new tensors; never update the inputs in place")
