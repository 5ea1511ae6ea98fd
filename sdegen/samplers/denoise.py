"""The final denoising step: Tweedie's formula for the posterior mean E[x_0 | x_t]."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_linear_sde, check_time
from sdegen.sde.base import SDE

__all__ = ["tweedie_denoise"]


def tweedie_denoise(sde: SDE, score_fn: Callable[[Tensor, Tensor], Tensor], t: float, x: Tensor) -> Tensor:
    """E[x_0 | x_t = x] = (x + sigma(t)^2 score(t, x)) / alpha(t), by Tweedie's formula.

    For the kernel N(alpha(t) x_0, sigma(t)^2 I) of a linear SDE (Efron 2011, "Tweedie's formula
    and selection bias", eq. 2.8; the final denoising step of Song et al. 2021, App. G). For VE,
    alpha = 1 and this is x + sigma^2 score. One score evaluation.
    """
    check_linear_sde(sde, "denoising")
    check_batch_shape("x", x)
    check_time(t, sde.T)
    tt = torch.tensor(float(t), dtype=torch.float64)
    alpha, sigma = float(sde.alpha(tt)), float(sde.sigma(tt))
    t_batch = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
    return torch.add(x, score_fn(t_batch, x), alpha=sigma**2) / alpha
