"""The loss protocol: ``loss(model, x0, generator=...)`` -> a scalar (or ``[B]`` per-sample losses)."""

from __future__ import annotations

import abc
from typing import Literal

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_fits_model, check_generator, check_nonempty
from sdegen.parameterization import ScoreModel

__all__ = ["Loss", "Reduction"]

Reduction = Literal["mean", "sum", "none"]
"""How a loss reduces its per-sample values over the batch."""
_REDUCTIONS = ("mean", "sum", "none")


class Loss(abc.ABC):
    """A training objective for a :class:`~sdegen.parameterization.ScoreModel`.

    Each sample's loss is summed over the data dimensions (as in score_sde's default
    ``reduce_mean=False``), so that it scales with the dimension like a log-likelihood. The
    ``reduction`` then acts over the batch: ``"mean"`` (default) averages the per-sample losses,
    ``"sum"`` adds them, ``"none"`` returns them, shape ``[B]``. All randomness (times, noise,
    projections) comes from ``generator``.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got reduction={reduction!r}")
        self.reduction = reduction

    def __call__(self, model: ScoreModel, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The reduced loss of ``model`` on the data batch ``x0`` of shape ``[B, ...]``."""
        if not isinstance(model, ScoreModel):
            raise TypeError(
                f"model must be a ScoreModel(net, sde, parameterization); got {type(model).__name__}"
            )
        check_batch_shape("x0", x0)
        check_nonempty("x0", x0)
        check_fits_model("x0", x0, model)
        check_generator(generator, x0, "x0")
        per_sample = self.per_sample(model, x0, generator)
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample

    @abc.abstractmethod
    def per_sample(self, model: ScoreModel, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        """The unreduced loss, shape ``[B]``."""


def sum_over_data_dims(v: Tensor) -> Tensor:
    """Sum ``[B, ...]`` over all but the batch dimension: shape ``[B]``."""
    return v.reshape(v.shape[0], -1).sum(dim=1)
