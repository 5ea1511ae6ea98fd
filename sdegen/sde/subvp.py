"""Sub-VP SDE: dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 B(t)))) dW (Song et al. 2021, eq. 17)."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen.sde.vp import LinearBetaSchedule

__all__ = ["SubVPSDE"]


class SubVPSDE(LinearBetaSchedule):
    """Sub-VP SDE: the VP drift with a diffusion whose marginal variance is bounded by the VP one.

    dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 B(t)))) dW (Song et al. 2021, eq. 17), with

        alpha(t) = exp(-B(t) / 2),    sigma(t) = 1 - exp(-B(t))   (a standard deviation),
        lambda(t) = log(alpha / sigma) = -log(2 sinh(B(t) / 2)),

    computed with ``expm1`` for accuracy near t = 0. The prior is N(0, I). Sub-VP has no
    discrete-time ancestral counterpart, so ``discretize`` raises ``NotImplementedError``.
    """

    def sigma(self, t: Tensor) -> Tensor:
        return -torch.expm1(-self.integrated_beta(t))

    def diffusion_squared(self, t: Tensor) -> Tensor:
        return self.beta(t) * -torch.expm1(-2.0 * self.integrated_beta(t))

    def log_snr(self, t: Tensor) -> Tensor:
        return -torch.log(2.0 * torch.sinh(0.5 * self.integrated_beta(t)))

    def inverse_log_snr(self, lam: Tensor) -> Tensor:
        # sinh(B / 2) = exp(-lambda) / 2
        return self.inverse_integrated_beta(2.0 * torch.asinh(0.5 * torch.exp(-lam))).clamp(0, self.T)
