"""DDIM (Song, Meng and Ermon 2021, "Denoising diffusion implicit models")."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from sdegen._checks import check_real
from sdegen.random import RandomSource
from sdegen.samplers._denoiser import DenoiserSampler
from sdegen.samplers._steps import noisy_exponential_step
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

        x_{i+1} = (sigma_{i+1} / sigma_i) k x_i + alpha_{i+1} (1 - k e^{-h}) x0_hat + c z,

    the exponential-integrator step with injected noise that :class:`DPMSolverSDESampler` takes
    too (``noisy_exponential_step`` in ``sdegen.samplers._steps``).

    eta = 0 (the default) is deterministic and is the exact solution of the probability-flow ODE
    for a constant x0_hat over the step, the first-order exponential integrator in lambda
    (DPM-Solver++(1), Lu et al. 2022b, eq. 10): order 1, and exact in one step for data that is a
    point mass. eta = 1 (k = e^{-h}) draws from the posterior q(x_{i+1} | x_i, x0_hat), ancestral
    sampling, which is also SDE-DPM-Solver++(1), the exact step of the reverse-time SDE for a
    constant x0_hat (Lu et al. 2022b, app.). One evaluation per step.

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
        super().__init__(steps, grid=grid)
        eta = check_real("eta", eta)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: ancestral); got eta={eta:g}")
        self.eta = eta

    def __repr__(self) -> str:
        return f"DDIMSampler({self._grid_repr()}, eta={self.eta:g})"

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0

    def _log_k(self, h: float) -> float:
        """log k = 1/2 log(1 - eta^2 (1 - e^{-2h})), k the fraction of eps_hat a step of h keeps (k = 1
        for eta = 0)."""
        c2 = self.eta**2 * -math.expm1(-2 * h)  # (c / sigma_{i+1})^2
        return 0.5 * math.log1p(-c2) if c2 < 1.0 else -math.inf  # k = 0 once e^{-2h} underflows

    def _step(
        self, grid: CoefficientGrid, i: int, x: Tensor, D: list[Tensor], generator: RandomSource
    ) -> Tensor:
        log_k = self._log_k(grid.log_snr[i + 1] - grid.log_snr[i])
        return noisy_exponential_step(grid, i, x, D[0], log_k=log_k, generator=generator)
