"""Continuous-time denoising score matching (Vincent 2011; Song et al. 2021, eq. 7)."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen import random
from sdegen._broadcast import expand_like
from sdegen.losses.base import Loss, Reduction, sum_over_data_dims
from sdegen.losses.weighting import TimeWeighting, check_eps, resolve_weighting
from sdegen.parameterization import ScoreModel, TransitionKernel
from sdegen.sde.base import LinearSDE

__all__ = ["DenoisingScoreMatching"]


def require_linear_sde(model: ScoreModel, loss: str) -> LinearSDE:
    if not isinstance(model.sde, LinearSDE):
        raise TypeError(
            f"{loss} needs the Gaussian kernel N(alpha x0, sigma^2 I) of a LinearSDE; "
            f"model.sde is a {type(model.sde).__name__}"
        )
    return model.sde


class DenoisingScoreMatching(Loss):
    """E_t E_{x0, z} [ lambda(t) || s_theta(t, x_t) - grad log p_0t(x_t | x0) ||^2 ] with t in [eps, T].

    Song et al. 2021, "Score-based generative modeling through SDEs", eq. 7, where
    x_t = alpha(t) x0 + sigma(t) z, z ~ N(0, I) and grad log p_0t(x_t | x0) = -z / sigma(t). The
    weighting lambda(t) and the law of t come from ``weighting`` (default
    :class:`SigmaSquaredWeighting`; :class:`LikelihoodWeighting` gives the likelihood bound of Song,
    Durkan, Murray and Ermon 2021). Its minimiser is the true score s_theta(t, x) = grad log p_t(x).

    The loss is evaluated in the network's output space through the parameterisation:
    lambda(t) ||s - s*||^2 = lambda(t) c(t)^2 ||output - target||^2 with c = d score / d output, so
    a noise-predicting network with lambda = sigma^2 is trained on exactly ||z_hat - z||^2.

    Args:
        weighting: the time weighting and the distribution of t.
        eps: the smallest time; the loss is not defined at t = 0, where sigma(0) = 0.
        reduction: see :class:`~sdegen.losses.base.Loss`.
    """

    def __init__(
        self,
        weighting: TimeWeighting | None = None,
        *,
        eps: float = 1e-5,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        weighting = resolve_weighting(weighting)
        self.weighting, self.eps = weighting, eps

    def __repr__(self) -> str:
        return f"DenoisingScoreMatching(weighting={self.weighting!r}, eps={self.eps:g})"

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        sde = require_linear_sde(model, "DenoisingScoreMatching")
        eps = check_eps(self.eps, sde.T)
        t, weight = self.weighting.sample(
            sde, x0.shape[0], eps=eps, generator=generator, device=x0.device, dtype=x0.dtype
        )
        noise = random.randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
        kernel = TransitionKernel.of(sde, t)
        x_t = expand_like(kernel.alpha, x0) * x0 + expand_like(kernel.sigma, x0) * noise
        param = model.parameterization
        residual = model.output(t, x_t) - param.target(x0, noise, kernel)
        return weight * param.score_scale(kernel) ** 2 * sum_over_data_dims(residual**2)
