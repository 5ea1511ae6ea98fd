"""DDPM ancestral sampling (Ho et al. 2020, Alg. 2)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from sdegen.samplers.correctors import NoneCorrector
from sdegen.samplers.grid import TimeGrid
from sdegen.samplers.predictor_corrector import PredictorCorrectorSampler
from sdegen.samplers.predictors import AncestralSampling

__all__ = ["DDPMSampler"]


class DDPMSampler(PredictorCorrectorSampler):
    """DDPM ancestral sampling (Ho et al. 2020, Alg. 2) on the SDE's time grid.

    With eps_theta = -sigma(t) score, Alg. 2's step x_{i-1} = (x_i - beta_i / sqrt(1 - abar_i)
    eps_theta) / sqrt(alpha_i) + sigma_i z, sigma_i^2 = beta_i, reads

        x_{i+1} = (x + beta_i score(t_i, x)) / sqrt(1 - beta_i) + sqrt(beta_i) z,

    with no noise in the last step. beta_i = 1 - (alpha(t_{i+1}) / alpha(t_i))^2 is the exact
    one-step variance of the VP SDE between grid times, so ``steps=N`` is the DDPM chain respaced
    to N steps from T to eps (for N = 1000 it matches ``VPSDE.discretize(1000)`` up to O(1/N^2)).
    It is :class:`AncestralSampling` with ``posterior_variance=False`` and no corrector, and runs
    on any linear SDE (for VE it is the same update with beta_i = sigma_i^2 - sigma_{i+1}^2).
    One score evaluation per step.

    Args:
        steps: N uniform steps (default 1000).
        grid: a :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``.
        ts: the same as ``grid=ts``.
    """

    _noise_in_last_step = False

    def __init__(
        self,
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        ts: Tensor | Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            AncestralSampling(posterior_variance=False), NoneCorrector(), steps, grid=grid, ts=ts
        )

    def __repr__(self) -> str:
        return f"DDPMSampler({self._grid_repr()})"
