"""Annealed Langevin dynamics, the NCSN sampler (Song and Ermon 2019, Alg. 1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from sdegen._checks import check_steps
from sdegen.samplers.correctors import AnnealedLangevinCorrector
from sdegen.samplers.grid import LogSNRGrid, TimeGrid
from sdegen.samplers.predictor_corrector import PredictorCorrectorSampler
from sdegen.samplers.predictors import Predictor
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["AnnealedLangevinSampler"]


class _NextLevel(Predictor):
    """Move to the next noise level: x <- x alpha(t_{i+1}) / alpha(t_i), the identity for VE.

    For a linear SDE, y = x / alpha(t) is the data plus Gaussian noise of std sigma(t) / alpha(t),
    NCSN's setting; y is unchanged between levels, so x is rescaled.
    """

    order = None
    stochastic = False
    nfe_per_step = 0
    requires_linear_sde = True

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: Callable, z: Tensor | None) -> Tensor:
        A, _ = grid.transition(i)
        return x if A == 1.0 else x / A

    def __repr__(self) -> str:
        return "NextLevel()"


class _NCSNLangevin(AnnealedLangevinCorrector):
    """Alg. 1's inner loop: the step size depends on the noise level only (no DDPM factor alpha_i)."""

    def _langevin_alpha(self, grid: CoefficientGrid, i: int) -> float:
        return 1.0


class AnnealedLangevinSampler(PredictorCorrectorSampler):
    """Annealed Langevin dynamics (Song and Ermon 2019, Alg. 1) over the noise levels of the SDE.

    For each level i = 1..N of the grid T > t_1 > ... > t_N = eps, ``n_steps_each`` Langevin steps
    targeting p_{t_i},

        x <- x + (a_i / 2) score(t_i, x) + sqrt(a_i) z,    a_i = 4 (snr sigma(t_i))^2,

    i.e. Alg. 1's step a_i = epsilon sigma_i^2 / sigma_L^2 with epsilon = 4 snr^2 sigma_L^2 (NCSN's
    epsilon = 2e-5 at sigma_L = 0.01 is snr = 0.22). For VE (alpha = 1) this is NCSN exactly. For
    SDEs whose alpha(t) decays (VP, sub-VP) it runs NCSN on y = x / alpha(t), the data perturbed by
    noise of std sigma(t) / alpha(t): between levels x is rescaled by alpha(t_{i+1}) / alpha(t_i),
    and the step in x is the same a_i. Without the rescaling, steps of size sigma(t)^2 could not
    stretch p_t by the factor 1 / alpha(t) it grows by as t decreases.

    The levels are geometric in the noise level sigma(t)/alpha(t) by default (a
    :class:`~sdegen.samplers.grid.LogSNRGrid`), as NCSN's sigma_1 > ... > sigma_L are: levels
    uniform in t leave most of them at high noise on VP, whose sigma/alpha falls fastest near
    t = 0, and end with a jump (from sigma/alpha 0.045 to 0.01 for VP(0.1, 20) with 100 levels)
    that Langevin steps sized for the last level cannot cross, leaving visible noise.

    It is :class:`PredictorCorrectorSampler` with the rescaling as predictor and
    :class:`AnnealedLangevinCorrector`; ``n_steps_each`` score evaluations per level.

    Args:
        steps: the number of noise levels N (default 100), geometric in sigma/alpha.
        n_steps_each: Langevin steps per level (Alg. 1's T).
        snr: the step-size ratio above.
        grid: a :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``
            (its first time is not a level), e.g. ``UniformGrid(100)`` for levels uniform in t.
        ts: the same as ``grid=ts``.
    """

    default_grid = LogSNRGrid
    default_steps = 100

    def __init__(
        self,
        steps: int | None = None,
        n_steps_each: int = 10,
        snr: float = 0.16,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        ts: Tensor | Sequence[float] | None = None,
    ) -> None:
        check_steps("n_steps_each", n_steps_each)
        super().__init__(_NextLevel(), _NCSNLangevin(snr, n_steps_each), steps, grid=grid, ts=ts)
        self.n_steps_each, self.snr = n_steps_each, self.corrector.snr

    def __repr__(self) -> str:
        return f"AnnealedLangevinSampler({self._grid_repr()}, n_steps_each={self.n_steps_each}, snr={self.snr:g})"
