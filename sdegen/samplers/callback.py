"""A per-step hook into sampling: ``sample(..., callback=f)`` calls ``f(StepInfo)`` after every step.

Every sampler that steps through a grid of its own (those that condition on an observation too:
``supports_callback``) calls ``callback(info)`` once per step, after step k has brought the state to
the grid time t_k (k = 1..N, after any observation is imposed), with

* ``info.step``: k, the number of steps taken;
* ``info.t``: t_k, the grid time (a float; the ``ts`` of a trajectory, without t_0);
* ``info.x``: the state at t_k (the tensor the sampler continues from: copy it to keep it);
* ``info.x0_hat``: E[x_0 | x_{t_k}] = x0_hat(t_k, x) where the sampler evaluates it at that very
  state anyway (DDIM, DPM-Solver++ 2M/2S/SDE, EDM Heun, and EDM churn on its unchurned levels),
  else None. It is never computed for the callback: that would cost an evaluation per step. At
  the last step no sampler has it; ``denoise=True`` computes it for the result.

The callback returns None to go on, or :data:`StopSampling` to stop: the sampler then returns the
:class:`~sdegen.samplers.base.SampleResult` of the state reached, x_k, as if its grid had ended at
t_k (the trajectory ends at t_k; ``denoise=True`` returns x0_hat(t_k, x_k), the callback's own
``x0_hat`` where it had one). ``nfe`` counts the evaluations made, which includes the x0_hat the
callback was shown. Any other return value is an error (a truthy value is not taken to mean stop, so that a
callback that returns what it saved never stops a run by accident).

Adaptive solvers (torchdiffeq's dopri5 and the like, torchsde with ``adaptive=True``) and the
multistep Adams methods choose or carry their own steps, so they have no per-step point to call
back at: they refuse a callback with ``TypeError`` before any work. Fixed-step
:class:`~sdegen.samplers.ProbabilityFlowSampler` and :class:`~sdegen.samplers.ReverseSDESampler`
take a callback by solving one grid interval per call, as they do for an observation.

Example -- keep x0_hat every 5 steps and stop once it has settled::

    previews = []

    def watch(info):
        if info.x0_hat is not None and info.step % 5 == 0:
            previews.append(info.x0_hat.clone())
            if len(previews) > 1 and (previews[-1] - previews[-2]).abs().max() < 1e-3:
                return sdegen.StopSampling
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

__all__ = ["StepInfo", "StopSampling", "SamplingCallback"]


class StepInfo(NamedTuple):
    """What a sampler tells its callback after step ``step`` (see :mod:`sdegen.samplers.callback`)."""

    step: int
    t: float
    x: Tensor
    x0_hat: Tensor | None


class _StopSamplingType:
    """The type of :data:`StopSampling`: one instance, compared by identity."""

    _instance: _StopSamplingType | None = None

    def __new__(cls) -> _StopSamplingType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "StopSampling"

    def __reduce__(self) -> str:
        return "StopSampling"


StopSampling = _StopSamplingType()
"""What a callback returns to end sampling at the state reached (compare with ``is``)."""

SamplingCallback = Callable[[StepInfo], object]
"""The type of a callback: ``callback(info: StepInfo) -> None | StopSampling``."""


def check_callback(callback: object) -> SamplingCallback | None:
    """``callback`` if it is None or callable, else ``TypeError`` naming what was given."""
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be callable as callback(info) with an sdegen.samplers.StepInfo, returning None "
            f"or sdegen.StopSampling; got {type(callback).__name__}"
        )
    return callback
