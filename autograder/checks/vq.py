"""Checks of Part D (VQ-VAE): D1 ``quantize``, D2 ``vq_losses``, D3 ``ema_codebook_update``."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from autograder.checks import strategies as S
from autograder.checks.compare import DTYPE_CHECK, DTYPE_HINT, UNBATCHED, expect_close, expect_scalar_tensor
from autograder.checks.compare import expect_tensor, expect_unbatched, keeps_dtype
from autograder.checks.diagnose import Diagnosis, diagnose, diagnosed_on_failure
from autograder.checks.framework import Context, for_all
from autograder.checks.registry import check
from autograder.sandbox.runtime.wire import Leaf


@S.composite
def _vq_inputs(draw, dtype=None, batch=None):
    """``z_e (*B, D)`` in halves (at least one batch dimension unless ``batch`` is given), ``codebook (K, D)``
    in small integers (exact distances and ties)."""
    dtype = dtype or draw(S.DTYPES)
    batch = draw(S.batch_shapes(max_dims=2, min_dims=1)) if batch is None else batch
    d, k = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    z_e = draw(S.halves((*batch, d), -4, 4, dtype))
    codebook = draw(S.halves((k, d), -3, 3, dtype, step=1))
    return z_e, codebook


def _quantize_parts(ctx: Context, got, z_e: torch.Tensor, codebook: torch.Tensor):
    if not (isinstance(got, tuple) and len(got) == 2):
        ctx.fail("quantize must return a pair (z_q, indices)", expected="(z_q, indices)", got=got)
    return got


def _distance_telling() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Positions whose nearest code by squared distance is not the nearest by |·|₁, max |·| or a dot product,
    without ties (small codebooks of small integers rarely have one: the L1 mistake passed 25 drawn examples)."""
    return [(torch.tensor([[-1.0, -2.0], [0.0, 0.0]]), torch.tensor([[-3.0, 3.0], [2.0, 2.0], [3.0, 0.0]]))]


@check("D1", "nearest code by squared distance, z_q = codebook[indices]", points=2, public=True, kind="property",
       keeps_inputs=True, hint="see the contract of D1: the nearest code by squared Euclidean distance, z_q its value")
@for_all(_vq_inputs(), examples=_distance_telling)
def _quantize_values(ctx: Context, example) -> None:
    z_e, codebook = example
    z_q, idx = _quantize_parts(ctx, ctx.call(z_e=z_e, codebook=codebook), z_e, codebook)
    exp_q, exp_idx = ctx.expected("quantize", z_e, codebook)
    expect_tensor(ctx, idx, exp_idx, what="indices", dtype=torch.long,
                  hint="see the contract of D1: one long index per position of z_e, of the nearest code")
    expect_tensor(ctx, z_q, exp_q, what="z_q", dtype=z_e.dtype, rtol=0, atol=0,
                  hint="your z_q is not the chosen code's value; the contract of D1 asks codebook[indices] in value")


@check("D1", "ties go to the lowest index", points=1, kind="property",
       hint="see the contract of D1: between equally near codes, the lowest index wins")
@for_all(_vq_inputs().map(lambda e: (e[0], torch.cat([e[1], e[1]]))), max_examples=20)
def _quantize_ties(ctx: Context, example) -> None:
    z_e, codebook = example  # every code appears twice: each nearest code is a tie
    _, idx = _quantize_parts(ctx, ctx.call(z_e=z_e, codebook=codebook), z_e, codebook)
    _, exp_idx = ctx.expected("quantize", z_e, codebook)
    expect_tensor(ctx, idx, exp_idx, what="indices")


_ST_HINT = ("see the contract of D1 and seed 004 §4: the straight-through estimator passes the upstream gradient "
            "to z_e unchanged and none to the codebook")
_ST_MISTAKES = (
    Diagnosis("your dL/dz_e is minus the upstream gradient: the stop-gradient sits on the wrong term (seed 004 §4)",
              lambda upstream: -upstream),
    Diagnosis("your dL/dz_e is zero: z_q does not depend on z_e (seed 004 §4: the straight-through estimator)",
              lambda upstream: torch.zeros_like(upstream)),
    Diagnosis("your dL/dz_e is twice the upstream gradient: z_e enters z_q twice", lambda upstream: 2 * upstream),
)


def _same_answer_with_grad(ctx: Context, with_grad, without) -> None:
    """The gradients are judged on the answer the values are: a z_q that changes when z_e requires grad fails."""
    if not (isinstance(with_grad, torch.Tensor) and isinstance(without, torch.Tensor) and torch.equal(with_grad, without)):
        ctx.fail("z_q differs when z_e requires grad", expected=without, got=with_grad,
                 detail="the gradient is measured on the z_q the values are checked on")


@check("D1", "straight-through gradient: identity to z_e, nothing to the codebook", points=2, public=True,
       kind="gradient", hint=_ST_HINT)
@for_all(_vq_inputs(torch.float64), max_examples=10)
def _quantize_straight_through(ctx: Context, example) -> None:
    z_e, codebook = example
    cotangent = torch.arange(1, z_e.numel() + 1, dtype=z_e.dtype).reshape(z_e.shape)
    reply = ctx.reply(z_e=Leaf(z_e, "z_e"), codebook=Leaf(codebook, "codebook"),
                      grad=[{"output": 0, "cotangent": cotangent}])
    z_q, _ = _quantize_parts(ctx, reply.value, z_e, codebook)
    _same_answer_with_grad(ctx, z_q, _quantize_parts(ctx, ctx.call(z_e=z_e, codebook=codebook), z_e, codebook)[0])
    grads = reply.grads[0]
    if grads.get("z_e") is None:
        ctx.fail("no gradient reaches z_e through z_q", expected=f"dL/dz_e = the upstream gradient {cotangent.tolist()}",
                 got="no gradient", hint="your z_q is cut off from z_e: " + _ST_HINT)
    diagnosed_on_failure(lambda hint: expect_tensor(ctx, grads["z_e"], cotangent, what="dL/dz_e", hint=hint), _ST_HINT,
                         lambda: diagnose(grads["z_e"], _ST_MISTAKES, {"upstream": cotangent}, _ST_HINT))
    g_code = grads.get("codebook")
    if g_code is not None and bool((g_code != 0).any()):
        ctx.fail("z_q sends gradient to the codebook", expected="no gradient (None or zeros)", got=g_code,
                 hint="your z_q sends gradient to the codebook: " + _ST_HINT)


@check("D1", f"{UNBATCHED}: z_e of shape (D,)", points=0.5, public=True, kind="property",
       hint="see the contract of D1: z_e (..., D) may have no leading dimension at all; then indices is 0-dim")
@for_all(_vq_inputs(batch=()), max_examples=10)
def _quantize_unbatched(ctx: Context, example) -> None:
    z_e, codebook = example
    expect_unbatched(ctx, {"z_e": z_e, "codebook": codebook}, ("z_e",), ctx.expected("quantize", z_e, codebook),
                     names=("z_q", "indices"), hint=ctx.check.hint)


_VQ_EXAMPLE = (torch.tensor([[0.5, -1.0], [2.0, 1.5]]), torch.tensor([[0.0, 0.0], [2.0, 1.0], [-1.0, -1.0]]))

check("D1", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(z_e=_VQ_EXAMPLE[0].to(dtype), codebook=_VQ_EXAMPLE[1].to(dtype)),
    ("z_q", "indices"), longs=frozenset({1})))


@S.composite
def _losses_inputs(draw, dtype=None, batch=None):
    """``z_e``, ``codebook`` and ``beta``; the indices are the nearest codes' (``_with_indices``)."""
    z_e, codebook = draw(_vq_inputs(dtype, batch))
    beta = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    return z_e, codebook, beta


def _with_indices(ctx: Context, example) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    z_e, codebook, beta = example
    _, idx = ctx.expected("quantize", z_e, codebook)
    return z_e, codebook, idx, beta


_LOSS_MISTAKES = {
    "codebook_loss": (
        Diagnosis("your codebook loss is scaled by beta; in the contract of D2 only the commitment loss is",
                  lambda expected, z_e, beta: beta * expected),
        Diagnosis("your codebook loss sums over the D coordinates; the contract of D2 averages over all elements",
                  lambda expected, z_e, beta: z_e.shape[-1] * expected),
    ),
    "commitment_loss": (
        Diagnosis("your commitment loss is not scaled by beta", lambda expected, z_e, beta: expected / beta),
        Diagnosis("your commitment loss sums over the D coordinates; the contract of D2 averages over all elements",
                  lambda expected, z_e, beta: z_e.shape[-1] * expected),
    ),
}


_LOSSES_HINT = "see the contract of D2: both losses are means over all elements; beta weights the commitment loss only"


@check("D2", "codebook and commitment loss values", points=1, public=True, kind="property", hint=_LOSSES_HINT,
       keeps_inputs=True)
@for_all(_losses_inputs(), max_examples=10)
def _losses_values(ctx: Context, example) -> None:
    _expect_losses(ctx, example)


@check("D2", f"{UNBATCHED}: z_e of shape (D,)", points=0.5, public=True, kind="property",
       hint="see the contract of D2: z_e (..., D) may have no leading dimension at all; the means still run over "
            "all elements")
@for_all(_losses_inputs(batch=()), max_examples=10)
def _losses_unbatched(ctx: Context, example) -> None:
    z_e, codebook, idx, beta = _with_indices(ctx, example)
    expect_unbatched(ctx, {"z_e": z_e, "codebook": codebook, "indices": idx, "beta": beta}, ("z_e", "indices"),
                     ctx.expected("vq_losses", z_e, codebook, idx, beta), names=("codebook_loss", "commitment_loss"),
                     hint=ctx.check.hint)


check("D2", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(z_e=_VQ_EXAMPLE[0].to(dtype), codebook=_VQ_EXAMPLE[1].to(dtype),
                                indices=torch.tensor([0, 1]), beta=0.25),
    ("codebook_loss", "commitment_loss")))


def _expect_losses(ctx: Context, example) -> None:
    z_e, codebook, idx, beta = _with_indices(ctx, example)
    got = ctx.call(z_e=z_e, codebook=codebook, indices=idx, beta=beta)
    if not (isinstance(got, tuple) and len(got) == 2):
        ctx.fail("vq_losses must return a pair", expected="(codebook_loss, commitment_loss)", got=got)
    expected = ctx.expected("vq_losses", z_e, codebook, idx, beta)
    for name, g, e in zip(("codebook_loss", "commitment_loss"), got, expected):
        expect_scalar_tensor(ctx, g, what=name)
        diagnosed_on_failure(lambda hint: expect_close(ctx, g, e, what=name, hint=hint), _LOSSES_HINT,
                             lambda: diagnose(g, _LOSS_MISTAKES[name], {"expected": e, "z_e": z_e, "beta": beta},
                                              _LOSSES_HINT, e))


@check("D2", "each loss sends gradients only where its stop-gradient allows", points=2, kind="gradient",
       hint="see the contract of D2: the codebook loss trains only the codebook and the commitment loss only z_e "
            "(sg marks where gradients stop)")
@for_all(_losses_inputs(torch.float64), max_examples=10)
def _losses_gradients(ctx: Context, example) -> None:
    z_e, codebook, idx, beta = _with_indices(ctx, example)
    reply = ctx.reply(z_e=Leaf(z_e, "z_e"), codebook=Leaf(codebook, "codebook"), indices=idx, beta=beta,
                      grad=[{"output": 0}, {"output": 1}])
    leaves = (z_e.clone().requires_grad_(), codebook.clone().requires_grad_())
    for k, (loss_name, own, other) in enumerate((("codebook_loss", "codebook", "z_e"), ("commitment_loss", "z_e", "codebook"))):
        _, (e_own,) = ctx.expected_grad("vq_losses", *leaves, idx, beta, wrt=(leaves[0 if own == "z_e" else 1],),
                                        output=k)
        got = reply.grads[k]
        if got.get(own) is None:
            ctx.fail(f"{loss_name} sends no gradient to {own}", expected=e_own, got="no gradient")
        expect_tensor(ctx, got[own], e_own, what=f"d {loss_name} / d {own}")
        g_other = got.get(other)
        if g_other is not None and bool((g_other != 0).any()):
            ctx.fail(f"{loss_name} sends gradient to {other}", expected="no gradient (stop-gradient)", got=g_other)


_EMA_HINT = "see the contract of D3: the moving averages N' and m', then Laplace smoothing of the counts before dividing"
_EMA_MISTAKES = (
    Diagnosis("your codebook divides m' by the raw counts N'; the contract of D3 divides by the Laplace-smoothed Ñ",
              lambda expected: torch.where(expected[1][:, None] > 0, expected[2] / expected[1][:, None], 0.0)),
)


@check("D3", "EMA update on a hand-computed example", points=2, public=True, kind="value",
       hint=_EMA_HINT)
def _ema_known(ctx: Context) -> None:
    cluster_size = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    embed_sum = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    z_e = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    indices = torch.tensor([0, 0, 1])
    got = ctx.call(cluster_size=cluster_size, embed_sum=embed_sum, z_e=z_e, indices=indices, decay=0.5, eps=0.5)
    _expect_ema(ctx, got, ctx.expected("ema_codebook_update", cluster_size, embed_sum, z_e, indices, 0.5, 0.5))


def _expect_ema(ctx: Context, got, expected) -> None:
    if not (isinstance(got, tuple) and len(got) == 3):
        ctx.fail("ema_codebook_update must return a triple", expected="(codebook, N', m')", got=got)
    for name, g, e in zip(("codebook", "cluster_size N'", "embed_sum m'"), got, expected):
        if name == "codebook":
            diagnosed_on_failure(lambda hint: expect_tensor(ctx, g, e, what=name, dtype=e.dtype, hint=hint), _EMA_HINT,
                                 lambda: diagnose(g, _EMA_MISTAKES, {"expected": expected}, _EMA_HINT, e))
        else:
            expect_tensor(ctx, g, e, what=name, dtype=e.dtype, hint=_EMA_HINT)


@S.composite
def _ema_inputs(draw, batch=None):
    """Statistics, ``z_e (*B, D)`` (at least one batch dimension unless ``batch`` is given) and its indices."""
    dtype = draw(S.DTYPES)
    k, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batch = draw(S.batch_shapes(max_dims=2, min_dims=1)) if batch is None else batch
    cluster_size = draw(S.halves((k,), 0, 6, dtype))
    embed_sum = draw(S.halves((k, d), -4, 4, dtype))
    z_e = draw(S.halves((*batch, d), -4, 4, dtype))
    idx = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=z_e[..., 0].numel(), max_size=z_e[..., 0].numel())),
                       dtype=torch.long).reshape(batch)
    decay = draw(st.sampled_from([0.5, 0.75, 0.99]))
    eps = draw(st.sampled_from([1e-5, 0.5]))
    return cluster_size, embed_sum, z_e, idx, decay, eps


@check("D3", "EMA update with empty clusters and leading dims", points=1, kind="property",
       hint="see the contract of D3: counts and sums run over every leading dimension, and a code without "
            "assignments keeps a smoothed count")
@for_all(_ema_inputs())
def _ema_random(ctx: Context, example) -> None:
    got = ctx.call(cluster_size=example[0], embed_sum=example[1], z_e=example[2], indices=example[3],
                   decay=example[4], eps=example[5])
    _expect_ema(ctx, got, ctx.expected("ema_codebook_update", *example))


@check("D3", f"{UNBATCHED}: z_e of shape (D,)", points=0.5, public=True, kind="property",
       hint="see the contract of D3: z_e (..., D) may have no leading dimension at all, with a 0-dim index")
@for_all(_ema_inputs(batch=()), max_examples=10)
def _ema_unbatched(ctx: Context, example) -> None:
    kwargs = dict(zip(("cluster_size", "embed_sum", "z_e", "indices", "decay", "eps"), example))
    expect_unbatched(ctx, kwargs, ("z_e", "indices"), ctx.expected("ema_codebook_update", *example),
                     names=("codebook", "cluster_size N'", "embed_sum m'"), hint=ctx.check.hint)


check("D3", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(cluster_size=torch.tensor([1.0, 0.0], dtype=dtype),
                                embed_sum=torch.tensor([[1.0], [0.0]], dtype=dtype),
                                z_e=torch.tensor([[2.0], [-1.0]], dtype=dtype), indices=torch.tensor([0, 0]),
                                decay=0.5, eps=0.5),
    ("codebook", "cluster_size N'", "embed_sum m'")))


@check("D3", "inputs are not modified in place", points=1, kind="property",
       hint="your function modifies its inputs in place; the contract of D3 returns new tensors")
@for_all(_ema_inputs(), max_examples=10)
def _ema_pure(ctx: Context, example) -> None:
    names = ("cluster_size", "embed_sum", "z_e", "indices", "decay", "eps")
    reply = ctx.reply(return_args=True, **dict(zip(names, example)))
    ctx.expect_unmodified(reply, dict(zip(names[:4], example[:4])), hint=ctx.check.hint)
    if not _same(reply.value, reply.again):  # data, not the process's own report: the answers must agree
        ctx.fail("a second call on the same argument objects gives another answer: the first changed them in place",
                 expected=reply.value, got=reply.again, hint=ctx.check.hint,
                 detail="the runtime calls the function twice on the same arguments; a pure function answers alike")


def _same(a, b) -> bool:
    """Whether two answers are identical (tensors bit for bit, NaN equal to NaN; tuples item by item)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and (torch.equal(a, b) or (a.is_floating_point() and bool(
                    torch.isclose(a, b, rtol=0, atol=0, equal_nan=True).all()))))
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and bool(a == b)
