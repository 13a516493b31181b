"""Checks of Part C (Gaussian-mixture VAE): C1 ``gmvae_responsibilities``, C2 ``expected_log_gaussian``,
C3 ``expected_log_gaussian_sympy``, C4 ``gmvae_elbo``.

Expected values come from the reference evaluated in float64 on the same
(exactly representable) inputs, then cast to the input dtype; a float32
solution is judged with float32 tolerances. C3's sympy answer is rebuilt by
``symbolic.rebuild`` (a whitelist; student text is never parsed) and compared
with the reference by ``symbolic.decide``, both in ``symbolic_worker``'s
bounded process.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

import reference
from autograder.checks import strategies as S
from autograder.checks.compare import expect_tensor
from autograder.checks.diagnose import Diagnosis, expect_diagnosed
from autograder.checks.framework import Context, Failure, for_all
from autograder.checks.registry import check
from autograder.checks import symbolic_worker
from autograder.sandbox.errors import StudentException
from autograder.sandbox.runtime import builders
from autograder.sandbox.runtime.wire import Fn, Leaf, SympyTree, encode

F64 = torch.float64
FAR = (-1000.0, -300.0, 300.0, 1000.0)  # every N(z; μ_c, σ_c²) underflows to 0, even in float64
ROW_SUM_TOL = {torch.float32: 1e-4, torch.float64: 1e-9}

STABLE_HINT = ("your gamma breaks far from the clusters: there every density underflows to 0 and normalising gives "
               "0/0; the contract of C1 works with log-densities (seed 004 §3)")
LEMMA_HINT = "see the contract of C2 and the lemma of seed 004 §3.4: the arguments are log-variances"
ELBO_HINT = "see the contract of C4 and seed 004 §3.5: the ELBO term by term"


def _normalised(weights: torch.Tensor) -> torch.Tensor:
    return weights / weights.sum(-1, keepdim=True)


_RESP_MISTAKES = (
    Diagnosis("your gamma ignores the mixture weights π_c", lambda log_pi, expected, **_: _normalised(
        expected / log_pi.exp())),
    Diagnosis("your gamma counts the mixture weights π_c twice", lambda log_pi, expected, **_: _normalised(
        expected * log_pi.exp())),
    Diagnosis("your gamma drops the variance normaliser of N(z; μ_c, σ_c²): it differs between clusters and does "
              "not cancel", lambda logvar_c, expected, **_: _normalised(expected * (logvar_c.sum(-1) / 2).exp())),
    Diagnosis("your gamma is uniform over the clusters: clamped or underflowed densities lose p(c | z)",
              lambda expected, **_: torch.full_like(expected, 1 / expected.shape[-1])),
)
_LEMMA_MISTAKES = (
    Diagnosis("your value is twice the lemma's: a ½ is missing", lambda expected, **_: 2 * expected),
    Diagnosis("your value has the wrong sign", lambda expected, **_: -expected),
    Diagnosis("your value lacks the constant −½ log 2π of each dimension",
              lambda mu_q, expected, **_: expected + mu_q.shape[-1] / 2 * math.log(2 * math.pi)),
    Diagnosis("your value is a mean over the last dimension; the contract of C2 sums over it",
              lambda mu_q, expected, **_: expected / mu_q.shape[-1]),
)


def _f64(ex: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to(F64) for k, v in ex.items()}


def _expect_shape_dtype(ctx: Context, got, shape: tuple[int, ...], dtype: torch.dtype, what: str) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        ctx.fail(f"{what} is not a tensor", expected=f"a tensor of shape {shape}", got=got, hint="return a torch.Tensor")
    if tuple(got.shape) != shape:
        ctx.fail(f"{what} has the wrong shape", expected=f"shape {shape}", got=f"shape {tuple(got.shape)}",
                 hint="one probability per example and cluster: shape (B, K)")
    if got.dtype != dtype:
        ctx.fail(f"{what} has the wrong dtype", expected=str(dtype), got=str(got.dtype),
                 hint="your result changes dtype: the contract keeps the input's dtype (no hard-coded float32 or "
                      "float64)")
    return got


def _judge(ctx: Context, judge: Callable[[dict[str, torch.Tensor]], None], example: dict[str, torch.Tensor],
           benign: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]], elsewhere: str) -> None:
    """``judge(example)``; when it fails, also judge ``benign(example)``, the input without this check's difficulty.

    If the benign input fails too, the mistake is not the one this check
    targets: the failure keeps the original call but gets the ``elsewhere``
    hint instead of the check's own.
    """
    try:
        judge(example)
    except Failure as failure:
        call = ctx.last_call
        try:
            judge(benign(example))
        except (Failure, StudentException):
            failure.hint = elsewhere
        finally:
            ctx.last_call = call
        raise


# -- C1 gmvae_responsibilities ------------------------------------------------------------------


@st.composite
def _mixture(draw, k: int, j: int, dtype: torch.dtype, same_means: bool = False):
    """``(log_pi (K,), mu_c (K, J), logvar_c (K, J))``: normalised weights, halves."""
    log_pi = draw(S.simplex((k,))).log().to(dtype)
    if same_means:
        mu_c = draw(S.halves((1, j), -3, 3, dtype)).expand(k, j).clone()
    else:
        mu_c = draw(S.halves((k, j), -3, 3, dtype))
    logvar_c = draw(S.halves((k, j), -1, 1, dtype))
    return log_pi, mu_c, logvar_c


@st.composite
def _resp_inputs(draw, dtype=None, far: bool = False, same_means: bool = False):
    """``(z (B, J), log_pi, mu_c, logvar_c)``; ``far``: every coordinate of z is ±300 or ±1000."""
    dtype = dtype or draw(S.DTYPES)
    b, k, j = draw(st.integers(1, 3)), draw(st.integers(1 if not same_means else 2, 4)), draw(st.integers(1, 3))
    if far:
        z = torch.tensor(draw(st.lists(st.sampled_from(FAR), min_size=b * j, max_size=b * j)), dtype=dtype).reshape(b, j)
    else:
        z = draw(S.halves((b, j), -4, 4, dtype))
    return (z, *draw(_mixture(k, j, dtype, same_means)))


def _call_resp(ctx: Context, example):
    z, log_pi, mu_c, logvar_c = example
    got = ctx.call(z=z, log_pi=log_pi, mu_c=mu_c, logvar_c=logvar_c)
    expected = reference.gmvae_responsibilities(z.to(F64), log_pi.to(F64), mu_c.to(F64), logvar_c.to(F64))
    return got, expected.to(z.dtype)


@check("C1", "responsibilities are p(c | z) by Bayes' rule", points=2, public=True, kind="property",
       hint="see the contract of C1: Bayes' rule over the clusters; logvar_c is a log-variance")
@for_all(_resp_inputs(), max_examples=12)
def _resp_values(ctx: Context, example) -> None:
    got, expected = _call_resp(ctx, example)
    _expect_resp(ctx, got, expected, example)


def _expect_resp(ctx: Context, got, expected: torch.Tensor, example, **kwargs) -> None:
    inputs = dict(zip(("z", "log_pi", "mu_c", "logvar_c"), (t.to(F64) for t in example)), expected=expected.to(F64))
    expect_diagnosed(ctx, got, expected, _RESP_MISTAKES, inputs, what="gamma", dtype=example[0].dtype,
                     hint=ctx.check.hint, **kwargs)


@check("C1", "clusters that differ only in their variances", points=1, kind="property",
       hint="see the contract of C1: clusters with different variances have different normalisers")
@for_all(_resp_inputs(same_means=True), max_examples=8)
def _resp_variances(ctx: Context, example) -> None:
    got, expected = _call_resp(ctx, example)
    _expect_resp(ctx, got, expected, example)


@check("C1", "far from every cluster: finite rows that sum to 1", points=2, public=True, kind="property",
       hint=STABLE_HINT)
@for_all(_resp_inputs(far=True), max_examples=12)
def _resp_far_simplex(ctx: Context, example) -> None:
    z, log_pi, mu_c, logvar_c = example
    got = ctx.call(z=z, log_pi=log_pi, mu_c=mu_c, logvar_c=logvar_c)
    got = _expect_shape_dtype(ctx, got, (z.shape[0], log_pi.shape[0]), z.dtype, "gamma")
    g = got.detach().to(F64)
    if not torch.isfinite(g).all():
        ctx.fail("gamma has NaN or inf for z far from every cluster", expected="finite probabilities", got=got,
                 hint=STABLE_HINT)
    tol = ROW_SUM_TOL[z.dtype]
    if ((g < -tol) | (g > 1 + tol)).any():
        ctx.fail("gamma has entries outside [0, 1]", expected="probabilities", got=got, hint=STABLE_HINT)
    sums = g.sum(-1)
    if ((sums - 1).abs() > tol).any():
        zero = bool((g.abs().sum(-1) == 0).any())
        ctx.fail("a row of gamma is all zeros" if zero else "the rows of gamma do not sum to 1",
                 expected="rows summing to 1", got=f"row sums {sums.tolist()}", detail=f"tolerance {tol:g}",
                 hint=STABLE_HINT)


@check("C1", "far from every cluster: the mass goes to the most likely cluster", points=1, kind="property",
       hint=STABLE_HINT)
@for_all(_resp_inputs(torch.float64, far=True), max_examples=8)
def _resp_far_values(ctx: Context, example) -> None:
    got, expected = _call_resp(ctx, example)
    _expect_resp(ctx, got, expected, example, atol=1e-6)


# -- C2 expected_log_gaussian -------------------------------------------------------------------

C2_NAMES = ("mu_q", "logvar_q", "mu_p", "logvar_p")


def _lemma_args(shapes: list[tuple[int, ...]], draw, dtype) -> dict[str, torch.Tensor]:
    bounds = {"mu_q": (-3, 3), "logvar_q": (-2, 2), "mu_p": (-3, 3), "logvar_p": (-2, 2)}
    return {n: draw(S.halves(s, *bounds[n], dtype)) for n, s in zip(C2_NAMES, shapes)}


@st.composite
def _lemma_inputs(draw, dtype=None):
    """Four tensors of one shape ``(*B, J)``."""
    dtype = dtype or draw(S.DTYPES)
    shape = (*draw(S.batch_shapes(max_dims=2)), draw(st.integers(1, 3)))
    return _lemma_args([shape] * 4, draw, dtype)


@st.composite
def _broadcast_inputs(draw):
    """Four tensors ``(*B_i, J)`` whose leading dims broadcast without being all equal."""
    dtype = draw(S.DTYPES)
    batch = draw(S.batch_shapes(max_dims=3, min_dims=1))
    j = draw(st.integers(1, 3))
    shapes = []
    for _ in range(4):
        kept = batch[draw(st.integers(0, len(batch))):]
        shapes.append((*(draw(st.sampled_from([s, 1])) for s in kept), j))
    if len(set(shapes)) == 1:  # make one of them differ: drop its leading dims
        shapes[draw(st.integers(0, 3))] = (j,)
    if len(set(shapes)) == 1:
        shapes[0] = (2, *shapes[0])
    return _lemma_args(shapes, draw, dtype)


def _check_lemma(ctx: Context, example: dict[str, torch.Tensor]) -> None:
    got = ctx.call(**example)
    expected = reference.expected_log_gaussian(**_f64(example))
    expect_diagnosed(ctx, got, expected.to(example["mu_q"].dtype), _LEMMA_MISTAKES, {**example, "expected": expected},
                     what="E_q[log p]", dtype=example["mu_q"].dtype, hint=LEMMA_HINT)


@check("C2", "the lemma on a hand-computed example", points=1, public=True, kind="value", hint=LEMMA_HINT)
def _lemma_known(ctx: Context) -> None:
    # Row 0: q = p = N(0, I₂) → −log 2π − 1 = −2.8379; row 1 mixes means, variances and log-variances ≠ 0.
    example = {
        "mu_q": torch.tensor([[0.0, 0.0], [2.0, -1.0]], dtype=F64),
        "logvar_q": torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=F64),
        "mu_p": torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=F64),
        "logvar_p": torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=F64),
    }
    _check_lemma(ctx, example)


@check("C2", "the lemma on random inputs, float32 and float64", points=2, public=True, kind="property",
       hint=LEMMA_HINT)
@for_all(_lemma_inputs(), max_examples=12)
def _lemma_values(ctx: Context, example) -> None:
    _check_lemma(ctx, example)


@check("C2", "arguments with different leading shapes broadcast", points=2, kind="property",
       hint="see the contract of C2: the leading dimensions of the four arguments broadcast; the sum runs over the "
            "last dimension only")
@for_all(_broadcast_inputs(), max_examples=12)
def _lemma_broadcast(ctx: Context, example) -> None:
    _judge(ctx, lambda ex: _check_lemma(ctx, ex), example, _expanded,
           "the values are wrong even with the arguments expanded to one shape: " + LEMMA_HINT)


def _expanded(example: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    shape = torch.broadcast_shapes(*(t.shape for t in example.values()))
    return {k: v.expand(shape).clone() for k, v in example.items()}


# -- C3 expected_log_gaussian_sympy --------------------------------------------------------------

C3_NAMES = ("mu_q", "s_q", "mu_p", "s_p")
SYMPY_HINT = ("see the contract of C3 and the lemma of seed 004 §3.4 in one dimension: s_q and s_p are standard "
              "deviations")
_DEPENDENCE_HINTS = (  # (wrong arguments, hint), first match wins; s_p is in every term
    ({"s_q", "mu_q"}, "your expression depends wrongly on both of q's parameters: s_q and s_p are standard "
                      "deviations, not variances or log-variances; check every ½"),
    ({"s_q"}, "your expression depends wrongly on s_q: it is q's standard deviation (not a variance or a "
              "log-variance); check its power and its ½"),
    ({"mu_q"}, "your expression depends wrongly on the means: check the mean term's power, sign and ½"),
    ({"mu_p"}, "your expression depends wrongly on the means: check the mean term's power, sign and ½"),
    ({"s_p"}, "your expression depends wrongly on s_p: it is p's standard deviation, in the normaliser and in "
              "both squared terms"),
)


def _symbolic_check(ctx: Context, names: tuple[str, ...]) -> None:
    """Call with positive symbols named ``names``; the answer must equal the reference's for all positive values.

    Any form sympy can build from the whitelist counts; the comparison runs in
    a bounded process, so an expression too slow or too large to compare costs
    this check only, with the reason.
    """
    symbolic_worker.start()  # it imports sympy while the student's function runs
    by_arg = dict(zip(C3_NAMES, names))
    got = ctx.call(**{arg: Fn("sympy_symbol", {"name": n, "positive": True}) for arg, n in by_arg.items()})
    if not isinstance(got, SympyTree):
        ctx.fail("the result is not a sympy expression", expected="a sympy expression", got=got,
                 hint="your result is not a sympy expression: the contract of C3 builds one from the four symbols "
                      "with sympy's log and pi (not math or torch)")
    symbols = {n: builders.build("sympy_symbol", {"name": n, "positive": True}) for n in names}
    expected = reference.expected_log_gaussian_sympy(**{arg: symbols[n] for arg, n in by_arg.items()})
    # the student bundle plays the reference back as a tree already
    expected_tree = expected.tree if isinstance(expected, SympyTree) else encode(expected)["$sym"]
    result = symbolic_worker.judge(got.tree, expected_tree, names, seed=ctx.seed)
    if result.refused or result.limit:
        reason = result.refused or result.limit
        ctx.fail("the returned expression cannot be graded" if result.refused else
                 "the returned expression could not be compared within the grader's limits",
                 expected="an expression in " + ", ".join(names), got="<a sympy expression>", detail=reason,
                 hint=reason.split(": ", 1)[-1])
    if result.equal:
        return
    roles = {by_arg[a]: a for a in C3_NAMES}
    wrong_args = {roles[n] for n in result.wrong}
    if not wrong_args:
        hint = "your expression is off by a constant: check the normaliser's 2π and its ½ (½ log 2π ≈ 0.9189)"
        detail = "the two differ by a constant"
    else:
        hint = next((h for need, h in _DEPENDENCE_HINTS if need <= wrong_args), SYMPY_HINT)
        detail = "wrong dependence on " + ", ".join(a for a in C3_NAMES if a in wrong_args)
    point = ", ".join(f"{arg}={v}" for arg, v in zip(C3_NAMES, result.point.values()))
    ctx.fail("the expression is not equal to E_q[log p]", expected=f"{result.expected:.10g} at {point}",
             got="undefined (not a finite number)" if result.got is None else
             f"{result.got:.10g}" if isinstance(result.got, float) else f"{result.got:.6g} (complex)",
             detail=f"{detail} (decided {result.how})", hint=hint)


@check("C3", "symbolically equal to the lemma", points=2, public=True, kind="symbolic check", hint=SYMPY_HINT)
def _sympy_equal(ctx: Context) -> None:
    _symbolic_check(ctx, C3_NAMES)


@check("C3", "built from the symbols it is given", points=1, kind="symbolic check",
       hint="your expression uses symbols of its own instead of the four arguments it is given")
def _sympy_renamed(ctx: Context) -> None:
    _symbolic_check(ctx, ("m_tilde", "sigma_tilde", "m", "sigma"))


# -- C4 gmvae_elbo -------------------------------------------------------------------------------

LOGITS_EXTREME = (-100.0, -1.5, 0.0, 2.0, 100.0)  # ±100 marks an extreme entry, set to ±m for every m below
EXTREME_MAGNITUDES = (20.0, 50.0, 100.0, 200.0)
STABLE_LOGITS_CHECK = "logits of ±20, ±50, ±100 and ±200 give exact finite values (float32 and float64)"
STABLE_LOGITS_HINT = ("your reconstruction goes wrong for large logits: log(sigmoid(ℓ)) and log(1 − sigmoid(ℓ)) "
                      "round to log 0 there; the contract of C4 asks a form computed from the logits that stays finite")
SAMPLES_HINT = "your reconstruction with L > 1 samples differs: the contract of C4 averages over the L samples"
ZERO_GAMMA_HINT = ("your ELBO is NaN or off when some γ_c = 0: γ_c log γ_c there is 0 · (−∞); the contract of C4 "
                   "takes 0 log 0 = 0")
ELSEWHERE_HINT = "the ELBO is wrong on ordinary inputs too (see the check \"ELBO values with one sample\"): " + ELBO_HINT


@st.composite
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
        expected = reference.gmvae_elbo(**_f64(example))
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


@check("C4", "ELBO values with one sample (L = 1)", points=3, public=True, kind="property", hint=ELBO_HINT)
@for_all(_elbo_inputs(), max_examples=12)
def _elbo_values(ctx: Context, example) -> None:
    _check_elbo(ctx, example)


@check("C4", STABLE_LOGITS_CHECK, points=2, public=True, kind="property", hint=STABLE_LOGITS_HINT)
@for_all(_elbo_inputs(extreme=True), max_examples=4)
def _elbo_extreme_logits(ctx: Context, example) -> None:
    # A stable form is exact at every magnitude; an unstable one can look right at one of them
    # (BCE of sigmoid(·) clamps its log at −100, which coincides with the truth at ±100 only).
    for dtype in (torch.float32, F64):
        for magnitude in EXTREME_MAGNITUDES:
            extreme = {**example, "x_logits": _at_magnitude(example["x_logits"], magnitude)}
            extreme = {k: v.to(dtype) for k, v in extreme.items()}
            # One reference call per input (the student bundle replays exactly these): the clipped
            # input's expected value differs from it by the reconstruction term only.
            expected = reference.gmvae_elbo(**_f64(extreme)) - _recon(extreme)

            def judge(ex: dict[str, torch.Tensor], expected: torch.Tensor = expected) -> None:
                _check_elbo(ctx, ex, hint=STABLE_LOGITS_HINT, expected=expected + _recon(ex))

            _judge(ctx, judge, extreme, lambda ex: {**ex, "x_logits": ex["x_logits"].clamp(-4, 4)},
                   ELSEWHERE_HINT + " (also with logits clipped to ±4)")


@check("C4", "L > 1 samples are averaged", points=1, kind="property", hint=SAMPLES_HINT)
@for_all(_elbo_inputs(n_samples=(2, 3)), max_examples=8)
def _elbo_samples(ctx: Context, example) -> None:
    _judge(ctx, lambda ex: _check_elbo(ctx, ex, hint=SAMPLES_HINT), example,
           lambda ex: {**ex, "x_logits": ex["x_logits"][:1]}, ELSEWHERE_HINT + " (also with L = 1)")


@check("C4", "γ with zero entries: 0 · log 0 = 0", points=1, kind="property", hint=ZERO_GAMMA_HINT)
@for_all(_elbo_inputs(zero_gamma=True), max_examples=8)
def _elbo_zero_gamma(ctx: Context, example) -> None:
    _judge(ctx, lambda ex: _check_elbo(ctx, ex, hint=ZERO_GAMMA_HINT), example,
           lambda ex: {**ex, "gamma": (ex["gamma"] + 1 / ex["gamma"].shape[-1]) / 2},
           ELSEWHERE_HINT + " (also with every γ_c > 0)")


@check("C4", "K = 1 reduces to the VAE ELBO", points=1, kind="property",
       hint="see seed 004 §3.5: with one cluster N(0, I) the ELBO is the VAE's, reconstruction minus KL(q ‖ N(0, I))")
@for_all(_elbo_inputs(), max_examples=8)
def _elbo_one_cluster(ctx: Context, example) -> None:
    b, j = example["mu_z"].shape
    dtype = example["x"].dtype
    example = {**example, "gamma": torch.ones(b, 1, dtype=dtype), "log_pi": torch.zeros(1, dtype=dtype),
               "mu_c": torch.zeros(1, j, dtype=dtype), "logvar_c": torch.zeros(1, j, dtype=dtype)}
    got = ctx.call(**example)
    ex = _f64(example)
    expected = _recon(ex) - _kl_diag(ex["mu_z"], ex["logvar_z"], ex["mu_c"][0], ex["logvar_c"][0])
    expect_tensor(ctx, got, expected.to(dtype), what="the ELBO", dtype=dtype,
                  hint="your ELBO with one cluster N(0, I) is not the VAE's: check the entropy term and every ½ "
                       "(seed 004 §3.5)")


@check("C4", "the entropy of q(z|x) uses q's own variance σ̃²", points=1, kind="property",
       hint="see seed 004 §3.5: the entropy of q(z|x) uses q's own variance σ̃², not a cluster's σ_c² (the seed's "
            "last lines have this slip)")
@for_all(_elbo_inputs(), max_examples=8)
def _elbo_entropy(ctx: Context, example) -> None:
    # All clusters equal N(m, s²): the ELBO is reconstruction − KL(q(z|x) ‖ N(m, s²)) − KL(γ ‖ π).
    k, j = example["mu_c"].shape
    example = {**example, "mu_c": example["mu_c"][:1].expand(k, j).clone(),
               "logvar_c": example["logvar_c"][:1].expand(k, j).clone()}
    got = ctx.call(**example)
    ex = _f64(example)
    kl_cat = (ex["gamma"] * (ex["gamma"].log() - ex["log_pi"])).sum(-1)
    expected = _recon(ex) - _kl_diag(ex["mu_z"], ex["logvar_z"], ex["mu_c"][0], ex["logvar_c"][0]) - kl_cat
    dtype = example["x"].dtype
    expect_tensor(ctx, got, expected.to(dtype), what="the ELBO", dtype=dtype)


@check("C4", "gradients w.r.t. x_logits, mu_z, logvar_z and gamma", points=2, kind="gradient",
       hint="see the contract of C4: the ELBO is a differentiable function of its inputs")
@for_all(_elbo_inputs(F64, n_samples=(1, 2)), max_examples=8)
def _elbo_gradients(ctx: Context, example) -> None:
    hints = {
        "x_logits": "your gradient w.r.t. the logits differs: check the reconstruction term and its mean over L",
        "mu_z": "your gradient w.r.t. mu_z differs: μ̃ enters only the expected log p(z|c) term",
        "logvar_z": "your gradient w.r.t. logvar_z differs: it enters the expected log p(z|c) term and the entropy "
                    "(q's own variance)",
        "gamma": "your gradient w.r.t. gamma differs: γ enters the expected log p(z|c) term and Σ_c γ_c log(π_c/γ_c)",
    }
    b = example["x"].shape[0]
    cotangent = torch.arange(1, b + 1, dtype=F64)
    args = {k: Leaf(v, k) if k in hints else v for k, v in example.items()}
    reply = ctx.reply(grad=[{"output": None, "cotangent": cotangent}], **args)  # values are judged elsewhere
    if not isinstance(reply.value, torch.Tensor) or tuple(reply.value.shape) != (b,):
        ctx.fail("the ELBO is not a tensor of shape (B,)", expected=f"shape ({b},)", got=reply.value)
    leaves = {k: v.clone().requires_grad_(k in hints) for k, v in example.items()}
    expected = reference.gmvae_elbo(**leaves)
    grads = torch.autograd.grad(expected, [leaves[n] for n in hints], cotangent)
    for name, e in zip(hints, grads):
        g = reply.grads[0].get(name)
        if g is None:
            ctx.fail(f"no gradient reaches {name}", expected=e, got="no gradient",
                     hint="your ELBO is cut off from its inputs' graph (a Python float, a detach or numpy on the way)")
        if name == "gamma":  # only the part tangent to the simplex is defined by values on the simplex
            g, e = g - g.mean(-1, keepdim=True), e - e.mean(-1, keepdim=True)
        expect_tensor(ctx, g, e, what=f"dELBO/d{name}" + (" (projected on the simplex)" if name == "gamma" else ""),
                      hint=hints[name])
