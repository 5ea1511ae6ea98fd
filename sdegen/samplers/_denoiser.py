"""What the few-step samplers share: a time grid, a LinearSDE, and the denoiser x0_hat.

Every few-step sampler (DDIM, DPM-Solver++, EDM, UniPC) is written in the noise level of a
linear SDE, lambda = log(alpha/sigma) or sigma/alpha = exp(-lambda), against the data prediction
x0_hat(t, x) (see :mod:`sdegen.samplers.tweedie`). For any kernel N(alpha x_0, sigma^2 I) the
probability-flow ODE is then

    d(x / sigma) / d lambda = e^lambda x0_hat,                    (Lu et al. 2022b, eq. 9)
    d(x / alpha) / d(sigma/alpha) = (x / alpha - x0_hat) / (sigma/alpha),   (Karras et al. 2022, eq. 4)

with no assumption alpha^2 + sigma^2 = 1. This base class resolves ``steps``/``grid``, refuses a
non-linear SDE before any work, and evaluates x0_hat at grid times or at extra times (the
intermediate stages of singlestep and stochastic methods) with the coefficients of the one
:class:`~sdegen.sde.coefficients.CoefficientGrid`.

``steps=N`` means N steps of a grid in the noise level that stops at the SDE's noise floor
(``LogSNRGrid(N, floor=True)``, sigma_min for VE) and takes its last step from there to eps, a
denoising step: the multistep methods take it at first order (their order rule,
``multistep_order`` in ``sdegen.samplers._steps``), since an extrapolation of x0_hat
over that long step would only amplify the noise of its history; the one-step methods (2S, EDM's
Heun) take it as any other step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from sdegen._checks import check_linear_sde
from sdegen._score_evaluator import ScoreEvaluator
from sdegen.random import RandomSource
from sdegen.samplers._trajectory import SamplePath
from sdegen.samplers.base import Sampler, SamplerRun
from sdegen.samplers.grid import LogSNRGrid, TimeGrid
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["DenoiserSampler"]


class DenoiserSampler(Sampler):
    """Base of the samplers written against x0_hat on a :class:`~sdegen.sde.LinearSDE`.

    All of them condition on an observation (``observation=``) by projecting the state they reach
    at every grid time (``path.reached``); the multistep methods (DPM-Solver++ 2M/3M and SDE,
    UniPC) keep the x0_hat of their history as evaluated before the projection, as inpainting
    pipelines do. The steps they share are in :mod:`sdegen.samplers._steps`.

    A method that takes one evaluation per step, x0_hat at the state it has reached, implements
    :meth:`_step` and inherits the loop (DDIM, DPM-Solver++ 2M/3M and SDE); one with stages
    within a step implements ``_sample`` itself (2S, EDM, UniPC).
    """

    stochastic: ClassVar[bool] = False
    supports_observation: ClassVar[bool] = True
    default_grid: ClassVar[type[TimeGrid]] = LogSNRGrid
    default_floor: ClassVar[bool] = True
    #: N when neither ``steps`` nor ``grid`` is given (the reference implementation's default)
    default_steps: ClassVar[int] = 20
    #: the loops evaluate x0_hat at each state they reach and report it to the callback
    reports_x0_hat: ClassVar[bool] = True
    #: how many x0_hat values :meth:`_step` is given: those at t_i, t_{i-1}, ... (fewer at the start)
    history: ClassVar[int] = 1

    def __init__(
        self, steps: int | None = None, *, grid: TimeGrid | Tensor | Sequence[float] | None = None
    ) -> None:
        self._set_grid(steps, grid)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._grid_repr()})"

    def _sample(self, run: SamplerRun, x: Tensor) -> SamplePath:
        grid, score, generator, path = run
        D: list[Tensor] = []  # x0_hat at t_i, t_{i-1}, ...
        for i in range(grid.steps):
            score.step = i
            D = [self.denoised(grid, i, x, score), *D[: self.history - 1]]
            path.report(i, x, D[0])
            x = path.reached(i + 1, self._step(grid, i, x, D, generator))
        return path.result(x)

    def _step(
        self, grid: CoefficientGrid, i: int, x: Tensor, D: list[Tensor], generator: RandomSource
    ) -> Tensor:
        """x_{i+1} from x_i and the latest values D of x0_hat (D[0] at t_i, D[1] at t_{i-1}, ...)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _step nor _sample")

    def check(self, grid: CoefficientGrid) -> None:
        check_linear_sde(
            grid.sde,
            f"{type(self).__name__}",
            "Use ProbabilityFlowSampler or ReverseSDESampler for a general SDE.",
        )

    @staticmethod
    def denoised(grid: CoefficientGrid, i: int, x: Tensor, score: ScoreEvaluator) -> Tensor:
        """x0_hat(t_i, x) at the i-th time of ``grid`` (one evaluation)."""
        return score.data_prediction(grid.t[i], x, grid.alpha[i], grid.sigma[i])

    @staticmethod
    def times_at_log_snr(grid: CoefficientGrid, lam: Sequence[float]) -> CoefficientGrid:
        """The coefficients at the times where lambda(t) takes the values ``lam``: t = t(lambda)."""
        t = grid.sde.inverse_log_snr(torch.tensor(lam, dtype=torch.float64))
        return CoefficientGrid(grid.sde, t)
