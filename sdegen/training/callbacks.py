"""Periodic evaluations during training, run on the EMA model.

A :class:`Callback` is called every ``every`` steps (and at the last step) with the trainer and
returns metrics to log. Callbacks draw from their own seeded generators, never the trainer's, so
evaluating does not change the training run, and each evaluation uses the same random numbers,
which makes successive values comparable (common random numbers).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_steps
from sdegen.losses.base import Loss

if TYPE_CHECKING:
    from sdegen.training.trainer import Trainer

__all__ = ["Callback", "HeldOutLoss"]


class Callback(abc.ABC):
    """An evaluation run every ``every`` steps; returns ``{metric name: value}``."""

    def __init__(self, every: int) -> None:
        self.every = check_steps("every", every)

    @abc.abstractmethod
    def __call__(self, trainer: Trainer) -> dict[str, float]:
        """Evaluate ``trainer.ema_model`` (or anything else) and return metrics to log."""


class HeldOutLoss(Callback):
    """The training objective on held-out data ``x`` (``[N, ...]``), with fixed random numbers.

    Logged as ``held_out_loss``; ``loss`` defaults to the trainer's own objective.
    """

    def __init__(
        self, x: Tensor, every: int, *, loss: Loss | None = None, seed: int = 0, batch_size: int = 4096
    ) -> None:
        super().__init__(every)
        self.x = check_batch_shape("x", x)
        self.loss, self.seed = loss, seed
        self.batch_size = check_steps("batch_size", batch_size)

    @torch.no_grad()
    def __call__(self, trainer: Trainer) -> dict[str, float]:
        loss = self.loss or trainer.loss
        g = torch.Generator(trainer.device).manual_seed(self.seed)
        total = 0.0
        for chunk in self.x.split(self.batch_size):
            per = loss.per_sample(trainer.ema_model, chunk.to(trainer.device, trainer.dtype), g)
            total += float(per.sum())
        return {"held_out_loss": total / self.x.shape[0]}
