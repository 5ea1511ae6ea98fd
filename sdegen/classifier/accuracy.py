"""The held-out accuracy of a noise-conditional classifier, a training callback."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_steps
from sdegen.data.images import check_dataset_labels
from sdegen.losses.base import perturb
from sdegen.sde.kernel import GaussianKernel
from sdegen.training.callbacks import Callback, TrainerView

__all__ = ["HeldOutAccuracy"]


class HeldOutAccuracy(Callback):
    """The accuracy of a noise-conditional classifier on held-out data noised to time ``t``.

    x_t = alpha(t) x + sigma(t) z with z from a generator seeded by ``seed`` at every evaluation;
    the fraction of argmax_y p_theta,t(y | x_t) = y over the held-out pairs ``(x, y)``. Logged as
    ``held_out_accuracy``. At small t it is the accuracy on (nearly) clean data; the best possible
    accuracy falls with t as the classes' noised marginals overlap.
    """

    def __init__(
        self, x: Tensor, y: Tensor, every: int, *, t: float = 1e-3, seed: int = 0, batch_size: int = 4096
    ) -> None:
        super().__init__(every)
        self.x = check_batch_shape("x", x)
        self.y = check_dataset_labels(y, x.shape[0], "y")
        self.t, self.seed = float(t), seed
        self.batch_size = check_steps("batch_size", batch_size)

    @torch.no_grad()
    def __call__(self, trainer: TrainerView) -> dict[str, float]:
        model = trainer.ema_model
        g = torch.Generator(trainer.device).manual_seed(self.seed)
        correct = 0
        for chunk, y in zip(self.x.split(self.batch_size), self.y.split(self.batch_size), strict=True):
            x0 = chunk.to(trainer.device, trainer.dtype)
            t = torch.full((x0.shape[0],), self.t, device=x0.device, dtype=x0.dtype)
            x_t, _ = perturb(GaussianKernel.of(model.sde, t), x0, g)
            correct += int((model(t, x_t).argmax(dim=1).cpu() == y).sum())
        return {"held_out_accuracy": correct / self.x.shape[0]}
