"""Measured evidence for hints (B4, E2–E4): what a wrong answer was seen to do, never a guess at the code.

Where a random estimate lies against its Monte-Carlo band (above or below
log p(x), or log S above it); whether an estimate that should not depend on
the draws changes from one run to the next; how spread out the samples behind
an ELBO are; where a log-density goes wrong (at z = μ, for a diagonal L). The
probes make extra calls whose answers are closed forms (no reference, so a
public check's recorded questions stay the same); callers memoise them per
check run with ``diagnose.once``.
"""

from __future__ import annotations

import math

import torch

from autograder.checks.compare import coarsest, tolerance
from autograder.checks.diagnose import Diagnosis, expect_diagnosed, matches, once
from autograder.checks.framework import Context, Failure
from autograder.checks.models import likelihood
from autograder.checks.vae import _expect_shaped
from autograder.sandbox.errors import StudentException
from autograder.sandbox.runtime.wire import Fn


def where_hint(got: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n: int, hint: str, terms: str) -> str:
    """What the place of ``got`` against the band ``[lo, hi]`` around log p(x) shows (``hint`` if nothing)."""
    slack = 1e-3 * got.abs().clamp(min=1.0)  # float32 rounding of a correct estimate
    if bool(((got >= lo + math.log(n) - slack) & (got <= hi + math.log(n) + slack)).all()):
        return (f"your estimate is log S = {math.log(n):.3g} above log p(x) on every row (S = {n} samples), within "
                f"Monte-Carlo error: the S {terms} are summed where the contract takes their mean")
    if bool((got < lo).all()):
        return (f"your estimate is below log p(x) on every row by more than Monte-Carlo error (as, by Jensen, a mean "
                f"of log-{terms} would be): {hint}")
    if bool((got > hi).all()):
        return f"your estimate is above log p(x) on every row by more than Monte-Carlo error: {hint}"
    return hint


def sum_mistake(terms: str) -> Diagnosis:
    """An estimate log S above the truth where every sample gives the same term (``n`` is S)."""
    return Diagnosis(f"your estimate is log p(x) + log S, S the number of samples, although every sample gives the "
                     f"same value here: the S {terms} are summed where the contract takes their mean",
                     lambda expected, n, **_: expected + math.log(n))


def expect_exact(ctx: Context, args: dict, expected: torch.Tensor, hint: str, why: str,
                 mistakes: tuple[Diagnosis, ...]) -> None:
    """The estimate for ``args`` must be ``expected`` (every sample gives the same term, as ``why`` says); a
    mismatch is diagnosed, or else said to change from call to call when it does."""
    got = ctx.call(**args)
    _expect_shaped(ctx, got, tuple(expected.shape))
    try:
        expect_diagnosed(ctx, got, expected, mistakes, {"expected": expected, "n": args["n_samples"]},
                         what="the estimate of log p(x)", dtype=expected.dtype, hint=hint)
    except Failure as failure:
        if failure.hint == hint:
            failure.hint = once(ctx, "varies", lambda: varies(ctx, args, got, why)) or hint
        raise


def varies(ctx: Context, args: dict, got: torch.Tensor, why: str) -> str | None:
    """The hint that the estimate for ``args`` changes from run to run, measured by a second, reseeded run, or None."""
    call = ctx.last_call
    try:
        again = ctx.reply(attempt=1, **args).value  # an independent run: fresh random draws
    except (Failure, StudentException):
        return None
    finally:
        ctx.last_call = call
    if not (isinstance(again, torch.Tensor) and again.shape == got.shape):
        return None
    a, g = again.detach().to(torch.float64), got.detach().to(torch.float64)
    rtol, atol = tolerance(coarsest(got.dtype, again.dtype))
    differ = torch.isfinite(a) & torch.isfinite(g) & ((a - g).abs() > atol * g.abs().clamp(min=1.0) + rtol * g.abs())
    if not differ.any():
        return None
    i = int(differ.reshape(-1).nonzero()[0])
    return (f"your estimate changes from one run to the next on the same input: {g.reshape(-1)[i].item():.6g}, "
            f"then {a.reshape(-1)[i].item():.6g}, although {why}")


#: ``spread_hint``'s probe: x = 0 and 1 (D = J = 1), q(z|x) = N(x, exp(logvar)) with logvar = −1 and 1.
PROBE_LOGVARS = (-1.0, 1.0)


def spread_hint(ctx: Context, dtype: torch.dtype, n: int) -> str | None:
    """How far the student's samples of z lie from q's mean, measured through their ELBO, when it is not q's
    variance; else None.

    With log p(x|z) = log N(x; z, 1) and q's mean x, the ELBO is
    c − ½ mean_s (z_s − x)² − KL; with log p(x|z) = log N(x; 0, 1) it is
    c − ½ x² − KL: their difference gives the mean squared distance of the
    samples from q's mean, whatever the KL term is. It is judged against
    exp(logvar) within ±20 % (S = n ≥ 1000 samples: a relative error of
    about √(2/S) ≤ 4.5 %).
    """
    x = torch.tensor([[0.0], [1.0]], dtype=dtype)
    lo, hi = PROBE_LOGVARS
    encoder = Fn("gaussian_encoder", {"mu_weight": torch.ones(1, 1, dtype=dtype), "mu_bias": torch.zeros(1, dtype=dtype),
                                      "logvar_weight": torch.full((1, 1), hi - lo, dtype=dtype),
                                      "logvar_bias": torch.full((1,), lo, dtype=dtype)})
    one, zero = torch.ones(1, 1), torch.zeros(1, 1)
    call = ctx.last_call
    try:
        near, flat = (ctx.call(x=x, encoder=encoder, log_px_given_z=likelihood(W, torch.zeros(1), 0.0, dtype),
                               n_samples=n) for W in (one, zero))
    except (Failure, StudentException):
        return None
    finally:
        ctx.last_call = call
    if not all(isinstance(v, torch.Tensor) and tuple(v.shape) == (2,) for v in (near, flat)):
        return None
    spread = x[:, 0].double() ** 2 - 2 * (near.detach().double() - flat.detach().double())
    variance = torch.tensor(PROBE_LOGVARS, dtype=torch.float64).exp()
    ratio = spread / variance
    if bool(((ratio > 0.8) & (ratio < 1.25)).all()):
        return None
    (s0, s1), (v0, v1) = spread.tolist(), variance.tolist()
    return (f"measured through your ELBO, your samples of z lie at a mean squared distance of {s0:.3g} from q's mean "
            f"where q's variance exp(logvar) is {v0:.3g}, and {s1:.3g} where it is {v1:.3g}, for logvar of {lo:g} and "
            f"{hi:g}: their spread is not q's; see the contract of E4 (q's standard deviation is exp(logvar / 2))")


def log_density_probe(ctx: Context, z: torch.Tensor, mu: torch.Tensor, L: torch.Tensor) -> str | None:
    """Where the log-density goes wrong, seen in two more calls with closed-form answers (no reference): at
    z = μ, where the quadratic term is 0, and with L's diagonal only; None when a call fails."""
    diagonal = torch.diag_embed(L.diagonal(dim1=-2, dim2=-1))
    d64 = L.diagonal(dim1=-2, dim2=-1).to(torch.float64)
    normaliser = -d64.log().sum(-1) - L.shape[-1] / 2 * math.log(2 * math.pi)
    whitened = (z.to(torch.float64) - mu.to(torch.float64)) / d64
    call = ctx.last_call
    try:
        at_mean, diag_only = ctx.call(z=mu, mu=mu, L=L), ctx.call(z=z, mu=mu, L=diagonal)
    except (Failure, StudentException):
        return None
    finally:
        ctx.last_call = call
    if not all(isinstance(v, torch.Tensor) and v.shape == normaliser.shape for v in (at_mean, diag_only)):
        return None
    if not matches(at_mean, normaliser.to(z.dtype)):
        return ("your log-density is wrong already at z = μ, where the quadratic term is 0: its normalising terms "
                "(log det Σ and the 2π term) are off")
    if not matches(diag_only, (normaliser - 0.5 * (whitened**2).sum(-1)).to(z.dtype)):
        return ("your log-density is right at z = μ but wrong even for a diagonal L: the quadratic term "
                "(z − μ)ᵀ Σ⁻¹ (z − μ) is off (its ½, its square, or how L's diagonal scales it)")
    return ("your log-density is right at z = μ and for a diagonal L, but not when L has entries below its "
            "diagonal: those enter your quadratic term (z − μ)ᵀ Σ⁻¹ (z − μ) wrongly (Σ = L Lᵀ)")
