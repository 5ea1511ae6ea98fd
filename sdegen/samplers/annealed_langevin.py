"""Annealed Langevin dynamics, the NCSN sampler (Song and Ermon 2019, Alg. 1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from sdegen._checks import check_steps
from sdegen.samplers.correctors import AnnealedLangevinCorrector
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

    It is :class:`PredictorCorrectorSampler` with the rescaling as predictor and
    :class:`AnnealedLangevinCorrector`; ``n_steps_each`` score evaluations per level.

    Args:
        steps: the number of noise levels N.
        n_steps_each: Langevin steps per level (Alg. 1's T).
        snr: the step-size ratio above.
        ts: a custom decreasing grid instead of ``steps`` (its first time is not a level).
    """

    def __init__(
        self,
        steps: int = 100,
        n_steps_each: int = 10,
        snr: float = 0.16,
        *,
        ts: Tensor | Sequence[float] | None = None,
    ) -> None:
        check_steps("n_steps_each", n_steps_each)
        super().__init__(_NextLevel(), _NCSNLangevin(snr, n_steps_each), steps, ts=ts)
        self.n_steps_each, self.snr = n_steps_each, self.corrector.snr

    def __repr__(self) -> str:
        grid = f"ts=<{len(self.ts)} times>" if self.ts is not None else f"steps={self.steps}"
        return f"AnnealedLangevinSampler({grid}, n_steps_each={self.n_steps_each}, snr={self.snr:g})"
