"""Checks of Part C (Gaussian-mixture VAE): C1 ``gmvae_responsibilities``, C2 ``expected_log_gaussian``,
C3 ``expected_log_gaussian_sympy`` (C4 ``gmvae_elbo`` is in ``gmvae_elbo``).

Expected values come from the reference evaluated in float64 on the same
(exactly representable) inputs, then cast to the input dtype; a float32
solution is judged with float32 tolerances. C3's sympy answer is rebuilt by
``symbolic.rebuild`` (a whitelist; student text is never parsed) and compared
with the reference by ``symbolic.decide``, both in ``symbolic_worker``'s
bounded process.
"""

from __future__ import annotations

import json
import math
import time

import torch
from hypothesis import strategies as st

from autograder.checks import strategies as S
from autograder.checks.compare import DTYPE_CHECK, DTYPE_HINT, UNBATCHED, coarsest, expect_shape
from autograder.checks.compare import expect_unbatched, keeps_dtype
from autograder.checks.diagnose import Diagnosis, expect_diagnosed, judge_hard_case
from autograder.checks.framework import Context, for_all
from autograder.checks.registry import check
from autograder.checks import symbolic_worker
from autograder.sandbox.runtime import builders
from autograder.sandbox.runtime.wire import Fn, SympyTree, encode

F64 = torch.float64
FAR = (-1000.0, -300.0, 300.0, 1000.0)  # every N(z; μ_c, σ_c²) underflows to 0, even in float64
ROW_SUM_TOL = {torch.float32: 1e-4, torch.float64: 1e-9}

STABLE_HINT = ("your gamma breaks far from the clusters: there every density underflows to 0 and normalising gives "
               "0/0; the contract of C1 works with log-densities (seed 004 §3)")
LEMMA_HINT = "see the contract of C2 and the lemma of seed 004 §3.4: the arguments are log-variances"


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


def _example(dtype: torch.dtype, **values: list) -> dict[str, torch.Tensor]:
    """Keyword arguments for a dtype check: ``values`` as tensors of ``dtype``."""
    return {k: torch.tensor(v, dtype=dtype) for k, v in values.items()}


# -- C1 gmvae_responsibilities ------------------------------------------------------------------


@S.composite
def _mixture(draw, k: int, j: int, dtype: torch.dtype, same_means: bool = False):
    """``(log_pi (K,), mu_c (K, J), logvar_c (K, J))``: normalised weights, halves."""
    log_pi = draw(S.simplex((k,))).log().to(dtype)
    if same_means:
        mu_c = draw(S.halves((1, j), -3, 3, dtype)).expand(k, j).clone()
    else:
        mu_c = draw(S.halves((k, j), -3, 3, dtype))
    logvar_c = draw(S.halves((k, j), -1, 1, dtype))
    return log_pi, mu_c, logvar_c


@S.composite
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
    expected = ctx.expected("gmvae_responsibilities", z.to(F64), log_pi.to(F64), mu_c.to(F64), logvar_c.to(F64))
    return got, expected.to(z.dtype)


@check("C1", "responsibilities are p(c | z) by Bayes' rule", points=1.5, public=True, kind="property",
       keeps_inputs=True, hint="see the contract of C1: Bayes' rule over the clusters; logvar_c is a log-variance")
@for_all(_resp_inputs(), max_examples=12)
def _resp_values(ctx: Context, example) -> None:
    got, expected = _call_resp(ctx, example)
    _expect_resp(ctx, got, expected, example)


check("C1", DTYPE_CHECK, points=0.5, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(**_example(dtype, z=[[0.5, -1.0]], log_pi=[-0.5, -1.0], mu_c=[[0.0, 0.0], [1.0, -1.0]],
                                           logvar_c=[[0.0, 0.5], [-0.5, 0.0]])), ("gamma",)))


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
    judge_hard_case(ctx, lambda ex: _expect_simplex(ctx, ex), example, _near, NEAR_HINT)


#: The hint of a check far from the clusters whose gamma is wrong near them too.
NEAR_HINT = ("gamma is wrong for z near the clusters too (the same z divided by 250; see the check \"responsibilities "
             "are p(c | z) by Bayes' rule\")")


def _near(example):
    """``example`` with z divided by 250: ±300 and ±1000 become ±1.2 and ±4, among the clusters."""
    return (example[0] / 250, *example[1:])


def _expect_simplex(ctx: Context, example) -> None:
    """gamma must be finite, in [0, 1], with rows summing to 1."""
    z, log_pi, mu_c, logvar_c = example
    got = ctx.call(z=z, log_pi=log_pi, mu_c=mu_c, logvar_c=logvar_c)
    got = expect_shape(ctx, got, (z.shape[0], log_pi.shape[0]), what="gamma",
                       hint="one probability per example and cluster: shape (B, K)")
    g = got.detach().to(F64)
    if not torch.isfinite(g).all():
        ctx.fail("gamma has NaN or inf for z far from every cluster", expected="finite probabilities", got=got,
                 hint=STABLE_HINT)
    tol = ROW_SUM_TOL.get(coarsest(z.dtype, got.dtype), ROW_SUM_TOL[torch.float32])
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
    judge_hard_case(ctx, lambda ex: _expect_resp(ctx, *_call_resp(ctx, ex), ex, atol=1e-6), example, _near, NEAR_HINT)


# -- C2 expected_log_gaussian -------------------------------------------------------------------

C2_NAMES = ("mu_q", "logvar_q", "mu_p", "logvar_p")


def _lemma_args(shapes: list[tuple[int, ...]], draw, dtype) -> dict[str, torch.Tensor]:
    bounds = {"mu_q": (-3, 3), "logvar_q": (-2, 2), "mu_p": (-3, 3), "logvar_p": (-2, 2)}
    return {n: draw(S.halves(s, *bounds[n], dtype)) for n, s in zip(C2_NAMES, shapes)}


@S.composite
def _lemma_inputs(draw, dtype=None, batch=None):
    """Four tensors of one shape ``(*B, J)``, at least one batch dimension unless ``batch`` is given."""
    dtype = dtype or draw(S.DTYPES)
    shape = (*(draw(S.batch_shapes(max_dims=2, min_dims=1)) if batch is None else batch), draw(st.integers(1, 3)))
    return _lemma_args([shape] * 4, draw, dtype)


@S.composite
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
    expected = ctx.expected("expected_log_gaussian", **_f64(example))
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


@check("C2", "the lemma on random inputs, float32 and float64", points=1.5, public=True, kind="property",
       keeps_inputs=True, hint=LEMMA_HINT)
@for_all(_lemma_inputs(), max_examples=12)
def _lemma_values(ctx: Context, example) -> None:
    _check_lemma(ctx, example)


@check("C2", UNBATCHED, points=0.25, public=True, kind="property",
       hint="see the contract of C2: the arguments (..., J) may have no leading dimension at all; the result is then "
            "0-dim")
@for_all(_lemma_inputs(batch=()), max_examples=8)
def _lemma_unbatched(ctx: Context, example) -> None:
    expected = ctx.expected("expected_log_gaussian", **_f64(example)).to(example["mu_q"].dtype)
    expect_unbatched(ctx, example, C2_NAMES, expected, names=("E_q[log p]",), hint=LEMMA_HINT)


check("C2", DTYPE_CHECK, points=0.25, public=True, kind="value", hint=DTYPE_HINT)(keeps_dtype(
    lambda ctx, dtype: ctx.call(**_example(dtype, mu_q=[[0.5, -1.0]], logvar_q=[[0.0, 0.5]], mu_p=[[1.0, 0.0]],
                                           logvar_p=[[-0.5, 0.0]])), ("E_q[log p]",)))


@check("C2", "arguments with different leading shapes broadcast", points=2, kind="property",
       hint="see the contract of C2: the leading dimensions of the four arguments broadcast; the sum runs over the "
            "last dimension only")
@for_all(_broadcast_inputs(), max_examples=12)
def _lemma_broadcast(ctx: Context, example) -> None:
    judge_hard_case(ctx, lambda ex: _check_lemma(ctx, ex), example, _expanded,
                    "the values are wrong even with the arguments expanded to one shape: " + LEMMA_HINT, LEMMA_HINT)


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
    expected = ctx.expected("expected_log_gaussian_sympy", **{arg: symbols[n] for arg, n in by_arg.items()})
    # the student bundle plays the reference back as a tree already
    expected_tree = expected.tree if isinstance(expected, SympyTree) else encode(expected)["$sym"]
    result = _judged(got.tree, expected_tree, names, ctx.seed)
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


_VERDICTS: dict[str, symbolic_worker.Verdict] = {}
_KEPT_VERDICTS = 1000  # then the kept verdicts are forgotten
_KEPT_SECONDS = symbolic_worker.CPU_SECONDS / 10  # a comparison that took longer is not kept


def _judged(tree: object, expected: object, names: tuple[str, ...], seed: int) -> symbolic_worker.Verdict:
    """``symbolic_worker.judge``, kept per process for the same trees, names and seed (submissions often return
    the same expression). Every comparison runs from the same fresh worker child, so the same request gets the
    same verdict; one at a limit, or that took long, is not kept (only those could depend on the machine's load)."""
    key = json.dumps([tree, expected, names, seed])
    if key in _VERDICTS:
        return _VERDICTS[key]
    start = time.monotonic()
    verdict = symbolic_worker.judge(tree, expected, names, seed=seed)
    if not verdict.limit and time.monotonic() - start < _KEPT_SECONDS:
        if len(_VERDICTS) >= _KEPT_VERDICTS:
            _VERDICTS.clear()
        _VERDICTS[key] = verdict
    return verdict


@check("C3", "symbolically equal to the lemma", points=2, public=True, kind="symbolic check", hint=SYMPY_HINT)
def _sympy_equal(ctx: Context) -> None:
    _symbolic_check(ctx, C3_NAMES)


@check("C3", "built from the symbols it is given", points=1, kind="symbolic check",
       hint="your expression uses symbols of its own instead of the four arguments it is given")
def _sympy_renamed(ctx: Context) -> None:
    _symbolic_check(ctx, ("m_tilde", "sigma_tilde", "m", "sigma"))
