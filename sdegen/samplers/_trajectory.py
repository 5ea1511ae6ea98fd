"""What happens at each grid time a sampler reaches: one mechanism for every grid sampler.

:class:`Trajectory` is built by :meth:`Sampler.__call__ <sdegen.samplers.base.Sampler.__call__>`
and handed to the sampler's ``_sample``. At every grid time t_i the sampler reaches it calls
``x = path.reached(i, x)``, which

1. imposes the observation (if the caller conditions on one): the observed coordinates become a
   draw of the observation noised to t_i;
2. records the state (if the caller asked for the trajectory);
3. tells the callback (if any), which may stop sampling there.

and it ends with ``return path.result(x)``. A sampler that evaluates x0_hat at the state it has
just reached (``reports_x0_hat``) tells the callback itself, with ``path.report(i, x, x0_hat)``
once it has that value, so that the callback sees it without a further evaluation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from sdegen.samplers._projection import ObservationProjection
from sdegen.samplers.callback import SamplingCallback, StepInfo, StopSampling
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["Trajectory", "SamplePath", "Stopped"]


class SamplePath(NamedTuple):
    """What ``Sampler._sample`` returns: the final state and, if asked, the path to it."""

    x: Tensor
    trajectory: Tensor | None = None
    ts: Tensor | None = None


class Stopped(Exception):
    """Raised through a sampler's loop when its callback returns ``StopSampling``: the path so far."""

    def __init__(self, path: SamplePath, step: int, x0_hat: Tensor | None) -> None:
        super().__init__(f"sampling stopped by its callback after step {step}")
        self.path, self.step, self.x0_hat = path, step, x0_hat


class Trajectory:
    """The states of a run at its grid times, the observation imposed there, and the callback told.

    Args:
        grid: the run's coefficient grid (its times t_0 > ... > t_N).
        x: the state at t_0.
        keep: record the states (``return_trajectory=True``).
        observation: the bound observation, or None.
        callback: the caller's callback, or None.
        reports_x0_hat: the sampler calls :meth:`report` itself after reaching each time but the
            last, with x0_hat there; :meth:`reached` then leaves the callback to it.
    """

    def __init__(
        self,
        grid: CoefficientGrid,
        x: Tensor,
        *,
        keep: bool = False,
        observation: ObservationProjection | None = None,
        callback: SamplingCallback | None = None,
        reports_x0_hat: bool = False,
    ) -> None:
        self.grid = grid
        self.observation = observation
        self.callback = callback
        self._states = [x] if keep else None
        self._reports = reports_x0_hat

    @property
    def keep(self) -> bool:
        """Whether the states at the grid times are to be returned."""
        return self._states is not None

    @property
    def per_step(self) -> bool:
        """Whether something must happen at every grid time (an observation, a callback): a solver
        that would otherwise integrate across all of them in one call must stop at each."""
        return self.observation is not None or self.callback is not None

    def project(self, i: int, x: Tensor) -> Tensor:
        """``x`` at t_i with the observation imposed (if any), for a stage within a step; neither
        recorded nor reported."""
        return x if self.observation is None else self.observation(i, x)

    def reached(self, i: int, x: Tensor) -> Tensor:
        """The state at grid time t_i (i >= 1): ``x`` projected onto the observation, recorded, and
        reported to the callback (unless the sampler reports it with x0_hat)."""
        if self.observation is not None:
            x = self.observation(i, x)
        if self._states is not None:
            self._states.append(x)
        if self.callback is not None and not (self._reports and i < self.grid.steps):
            self._call(i, x, None)
        return x

    def report(self, i: int, x: Tensor, x0_hat: Tensor | None) -> None:
        """Tell the callback about the state ``x`` at t_i and its data prediction (nothing at t_0)."""
        if self.callback is not None and i > 0:
            self._call(i, x, x0_hat)

    def result(self, x: Tensor, states: Tensor | None = None) -> SamplePath:
        """The :class:`SamplePath` ending at ``x``; ``states`` ``[K, B, ...]`` at all grid times
        when a solver produced them in one call instead of through :meth:`reached`."""
        if states is None and self._states is not None:
            states = torch.stack(self._states)
        return SamplePath(x, states if self.keep else None, self.grid.ts)

    def _call(self, i: int, x: Tensor, x0_hat: Tensor | None) -> None:
        out = self.callback(StepInfo(i, self.grid.t[i], x, x0_hat))
        if out is StopSampling:
            states = None if self._states is None else torch.stack(self._states)
            raise Stopped(SamplePath(x, states, self.grid.ts[: i + 1]), i, x0_hat)
        if out is not None:
            raise TypeError(
                f"callback returned {out!r} after step {i}; return None to go on, or sdegen.StopSampling "
                f"to stop sampling at this state"
            )
