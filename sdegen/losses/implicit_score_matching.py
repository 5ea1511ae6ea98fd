"""Implicit score matching at every noise level of a linear SDE (Hyvarinen 2005, theorem 1)."""

from __future__ import annotations

from torch import Tensor

from sdegen.divergence import DivergenceEstimator, ExactTrace
from sdegen.losses.base import Reduction, TimeWeightedLoss, score_and_divergence, sum_over_data_dims
from sdegen.losses.weighting import TimeWeighting
from sdegen.parameterization import ScoreModel
from sdegen.random import RandomSource

__all__ = ["ImplicitScoreMatching"]


class ImplicitScoreMatching(TimeWeightedLoss):
    """E_t E_{x_t ~ p_t} [ lambda(t) ( ||s_theta(t, x_t)||^2 + 2 div_x s_theta(t, x_t) ) ].

    Hyvarinen 2005, "Estimation of non-normalized statistical models by score matching",
    theorem 1: integrating by parts, E_p ||s - grad log p||^2 = E_p [||s||^2 + 2 div s] +
    E_p ||grad log p||^2, so the true score is the minimiser although it never appears. Here it is
    applied to the noised data x_t = alpha(t) x0 + sigma(t) z, i.e. to each marginal p_t of the SDE,
    with the time weightings of :class:`DenoisingScoreMatching`.

    Convention: this is twice Hyvarinen's J = E[div s + 1/2 ||s||^2], so that it shares the scale
    of :class:`ExplicitScoreMatching` and :class:`DenoisingScoreMatching` (no factor 1/2, as Song
    et al. 2021, eq. 7): L_ESM = L_ISM + E lambda ||grad log p_t||^2 exactly. Sliced score
    matching keeps the 1/2 of its paper and is half of this loss in expectation.

    The divergence comes from the likelihood's estimators: :class:`~sdegen.likelihood.ExactTrace`
    (default; one vector-Jacobian product per dimension, refused above its ``max_dim`` before any
    work) or :class:`~sdegen.likelihood.Hutchinson` (unbiased, one product per probe;
    ``Hutchinson(n_probes=1)`` makes this exactly twice SSM-VR on the same probes). The graph is
    kept (``create_graph``) while gradients are enabled, so the loss can be trained on.

    Args:
        weighting: time weighting and law of t (default :class:`SigmaSquaredWeighting`).
        divergence: the estimator of div_x s_theta (default ``ExactTrace()``).
        eps: smallest time.
        reduction: see :class:`~sdegen.losses.base.Loss`.
    """

    def __init__(
        self,
        weighting: TimeWeighting | None = None,
        *,
        divergence: DivergenceEstimator | None = None,
        eps: float = 1e-5,
        reduction: Reduction = "mean",
    ) -> None:
        divergence = ExactTrace() if divergence is None else divergence
        if not isinstance(divergence, DivergenceEstimator):
            raise TypeError(
                f"divergence must be a DivergenceEstimator such as ExactTrace() or Hutchinson(); "
                f"got {type(divergence).__name__}"
            )
        super().__init__(weighting, eps=eps, reduction=reduction)
        self.divergence = divergence

    def __repr__(self) -> str:
        return (
            f"ImplicitScoreMatching(weighting={self.weighting!r}, divergence={self.divergence!r}, "
            f"eps={self.eps:g})"
        )

    def check(self, model: ScoreModel, x0: Tensor) -> None:
        super().check(model, x0)
        self.divergence.check(x0)

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        b = self.noised(model, x0, generator)
        vectors = self.divergence.draw(b.x_t, generator)
        score, div = score_and_divergence(model, b, self.divergence, vectors)
        return b.weight * (sum_over_data_dims(score**2) + 2.0 * div)
