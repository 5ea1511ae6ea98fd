"""DDIM (Song, Meng and Ermon 2021, "Denoising diffusion implicit models")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_real
from sdegen.random import RandomSource
from sdegen.samplers._denoiser import DenoiserSampler
from sdegen.samplers._score import ScoreEvaluator
from sdegen.samplers._steps import exponential_step
from sdegen.samplers._trajectory import SamplePath, Trajectory
from sdegen.samplers.grid import TimeGrid
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["DDIMSampler"]


class DDIMSampler(DenoiserSampler):
    """DDIM (Song et al. 2021, eq. 12) on any linear SDE, with eta in [0, 1].

    From t_i to t_{i+1}, with x0_hat = x0_hat(t_i, x_i), eps_hat = (x_i - alpha_i x0_hat) / sigma_i
    and h = lambda_{i+1} - lambda_i,

        x_{i+1} = alpha_{i+1} x0_hat + sqrt(sigma_{i+1}^2 - c^2) eps_hat + c z,
        c = eta sigma_{i+1} sqrt(1 - e^{-2h}):

    eq. 12 with alpha_t, sqrt(1 - alpha_t^2) replaced by alpha(t), sigma(t), and c^2 = eta^2 times
    the variance of q(x_{i+1} | x_i, x_0) (which is sigma_{i+1}^2 (1 - e^{-2h}) for any kernel;
    eq. 16 for VP). With k = sqrt(1 - eta^2 (1 - e^{-2h})) this is

        x_{i+1} = (sigma_{i+1} / sigma_i) k x_i + alpha_{i+1} (1 - k e^{-h}) x0_hat + c z.

    eta = 0 (the default) is deterministic and is the exact solution of the probability-flow ODE
    for a constant x0_hat over the step, the first-order exponential integrator in lambda
    (DPM-Solver++(1), Lu et al. 2022b, eq. 10): order 1, and exact in one step for data that is a
    point mass. eta = 1 draws from the posterior q(x_{i+1} | x_i, x0_hat), ancestral sampling.
    One evaluation per step.

    Args:
        steps: N steps of a :class:`~sdegen.samplers.grid.LogSNRGrid` (default 50, DDIM's usual).
        grid: any :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``.
        eta: the noise scale in [0, 1].
    """

    order = 1.0
    nfe_per_step = 1
    default_steps = 50

    def __init__(
        self,
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        eta: float = 0.0,
    ) -> None:
        super().__init__(steps, grid)
        eta = check_real("eta", eta)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: ancestral); got eta={eta:g}")
        self.eta = eta

    def __repr__(self) -> str:
        return f"DDIMSampler({self._grid_repr()}, eta={self.eta:g})"

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0

    def _sample(
        self,
        grid: CoefficientGrid,
        score: ScoreEvaluator,
        x: Tensor,
        *,
        generator: RandomSource,
        path: Trajectory,
    ) -> SamplePath:
        alpha, sigma, lam = grid.alpha, grid.sigma, grid.log_snr
        for i in range(grid.steps):
            score.step = i
            x0 = self.denoised(grid, i, x, score)
            path.report(i, x, x0)
            h = lam[i + 1] - lam[i]
            if self.eta == 0.0:
                x = exponential_step(x, x0, sigma_ratio=sigma[i + 1] / sigma[i], alpha_to=alpha[i + 1], h=h)
            else:
                c2 = self.eta**2 * -math.expm1(-2 * h)  # (c / sigma_{i+1})^2
                log_k = 0.5 * math.log1p(-c2) if c2 < 1.0 else -math.inf  # k = 0 once e^{-2h} underflows
                x = torch.add(
                    x * (sigma[i + 1] / sigma[i] * math.exp(log_k)),
                    x0,
                    alpha=-alpha[i + 1] * math.expm1(log_k - h),
                )
                z = random.randn(x.shape, generator, dtype=x.dtype, device=x.device)
                x = torch.add(x, z, alpha=sigma[i + 1] * math.sqrt(c2))
            x = path.reached(i + 1, x)
        return path.result(x)
