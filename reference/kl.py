"""Part A — which KL can be minimised, and how (seed 004 §1).

Forward KL(p‖q) needs samples of p and the density of q; reverse KL(q‖p)
needs samples of q and a (possibly unnormalised) density of p. The losses
below are the Monte-Carlo objectives of each scenario; the fit shows the
mode-covering and mode-seeking solutions of §1.2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.distributions import Categorical, Distribution, MixtureSameFamily, Normal

__all__ = [
    "KL_SCENARIOS",
    "forward_kl_loss",
    "reverse_kl_loss",
    "forward_kl_loss_is",
    "fit_gaussian_to_mixture",
]

#: Seed 004 §1.1: scenario → A (reverse only), B (forward only), C (both), D (neither).
#: 1: both densities and samplers → both. 2: samples of p and the density of q
#: → forward only, as the cross-entropy −E_p[log q]. 3: unnormalised p,
#: sampler and density of q → both: reverse by reparameterisation (log Z is a
#: constant), forward by self-normalised importance sampling.
KL_SCENARIOS: dict[int, str] = {1: "C", 2: "B", 3: "C"}

Objective = Callable[[torch.Tensor], torch.Tensor]

_DIRECTIONS = ("forward", "reverse")
#: Reparameterised quadrature for E_{t ~ N(0, 1)}[f(t)]: trapezoid nodes on
#: [−10, 10] with spacing 0.01. For log-densities of Normal mixtures the KL is
#: accurate to ~1e-11 while every component scale exceeds q's scale / 25
#: (~1e-4 at q's scale / 100).
_QUADRATURE_NODES = 2001
_QUADRATURE_HALF_WIDTH = 10.0
#: Gradient descent: longest and shortest step in (loc, log scale), Armijo
#: constant, stopping gradient norm and iteration budget.
_MAX_STEP = 0.5
_MIN_MOVE = 1e-12
_ARMIJO = 1e-4
_GRAD_TOL = 1e-8
_MAX_ITERATIONS = 5000


def forward_kl_loss(q: Distribution, x_p: torch.Tensor) -> torch.Tensor:
    """Monte-Carlo cross-entropy H(p, q) ≈ −(1/N) Σ_i log q(x_i), x_i ~ p.

    KL(p‖q) = H(p, q) − H(p) and H(p) does not depend on q, so this is the
    forward-KL loss of scenario 2 up to a constant (seed 004 §1.1).

    Args:
        q: the model distribution with batch shape ``(*B)``, differentiable in
            its parameters.
        x_p: ``(N, *E)`` samples of p, ``E = q.event_shape``.

    Returns:
        A scalar in q's dtype, the mean over N and ``(*B)``.
    """
    x = x_p.reshape(x_p.shape[:1] + (1,) * len(q.batch_shape) + x_p.shape[1:])  # (N, 1…, *E)
    return -q.log_prob(x).mean()


def reverse_kl_loss(
    q: Distribution, log_p_tilde: Callable[[torch.Tensor], torch.Tensor], n_samples: int
) -> torch.Tensor:
    """Reparameterised reverse-KL loss (1/S) Σ_s [log q(x_s) − log p̃(x_s)].

    With ``x_s = q.rsample()`` and p̃ = Z p the value estimates
    KL(q‖p) − log Z; Z does not depend on q, so the gradient estimates
    ∇ KL(q‖p) (seed 004 §1.1, scenario 3). ``rsample`` is what carries the
    gradient: with ``sample`` the expected gradient would be zero.

    Args:
        q: a reparameterisable distribution with batch shape ``()``.
        log_p_tilde: ``(S, *E)`` → ``(S,)``, an unnormalised log-density of p.
        n_samples: S.

    Returns:
        A scalar in q's dtype.
    """
    x = q.rsample((n_samples,))  # (S, *E)
    return (q.log_prob(x) - log_p_tilde(x)).mean()


def forward_kl_loss_is(
    q: Distribution, log_p_tilde: Callable[[torch.Tensor], torch.Tensor], n_samples: int
) -> torch.Tensor:
    """Self-normalised importance-sampling cross-entropy −Σ_s w_s log q(x_s).

    ``x_s ~ q`` without gradient and ``w = softmax(log p̃(x) − log q(x))``
    held constant. The value estimates H(p, q) = −E_p[log q] and the gradient
    estimates ∇ H(p, q) = ∇ KL(p‖q), both consistently (bias O(1/S)); Z
    cancels in the normalisation (seed 004 §1.1, scenario 3).

    Args:
        q: the proposal and model distribution, batch shape ``()``.
        log_p_tilde: ``(S, *E)`` → ``(S,)``, an unnormalised log-density of p.
        n_samples: S.

    Returns:
        A scalar in q's dtype.
    """
    with torch.no_grad():
        x = q.sample((n_samples,))  # (S, *E)
        weights = torch.softmax(log_p_tilde(x) - q.log_prob(x), dim=0)  # (S,)
    return -(weights * q.log_prob(x)).sum()


def fit_gaussian_to_mixture(
    p: MixtureSameFamily, direction: str, init_loc: float, init_scale: float
) -> tuple[float, float]:
    """Fit q = N(loc, scale²) to a 1-D Normal mixture p by gradient descent.

    ``direction="forward"`` minimises KL(p‖q) through the exact cross-entropy
    H(p, q) = Σ_k π_k [log σ + ½ log 2π + ((μ_k − loc)² + s_k²) / 2σ²], whose
    minimiser is moment matching. ``direction="reverse"`` minimises
    KL(q‖p) = −½ log(2πe σ²) − E_{t ~ N(0,1)}[log p(loc + σ t)], the
    expectation by fixed trapezoid nodes in t (reparameterised quadrature),
    which is mode-seeking: it lands in the basin of the start (seed 004 §1.2).

    Descent runs on (loc, log σ) in float64 with an Armijo line search and
    steps no longer than 0.5, so it follows the gradient from the start; it is
    deterministic and draws no random numbers.

    Args:
        p: ``MixtureSameFamily`` of K ``Normal`` components, batch and event
            shapes ``()``.
        direction: ``"forward"`` or ``"reverse"``.
        init_loc, init_scale: the start, ``init_scale > 0``.

    Returns:
        ``(loc, scale)`` as Python floats.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
    if not init_scale > 0:
        raise ValueError(f"init_scale must be positive, got {init_scale!r}")
    p = _as_float64_normal_mixture(p)
    objective = _cross_entropy(p) if direction == "forward" else _reverse_kl(p)
    theta = torch.tensor([init_loc, math.log(init_scale)], dtype=torch.float64)
    loc, log_scale = _gradient_descent(objective, theta).tolist()
    return loc, math.exp(log_scale)


def _as_float64_normal_mixture(p: MixtureSameFamily) -> MixtureSameFamily:
    """A detached float64 copy of a 1-D mixture of Normals, validated."""
    if not (isinstance(p, MixtureSameFamily) and isinstance(p.component_distribution, Normal)):
        raise TypeError(f"p must be a MixtureSameFamily of Normal components, got {p!r}")
    if p.batch_shape != () or p.event_shape != ():
        raise ValueError(
            f"p must be 1-D with batch_shape () and event_shape (), got {tuple(p.batch_shape)} and {tuple(p.event_shape)}"
        )
    components = p.component_distribution
    return MixtureSameFamily(
        Categorical(probs=p.mixture_distribution.probs.detach().double()),
        Normal(components.loc.detach().double(), components.scale.detach().double()),
    )


def _cross_entropy(p: MixtureSameFamily) -> Objective:
    """θ = (loc, log σ) ↦ H(p, N(loc, σ²)) in closed form."""
    weights = p.mixture_distribution.probs
    locs, scales = p.component_distribution.loc, p.component_distribution.scale

    def objective(theta: torch.Tensor) -> torch.Tensor:
        loc, log_scale = theta
        second_moment = (locs - loc) ** 2 + scales**2  # (K,) E_k[(x − loc)²]
        per_component = log_scale + 0.5 * math.log(2 * math.pi) + second_moment / (2 * torch.exp(2 * log_scale))
        return (weights * per_component).sum()

    return objective


def _standard_normal_nodes() -> tuple[torch.Tensor, torch.Tensor]:
    """Trapezoid nodes ``t: (T,)`` and weights ``w: (T,)`` with Σ w f(t) ≈ E f(t), t ~ N(0, 1)."""
    t = torch.linspace(-_QUADRATURE_HALF_WIDTH, _QUADRATURE_HALF_WIDTH, _QUADRATURE_NODES, dtype=torch.float64)
    w = torch.softmax(-0.5 * t**2, dim=0)
    return t, w


def _reverse_kl(p: MixtureSameFamily) -> Objective:
    """θ = (loc, log σ) ↦ KL(N(loc, σ²)‖p) = −H(q) − E_q[log p], reparameterised."""
    t, w = _standard_normal_nodes()

    def objective(theta: torch.Tensor) -> torch.Tensor:
        loc, log_scale = theta
        entropy = log_scale + 0.5 * math.log(2 * math.pi * math.e)
        return -entropy - (w * p.log_prob(loc + torch.exp(log_scale) * t)).sum()

    return objective


def _gradient_descent(objective: Objective, theta: torch.Tensor) -> torch.Tensor:
    """Minimise ``objective`` from ``theta: (2,)`` by steepest descent with Armijo backtracking.

    Stops when the gradient norm is below 1e-8 or when no step longer than
    1e-12 still gives a decrease that float64 can resolve.
    """
    step = 1.0
    for _ in range(_MAX_ITERATIONS):
        value, grad = _value_and_grad(objective, theta)
        norm = grad.norm().item()
        if norm < _GRAD_TOL:
            break
        step = min(2 * step, _MAX_STEP / norm)
        while objective(theta - step * grad) > value - _ARMIJO * step * norm**2:
            step /= 2
            if step * norm < _MIN_MOVE:
                return theta
        theta = theta - step * grad
    return theta


def _value_and_grad(objective: Objective, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    theta = theta.detach().requires_grad_()
    value = objective(theta)
    (grad,) = torch.autograd.grad(value, theta)
    return value.detach(), grad
