"""EDM's variance-exploding SDE with sigma(t) = t (Karras et al. 2022, sec. 3 and Table 1)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from sdegen._checks import check_positive
from sdegen.sde.base import LinearSDE

__all__ = ["EDMVESDE"]


class EDMVESDE(LinearSDE):
    """The VE SDE whose time is its noise level: alpha(t) = 1, sigma(t) = t on [0, T = sigma_max].

    Karras et al. 2022 ("Elucidating the design space of diffusion-based generative models",
    eq. 4 and Table 1, "Ours") choose s(t) = 1 and sigma(t) = t, so that the probability-flow ODE
    is dx/dt = -t score(t, x) = (x - D(x; t)) / t with D the denoiser, and the SDE is

        dx = sqrt(2 t) dW,    a(t) = 0,    g(t)^2 = d sigma^2/dt = 2 t,
        lambda(t) = log(alpha / sigma) = -log t,    t(lambda) = exp(-lambda).

    Time runs over [0, T] with T = sigma_max = 80 by default (EDM's sigma_max for CIFAR-10,
    FFHQ and ImageNet) and the prior is N(0, sigma_max^2 I), as in EDM's sampler (which neglects
    the data's variance against sigma_max^2, as :class:`~sdegen.VESDE` does). Samplers stop at
    ``sampling_eps = 0.002``, EDM's sigma_min; a sampler's ``eps`` is a noise level here.

    Args:
        sigma_max: the largest noise level, which is also the terminal time T.
    """

    #: EDM's sigma_min: samplers stop at the noise level 0.002 by default.
    sampling_eps: ClassVar[float] = 0.002
    #: EDM's grids end at sigma_min = 0.002 and then step to 0: no floor above the end.
    noise_floor: ClassVar[float] = 0.002

    def __init__(self, sigma_max: float = 80.0) -> None:
        sigma_max = check_positive("sigma_max", sigma_max)
        if not sigma_max > self.sampling_eps:
            raise ValueError(
                f"sigma_max must exceed the default end noise level sampling_eps = {self.sampling_eps:g}; "
                f"got sigma_max={sigma_max:.6g}"
            )
        super().__init__(T=sigma_max)
        self.sigma_max = sigma_max

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma_max={self.sigma_max:g})"

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return t.clone()

    def sigma_squared(self, t: Tensor) -> Tensor:
        return t * t

    def drift_coefficient(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def diffusion_squared(self, t: Tensor) -> Tensor:
        return 2.0 * t

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = -log t."""
        return -torch.log(t)

    def inverse_log_snr(self, lam: Tensor) -> Tensor:
        """t(lambda) = exp(-lambda), clamped to [0, T]."""
        return torch.exp(-lam).clamp(0.0, self.T)

    @property
    def prior_std(self) -> float:
        return self.sigma_max
