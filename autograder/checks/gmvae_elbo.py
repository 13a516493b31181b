"""Checks of C4 ``gmvae_elbo``: the ELBO of the Gaussian-mixture VAE, term by term.

Expected values come from the reference evaluated in float64 on the same
(exactly representable) inputs, then cast to the input dtype, as in ``gmvae``
(C1–C3), whose input helpers these checks share.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from autograder.checks import strategies as S
from autograder.checks.compare import DTYPE_CHECK, DTYPE_HINT, expect_tensor, keeps_dtype
from autograder.checks.diagnose import Diagnosis, diagnose, diagnosed_on_failure, expect_diagnosed, judge_hard_case
from autograder.checks.framework import Context, for_all
from autograder.checks.gmvae import F64, _example, _f64
from autograder.checks.registry import check
from autograder.sandbox.runtime.wire import Leaf

ELBO_HINT = "see the contract of C4 and seed 004 §3.5: the ELBO term by term"
LOGITS_EXTREME = (-100.0, -1.5, 0.0, 2.0, 100.0)  # ±100 marks an extreme entry, set to ±m for every m below
EXTREME_MAGNITUDES = (20.0, 50.0, 100.0, 200.0)
STABLE_LOGITS_CHECK = "logits of ±20, ±50, ±100 and ±200 give exact finite values (float32 and float64)"
STABLE_LOGITS_HINT = ("your reconstruction goes wrong for large logits: log(sigmoid(ℓ)) and log(1 − sigmoid(ℓ)) "
                      "round to log 0 there; the contract of C4 asks a form computed from the logits that stays finite")
SAMPLES_HINT = "your reconstruction with L > 1 samples differs: the contract of C4 averages over the L samples"
ZERO_GAMMA_HINT = ("your ELBO is NaN or off when some γ_c = 0: γ_c log γ_c there is 0 · (−∞); the contract of C4 "
                   "takes 0 log 0 = 0")


def _elsewhere(where: str) -> str:
    """The hint of a check about a hard case whose ELBO is wrong without it too (``where`` says on what)."""
    return f'the ELBO is wrong on ordinary inputs too ({where}; see the check "ELBO values with one sample")'


@S.composite
def _elbo_inputs(draw, dtype=None, n_samples=(1, 1), extreme: bool = False, zero_gamma: bool = False):
    """Arguments of ``gmvae_elbo`` by name: ``x (B, D)`` in {0, 1}, ``x_logits (L, B, D)``, …, ``gamma`` rows on the simplex."""
    dtype = dtype or draw(S.DTYPES)
    b, d, j, k = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2)),
                  draw(st.integers(2 if zero_gamma else 1, 3)))
    n = draw(st.integers(*n_samples))
    if extreme:
        vals = draw(st.lists(st.sampled_from(LOGITS_EXTREME), min_size=n * b * d, max_size=n * b * d))
        vals[0] = draw(st.sampled_from([-100.0, 100.0]))
        x_logits = torch.tensor(vals, dtype=dtype).reshape(n, b, d)
    else:
        x_logits = draw(S.halves((n, b, d), -4, 4, dtype))
    if zero_gamma:  # integer weights 0…3 with a zero in every row and a positive entry in every row
        w = draw(S.halves((b, k), 0, 3, F64, step=1))
        w[:, 0] = 0.0
        w[:, -1] = w[:, -1].clamp_min(1.0)
        gamma = (w / w.sum(-1, keepdim=True)).to(dtype)
    else:
        gamma = draw(S.simplex((b, k), dtype))
    return {
        "x": draw(S.halves((b, d), 0, 1, dtype, step=1)),
        "x_logits": x_logits,
        "mu_z": draw(S.halves((b, j), -3, 3, dtype)),
        "logvar_z": draw(S.halves((b, j), -1.5, 1.5, dtype)),
        "gamma": gamma,
        "log_pi": draw(S.simplex((k,))).log().to(dtype),
        "mu_c": draw(S.halves((k, j), -3, 3, dtype)),
        "logvar_c": draw(S.halves((k, j), -1.5, 1.5, dtype)),
    }


def _check_elbo(ctx: Context, example: dict[str, torch.Tensor], hint: str = ELBO_HINT,
                expected: torch.Tensor | None = None) -> None:
    """The student's ELBO on ``example`` against ``expected`` (float64; by default the reference's)."""
    got = ctx.call(**example)
    if expected is None:
        expected = ctx.expected("gmvae_elbo", **_f64(example))
    expect_diagnosed(ctx, got, expected.to(example["x"].dtype), _ELBO_MISTAKES, {**_f64(example), "expected": expected},
                     what="the ELBO", dtype=example["x"].dtype, hint=hint)


def _seed_entropy(gamma: torch.Tensor, logvar_z: torch.Tensor, logvar_c: torch.Tensor) -> torch.Tensor:
    """The seed's §3.5 slip minus the right entropy term: the clusters' variances (and a 2π) in place of q's own."""
    slip = 0.5 * (gamma[:, :, None] * (1 + math.log(2 * math.pi) + logvar_c[None])).sum((1, 2))
    return slip - 0.5 * (1 + logvar_z).sum(-1)


_ELBO_MISTAKES = (
    Diagnosis("your entropy term uses the clusters' variances σ_c² (and a 2π) where q's own σ̃² belongs: the slip of "
              "seed 004 §3.5's last lines", lambda gamma, logvar_z, logvar_c, expected, **_: expected
              + _seed_entropy(gamma, logvar_z, logvar_c)),
    Diagnosis("your ELBO is off by (J/2) log 2π: the 2π of the entropy and the one of E_q log p(z|c) cancel, keep "
              "both or neither (seed 004 §3.5)", lambda mu_z, expected, **_: expected + mu_z.shape[-1] / 2
              * math.log(2 * math.pi)),
    Diagnosis("your reconstruction term is the contract's divided by D, the number of pixels: the pixels' "
              "log-likelihoods are averaged where the contract of C4 sums them",
              lambda x_logits, x, expected, **_: expected - (1 - 1 / x.shape[-1]) * _recon({"x_logits": x_logits,
                                                                                              "x": x})),
    Diagnosis("your reconstruction sums over the L samples; the contract of C4 averages them",
              lambda x_logits, expected, **kw: expected + (x_logits.shape[0] - 1) * _recon({"x_logits": x_logits,
                                                                                         **kw})),
)


def _at_magnitude(logits: torch.Tensor, magnitude: float) -> torch.Tensor:
    """``logits`` with every entry of absolute value 100 (an extreme one) set to ±``magnitude``."""
    return torch.where(logits.abs() == 100.0, logits.sign() * magnitude, logits)


def _recon(ex: dict[str, torch.Tensor]) -> torch.Tensor:
    """(1/L) Σ_l Σ_i log Ber(x_i; sigmoid(ℓ_li)) in float64: ``(B,)``."""
    logits, x = ex["x_logits"].to(F64), ex["x"].to(F64)
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1).mean(0)


def _kl_diag(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(μ̃, σ̃²) ‖ N(μ, σ²)) summed over the last dim, in closed form."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


@check("C4", "ELBO values with one sample (L = 1)", points=2.5, public=True, kind="property", hint=ELBO_HINT,
       keeps_inputs=True)
@for_all(_elbo_inputs(), max_examples=12)
def _elbo_values(ctx: Context, example) -> None:
    _check_elbo(ctx, example)


check("C4", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(**_example(dtype, x=[[1.0, 0.0]], x_logits=[[[0.5, -1.0]]], mu_z=[[0.5]],
                                           logvar_z=[[-0.5]], gamma=[[0.25, 0.75]], log_pi=[-0.5, -1.0],
                                           mu_c=[[0.0], [1.0]], logvar_c=[[0.0], [0.5]])), ("the ELBO",)))


@check("C4", STABLE_LOGITS_CHECK, points=2, public=True, kind="property", hint=STABLE_LOGITS_HINT)
@for_all(_elbo_inputs(F64, extreme=True), max_examples=4)
def _elbo_extreme_logits(ctx: Context, example) -> None:
    # A stable form is exact at every magnitude; an unstable one can look right at one of them
    # (BCE of sigmoid(·) clamps its log at −100, which coincides with the truth at ±100 only).
    for dtype in (torch.float32, F64):
        for magnitude in EXTREME_MAGNITUDES:
            extreme = {**example, "x_logits": _at_magnitude(example["x_logits"], magnitude)}
            extreme = {k: v.to(dtype) for k, v in extreme.items()}
            # One reference call per input (the student bundle replays exactly these): the clipped
            # input's expected value differs from it by the reconstruction term only.
            expected = ctx.expected("gmvae_elbo", **_f64(extreme)) - _recon(extreme)

            def judge(ex: dict[str, torch.Tensor], expected: torch.Tensor = expected) -> None:
                _check_elbo(ctx, ex, hint=STABLE_LOGITS_HINT, expected=expected + _recon(ex))

            judge_hard_case(ctx, judge, extreme, lambda ex: {**ex, "x_logits": ex["x_logits"].clamp(-4, 4)},
                            _elsewhere("also with the logits clipped to ±4"))


@check("C4", "L > 1 samples are averaged", points=1, kind="property", hint=SAMPLES_HINT)
@for_all(_elbo_inputs(n_samples=(2, 3)), max_examples=8)
def _elbo_samples(ctx: Context, example) -> None:
    judge_hard_case(ctx, lambda ex: _check_elbo(ctx, ex, hint=SAMPLES_HINT), example,
                    lambda ex: {**ex, "x_logits": ex["x_logits"][:1]}, _elsewhere("also with L = 1"))


@check("C4", "γ with zero entries: 0 · log 0 = 0", points=1, kind="property", hint=ZERO_GAMMA_HINT)
@for_all(_elbo_inputs(zero_gamma=True), max_examples=8)
def _elbo_zero_gamma(ctx: Context, example) -> None:
    judge_hard_case(ctx, lambda ex: _check_elbo(ctx, ex, hint=ZERO_GAMMA_HINT), example,
                    lambda ex: {**ex, "gamma": (ex["gamma"] + 1 / ex["gamma"].shape[-1]) / 2},
                    _elsewhere("also with every γ_c > 0"))


@check("C4", "K = 1 reduces to the VAE ELBO", points=1, kind="property",
       hint="see seed 004 §3.5: with one cluster N(0, I) the ELBO is the VAE's, reconstruction minus KL(q ‖ N(0, I))")
@for_all(_elbo_inputs(), max_examples=8)
def _elbo_one_cluster(ctx: Context, drawn) -> None:
    b, j = drawn["mu_z"].shape
    dtype = drawn["x"].dtype
    example = {**drawn, "gamma": torch.ones(b, 1, dtype=dtype), "log_pi": torch.zeros(1, dtype=dtype),
               "mu_c": torch.zeros(1, j, dtype=dtype), "logvar_c": torch.zeros(1, j, dtype=dtype)}
    ex = _f64(example)
    expected = _recon(ex) - _kl_diag(ex["mu_z"], ex["logvar_z"], ex["mu_c"][0], ex["logvar_c"][0])
    _expect_special(ctx, example, expected, drawn, "your ELBO with one cluster N(0, I) is not the VAE's: check the "
                    "entropy term and every ½ (seed 004 §3.5)")


@check("C4", "the entropy of q(z|x) uses q's own variance σ̃²", points=1, kind="property",
       hint="see seed 004 §3.5: the entropy of q(z|x) uses q's own variance σ̃², not a cluster's σ_c² (the seed's "
            "last lines have this slip)")
@for_all(_elbo_inputs(), max_examples=8)
def _elbo_entropy(ctx: Context, drawn) -> None:
    # All clusters equal N(m, s²): the ELBO is reconstruction − KL(q(z|x) ‖ N(m, s²)) − KL(γ ‖ π).
    k, j = drawn["mu_c"].shape
    example = {**drawn, "mu_c": drawn["mu_c"][:1].expand(k, j).clone(),
               "logvar_c": drawn["logvar_c"][:1].expand(k, j).clone()}
    ex = _f64(example)
    kl_cat = (ex["gamma"] * (ex["gamma"].log() - ex["log_pi"])).sum(-1)
    expected = _recon(ex) - _kl_diag(ex["mu_z"], ex["logvar_z"], ex["mu_c"][0], ex["logvar_c"][0]) - kl_cat
    _expect_special(ctx, example, expected, drawn, ctx.check.hint)


def _expect_special(ctx: Context, example: dict[str, torch.Tensor], expected: torch.Tensor,
                    drawn: dict[str, torch.Tensor], hint: str) -> None:
    """The ELBO on a special case ``example`` must be ``expected`` (float64, in closed form); when it is not,
    the hint names a diagnosed mistake, or says the ELBO is wrong on the ``drawn`` input the case came from too."""
    def judge(ex: dict[str, torch.Tensor]) -> None:
        if ex is drawn:
            _check_elbo(ctx, ex, hint=hint)
            return
        dtype = ex["x"].dtype
        expect_diagnosed(ctx, ctx.call(**ex), expected.to(dtype), _ELBO_MISTAKES, {**_f64(ex), "expected": expected},
                         what="the ELBO", dtype=dtype, hint=hint)

    judge_hard_case(ctx, judge, example, lambda _: drawn, _elsewhere("also on the drawn input with its own clusters"),
                    hint)


@check("C4", "gradients w.r.t. x_logits, mu_z, logvar_z and gamma", points=2, kind="gradient",
       hint="see the contract of C4: the ELBO is a differentiable function of its inputs")
@for_all(_elbo_inputs(F64, n_samples=(1, 2)), max_examples=8)
def _elbo_gradients(ctx: Context, example) -> None:
    hints = {
        "x_logits": "your gradient w.r.t. the logits differs: they enter the reconstruction term only",
        "mu_z": "your gradient w.r.t. mu_z differs: μ̃ enters only the expected log p(z|c) term",
        "logvar_z": "your gradient w.r.t. logvar_z differs: it enters the expected log p(z|c) term and the entropy "
                    "(q's own variance)",
        "gamma": "your gradient w.r.t. gamma differs: γ enters the expected log p(z|c) term and Σ_c γ_c log(π_c/γ_c)",
    }
    # Stable forms of the reconstruction (max(ℓ, 0) + log1p(exp(−|ℓ|)), …) have a kink at ℓ = 0 where
    # autograd picks a subgradient: the derivative is judged where it is defined.
    example = {**example, "x_logits": torch.where(example["x_logits"] == 0, 0.25, example["x_logits"])}
    b = example["x"].shape[0]
    cotangent = torch.arange(1, b + 1, dtype=F64)
    args = {k: Leaf(v, k) if k in hints else v for k, v in example.items()}
    reply = ctx.reply(grad=[{"output": None, "cotangent": cotangent}], **args)  # values are judged elsewhere
    if not isinstance(reply.value, torch.Tensor) or tuple(reply.value.shape) != (b,):
        ctx.fail("the ELBO is not a tensor of shape (B,)", expected=f"shape ({b},)", got=reply.value)
    leaves = {k: v.clone().requires_grad_(k in hints) for k, v in example.items()}
    _, grads = ctx.expected_grad("gmvae_elbo", wrt=[leaves[n] for n in hints], cotangent=cotangent, **leaves)
    for name, e in zip(hints, grads):
        g = reply.grads[0].get(name)
        if g is None:
            ctx.fail(f"no gradient reaches {name}", expected=e, got="no gradient",
                     hint="your ELBO is cut off from its inputs' graph (a Python float, a detach or numpy on the way)")
        if name == "gamma":  # only the part tangent to the simplex is defined by values on the simplex
            g, e = g - g.mean(-1, keepdim=True), e - e.mean(-1, keepdim=True)
        what = f"dELBO/d{name}" + (" (projected on the simplex)" if name == "gamma" else "")
        diagnosed_on_failure(lambda hint: expect_tensor(ctx, g, e, what=what, hint=hint), hints[name],
                             lambda: hints[name] if name != "x_logits" else diagnose(g, _LOGIT_GRADIENT_MISTAKES, {
                                 "e": e, "pixels": example["x"].shape[-1], "samples": e.shape[0]}, hints[name], e))


_LOGIT_GRADIENT_MISTAKES = (
    Diagnosis("your gradient w.r.t. the logits is the contract's divided by D, the number of pixels: the pixels' "
              "log-likelihoods are averaged where the contract of C4 sums them", lambda e, pixels, **_: e / pixels),
    Diagnosis("your gradient w.r.t. the logits is L times the contract's: the reconstruction sums over the L "
              "samples where the contract of C4 averages them", lambda e, samples, **_: e * samples),
)
