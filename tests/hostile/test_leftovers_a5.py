"""A5 is graded on a descent: its drawn reverse targets keep every shortcut out of tolerance (issue 11).

The shortcut of the held-out corpus — p's moments in closed form for "forward", the component nearest
the start for "reverse" — lands within tolerance of well-separated two-component targets. A5 now
draws two modes of two merged components each, whose mode-seeking optimum lies between its
components with a wider scale. These tests pin the optima to the quadrature, keep every wrong answer
beyond twice the tolerance, show the starts inside their basins, and show a correct descent passing
and the shortcut failing on the drawn targets.
"""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch

from autograder.checks import QUESTIONS, run_check
from autograder.checks import kl as checks
from autograder.checks.framework import Status
from autograder.local import LocalSession
from autograder.sandbox.runtime import builders
from reference import kl_optima
from reference.kl import fit_gaussian_to_mixture

UNITS = list(itertools.product(checks._PAIR_GAPS, checks._PAIR_CENTRES))
HARDEST = (1.2, 4.5)  # the widest pairs closest together: the shallowest basin, the optimum nearest the start box
LATER = [pytest.param(u, marks=pytest.mark.slow) for u in UNITS if u != HARDEST]


def _no_descent(p, direction, init_loc, init_scale):
    """The held-out shortcut: closed-form moments forward, the component nearest the start in reverse."""
    if direction == "forward":
        return float(p.mean), float(p.stddev)
    locs, scales = p.component_distribution.loc.reshape(-1), p.component_distribution.scale.reshape(-1)
    k = int((locs - init_loc).abs().argmin())
    return float(locs[k]), float(scales[k])


def _lands(case, got) -> bool:
    return all(abs(g - e) <= t for g, e, t in zip(got, case.expected, case.tol))


def _unit_target(d: float, m: float):
    return builders.normal_mixture_1d(torch.zeros(4, dtype=torch.float64),
                                      torch.tensor(checks.unit_components(d, m), dtype=torch.float64),
                                      torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("unit", [HARDEST, *LATER])
def test_the_table_of_modes_is_the_quadratures(unit):
    d, m = unit
    fit = kl_optima.mixture_reverse_kl_minimum((0.25,) * 4, checks.unit_components(d, m), (1.0,) * 4, (m, 1.4))
    assert checks.UNIT_MODES[unit] == pytest.approx((fit.loc, fit.scale), abs=2e-6)
    assert set(checks.UNIT_MODES) == set(UNITS)


def test_the_general_quadrature_agrees_with_the_two_component_one():
    fit = kl_optima.mixture_reverse_kl_minimum((0.5, 0.5), (-3.0, 3.0), (1.0, 1.0), (2.0, 1.2))
    assert (fit.loc, fit.scale) == pytest.approx((2.984306, 1.023369), abs=1e-6)  # the contract's numbers


def _every_wrong_answer(case) -> list[tuple[float, float]]:
    """The contract's example optima, the start, the other mode, every component, the centre and the moments,
    the variance for the scale, the forward answer."""
    locs, s = case.params["locs"].double(), case.params["scales"][0].item()
    c = locs.mean().item()
    moments = (c, math.sqrt(((locs - c) ** 2).mean().item() + s**2))
    return [(0.0, math.sqrt(10.0)), (2.984306, 1.023369), (-2.984306, 1.023369), case.start,
            (2 * c - case.expected[0], case.expected[1]), *((u, s) for u in locs.tolist()), moments,
            (case.expected[0], case.expected[1] ** 2)]


@pytest.mark.parametrize("seed", range(0, 4000, 41))
def test_drawn_reverse_fits_keep_every_wrong_answer_beyond_twice_the_tolerance(seed):
    for side in (1, -1):
        case = checks._reverse_case(seed, side)
        for wrong in _every_wrong_answer(case):
            assert any(abs(w - e) > 2 * t for w, e, t in zip(wrong, case.expected, case.tol)), (wrong, case)


def test_the_shortcut_misses_every_drawn_reverse_target():
    for seed, side in itertools.product(range(400), (1, -1)):
        case = checks._reverse_case(seed, side)
        p = builders.normal_mixture_1d(**case.params)
        assert not _lands(case, _no_descent(p, "reverse", *case.start)), (seed, side)


@pytest.mark.parametrize("unit", [HARDEST, *LATER])
def test_every_start_the_draw_can_make_is_inside_the_modes_basin(unit):
    """The quadrature descent from each corner of the start box lands on the right-hand mode."""
    d, m = unit
    corners = list(itertools.product([m + x for x in checks._START_LOCS],
                                     (checks._START_SCALES[0][0], checks._START_SCALES[-1][-1])))
    for x0, sigma0 in corners if unit != HARDEST else corners[::3]:  # two opposite corners in the default run
        got = fit_gaussian_to_mixture(_unit_target(d, m), "reverse", x0, sigma0)
        assert got == pytest.approx(checks.UNIT_MODES[unit], abs=1e-3), (x0, sigma0)


@pytest.mark.parametrize("seeds", [range(2), pytest.param(range(2, 120), marks=pytest.mark.slow)])
def test_a_correct_descent_lands_on_every_drawn_target(seeds):
    """The reference's descent (quadrature) from the drawn start, on the drawn float32 target, in both sides."""
    for seed in seeds:
        for side in (1, -1):
            case = checks._reverse_case(seed, side)
            got = fit_gaussian_to_mixture(builders.normal_mixture_1d(**case.params), "reverse", *case.start)
            assert _lands(case, got), (seed, side, got, case)


def _adam(p, direction, init_loc, init_scale, seed):
    """A Monte-Carlo descent in the style of most students: Adam on 1000 samples drawn once."""
    torch.manual_seed(seed)
    loc = torch.tensor(float(init_loc), requires_grad=True)
    log_s = torch.tensor(math.log(init_scale), requires_grad=True)
    opt = torch.optim.Adam([loc, log_s], lr=0.05)
    eps = torch.randn(1000)
    for _ in range(1000):
        opt.zero_grad()
        x = loc + log_s.exp() * eps
        (torch.distributions.Normal(loc, log_s.exp()).log_prob(x) - p.log_prob(x)).mean().backward()
        opt.step()
    return loc.item(), log_s.exp().item()


@pytest.mark.slow
def test_a_monte_carlo_descent_lands_in_one_of_the_attempts_on_drawn_targets():
    misses = 0
    for seed in range(12):
        case = checks._reverse_case(seed, 1 if seed % 2 else -1)
        p = builders.normal_mixture_1d(**case.params)
        runs = [_lands(case, _adam(p, "reverse", *case.start, seed=1000 * seed + a)) for a in range(checks._ATTEMPTS)]
        misses += runs.count(False)
        assert any(runs), (seed, case)
    assert misses <= 2  # of 60 runs (measured sd: about a quarter of the tolerance; 0 misses in 50 runs)


def test_the_shortcut_loses_the_reverse_points_in_the_grader():
    session = LocalSession({"__name__": "__main__", "math": math, "fit_gaussian_to_mixture": _no_descent})
    start = time.monotonic()
    results = [run_check(session, c, seed, time.monotonic() + 60) for seed in (0, 1) for c in QUESTIONS["A5"]]
    assert time.monotonic() - start < 10
    passed = {r.check for r in results if r.status == Status.PASSED}
    assert passed == {"forward KL lands on moment matching"}, [(r.check, r.failure) for r in results]
    assert sum(r.points for r in results) / 2 < 3
