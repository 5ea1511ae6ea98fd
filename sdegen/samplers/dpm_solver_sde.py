"""SDE-DPM-Solver++(2M): the multistep solver for the reverse-time SDE (Lu et al. 2022b, app.)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from sdegen import random
from sdegen.random import RandomSource
from sdegen.samplers._denoiser import DenoiserSampler
from sdegen.samplers._score import ScoreEvaluator
from sdegen.samplers._steps import multistep_order
from sdegen.samplers._trajectory import SamplePath, Trajectory
from sdegen.samplers.grid import TimeGrid
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["DPMSolverSDESampler"]


class DPMSolverSDESampler(DenoiserSampler):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, app.; k-diffusion's ``sample_dpmpp_2m_sde``) on any linear SDE.

    The reverse-time SDE in data prediction has the exact variation-of-constants form
    x_{i+1} = (sigma_{i+1}/sigma_i) e^{-h} x_i + 2 alpha_{i+1} int e^{-2(lambda_{i+1} - lambda)} x0_hat
    d lambda + sigma_{i+1} sqrt(1 - e^{-2h}) z. With x0_hat linear in lambda through the last two
    grid values (r_0 = h_{i-1} / h):

        x_{i+1} = (sigma_{i+1}/sigma_i) e^{-h} x_i + alpha_{i+1} (1 - e^{-2h}) (D_i + (D_i - D_{i-1}) / (2 r_0))
                  + sigma_{i+1} sqrt(1 - e^{-2h}) z,

    the "midpoint" form. The noise is exact for the linear part; fresh normal draws from
    ``generator`` each step. The first step, and with fewer than 10 steps the last, use the
    first-order form (D_i alone), which is :class:`DDIMSampler` with eta = 1. Weak order 1 (the
    second-order term sharpens the drift; the strong error of the noise is first order). One
    evaluation per step.

    Args:
        steps: N steps of a :class:`~sdegen.samplers.grid.LogSNRGrid` (default 20).
        grid: any :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``.
        lower_order_final: first order in the last step of runs shorter than 10 steps.
    """

    order = 1.0
    nfe_per_step = 1
    stochastic = True

    def __init__(
        self,
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        lower_order_final: bool = True,
    ) -> None:
        super().__init__(steps, grid)
        if not isinstance(lower_order_final, bool):
            raise TypeError(f"lower_order_final must be a bool; got {lower_order_final!r}")
        self.lower_order_final = lower_order_final

    def __repr__(self) -> str:
        return f"DPMSolverSDESampler({self._grid_repr()}, lower_order_final={self.lower_order_final})"

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
        D: list[Tensor] = []  # x0_hat at t_i, t_{i-1}
        for i in range(grid.steps):
            score.step = i
            D = [self.denoised(grid, i, x, score), *D[:1]]
            path.report(i, x, D[0])
            h = lam[i + 1] - lam[i]
            one_minus = -math.expm1(-2 * h)  # 1 - e^{-2h}
            w = alpha[i + 1] * one_minus
            x = torch.mul(x, sigma[i + 1] / sigma[i] * math.exp(-h))
            if multistep_order(2, i, grid, self.lower_order_final) == 2:
                # w (D_0 + (D_0 - D_1) / (2 r_0)) as weights of D_0 and D_1: one pass per term
                c = 0.5 * w * h / (lam[i] - lam[i - 1])
                x = torch.add(torch.add(x, D[0], alpha=w + c), D[1], alpha=-c)
            else:
                x = torch.add(x, D[0], alpha=w)
            z = random.randn(x.shape, generator, dtype=x.dtype, device=x.device)
            x = torch.add(x, z, alpha=sigma[i + 1] * math.sqrt(one_minus))
            x = path.reached(i + 1, x)
        return path.result(x)
