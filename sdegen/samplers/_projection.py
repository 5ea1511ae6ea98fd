"""Conditioning on an observation by projection: the step a grid sampler takes after each of its own."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen import random
from sdegen.observations.base import Observation
from sdegen.random import RandomSource
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["ObservationProjection"]


class ObservationProjection:
    """``observation`` bound to a sampler's grid: ``projection(i, x)`` is x at t_i made consistent with y.

    It replaces the observed coordinates of x by a draw of the observation noised to t_i
    (:meth:`~sdegen.observations.Observation.project`, with alpha(t_i), sigma(t_i) from the
    :class:`~sdegen.sde.coefficients.CoefficientGrid`), using one standard normal draw shaped like
    x from the sampler's generator. Samplers that support observations (``supports_observation``)
    call it on the state they reach at every grid time; :meth:`exact` sets the observed
    coordinates to the observation itself (t = 0), after a final denoising step.
    """

    def __init__(self, observation: Observation, grid: CoefficientGrid, generator: RandomSource) -> None:
        self.observation = observation
        self.grid = grid
        self._generator = generator
        self._buffer: Tensor | None = None

    def _normal(self, x: Tensor) -> Tensor:
        if self._buffer is None or self._buffer.shape != x.shape or self._buffer.dtype != x.dtype:
            self._buffer = torch.empty_like(x, memory_format=torch.contiguous_format)
        return random.normal_(self._buffer, self._generator)

    def __call__(self, i: int, x: Tensor) -> Tensor:
        """x at the grid time t_i with its observed coordinates replaced."""
        alpha, sigma = self.grid.alpha[i], self.grid.sigma[i]
        return self.observation.project(x, alpha, sigma, self._normal(x) if sigma > 0 else None)

    def exact(self, x: Tensor) -> Tensor:
        """x with its observed coordinates set to the observation (alpha = 1, sigma = 0)."""
        return self.observation.project(x, 1.0, 0.0, None)
