"""reference.kl_optima against scipy quadrature, closed forms and the quoted numbers.

These are the numbers the model answers of seed 004 §1.2 quote, and the
trap they correct: the seed says reverse KL has "no global minimum".
"""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from reference import kl_optima

# ---------------------------------------------------------------- quadrature


def _scipy_kl(loc: float, scale: float, m: float, direction: str) -> float:
    """KL between q = N(loc, scale²) and ½N(−m,1)+½N(m,1) by adaptive scipy quadrature."""

    def log_p(x):
        return float(np.logaddexp(norm.logpdf(x, -m, 1), norm.logpdf(x, m, 1))) - math.log(2)

    def integrand(x):
        lq, lp = norm.logpdf(x, loc, scale), log_p(x)
        return math.exp(lq) * (lq - lp) if direction == "reverse" else math.exp(lp) * (lp - lq)

    # Split at the modes and at q's centre so quad sees the mass.
    points = sorted({-m, m, loc})
    edges = [-math.inf, *points, math.inf]
    return sum(integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-12, limit=200)[0] for a, b in zip(edges, edges[1:]))


POINTS = [(2.984, 1.023, 3.0), (0.0, 2.744, 3.0), (1.0, 0.5, 2.0), (-4.0, 4.0, 1.0), (0.3, 1.7, 5.0)]


@pytest.mark.parametrize("loc, scale, m", POINTS)
@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_trapezoid_kl_matches_scipy_quad(loc, scale, m, direction):
    kl = kl_optima.reverse_kl if direction == "reverse" else kl_optima.forward_kl
    expected = _scipy_kl(loc, scale, m, direction)
    assert kl(loc, scale, m).item() == pytest.approx(expected, abs=1e-10, rel=1e-10)


@pytest.mark.parametrize("loc, scale", [(0.0, 1.0), (1.5, 0.5), (-2.0, 3.0)])
def test_m_zero_is_kl_between_gaussians(loc, scale):
    # p_0 = N(0, 1): KL(N(a, s²)‖N(0, 1)) = ½(s² + a² − 1) − log s and
    # KL(N(0, 1)‖N(a, s²)) = log s + (1 + a²) / (2 s²) − ½.
    reverse = 0.5 * (scale**2 + loc**2 - 1) - math.log(scale)
    forward = math.log(scale) + (1 + loc**2) / (2 * scale**2) - 0.5
    assert kl_optima.reverse_kl(loc, scale, 0.0).item() == pytest.approx(reverse, abs=1e-12)
    assert kl_optima.forward_kl(loc, scale, 0.0).item() == pytest.approx(forward, abs=1e-12)


def test_kl_broadcasts_and_is_differentiable():
    loc = torch.tensor([[0.0], [1.0]], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    kl = kl_optima.reverse_kl(loc, scale, 3.0)
    assert kl.shape == (2, 3)
    (grad,) = torch.autograd.grad(kl.sum(), loc)
    assert grad.shape == (2, 1) and torch.isfinite(grad).all()


# ---------------------------------------------------------------- optima


@pytest.fixture(scope="module")
def minima_m3():
    return kl_optima.reverse_kl_local_minima(3.0)


@pytest.mark.parametrize("m", [0.5, 2.0, 3.0])
def test_forward_kl_minimum_is_moment_matching(m):
    fit = kl_optima.forward_kl_minimum(m)
    assert fit.loc == pytest.approx(0.0, abs=1e-8)
    assert fit.scale == pytest.approx(math.sqrt(1 + m**2), abs=1e-8)


def test_reverse_kl_m3_has_two_global_mode_minima_and_a_worse_centre(minima_m3):
    # Seed 004 §1.2 A claims "no global minimum"; quadrature says both
    # mode-seeking minima are global (equal KL) and the centre is worse.
    left, centre, right = minima_m3
    assert (right.loc, right.scale, right.kl) == pytest.approx((2.984, 1.023, 0.689), abs=5e-4)
    assert (centre.loc, centre.scale, centre.kl) == pytest.approx((0.0, 2.744, 0.841), abs=5e-4)
    assert (left.loc, left.scale) == pytest.approx((-right.loc, right.scale), abs=1e-9)
    assert left.kl == pytest.approx(right.kl, abs=1e-12)
    assert centre.kl - right.kl > 0.15


def test_reverse_kl_m2_has_only_the_centre():
    (centre,) = kl_optima.reverse_kl_local_minima(2.0)
    assert (centre.loc, centre.scale) == pytest.approx((0.0, 2.047), abs=5e-4)
    assert centre.scale == pytest.approx(kl_optima.centre_scale(2.0), abs=1e-8)


@pytest.mark.parametrize("m", [1.0, 2.0, 3.0, 6.0])
def test_centre_curvature_in_loc_is_inverse_scale_squared(m):
    # Documented in mode_seeking_onset: the centre is a local minimum for
    # every m because ∂²KL/∂loc² = 1/σ_c² there.
    scale = kl_optima.centre_scale(m)
    loc = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(kl_optima.reverse_kl(loc, scale, m), loc, create_graph=True)
    (curvature,) = torch.autograd.grad(slope, loc)
    assert curvature.item() == pytest.approx(1 / scale**2, rel=1e-6)


@pytest.mark.parametrize("m", [2.0, 2.4, 3.0])
def test_kl_is_unimodal_in_scale_for_fixed_loc(m):
    # The profile criterion of mode_seeking_onset assumes one optimal scale
    # per loc; check on a dense grid that KL along scale falls then rises.
    loc = torch.linspace(0.0, m + 1, 23, dtype=torch.float64)[:, None]
    scale = torch.linspace(0.5, m + 4, 200, dtype=torch.float64)
    rises = kl_optima.reverse_kl(loc, scale, m).diff(dim=-1) > 0  # (loc, scale − 1)
    assert (rises.long().diff(dim=-1) >= 0).all(), "KL along scale changes from rising to falling"


@pytest.fixture(scope="module")
def onset():
    return kl_optima.mode_seeking_onset()


def test_mode_seeking_onset_value(onset):
    assert onset == pytest.approx(2.4123, abs=2e-4)


@pytest.mark.parametrize("offset, n_minima", [(-0.01, 1), (0.01, 3)])
def test_mode_seeking_onset_separates_one_from_three_minima(onset, offset, n_minima):
    assert len(kl_optima.reverse_kl_local_minima(onset + offset)) == n_minima


@pytest.mark.slow
@pytest.mark.parametrize("offset", [-0.02, 0.02])
def test_global_switch_orders_centre_and_modes(offset):
    switch = kl_optima.global_switch_separation()
    assert switch == pytest.approx(2.8001, abs=2e-4)
    left, centre, right = kl_optima.reverse_kl_local_minima(switch + offset)
    assert (right.kl < centre.kl) == (offset > 0)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("m", [0.0, 2.0, 3.0])
@pytest.mark.parametrize("kl", [kl_optima.reverse_kl, kl_optima.forward_kl], ids=["reverse", "forward"])
def test_kl_gradcheck(kl, m):
    # The quadrature grid is placed from detached (loc, scale); it moves with the finite-difference
    # step, but the trapezoid error (< 1e-12) is far below gradcheck's tolerance.
    loc = torch.tensor([-1.0, 0.5, 2.9], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([0.8, 2.0, 1.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: kl(a, s, m), (loc, scale))


def test_mixture_log_density_gradcheck_and_closed_form():
    x = torch.tensor([-40.0, -3.0, -0.2, 0.0, 1.5, 3.0, 40.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: kl_optima.mixture_log_density(x, 3.0), (x,))
    expected = np.logaddexp(norm.logpdf(x.detach().numpy(), -3, 1), norm.logpdf(x.detach().numpy(), 3, 1)) - math.log(2)
    torch.testing.assert_close(kl_optima.mixture_log_density(x.detach(), 3.0), torch.from_numpy(expected))


# ---------------------------------------------------------------- the README's table

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(
    r"^\| ½N\(−(?P<m>[\d.]+),1\)\+½N\([\d.]+,1\) \| (?P<dir>forward|reverse) KL[^|]*\| "
    r"\((?P<loc>±?[\d.]+), (?:√(?P<root>\d+) ≈ )?(?P<scale>[\d.]+)\)(?P<words>[^|]*)\| (?P<kl>[\d.]+) \|$"
)


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Reference solutions")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def _assert_quoted(quoted: str, value: float, what: str) -> None:
    """``quoted`` is ``value`` rounded to the digits it shows (half a unit of the last digit)."""
    decimals = len(quoted.partition(".")[2])
    message = f"README quotes {what} = {quoted}, computed {value!r}"
    assert abs(value - float(quoted)) <= 0.5 * 10**-decimals + 1e-12, message


def test_readme_table_matches_kl_optima(onset):
    """Every number of the README's Part A table (and m*, the switch) is kl_optima's, to the digits quoted."""
    section = _readme_section()
    rows = [match for line in section.splitlines() if (match := _ROW.match(line.strip()))]
    assert len(rows) == 5, f"expected the 5 rows of the optima table, parsed {len(rows)}"
    covered: dict[float, set[int]] = {}
    for row in rows:
        m, what = float(row["m"]), f"{row['dir']} KL, m = {row['m']}"
        if row["dir"] == "forward":
            fits = [kl_optima.forward_kl_minimum(m)]
        else:
            minima = kl_optima.reverse_kl_local_minima(m)
            wanted = [i for i, f in enumerate(minima) if (abs(f.loc) < 1e-6) == (row["loc"] == "0")]
            covered.setdefault(m, set()).update(wanted)
            fits = [minima[i] for i in wanted]
            best = min(f.kl for f in minima)
            if "global" in row["words"]:
                assert all(f.kl == pytest.approx(best, abs=1e-12) for f in fits), what
            if "worse" in row["words"]:
                assert all(f.kl > best + 1e-3 for f in fits), what
            if "only" in row["words"]:
                assert len(minima) == 1, what
        assert fits and len(fits) == (2 if row["loc"].startswith("±") else 1), f"{what}: minima {fits}"
        for fit in fits:
            if row["loc"] == "0":
                assert abs(fit.loc) < 1e-6, f"{what}: loc {fit.loc}"
            else:
                _assert_quoted(row["loc"].lstrip("±"), abs(fit.loc), f"{what} |loc|")
            _assert_quoted(row["scale"], fit.scale, f"{what} scale")
            if row["root"]:
                assert fit.scale == pytest.approx(math.sqrt(int(row["root"])), abs=1e-6), what
            _assert_quoted(row["kl"], fit.kl, f"{what} KL")
    for m, indices in covered.items():  # no reverse minimum is left out of the table
        assert indices == set(range(len(kl_optima.reverse_kl_local_minima(m)))), f"m = {m}: rows cover {indices}"
    _assert_quoted(re.search(r"m\* ≈ ([\d.]+)", section)[1], onset, "m*")
    _assert_quoted(re.search(r"above m ≈ ([\d.]+)", section)[1], kl_optima.global_switch_separation(), "the switch")
