"""Sliced score matching on the perturbed marginals (Song, Garg, Shi and Ermon 2019)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from sdegen._checks import check_bool, check_steps
from sdegen.divergence import Hutchinson
from sdegen.losses.base import Reduction, TimeWeightedLoss, score_and_divergence, sum_over_data_dims
from sdegen.losses.weighting import TimeWeighting
from sdegen.parameterization import ScoreModel
from sdegen.random import RandomSource

__all__ = ["SlicedScoreMatching"]

_PROJECTIONS = ("rademacher", "gaussian")


class SlicedScoreMatching(TimeWeightedLoss):
    """E_t E_{x_t} E_v [ lambda(t) ( v^T grad_x s_theta(t, x_t) v + 1/2 (v^T s_theta(t, x_t))^2 ) ].

    Song, Garg, Shi and Ermon 2019, "Sliced score matching", eq. 7, applied to the marginals
    x_t ~ p_t of the SDE with the time weighting of Song et al. 2021 (eq. 7). For E[v v^T] = I the
    objective equals 1/2 E lambda(t) ||s_theta - grad log p_t||^2 up to a constant, so it is
    minimised by the true score without using the conditional score, which makes it usable when
    only samples of p_t are available. With ``variance_reduced=True`` the second term is
    replaced by its expectation over v, 1/2 ||s_theta||^2 (SSM-VR, their eq. 8).

    The paper's factor 1/2 is kept, so in expectation this loss is half of
    :class:`ImplicitScoreMatching`; SSM-VR is exactly half of ``ImplicitScoreMatching`` with a
    :class:`~sdegen.likelihood.Hutchinson` divergence of the same probes.

    ``v`` has independent Rademacher (default) or standard normal entries, drawn by
    :class:`~sdegen.likelihood.Hutchinson` (the likelihood's probes); ``n_projections`` projections
    per sample are averaged over one network evaluation, with one vector-Jacobian product each
    (``create_graph`` while gradients are enabled, so the loss can be trained on).

    Args:
        weighting: time weighting and law of t (default :class:`SigmaSquaredWeighting`).
        projection: ``"rademacher"`` or ``"gaussian"``.
        n_projections: projections per sample.
        variance_reduced: use SSM-VR.
        eps: smallest time.
        reduction: see :class:`~sdegen.losses.base.Loss`.
    """

    def __init__(
        self,
        weighting: TimeWeighting | None = None,
        *,
        projection: Literal["rademacher", "gaussian"] = "rademacher",
        n_projections: int = 1,
        variance_reduced: bool = False,
        eps: float = 1e-5,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(weighting, eps=eps, reduction=reduction)
        if projection not in _PROJECTIONS:
            raise ValueError(f"projection must be one of {_PROJECTIONS}; got projection={projection!r}")
        self.projection = projection
        self.n_projections = check_steps("n_projections", n_projections)
        self.variance_reduced = check_bool("variance_reduced", variance_reduced)
        self.probes = Hutchinson(projection, self.n_projections)

    def __repr__(self) -> str:
        return (
            f"SlicedScoreMatching(weighting={self.weighting!r}, projection={self.projection!r}, "
            f"n_projections={self.n_projections}, variance_reduced={self.variance_reduced}, eps={self.eps:g})"
        )

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        b = self.noised(model, x0, generator)
        v = self.probes.draw(b.x_t, generator)  # [P, B, ...]
        # (1/P) sum_k v_k^T J v_k, one vector-Jacobian product per projection.
        score, v_jac_v = score_and_divergence(model, b, self.probes, v)
        if self.variance_reduced:
            second = 0.5 * sum_over_data_dims(score**2)
        else:
            v_score = (v * score).flatten(2).sum(2)  # [P, B]
            second = 0.5 * (v_score**2).mean(dim=0)
        return b.weight * (v_jac_v + second)
