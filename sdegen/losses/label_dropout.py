"""Label dropout: train one network as both the conditional and the unconditional model (Ho and Salimans 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_real
from sdegen.losses.base import Loss
from sdegen.parameterization import ScoreModel
from sdegen.random import RandomSource

__all__ = ["LabelDropout"]


class LabelDropout(Loss):
    """``loss`` with each label replaced by the null label with probability ``p_uncond``.

    Ho and Salimans 2022, "Classifier-free diffusion guidance", Alg. 1: with y_b <- null
    independently with probability p_uncond, one network learns the conditional score
    grad_x log p_t(x | y) (labels 0..C-1) and the unconditional grad_x log p_t(x) (the null label C),
    the two halves of :class:`~sdegen.composition.ClassifierFreeGuidance`. Any loss of the family
    takes it, through its conditional path :meth:`~sdegen.losses.Loss.labelled_per_sample`: the
    wrapped loss is evaluated on the model with the dropped labels bound. The dropout mask is drawn
    from ``generator`` first (one uniform per example), then the wrapped loss draws its times and
    noise as it would; a resumed trainer therefore continues the same stream. The mask is drawn
    through :mod:`sdegen.random` like the rest, so with per-sample seeds or the rows of a global
    batch (several processes, accumulated micro-batches) an example's label is dropped or kept
    whatever batch it is in.

    Labels that are already null (unlabelled examples) stay null. Called without labels on an
    unconditional model, it is the wrapped loss.

    Args:
        loss: the objective, e.g. :class:`~sdegen.losses.DenoisingScoreMatching`.
        p_uncond: the probability of dropping a label, in [0, 1] (Ho and Salimans use 0.1 or 0.2).
    """

    def __init__(self, loss: Loss, p_uncond: float = 0.1) -> None:
        if not isinstance(loss, Loss) or loss.needs_labels:
            raise TypeError(
                f"loss must be a score-matching Loss such as DenoisingScoreMatching(); got "
                f"{type(loss).__name__}"
            )
        p = check_real("p_uncond", p_uncond)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p_uncond must be a probability in [0, 1]; got p_uncond={p:.6g}")
        super().__init__(loss.reduction)
        self.loss, self.p_uncond = loss, p

    def __repr__(self) -> str:
        return f"LabelDropout({self.loss!r}, p_uncond={self.p_uncond:g})"

    def check(self, model: ScoreModel, x0: Tensor) -> None:
        if not model.is_conditional:
            raise TypeError(
                f"{self!r} trains a class-conditional model, but the model's network "
                f"{type(model.net).__name__} has no n_classes; build it with n_classes=C, or train the "
                f"unconditional model with {self.loss!r} alone"
            )
        self.loss.check(model, x0)

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        return self.loss.per_sample(model, x0, generator)

    def drop(self, y: Tensor, null_label: int, generator: RandomSource) -> Tensor:
        """``y`` with each label replaced by ``null_label`` with probability ``p_uncond``."""
        keep = random.rand(y.shape, generator, device=y.device) >= self.p_uncond
        return torch.where(keep, y, torch.full_like(y, null_label))

    def labelled_per_sample(
        self, model: ScoreModel, x0: Tensor, y: Tensor, generator: RandomSource
    ) -> Tensor:
        return self.loss.labelled_per_sample(model, x0, self.drop(y, model.null_label, generator), generator)
