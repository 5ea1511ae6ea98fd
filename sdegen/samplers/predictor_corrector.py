"""Predictor-corrector sampling (Song et al. 2021, Alg. 1): the loop every discrete sampler shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from sdegen import random
from sdegen.random import RandomSource
from sdegen.samplers._trajectory import SamplePath
from sdegen.samplers.base import Sampler, SamplerRun
from sdegen.samplers.correctors import Corrector
from sdegen.samplers.grid import TimeGrid
from sdegen.samplers.predictors import Predictor
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["PredictorCorrectorSampler"]


class _Noise:
    """Standard normal draws shaped like the state, from one generator, in one reused buffer."""

    def __init__(self, like: Tensor, generator: RandomSource) -> None:
        self._buffer = torch.empty_like(like, memory_format=torch.contiguous_format)
        self._generator = generator

    def __call__(self) -> Tensor:
        return random.normal_(self._buffer, self._generator)


class PredictorCorrectorSampler(Sampler):
    """Predictor-corrector sampling (Song et al. 2021, Alg. 1).

    On a grid T = t_0 > t_1 > ... > t_N = eps, each step moves the state from t_i to t_{i+1} with
    the predictor (a reverse-time discretisation), then runs the corrector (Langevin MCMC
    targeting p_{t_{i+1}}) at the new time::

        for i in 0..N-1:
            x = predictor.update(t_i -> t_{i+1}, x)
            x = corrector.update(t_{i+1}, x)

    (score_sde_pytorch runs the corrector before the predictor at each time; Alg. 1 of the paper,
    followed here, runs it after, so the final samples are corrected at eps.) The DDPM and
    annealed Langevin samplers are this loop with fixed parts.

    With ``observation=`` the observed coordinates are replaced by the noised observation at t_0
    and after the predictor and the corrector of every step (score_sde's inpainting and
    colorization update functions, Song et al. 2021, appendix I).

    Args:
        predictor: e.g. :class:`EulerMaruyama`, :class:`ReverseDiffusion`, :class:`AncestralSampling`.
        corrector: e.g. :class:`LangevinCorrector`, :class:`AnnealedLangevinCorrector`.
        steps: N, the number of predictor steps on a uniform grid (default 1000).
        grid: a :class:`~sdegen.samplers.grid.TimeGrid` (e.g. ``LogSNRGrid(100)``) or decreasing
            times in [eps, T] instead of ``steps``; the samples are taken at its last time.
        ts: the same as ``grid=ts``.
    """

    # DDPM (Ho et al. 2020, Alg. 2) adds no noise in its last step.
    _noise_in_last_step: ClassVar[bool] = True
    supports_observation = True
    #: N when neither ``steps`` nor a grid is given
    default_steps: ClassVar[int] = 1000

    def __init__(
        self,
        predictor: Predictor,
        corrector: Corrector,
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        ts: Tensor | Sequence[float] | None = None,
    ) -> None:
        if not isinstance(predictor, Predictor):
            raise TypeError(
                f"predictor must be a Predictor such as EulerMaruyama(); got {type(predictor).__name__}"
            )
        if not isinstance(corrector, Corrector):
            raise TypeError(
                f"corrector must be a Corrector such as LangevinCorrector(); got {type(corrector).__name__}"
            )
        if predictor.nfe_per_step == 0 and corrector.nfe_per_step == 0:
            raise ValueError(
                "predictor and corrector are both None (NonePredictor(), NoneCorrector()): nothing would move"
            )
        self.predictor, self.corrector = predictor, corrector
        self._set_grid(steps, grid, ts=ts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.predictor!r}, {self.corrector!r}, {self._grid_repr()})"

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.predictor.stochastic or self.corrector.stochastic

    @property
    def order(self) -> float | None:
        return self.predictor.order

    @property
    def nfe_per_step(self) -> int:
        return self.predictor.nfe_per_step + self.corrector.nfe_per_step

    def check(self, grid: CoefficientGrid) -> None:
        self.predictor.check(grid)
        self.corrector.check(grid)

    def _sample(self, run: SamplerRun, x: Tensor) -> SamplePath:
        grid, score, generator, path = run
        noise = _Noise(x, generator)
        predictor, corrector = self.predictor, self.corrector
        corrects = corrector.nfe_per_step > 0
        last = grid.steps - 1
        for i in range(grid.steps):
            score.step = i
            noisy = predictor.stochastic and (i < last or self._noise_in_last_step)
            x = predictor.update(grid, i, x, score, noise() if noisy else None)
            if corrects:  # the observation is imposed after the predictor too (score_sde's inpainting)
                x = path.project(i + 1, x)
            x = path.reached(i + 1, corrector.update(grid, i + 1, x, score, noise))
        return path.result(x)
