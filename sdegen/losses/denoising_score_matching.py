"""Continuous-time denoising score matching (Vincent 2011; Song et al. 2021, eq. 7)."""

from __future__ import annotations

from torch import Tensor

from sdegen._checks import check_score_output
from sdegen.losses.base import TimeWeightedLoss, sum_over_data_dims
from sdegen.parameterization import ScoreModel
from sdegen.random import RandomSource

__all__ = ["DenoisingScoreMatching"]


class DenoisingScoreMatching(TimeWeightedLoss):
    """E_t E_{x0, z} [ lambda(t) || s_theta(t, x_t) - grad log p_0t(x_t | x0) ||^2 ] with t in [eps, T].

    Song et al. 2021, "Score-based generative modeling through SDEs", eq. 7, where
    x_t = alpha(t) x0 + sigma(t) z, z ~ N(0, I) and grad log p_0t(x_t | x0) = -z / sigma(t). The
    weighting lambda(t) and the law of t come from ``weighting`` (default
    :class:`SigmaSquaredWeighting`; :class:`LikelihoodWeighting` gives the likelihood bound of Song,
    Durkan, Murray and Ermon 2021). Its minimiser is the true score s_theta(t, x) = grad log p_t(x):
    at each t it differs from :class:`ExplicitScoreMatching` against the true score by the
    model-independent lambda(t) (d / sigma(t)^2 - E ||grad log p_t(x_t)||^2) (Vincent 2011,
    "A connection between score matching and denoising autoencoders", eq. 11-12).

    The loss is evaluated in the network's output space through the parameterisation:
    lambda(t) ||s - s*||^2 = lambda(t) c(t)^2 ||output - target||^2 with c = d score / d output, so
    a noise-predicting network with lambda = sigma^2 is trained on exactly ||z_hat - z||^2.

    Args:
        weighting: the time weighting and the distribution of t.
        eps: the smallest time; the loss is not defined at t = 0, where sigma(0) = 0.
        reduction: see :class:`~sdegen.losses.base.Loss`.
    """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weighting={self.weighting!r}, eps={self.eps:g})"

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        b = self.noised(model, x0, generator)
        param = model.parameterization
        output = model.output(b.t, b.x_t)
        check_score_output(output, b.x_t, "model.net(t, x)")
        residual = output - param.target(x0, b.noise, b.kernel)
        return b.weight * param.score_scale(b.kernel) ** 2 * sum_over_data_dims(residual**2)
