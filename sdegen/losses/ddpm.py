"""The DDPM noise-prediction loss on discrete time steps (Ho et al. 2020, Alg. 1)."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_score_output, check_steps
from sdegen.losses.base import Loss, Reduction, perturb, sum_over_data_dims
from sdegen.parameterization import ScoreModel
from sdegen.random import RandomSource
from sdegen.sde.base import LinearSDE
from sdegen.sde.kernel import GaussianKernel
from sdegen.sde.vp import DDPMSchedule

__all__ = ["DDPMLoss"]


class DDPMLoss(Loss):
    """E_{i, x0, z} || output(t_i, sqrt(abar_i) x0 + sqrt(1 - abar_i) z) - target ||^2, i ~ U{0..N-1}.

    Ho, Jain and Abbeel 2020, "Denoising diffusion probabilistic models", Alg. 1 (L_simple, eq. 14),
    on the chain of ``model.sde.discretize(steps)`` (a :class:`~sdegen.sde.VPSDE`, whose
    ``alphas_cumprod`` are the abar_i). The network sees the continuous time t_i = i T / (N - 1)
    of step i. For a :class:`~sdegen.parameterization.NoisePrediction` model the target is z and
    this is exactly L_simple; for other parameterisations it is the same unweighted regression onto
    their targets (x0, or -z / sqrt(1 - abar_i)).

    The discrete noise level sqrt(1 - abar_i) differs from the continuous sigma(t_i) by O(1 / N);
    a model trained this way and converted to a score with sigma(t) inherits that difference,
    which is negligible for N = 1000.
    """

    def __init__(self, steps: int = 1000, *, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)
        self.steps = check_steps("steps", steps, minimum=2)
        self._schedule: tuple[object, torch.device, torch.dtype, DDPMSchedule] | None = None

    def __repr__(self) -> str:
        return f"DDPMLoss(steps={self.steps})"

    def schedule(self, model: ScoreModel, device: torch.device, dtype: torch.dtype) -> DDPMSchedule:
        """The DDPM chain of ``model.sde``, cached per device and dtype."""
        cached = self._schedule
        if cached is not None and cached[0] is model.sde and cached[1] == device and cached[2] == dtype:
            return cached[3]
        schedule = None
        if isinstance(model.sde, LinearSDE):
            try:
                schedule = model.sde.discretize(self.steps, device=device, dtype=dtype)
            except NotImplementedError:
                pass
        if not isinstance(schedule, DDPMSchedule):
            raise TypeError(
                f"DDPMLoss needs an SDE whose discretize() is the DDPM chain (VPSDE); "
                f"model.sde is a {type(model.sde).__name__}. Use DenoisingScoreMatching instead."
            )
        self._schedule = (model.sde, device, dtype, schedule)
        return schedule

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        schedule = self.schedule(model, x0.device, x0.dtype)
        i = random.randint(0, self.steps, (x0.shape[0],), generator, device=x0.device)
        abar = schedule.alphas_cumprod[i]
        kernel = GaussianKernel(abar.sqrt(), (1 - abar).sqrt())
        x_t, noise = perturb(kernel, x0, generator)
        output = model.output(schedule.t[i], x_t)
        check_score_output(output, x_t, "model.net(t, x)")
        residual = output - model.parameterization.target(x0, noise, kernel)
        return sum_over_data_dims(residual**2)
