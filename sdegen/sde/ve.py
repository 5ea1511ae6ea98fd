"""Variance-exploding SDE: dx = sqrt(d[s(t)^2]/dt) dW with s(t) geometric (Song et al. 2021, eq. 9)."""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from sdegen._checks import check_real, check_steps
from sdegen.sde.base import LinearSDE

__all__ = ["VESDE", "SMLDSchedule"]


class SMLDSchedule(NamedTuple):
    """The discrete SMLD noise levels sigma_i = s(t_i) on t_i = i T / (N - 1) (Song and Ermon 2019)."""

    t: Tensor
    sigmas: Tensor


class VESDE(LinearSDE):
    """Variance-exploding SDE, the continuous limit of SMLD/NCSN.

    The noise scale is s(t) = sigma_min (sigma_max / sigma_min)^(t / T), and

        dx = s(t) sqrt(2 log(sigma_max / sigma_min) / T) dW,   x(0) = x0,

    so that alpha(t) = 1 and the exact transition std is

        sigma(t)^2 = s(t)^2 - sigma_min^2 = sigma_min^2 expm1(2 (t / T) log(sigma_max / sigma_min)).

    Note: score_sde_pytorch's ``marginal_prob`` returns s(t), the std of the SMLD perturbation
    kernel, not of this SDE started at x0; for sigma 0.01 -> 50 that is too large by a factor of 77
    at t = 1e-5 and 7.7 at t = 1e-3. Here sigma(0) = 0 exactly. The prior is N(0, sigma_max^2 I),
    as in the reference implementation.
    """

    sampling_eps: ClassVar[float] = 1e-5

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> None:
        super().__init__(T)
        sigma_min = check_real("sigma_min", sigma_min)
        sigma_max = check_real("sigma_max", sigma_max)
        if sigma_min <= 0:
            raise ValueError(f"sigma_min must be > 0; got sigma_min={sigma_min:.6g}")
        if sigma_max <= sigma_min:
            raise ValueError(
                f"sigma_max must be > sigma_min; got sigma_min={sigma_min:.6g}, sigma_max={sigma_max:.6g}"
            )
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self._log_ratio = math.log(sigma_max / sigma_min)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g}, T={self.T:g})"
        )

    @property
    def noise_floor(self) -> float:  # type: ignore[override]
        """sigma_min: the smallest noise level of NCSN's training, where few-step grids stop before
        their final denoising step (as score_sde's VE samplers stop at sigma_min, then denoise)."""
        return self.sigma_min

    def noise_scale(self, t: Tensor) -> Tensor:
        """s(t) = sigma_min (sigma_max / sigma_min)^(t / T), the SMLD noise level at time t."""
        return self.sigma_min * torch.exp((t / self.T) * self._log_ratio)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t: Tensor) -> Tensor:
        return self.sigma_min**2 * torch.expm1((2.0 * self._log_ratio / self.T) * t)

    def drift_coefficient(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = -log sigma(t) (alpha = 1)."""
        return -math.log(self.sigma_min) - 0.5 * torch.log(torch.expm1((2.0 * self._log_ratio / self.T) * t))

    def inverse_log_snr(self, lam: Tensor) -> Tensor:
        # expm1(2 r t / T) = exp(-2 (lambda + log sigma_min)), a softplus in t without overflow.
        u = -2.0 * (lam + math.log(self.sigma_min))
        return (self.T / (2.0 * self._log_ratio) * torch.logaddexp(torch.zeros_like(u), u)).clamp(0, self.T)

    def diffusion_squared(self, t: Tensor) -> Tensor:
        return self.noise_scale(t) ** 2 * (2.0 * self._log_ratio / self.T)

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def discretize(
        self, N: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> SMLDSchedule:
        """Geometric SMLD noise levels sigma_i = s(t_i), t_i = i T / (N - 1): sigma_0 = sigma_min,
        sigma_{N-1} = sigma_max. Computed in float64, cast to ``dtype`` on ``device``."""
        N = check_steps("N", N, minimum=2)
        t = torch.linspace(0.0, self.T, N, dtype=torch.float64)
        dtype = dtype or torch.get_default_dtype()
        return SMLDSchedule(
            t.to(device=device, dtype=dtype), self.noise_scale(t).to(device=device, dtype=dtype)
        )
