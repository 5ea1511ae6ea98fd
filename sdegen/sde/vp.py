"""Variance-preserving SDEs: dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW (Song et al. 2021, eq. 11).

The noise-rate form every VP schedule shares (:class:`NoiseRate`, :class:`VariancePreserving`) and
the linear schedule of VP and sub-VP (:class:`LinearBetaSchedule`, :class:`VPSDE`)."""

from __future__ import annotations

import abc
from typing import NamedTuple

import torch
from torch import Tensor

from sdegen._checks import check_real, check_steps
from sdegen.sde.base import LinearSDE

__all__ = ["VPSDE", "DDPMSchedule", "NoiseRate", "VariancePreserving", "LinearBetaSchedule"]


class DDPMSchedule(NamedTuple):
    """The discrete DDPM chain x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z (Ho et al. 2020).

    ``t[i] = i T / (N - 1)`` is the continuous time of step ``i``; ``alphas_cumprod[i]`` is
    prod_{j <= i} (1 - beta_j).
    """

    t: Tensor
    betas: Tensor
    alphas: Tensor
    alphas_cumprod: Tensor


class NoiseRate(LinearSDE):
    """A linear SDE written by its noise rate beta(t) = -2 d/dt log alpha(t), i.e.
    alpha(t) = exp(-1/2 int_0^t beta): the drift is f(t, x) = a(t) x with a(t) = -beta(t) / 2.

    VP and sub-VP (Song et al. 2021, eq. 11 and 12), the cosine and the discrete VP schedules are of
    this form; each gives ``beta``, and its prior is N(0, I).
    """

    @abc.abstractmethod
    def beta(self, t: Tensor) -> Tensor:
        """The noise rate beta(t) = -2 d/dt log alpha(t), elementwise in ``t``."""

    def drift_coefficient(self, t: Tensor) -> Tensor:
        return -0.5 * self.beta(t)

    @property
    def prior_std(self) -> float:
        return 1.0


class VariancePreserving(NoiseRate):
    """A noise-rate SDE that preserves variance, alpha(t)^2 + sigma(t)^2 = 1:
    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW (Song et al. 2021, eq. 11).

    Since d sigma^2/dt = -d alpha^2/dt = beta alpha^2, the diffusion is g^2 = d sigma^2/dt -
    2 a sigma^2 = beta (alpha^2 + sigma^2) = beta. Subclasses give ``beta``, ``alpha`` and
    ``sigma_squared`` = 1 - alpha^2 in a form without cancellation near t = 0.
    """

    @abc.abstractmethod
    def sigma_squared(self, t: Tensor) -> Tensor:
        """sigma(t)^2 = 1 - alpha(t)^2, without cancellation near t = 0."""

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(self.sigma_squared(t))

    def diffusion_squared(self, t: Tensor) -> Tensor:
        return self.beta(t)


class LinearBetaSchedule(NoiseRate):
    """The linear noise rate beta(t) = beta_min + (t / T) (beta_max - beta_min) of VP and sub-VP.

    Holds beta, its integral B(t) = int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / (2 T)
    and the inverse of B; :class:`VPSDE` and :class:`~sdegen.sde.SubVPSDE` differ only in the
    diffusion they build on it.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        super().__init__(T)
        beta_min = check_real("beta_min", beta_min)
        beta_max = check_real("beta_max", beta_max)
        if beta_min < 0:
            raise ValueError(f"beta_min must be >= 0; got beta_min={beta_min:.6g}")
        if beta_max <= beta_min:
            raise ValueError(
                f"beta_max must be > beta_min; got beta_min={beta_min:.6g}, beta_max={beta_max:.6g}"
            )
        self.beta_min, self.beta_max = beta_min, beta_max

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min:g}, beta_max={self.beta_max:g}, T={self.T:g})"

    def beta(self, t: Tensor) -> Tensor:
        """beta(t) = beta_min + (t / T) (beta_max - beta_min)."""
        return self.beta_min + (t / self.T) * (self.beta_max - self.beta_min)

    def integrated_beta(self, t: Tensor) -> Tensor:
        """B(t) = int_0^t beta(s) ds = beta_min t + (beta_max - beta_min) t^2 / (2 T)."""
        return self.beta_min * t + (0.5 * (self.beta_max - self.beta_min) / self.T) * t * t

    def inverse_integrated_beta(self, B: Tensor) -> Tensor:
        """t(B), the positive root of B(t) = B, as 2 B / (beta_min + sqrt(beta_min^2 + 2 k B)) with
        k = (beta_max - beta_min) / T: the form without cancellation for small B."""
        k = (self.beta_max - self.beta_min) / self.T
        return 2.0 * B / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * k * B))

    def alpha(self, t: Tensor) -> Tensor:
        """alpha(t) = exp(-B(t) / 2), shared by VP and sub-VP."""
        return torch.exp(-0.5 * self.integrated_beta(t))


class VPSDE(LinearBetaSchedule, VariancePreserving):
    """Variance-preserving SDE with linear schedule beta(t) = beta_min + (t / T) (beta_max - beta_min).

    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW, the continuous limit of DDPM (Song et al. 2021,
    eq. 11). With B(t) = int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / (2 T):

        alpha(t) = exp(-B(t) / 2),    sigma(t)^2 = 1 - exp(-B(t)),
        lambda(t) = log(alpha / sigma) = -1/2 log(exp(B(t)) - 1),

    computed as ``-expm1(-B)`` so that sigma is accurate to float32 rounding near t = 0 (score_sde's
    ``sqrt(1 - exp(-B))`` has 2.4 % relative error at t = 1e-5). The prior is N(0, I).
    """

    def sigma_squared(self, t: Tensor) -> Tensor:
        return -torch.expm1(-self.integrated_beta(t))

    def log_snr(self, t: Tensor) -> Tensor:
        return -0.5 * torch.log(torch.expm1(self.integrated_beta(t)))

    def inverse_log_snr(self, lam: Tensor) -> Tensor:
        # exp(B) - 1 = exp(-2 lambda)  =>  B = log(1 + exp(-2 lambda)), a softplus without overflow.
        return self.inverse_integrated_beta(torch.logaddexp(torch.zeros_like(lam), -2.0 * lam)).clamp(
            0, self.T
        )

    def discretize(
        self, N: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> DDPMSchedule:
        """DDPM betas beta_i = beta(t_i) T / N on the grid t_i = i T / (N - 1), i = 0..N-1.

        As in score_sde's ``VPSDE.discrete_betas`` (for T = 1: linspace(beta_min/N, beta_max/N, N)).
        Computed in float64, then cast to ``dtype`` on ``device`` so that indexing by time steps of
        the data's device works (score_sde_pytorch issue #43).
        """
        N = check_steps("N", N, minimum=2)
        t = torch.linspace(0.0, self.T, N, dtype=torch.float64)
        betas = self.beta(t) * (self.T / N)
        alphas = 1.0 - betas
        out = DDPMSchedule(t, betas, alphas, torch.cumprod(alphas, dim=0))
        return DDPMSchedule(*(v.to(device=device, dtype=dtype or torch.get_default_dtype()) for v in out))
