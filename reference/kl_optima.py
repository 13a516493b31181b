"""Ground truth for Part A5: where a Gaussian fit to a two-mode mixture lands.

The target is the symmetric mixture ``p_m = ½ N(−m, 1) + ½ N(m, 1)`` and the
approximation a 1-D Gaussian ``q = N(loc, scale²)`` (seed 004 §1.2). Every
number here comes from deterministic trapezoidal quadrature on a dense grid in
``x`` (float64, torch only), so it is independent of the reparameterised
quadrature that :func:`reference.kl.fit_gaussian_to_mixture` descends on.

Numbers quoted in the model answers (reproduced by ``tests/reference``):

* m = 3, reverse KL(q‖p): two global minima at (±2.984, 1.023) with KL 0.689
  and a worse local minimum at the centre (0, 2.744) with KL 0.841;
* m = 2, reverse KL(q‖p): the centre (0, 2.047) is the only minimum;
* forward KL(p‖q): moment matching, (0, √(1 + m²)), for every m;
* the centre is a local minimum of KL(q‖p_m) for every m; two mode-seeking
  minima appear at m* ≈ 2.4123 (:func:`mode_seeking_onset`) and become the
  global ones above m ≈ 2.8001 (:func:`global_switch_separation`).

For any finite mixture ``Σ_k w_k N(μ_k, s_k²)`` (the targets the A5 checks draw),
:func:`mixture_reverse_kl_minimum` finds the local minimum of KL(q‖p) a descent
from a given start reaches, by the same quadrature and damped Newton steps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "GaussianFit",
    "mixture_log_density",
    "reverse_kl",
    "forward_kl",
    "forward_kl_minimum",
    "reverse_kl_local_minima",
    "centre_scale",
    "mode_seeking_onset",
    "global_switch_separation",
    "mixture_reverse_kl",
    "mixture_reverse_kl_minimum",
]

#: (loc, scale, m) ↦ a KL divergence, broadcasting over loc and scale.
KL = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]

_DTYPE = torch.float64
#: Trapezoid nodes per unit of the narrowest feature (q's scale, p's unit
#: components, and the width π / 2m of the branch points of log p off the real
#: axis); the trapezoid error decays like exp(−2π · this), far below 1e-12.
_NODES_PER_WIDTH = 8
#: Half-width of the integration window in units of the widest scale.
_TAIL = 10.0
#: Longest step the optimiser takes in (loc, log σ).
_MAX_STEP = 0.5


@dataclass(frozen=True)
class GaussianFit:
    """A stationary Gaussian ``q = N(loc, scale²)`` and its KL divergence to the mixture p_m.

    All three fields are Python floats: ``loc`` and ``scale > 0`` are q's
    parameters, ``kl`` is KL(q‖p_m) (reverse) or KL(p_m‖q) (forward),
    whichever objective the point is stationary for.
    """

    loc: float
    scale: float
    kl: float


def mixture_log_density(x: torch.Tensor, m: float) -> torch.Tensor:
    """log p_m(x) with ``p_m = ½ N(−m, 1) + ½ N(m, 1)``; ``x: (*S)`` → ``(*S)``.

    ``log p_m(x) = logsumexp(−½ (x + m)², −½ (x − m)²) − log 2 − ½ log 2π``,
    finite for every finite x (no density underflows to 0 first).
    """
    components = torch.stack([-0.5 * (x + m) ** 2, -0.5 * (x - m) ** 2])  # (2, *S)
    return torch.logsumexp(components, 0) - math.log(2.0) - 0.5 * math.log(2 * math.pi)


def _log_normal(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(x; loc, scale²), elementwise with broadcasting."""
    return -0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)


def _trapezoid_grid(loc: torch.Tensor, scale: torch.Tensor, m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``x: (X,)`` and weights ``h: (X,)`` covering q, p_m and their tails.

    The window is [min(−m − T, loc − T·scale), max(m + T, loc + T·scale)] with
    T = 10 and the spacing is 1/8 of min(scale, 1, π/2m).
    """
    loc, scale = loc.detach(), scale.detach()
    lo = min(-m - _TAIL, (loc - _TAIL * scale).min().item())
    hi = max(m + _TAIL, (loc + _TAIL * scale).max().item())
    width = min(scale.min().item(), 1.0, math.pi / (2 * max(m, 1e-12)))
    n = math.ceil((hi - lo) * _NODES_PER_WIDTH / width) + 1
    x = torch.linspace(lo, hi, n, dtype=_DTYPE)
    h = torch.full_like(x, (hi - lo) / (n - 1))
    h[0] = h[-1] = h[0] / 2
    return x, h


def _as_params(loc: float | torch.Tensor, scale: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loc = torch.as_tensor(loc, dtype=_DTYPE)
    scale = torch.as_tensor(scale, dtype=_DTYPE)
    return torch.broadcast_tensors(loc, scale)


def reverse_kl(loc: float | torch.Tensor, scale: float | torch.Tensor, m: float) -> torch.Tensor:
    """KL(q‖p_m) = ∫ q (log q − log p_m) dx by trapezoidal quadrature.

    Args:
        loc, scale: ``(*P)`` (tensors or floats, broadcast) parameters of q.
        m: half-separation of the mixture's modes.

    Returns:
        ``(*P)`` float64, differentiable w.r.t. ``loc`` and ``scale``.
    """
    loc, scale = _as_params(loc, scale)
    x, h = _trapezoid_grid(loc, scale, m)
    log_q = _log_normal(x, loc[..., None], scale[..., None])  # (*P, X)
    return (h * log_q.exp() * (log_q - mixture_log_density(x, m))).sum(-1)


def forward_kl(loc: float | torch.Tensor, scale: float | torch.Tensor, m: float) -> torch.Tensor:
    """KL(p_m‖q) = ∫ p_m (log p_m − log q) dx by trapezoidal quadrature.

    Args:
        loc, scale: ``(*P)`` (tensors or floats, broadcast) parameters of q = N(loc, scale²).
        m: half-separation of the mixture's modes.

    Returns:
        ``(*P)`` float64, differentiable w.r.t. ``loc`` and ``scale``; at m = 0
        it is KL(N(0, 1)‖q) = log scale + (1 + loc²) / 2 scale² − ½.
    """
    loc, scale = _as_params(loc, scale)
    x, h = _trapezoid_grid(loc, scale, m)
    log_p = mixture_log_density(x, m)
    log_q = _log_normal(x, loc[..., None], scale[..., None])  # (*P, X)
    return (h * log_p.exp() * (log_p - log_q)).sum(-1)


def _grad_and_hessian(kl: KL, theta: torch.Tensor, m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row gradient ``(P, 2)`` and Hessian ``(P, 2, 2)`` of kl over θ = (loc, log σ).

    The rows of ``theta: (P, 2)`` are independent, so the derivatives of the
    summed objective are the per-row ones.
    """
    theta = theta.detach().requires_grad_()
    value = kl(theta[:, 0], theta[:, 1].exp(), m).sum()
    (grad,) = torch.autograd.grad(value, theta, create_graph=True)
    rows = [torch.autograd.grad(grad[:, i].sum(), theta, retain_graph=True)[0] for i in range(2)]
    return grad.detach(), torch.stack(rows, 1)  # (P, 2), (P, 2, 2)


def _descent_direction(grad: torch.Tensor, hess: torch.Tensor) -> torch.Tensor:
    """Newton direction −H⁻¹g where H is positive definite, else −g; length ≤ ½."""
    newton = -torch.linalg.solve(hess, grad[..., None])[..., 0]
    convex = torch.linalg.eigvalsh(hess).min(-1).values > 0
    step = torch.where(convex[:, None], newton, -grad)  # (P, 2)
    length = step.norm(dim=-1, keepdim=True)
    return step * (_MAX_STEP / length.clamp_min(_MAX_STEP))


def _minimise(kl: KL, theta: torch.Tensor, m: float, iterations: int = 100) -> torch.Tensor:
    """Local minima of ``kl`` over θ = (loc, log σ), one per row of ``theta: (P, 2)``.

    Damped Newton with an Armijo backtracking line search per row. A row stops
    when its gradient is below 1e-12 or when 40 halvings of the step find no
    decrease that float64 resolves. Deterministic.
    """
    active = torch.ones(theta.shape[0], dtype=torch.bool)
    for _ in range(iterations):
        grad, hess = _grad_and_hessian(kl, theta, m)
        active &= grad.abs().max(-1).values > 1e-12
        if not active.any():
            break
        direction = _descent_direction(grad, hess) * active[:, None]
        value = kl(theta[:, 0], theta[:, 1].exp(), m).detach()
        slope = (grad * direction).sum(-1)  # (P,), ≤ 0
        step = torch.ones_like(value)
        for _ in range(40):
            trial = theta + step[:, None] * direction
            accepted = kl(trial[:, 0], trial[:, 1].exp(), m).detach() <= value + 1e-4 * step * slope
            if accepted.all():
                break
            step = torch.where(accepted, step, step / 2)
        active &= accepted
        theta = theta + (step * accepted)[:, None] * direction
    return theta


def _fits(kl: KL, theta: torch.Tensor, m: float) -> list[GaussianFit]:
    values = kl(theta[:, 0], theta[:, 1].exp(), m)
    return [GaussianFit(t[0].item(), t[1].exp().item(), v.item()) for t, v in zip(theta, values)]


def forward_kl_minimum(m: float) -> GaussianFit:
    """The minimiser of KL(p_m‖q) over q = N(loc, scale²), found numerically from (1, 1).

    Analytically it is moment matching, ``(loc, scale) = (E_p x, √Var_p x) = (0, √(1 + m²))``;
    the tests check that the quadrature agrees.

    Args:
        m: half-separation of the mixture's modes.

    Returns:
        a :class:`GaussianFit` (Python floats) with ``kl`` = KL(p_m‖q).
    """
    start = torch.tensor([[1.0, 0.0]], dtype=_DTYPE)
    return _fits(forward_kl, _minimise(forward_kl, start, m), m)[0]


def reverse_kl_local_minima(m: float, n_loc: int = 8, n_scale: int = 4) -> list[GaussianFit]:
    """Every local minimum of KL(q‖p_m) over (loc, scale), sorted by loc.

    Runs :func:`_minimise` from an ``n_loc × n_scale`` grid of starts (loc in
    [−m − 2, m + 2] with an even count, so no start sits on the symmetry axis;
    scale geometric in [1, m + 2]), keeps the end points whose gradient
    vanishes and whose Hessian is positive definite, and merges those within
    1e-6 of each other.

    Args:
        m: half-separation of the mixture's modes.
        n_loc, n_scale: the size of the grid of starts.

    Returns:
        a list of :class:`GaussianFit` (Python floats) with ``kl`` = KL(q‖p_m).
    """
    locs = torch.linspace(-m - 2, m + 2, 2 * (n_loc // 2), dtype=_DTYPE)
    log_scales = torch.linspace(0.0, math.log(m + 2), n_scale, dtype=_DTYPE)
    starts = torch.cartesian_prod(locs, log_scales)  # (n_loc · n_scale, 2)
    ends = _minimise(reverse_kl, starts, m)
    grad, hess = _grad_and_hessian(reverse_kl, ends, m)
    minimum = (grad.abs().max(-1).values < 1e-9) & (torch.linalg.eigvalsh(hess).min(-1).values > 0)
    minima: list[GaussianFit] = []
    for fit in _fits(reverse_kl, ends[minimum], m):
        if all(abs(fit.loc - f.loc) + abs(fit.scale - f.scale) > 1e-6 for f in minima):
            minima.append(fit)
    return sorted(minima, key=lambda f: f.loc)


def _optimal_scale(loc: torch.Tensor, m: float, iterations: int = 40) -> torch.Tensor:
    """argmin over scale of KL(N(loc, scale²)‖p_m) for each ``loc: (P,)``.

    Bisection on the sign of ∂KL/∂log σ = −1 + σ² E_q[−(log p_m)''] over
    σ ∈ [1, m + 2]: the derivative is negative below σ = 1 because
    −(log p_m)'' = 1 − m² sech²(m x) ≤ 1, and positive at σ = m + 2 because
    E_q[m² sech²(m x)] ≤ 2m / (σ√2π) (q's density is at most 1/(σ√2π) and
    m² sech²(m x) integrates to 2m).
    """
    lo = torch.full_like(loc, 0.0)
    hi = torch.full_like(loc, math.log(m + 2))
    for _ in range(iterations):
        mid = ((lo + hi) / 2).requires_grad_()
        (slope,) = torch.autograd.grad(reverse_kl(loc, mid.exp(), m).sum(), mid)
        rising = slope > 0
        hi = torch.where(rising, mid.detach(), hi)
        lo = torch.where(rising, lo, mid.detach())
    return ((lo + hi) / 2).exp()


def centre_scale(m: float) -> float:
    """Scale σ_c of the symmetric stationary point (0, σ_c) of KL(N(0, σ²)‖p_m).

    σ_c solves ∂KL/∂log σ = −1 + σ² E_{x ~ N(0, σ²)}[−(log p_m)''(x)] = 0, by
    bisection over log σ in [0, log(m + 2)]; returns it as a Python float.
    """
    return _optimal_scale(torch.zeros(1, dtype=_DTYPE), m).item()


def _min_profile_slope(m: float, n_loc: int = 400) -> float:
    """min over loc ∈ (0, m + 1] of d/dloc min_σ KL(N(loc, σ²)‖p_m).

    By the envelope theorem the profile's slope is ∂KL/∂loc at σ*(loc). The
    profile tends to +∞, so it has a local minimum off the centre exactly when
    this slope is negative somewhere.
    """
    loc = torch.linspace(0, m + 1, n_loc + 1, dtype=_DTYPE)[1:].requires_grad_()
    scale = _optimal_scale(loc.detach(), m)
    (slope,) = torch.autograd.grad(reverse_kl(loc, scale, m).sum(), loc)
    return slope.min().item()


def _bisect(sign_change: Callable[[float], float], lo: float, hi: float, tol: float) -> float:
    """Root of ``sign_change(m) > 0`` ↔ ``m < root`` on [lo, hi], to ``tol``."""
    if not (sign_change(lo) > 0 > sign_change(hi)):
        raise ValueError(f"[{lo}, {hi}] does not bracket a sign change")
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sign_change(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@functools.cache  # a pure function of its floats, and seconds of quadrature
def mode_seeking_onset(lo: float = 2.0, hi: float = 3.0, tol: float = 1e-5) -> float:
    """m*: the half-separation above which KL(q‖p_m) has off-centre minima.

    Criterion: the smallest m at which the profile
    loc ↦ min_σ KL(N(loc, σ²)‖p_m) stops being increasing on loc > 0, found
    by bisection on the sign of :func:`_min_profile_slope`. Below m* the
    centre is the only optimum; above it two mirror-image mode-seeking minima
    appear together with a saddle between each and the centre (a saddle-node
    bifurcation), and the centre stays a local minimum.

    The centre is a local minimum for every m, so the sign of its curvature in
    loc cannot serve as the criterion: by reparameterisation
    ∂²KL/∂loc² = E_q[−(log p_m)''] at loc = 0, and stationarity in log σ
    makes σ_c² E_q[−(log p_m)''] = 1, so the curvature is 1/σ_c² > 0.

    Args:
        lo, hi: a bracket of m* (the sign of the slope must change inside).
        tol: the bisection's final bracket width.

    Returns:
        m* as a Python float (≈ 2.4123).
    """
    return _bisect(_min_profile_slope, lo, hi, tol)


def _mode_minus_centre_kl(m: float) -> float:
    """KL(q‖p_m) at the mode-seeking minimum minus KL at the centre (0, σ_c).

    The mode-seeking minimum is the one :func:`_minimise` reaches from (m, 1),
    which is in its basin whenever m > m* (:func:`mode_seeking_onset`).
    """
    mode = _fits(reverse_kl, _minimise(reverse_kl, torch.tensor([[m, 0.0]], dtype=_DTYPE), m), m)[0]
    return mode.kl - reverse_kl(0.0, centre_scale(m), m).item()


@functools.cache
def global_switch_separation(lo: float = 2.5, hi: float = 3.0, tol: float = 1e-6) -> float:
    """The half-separation above which the mode-seeking minima are the global ones.

    Criterion: bisection on the sign of :func:`_mode_minus_centre_kl`. Between
    :func:`mode_seeking_onset` and this value the centre is the global minimum
    and the two mode-seeking minima are worse local ones; above it the order
    is reversed, as at m = 3.

    Args:
        lo, hi: a bracket of the switch (the KL difference must change sign inside).
        tol: the bisection's final bracket width.

    Returns:
        the half-separation as a Python float (≈ 2.8001).
    """
    return _bisect(_mode_minus_centre_kl, lo, hi, tol)


def _mixture_log_density(x: torch.Tensor, weights: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """log Σ_k w_k N(x; μ_k, s_k²) for ``x: (*S)`` → ``(*S)`` (1-D tensors of K weights, locs, scales)."""
    return torch.logsumexp(torch.log(weights) + _log_normal(x[..., None], locs, scales), -1)


def mixture_reverse_kl(loc: float | torch.Tensor, scale: float | torch.Tensor, weights: tuple[float, ...],
                       locs: tuple[float, ...], scales: tuple[float, ...]) -> torch.Tensor:
    """KL(q‖p) for p = Σ_k w_k N(μ_k, s_k²) (weights summing to 1), by trapezoidal quadrature.

    The window covers q and every component by 10 of its scales; the spacing is 1/8 of the
    narrowest of q's scale, the components' scales and π / span (span = max μ − min μ: the
    width π / 2m of p_m's branch points, for a general mixture).

    Returns:
        ``(*P)`` float64 for ``loc, scale: (*P)``, differentiable w.r.t. both.
    """
    loc, scale = _as_params(loc, scale)
    w, mu, s = (torch.tensor(v, dtype=_DTYPE) for v in (weights, locs, scales))
    lo = min((mu - _TAIL * s).min().item(), (loc.detach() - _TAIL * scale.detach()).min().item())
    hi = max((mu + _TAIL * s).max().item(), (loc.detach() + _TAIL * scale.detach()).max().item())
    width = min(scale.detach().min().item(), s.min().item(), math.pi / max((mu.max() - mu.min()).item(), 1e-12))
    n = math.ceil((hi - lo) * _NODES_PER_WIDTH / width) + 1
    x = torch.linspace(lo, hi, n, dtype=_DTYPE)
    h = torch.full_like(x, (hi - lo) / (n - 1))
    h[0] = h[-1] = h[0] / 2
    log_q = _log_normal(x, loc[..., None], scale[..., None])  # (*P, X)
    return (h * log_q.exp() * (log_q - _mixture_log_density(x, w, mu, s))).sum(-1)


def mixture_reverse_kl_minimum(weights: tuple[float, ...], locs: tuple[float, ...], scales: tuple[float, ...],
                               start: tuple[float, float]) -> GaussianFit:
    """The local minimum of KL(q‖p), p = Σ_k w_k N(μ_k, s_k²), that damped Newton reaches from ``start``.

    Args:
        weights, locs, scales: the mixture's K components (weights summing to 1).
        start: ``(loc, scale)`` of q to descend from.

    Returns:
        a :class:`GaussianFit` (Python floats) with ``kl`` = KL(q‖p); its gradient is below 1e-9
        and its Hessian positive definite, or ``ValueError``.
    """
    def kl(loc: torch.Tensor, scale: torch.Tensor, _m: float) -> torch.Tensor:
        return mixture_reverse_kl(loc, scale, weights, locs, scales)

    theta = torch.tensor([[start[0], math.log(start[1])]], dtype=_DTYPE)
    end = _minimise(kl, theta, 0.0)
    grad, hess = _grad_and_hessian(kl, end, 0.0)
    if not (grad.abs().max().item() < 1e-9 and torch.linalg.eigvalsh(hess).min().item() > 0):
        raise ValueError(f"no minimum reached from {start}")
    return _fits(kl, end, 0.0)[0]
