"""Explicit score matching: regression onto a known score at the noised data (Hyvarinen 2005, eq. 2)."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen._checks import check_same_sde, check_score_fn, check_score_output
from sdegen.losses.base import Reduction, TimeWeightedLoss, sum_over_data_dims
from sdegen.losses.weighting import TimeWeighting
from sdegen.parameterization import ScoreModel
from sdegen.random import RandomSource
from sdegen.sde.base import ScoreFn

__all__ = ["ExplicitScoreMatching"]


class ExplicitScoreMatching(TimeWeightedLoss):
    """E_t E_{x0, z} [ lambda(t) || s_theta(t, x_t) - s*(t, x_t) ||^2 ], x_t = alpha(t) x0 + sigma(t) z.

    Explicit score matching (Hyvarinen 2005, "Estimation of non-normalized statistical models by
    score matching", eq. 2, here without its factor 1/2 and at every noise level of the SDE, as
    :class:`DenoisingScoreMatching`) against a known score ``target_score(t, x)``: the exact
    score of the analytic oracle (``GaussianMixture.score(sde)``), or a trained teacher for
    distillation. With the true score grad log p_t as target,

        L_ESM = L_ISM + E lambda(t) ||grad log p_t(x_t)||^2            (:class:`ImplicitScoreMatching`)
        L_DSM = L_ESM + E lambda(t) (d / sigma(t)^2 - ||grad log p_t(x_t)||^2),

    model-independent constants, so all three have the same minimiser and the same gradients in
    expectation (Vincent 2011, eq. 11-12).

    For a class-conditional model (``loss(model, x0, y)``) the target must be conditional too,
    ``target_score(t, x, y)`` with ``n_classes`` (e.g. ``GaussianMixture.conditional_score(sde)``,
    which also takes the null label): :meth:`given` binds the labels to both.

    The target is evaluated without gradients and checked to be shaped and typed like x_t before
    the model is evaluated. As in :class:`DenoisingScoreMatching`, the residual is taken in the
    network's output space: lambda c^2 ||output - from_score(s*)||^2 with c = d score / d output.

    Args:
        target_score: ``(t [B], x [B, ...]) -> [B, ...]``, the score to regress onto.
        weighting: time weighting and law of t (default :class:`SigmaSquaredWeighting`).
        eps: smallest time.
        reduction: see :class:`~sdegen.losses.base.Loss`.
    """

    def __init__(
        self,
        target_score: ScoreFn,
        weighting: TimeWeighting | None = None,
        *,
        eps: float = 1e-5,
        reduction: Reduction = "mean",
    ) -> None:
        check_score_fn(
            target_score, "target_score", "(t, x), e.g. GaussianMixture.score(sde) or a trained ScoreModel"
        )
        super().__init__(weighting, eps=eps, reduction=reduction)
        self.target_score = target_score

    def __repr__(self) -> str:
        name = getattr(self.target_score, "__qualname__", type(self.target_score).__name__)
        return f"ExplicitScoreMatching(target_score={name}, weighting={self.weighting!r}, eps={self.eps:g})"

    def check(self, model: ScoreModel, x0: Tensor) -> None:
        super().check(model, x0)
        check_same_sde(model.sde, self.target_score, "target_score", "of the model being trained")

    def given(self, y: Tensor) -> ExplicitScoreMatching:
        """This loss with the labels ``y`` bound to a conditional ``target_score(t, x, y)``."""
        if getattr(self.target_score, "n_classes", None) is None:
            raise TypeError(
                "ExplicitScoreMatching of a class-conditional model needs a conditional target "
                "target_score(t, x, y) with n_classes, e.g. GaussianMixture.conditional_score(sde); got "
                f"{self!r}"
            )
        target = self.target_score
        bound = ExplicitScoreMatching(
            lambda t, x: target(t, x, y), self.weighting, eps=self.eps, reduction=self.reduction
        )
        bound.target_score.__qualname__ = f"{getattr(target, '__qualname__', type(target).__name__)} given y"
        return bound

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        b = self.noised(model, x0, generator)
        with torch.no_grad():
            target = self.target_score(b.t, b.x_t)
        check_score_output(target, b.x_t, "target_score(t, x)")
        param = model.parameterization
        output = model.output(b.t, b.x_t)
        check_score_output(output, b.x_t, "model.net(t, x)")
        residual = output - param.from_score(target, b.x_t, b.kernel)
        return b.weight * param.score_scale(b.kernel) ** 2 * sum_over_data_dims(residual**2)
