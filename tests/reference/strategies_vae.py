"""A closed-form VAE and hypothesis strategies for the Part E (seed 000) reference tests.

The linear-Gaussian model ``z ~ N(0, I_J)``, ``x | z ~ N(W z + b, s² I_D)``
has ``log p(x) = log N(x; b, W Wᵀ + s² I)`` and a Gaussian posterior. With
``W = Q diag(d)`` and orthonormal columns ``Qᵀ Q = I`` the posterior is
diagonal, so an encoder of the contract's form can be exact:

    p(z | x) = N(m, diag v),   v_j = s² / (s² + d_j²),   m_j = d_j (Qᵀ(x − b))_j / (s² + d_j²).

Every estimator of Part E then has a closed-form target, and the moments of
its importance weights are Gaussian integrals (:meth:`LinearGaussian.weight_moment`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal

from tests.strategies import small_tensors

F64 = torch.float64
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class LinearGaussian:
    """``z ~ N(0, I_J)``, ``x | z ~ N(Q diag(d) z + b, s² I_D)`` with ``Qᵀ Q = I_J``; tensors in float64."""

    Q: torch.Tensor  # (D, J), orthonormal columns
    d: torch.Tensor  # (J,), positive
    b: torch.Tensor  # (D,)
    s: float

    @classmethod
    def random(cls, J: int, D: int, d: float | torch.Tensor = 2.0, s: float = 1.0, seed: int = 0) -> LinearGaussian:
        """A model with Q from the QR factorisation of a seeded Gaussian ``(D, J)`` matrix (D ≥ J)."""
        g = torch.Generator().manual_seed(seed)
        Q, _ = torch.linalg.qr(torch.randn(D, J, generator=g, dtype=F64))
        d = torch.as_tensor(d, dtype=F64).expand(J).clone()
        return cls(Q=Q, d=d, b=torch.randn(D, generator=g, dtype=F64), s=float(s))

    @property
    def J(self) -> int:
        return self.Q.shape[1]

    @property
    def D(self) -> int:
        return self.Q.shape[0]

    @property
    def W(self) -> torch.Tensor:
        return self.Q * self.d  # (D, J)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; W z + b, s² I): ``x (B, D)``, ``z (S, B, J)`` → ``(S, B)``, in z's dtype."""
        W, b = self.W.to(z.dtype), self.b.to(z.dtype)
        resid = x.to(z.dtype) - b - z @ W.T  # (S, B, D)
        return -0.5 * (resid.square().sum(-1) / self.s**2 + self.D * math.log(2 * math.pi * self.s**2))

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log N(x; b, W Wᵀ + s² I) by ``torch.distributions``: ``(B, D)`` → ``(B,)``."""
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.D, dtype=F64)
        return MultivariateNormal(self.b, cov).log_prob(x.to(F64))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the exact posterior p(z | x): ``(B, D)`` → ``(B, J)``, ``(B, J)``."""
        denom = self.s**2 + self.d.square()
        m = (x.to(F64) - self.b) @ self.Q * self.d / denom
        return m, torch.log(self.s**2 / denom).expand_as(m)

    def x_with_posterior_mean(self, m: torch.Tensor) -> torch.Tensor:
        """The x (on the span of W plus b) whose posterior mean is ``m``: ``(B, J)`` → ``(B, D)``."""
        return self.b + (m * (self.s**2 + self.d.square()) / self.d) @ self.Q.T

    def log_px_given_z_moments(self, x, mu, logvar) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of log p(x | z) under z ~ N(mu, diag exp logvar): ``(B,)``, ``(B,)``.

        With r = x − b − W mu, a = Qᵀ r, c = d σ and z = mu + σ ε:
        ``‖x − b − W z‖² = ‖r − Q a‖² + Σ_j (a_j − c_j ε_j)²``,
        whose mean is ``‖r‖² + Σ c²`` and variance ``Σ (4 a² c² + 2 c⁴)``.
        """
        r = x.to(F64) - self.b - mu @ self.W.T  # (B, D)
        a, c2 = r @ self.Q, self.d.square() * logvar.exp()  # (B, J)
        mean = -0.5 * ((r.square().sum(-1) + c2.sum(-1)) / self.s**2 + self.D * math.log(2 * math.pi * self.s**2))
        var = (4 * a.square() * c2 + 2 * c2.square()).sum(-1) / (4 * self.s**4)
        return mean, var

    def exact_elbo(self, x, mu, logvar) -> torch.Tensor:
        """E_q log p(x | z) − KL(q ‖ N(0, I)) in closed form, q = N(mu, diag exp logvar): ``(B,)``."""
        kl = 0.5 * (logvar.exp() + mu.square() - 1 - logvar).sum(-1)
        return self.log_px_given_z_moments(x, mu, logvar)[0] - kl

    def weight_moment(self, x, mu, logvar, n: int) -> torch.Tensor:
        """E_q[w^n] of the normalised weight w = p(x, z) / (q(z) p(x)) = p(z | x) / q(z): ``(B,)``.

        ``∫ p(z|x)ⁿ / q(z)ⁿ⁻¹ dz`` factorises over j into 1-D Gaussian integrals;
        finite when ``n / v_j > (n − 1) / σ_j²``. The naive estimator is q = N(0, I).
        """
        m, log_v = self.posterior(x)
        v, var = log_v.exp(), logvar.exp()
        prec = n / v - (n - 1) / var
        lin = n * m / v - (n - 1) * mu / var
        const = n * m.square() / v - (n - 1) * mu.square() / var
        log_int = (
            0.5 * lin.square() / prec
            - 0.5 * const
            + 0.5 * torch.log(2 * math.pi / prec)
            - 0.5 * n * torch.log(2 * math.pi * v)
            + 0.5 * (n - 1) * torch.log(2 * math.pi * var)
        )
        return log_int.sum(-1).exp()


@st.composite
def linear_gaussian_models(draw, max_j: int = 3, max_extra_d: int = 2) -> LinearGaussian:
    """Small models: J ≤ max_j, D − J ≤ max_extra_d, d ∈ {0.5, …, 3}, s ∈ {0.5, 1, 2}."""
    J = draw(st.integers(1, max_j))
    D = J + draw(st.integers(0, max_extra_d))
    d = draw(small_tensors((J,), 1, 6, dtype=F64)) / 2
    s = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return LinearGaussian.random(J, D, d=d, s=s, seed=draw(st.integers(0, 2**16)))


@st.composite
def gaussian_params(draw, batch: int, j: int, dtype=F64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)``, each ``(batch, j)``: means in [−3, 3], log-variances in [−2, 2] (halves)."""
    return draw(small_tensors((batch, j), -3, 3, dtype=dtype)), draw(small_tensors((batch, j), -2, 2, dtype=dtype))


@st.composite
def categorical_images(draw, b: int, k: int, h: int, w: int) -> torch.Tensor:
    """A long ``(b, h, w)`` tensor with values in ``[0, k)``."""
    vals = draw(st.lists(st.integers(0, k - 1), min_size=b * h * w, max_size=b * h * w))
    return torch.tensor(vals, dtype=torch.long).reshape(b, h, w)
