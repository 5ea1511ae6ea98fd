"""The cross-entropy of a noise-conditional classifier on the noised data of the SDE."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from sdegen._checks import check_output
from sdegen.classifier.model import NoisyClassifier
from sdegen.losses.base import Reduction, TimeWeightedLoss
from sdegen.losses.weighting import TimeWeighting, UniformWeighting
from sdegen.random import RandomSource

__all__ = ["NoisyClassifierLoss"]


class NoisyClassifierLoss(TimeWeightedLoss):
    """E_t E_{(x0, y), z} [ lambda(t) ( -log p_theta,t(y | alpha(t) x0 + sigma(t) z) ) ], t in [eps, T].

    The cross-entropy of a :class:`NoisyClassifier` on the noised data x_t of
    the same forward kernel the score model is trained on, at times drawn by ``weighting``
    (default :class:`~sdegen.losses.UniformWeighting`: lambda = 1, t ~ U[eps, T]). At each t it is
    minimised by the true class posterior of the noised data, p_t(y | x) (the cross-entropy of a
    distribution q is E KL(p_t(. | x) || q(. | x)) + H_t, the conditional entropy of y given x_t),
    which is what classifier guidance needs (Song et al. 2021, appendix I.1; Dhariwal and Nichol
    2021, sec. 4). The times and noise are drawn as every :class:`~sdegen.losses.TimeWeightedLoss` draws them.

    Called as ``loss(classifier, x0, y)``: the labels are the targets, so they are required and lie
    in 0..C-1.

    Args:
        weighting: the time weighting and the law of t.
        eps: the smallest time.
        reduction: see :class:`~sdegen.losses.Loss`.
    """

    model_type = NoisyClassifier
    needs_labels = True

    def __init__(
        self, weighting: TimeWeighting | None = None, *, eps: float = 1e-5, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(UniformWeighting() if weighting is None else weighting, eps=eps, reduction=reduction)

    def __repr__(self) -> str:
        return f"NoisyClassifierLoss(weighting={self.weighting!r}, eps={self.eps:g})"

    def per_sample(self, model: NoisyClassifier, x0: Tensor, generator: RandomSource) -> Tensor:
        raise TypeError("NoisyClassifierLoss needs the labels: call loss(classifier, x0, y)")

    def labelled_per_sample(
        self, model: NoisyClassifier, x0: Tensor, y: Tensor, generator: RandomSource
    ) -> Tensor:
        b = self.noised(model, x0, generator)
        shape = (x0.shape[0], model.n_classes)
        logits = check_output(
            "the classifier", model(b.t, b.x_t), f"logits of shape [B, C] = [{shape[0]}, {shape[1]}]", [shape]
        )
        return b.weight * F.cross_entropy(logits, y, reduction="none")
