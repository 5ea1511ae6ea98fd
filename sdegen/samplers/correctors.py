"""Correctors: Langevin MCMC steps towards p_t at a fixed time t_i (Song et al. 2021, Alg. 4-5)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from sdegen._broadcast import expand_like
from sdegen._checks import check_bool, check_linear_sde, check_positive, check_steps
from sdegen.sde.base import ScoreFn
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["Corrector", "LangevinCorrector", "AnnealedLangevinCorrector", "NoneCorrector"]

Noise = Callable[[], Tensor]


class Corrector(abc.ABC):
    """``n_steps`` MCMC steps at time t_i that leave p_{t_i} (approximately) invariant.

    ``noise()`` returns standard normal noise shaped like x, in a buffer the next call overwrites.
    """

    #: whether the step draws noise
    stochastic: ClassVar[bool] = True
    #: whether the step needs the Gaussian kernel (alpha, sigma) of a LinearSDE
    requires_linear_sde: ClassVar[bool] = False
    n_steps: int = 0

    @property
    def nfe_per_step(self) -> int:
        """Score evaluations per time step: one per Langevin step."""
        return self.n_steps

    def check(self, grid: CoefficientGrid) -> None:
        """Raise ``TypeError`` before sampling if the SDE lacks what this corrector needs."""
        if self.requires_linear_sde:
            check_linear_sde(grid.sde, f"{type(self).__name__}()", "Use LangevinCorrector() instead.")

    @abc.abstractmethod
    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, noise: Noise) -> Tensor:
        """``x`` after the corrector's steps at time t_i."""

    def _langevin_alpha(self, grid: CoefficientGrid, i: int) -> float:
        # score_sde scales the step by alpha_i = 1 - beta_i for VP (1 for VE).
        return grid.langevin_alpha(i)


class LangevinCorrector(Corrector):
    """Langevin MCMC with the step size set by a target signal-to-noise ratio (Song et al. 2021, Alg. 4).

    For j = 1..n_steps, with s = score(t_i, x) and z ~ N(0, I):

        eps = 2 alpha_i (snr ||z|| / ||s||)^2,    x <- x + eps s + sqrt(2 eps) z,

    where ||.|| is the per-sample norm averaged over the batch and alpha_i = 1 - beta_i for VP
    (1 otherwise), as in score_sde's LangevinCorrector. That average couples the samples of a
    batch: a sample's step depends on the others. With ``per_sample_step=True`` each sample's step
    comes from its own norms, so that with per-sample seeds (:class:`~sdegen.random.PerSampleGenerator`)
    sample i depends on seed i only.
    """

    def __init__(self, snr: float = 0.16, n_steps: int = 1, *, per_sample_step: bool = False) -> None:
        self.snr = check_positive("snr", snr)
        self.n_steps = check_steps("n_steps", n_steps)
        check_bool("per_sample_step", per_sample_step)
        self.per_sample_step = per_sample_step

    def __repr__(self) -> str:
        extra = ", per_sample_step=True" if self.per_sample_step else ""
        return f"LangevinCorrector(snr={self.snr:g}, n_steps={self.n_steps}{extra})"

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, noise: Noise) -> Tensor:
        alpha = self._langevin_alpha(grid, i)
        t = grid.batch_time(i, x)
        tiny = torch.finfo(x.dtype).tiny
        for _ in range(self.n_steps):
            s = score(t, x)
            z = noise()
            grad_norm = s.reshape(s.shape[0], -1).norm(dim=-1)
            noise_norm = z.reshape(z.shape[0], -1).norm(dim=-1)
            if self.per_sample_step:
                grad_norm, noise_norm = expand_like(grad_norm, x), expand_like(noise_norm, x)
            else:
                grad_norm, noise_norm = grad_norm.mean(), noise_norm.mean()
            step = 2.0 * alpha * (self.snr * noise_norm / grad_norm.clamp_min(tiny)) ** 2
            # x + step s + sqrt(2 step) z in two fused passes (step is a device tensor: no host read)
            x = torch.addcmul(torch.addcmul(x, step, s), (2.0 * step).sqrt(), z)
        return x


class AnnealedLangevinCorrector(Corrector):
    """Langevin MCMC with the step size set by the noise level (Song et al. 2021, Alg. 5).

    For j = 1..n_steps, with s = score(t_i, x) and z ~ N(0, I):

        eps = 2 alpha_i (snr sigma(t_i))^2,    x <- x + eps s + sqrt(2 eps) z,

    the annealed Langevin dynamics of Song and Ermon (2019) with alpha_i as in
    :class:`LangevinCorrector` (score_sde's AnnealedLangevinDynamics).
    """

    requires_linear_sde = True

    def __init__(self, snr: float = 0.16, n_steps: int = 1) -> None:
        self.snr = check_positive("snr", snr)
        self.n_steps = check_steps("n_steps", n_steps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(snr={self.snr:g}, n_steps={self.n_steps})"

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, noise: Noise) -> Tensor:
        step = 2.0 * self._langevin_alpha(grid, i) * (self.snr * grid.sigma[i]) ** 2
        t = grid.batch_time(i, x)
        for _ in range(self.n_steps):
            s = score(t, x)
            x = torch.add(torch.add(x, s, alpha=step), noise(), alpha=(2.0 * step) ** 0.5)
        return x


class NoneCorrector(Corrector):
    """No corrector: the state is left as it is (predictor-only sampling)."""

    stochastic = False
    n_steps = 0

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, noise: Noise) -> Tensor:
        return x

    def __repr__(self) -> str:
        return "NoneCorrector()"
