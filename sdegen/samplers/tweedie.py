"""The denoiser view of a score function, and the final denoising step (Tweedie's formula).

For a linear SDE with kernel N(alpha(t) x_0, sigma(t)^2 I), the score s(t, x) = grad log p_t(x),
the posterior mean of the data and that of the noise are affine in one another (Tweedie's formula;
Efron 2011, eq. 2.8; Kingma et al. 2021, app.; Karras et al. 2022, eq. 3):

    x0_hat(t, x)  = E[x_0 | x_t = x] = (x + sigma(t)^2 s(t, x)) / alpha(t),
    eps_hat(t, x) = E[z | x_t = x]   = -sigma(t) s(t, x)          (x_t = alpha x_0 + sigma z).

The few-step samplers (DDIM, DPM-Solver++, EDM, UniPC) are written against x0_hat.

**The denoiser protocol.** A ``score_fn`` object may offer either or both of

    score_fn.data_prediction(t, x) -> x0_hat     (t: [B], x: [B, ...], result shaped like x)
    score_fn.noise_prediction(t, x) -> eps_hat

and the samplers then ask it for x0_hat directly (``data_prediction`` first, else
``x0_hat = (x - sigma eps_hat) / alpha``) instead of converting its score: a network trained to
predict x_0 or the noise is used without the round trip output -> score -> x0_hat, which loses
precision where sigma is large (sigma^2 s is a difference of two numbers of size |x|) and is
undefined where it is 0. :class:`~sdegen.parameterization.ScoreModel` implements the protocol for
every parameterisation. Each call counts as one score evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_linear_sde, check_time
from sdegen._score_evaluator import ScoreEvaluator
from sdegen.sde.base import SDE

__all__ = ["tweedie_denoise"]


def tweedie_denoise(sde: SDE, score_fn: Callable[[Tensor, Tensor], Tensor], t: float, x: Tensor) -> Tensor:
    """E[x_0 | x_t = x] = (x + sigma(t)^2 score(t, x)) / alpha(t), by Tweedie's formula.

    For the kernel N(alpha(t) x_0, sigma(t)^2 I) of a linear SDE (Efron 2011, "Tweedie's formula
    and selection bias", eq. 2.8; the final denoising step of Song et al. 2021, App. G). For VE,
    alpha = 1 and this is x + sigma^2 score. A ``score_fn`` that offers ``data_prediction`` or
    ``noise_prediction`` (the protocol above) is asked for x0_hat directly. One evaluation.
    """
    check_linear_sde(sde, "denoising")
    check_batch_shape("x", x)
    check_time(t, sde.T)
    tt = torch.tensor(float(t), dtype=torch.float64)
    alpha, sigma = float(sde.alpha(tt)), float(sde.sigma(tt))
    evaluator = ScoreEvaluator(score_fn, T=sde.T, t_end=float(t), check_every=1)
    return evaluator.data_prediction(float(t), x, alpha, sigma)
