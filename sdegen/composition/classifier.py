"""Classifier guidance: an unconditional score plus the gradient of a noise-conditional classifier."""

from __future__ import annotations

from torch import Tensor

from sdegen._checks import check_output, check_real, check_score_fn, check_score_output, common_sde
from sdegen.composition.conditional import (
    NoiseConditionalClassifier,
    check_label,
    input_gradient,
    labels_like,
    n_classes_of,
)
from sdegen.sde.base import ScoreFn

__all__ = ["ClassifierGuidance"]


class ClassifierGuidance:
    """The score of p_t(x) p_t(y | x)^scale: ``score_fn(t, x) + scale * grad_x log p_t(y | x)``.

    Bayes' rule gives grad_x log p_t(x | y) = grad_x log p_t(x) + grad_x log p_t(y | x) (Song et al.
    2021, eq. 14 and appendix I.1), so ``scale=1`` with an exact classifier is the exact
    class-conditional score; ``scale > 1`` sharpens towards the class (Dhariwal and Nichol 2021,
    sec. 4.3). The classifier gives logits ``[B, C]`` for x_t at time t, and log p_t(y | x) =
    log_softmax(logits)[y]; its gradient in x is taken by autograd (one backward pass through the
    classifier per evaluation; differentiable again when the caller's x is in a graph, so the
    exact likelihood works through it).

    The object is itself a score function ``(t, x) -> [B, ...]``: every sampler,
    :func:`sdegen.log_likelihood`, torchsde and torchdiffeq take it unchanged.

    Args:
        score_fn: the unconditional score ``(t, x) -> grad_x log p_t(x)``.
        classifier: ``(t, x) -> logits [B, C]`` (a :class:`NoiseConditionalClassifier`).
        y: the class, an int or an int ``[B]`` tensor (one per sample), in 0..C-1.
        scale: the guidance scale (1: the conditional; 0: the unconditional score).
        n_classes: C, when the classifier has no ``n_classes`` attribute.
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        classifier: NoiseConditionalClassifier,
        y: int | Tensor,
        scale: float = 1.0,
        *,
        n_classes: int | None = None,
    ) -> None:
        check_score_fn(score_fn)
        check_score_fn(classifier, "classifier", "(t, x) -> logits [B, C]")
        self.score_fn, self.classifier = score_fn, classifier
        #: the SDE that the score and the classifier agree on (None if neither says)
        self.sde = common_sde([("score_fn", score_fn), ("classifier", classifier)])
        self.n_classes = n_classes_of(classifier, n_classes, "ClassifierGuidance", "the classifier")
        self.y = check_label(y, self.n_classes)
        self.scale = check_real("scale", scale)

    def __repr__(self) -> str:
        return (
            f"ClassifierGuidance(y={_label_repr(self.y)}, scale={self.scale:g}, n_classes={self.n_classes})"
        )

    def log_likelihood_gradient(self, t: Tensor, x: Tensor) -> Tensor:
        """grad_x log p_t(y | x) = grad_x log_softmax(classifier(t, x))[y], shaped like x."""
        y = labels_like(self.y, x)

        def log_p(xg: Tensor) -> Tensor:
            logits = check_output(
                "classifier",
                self.classifier(t, xg),
                f"floating-point logits of shape [B, C] = [{x.shape[0]}, {self.n_classes}] on x's device {x.device}",
                [(x.shape[0], self.n_classes)],
                device=x.device,
                floating=True,
            )
            return logits.log_softmax(dim=-1).gather(1, y[:, None])

        return input_gradient(log_p, x, "the classifier's log p_t(y | x)")[1]

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        score = self.score_fn(t, x)
        check_score_output(score, x)
        if self.scale == 0.0:
            return score
        return score + self.scale * self.log_likelihood_gradient(t, x).to(score.dtype)


def _label_repr(y: int | Tensor) -> str:
    return str(y) if isinstance(y, int) else f"<{y.shape[0]} labels>"
