"""Sampling the probability-flow ODE: sdegen's own Runge-Kutta loop on a fixed grid, torchdiffeq otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torchdiffeq
from torch import Tensor

from sdegen._checks import check_positive, check_steps
from sdegen._solve import LoggedField, solve_failure
from sdegen.samplers._runge_kutta import TABLEAUS, runge_kutta_flow
from sdegen.samplers._trajectory import SamplePath
from sdegen.samplers.base import Sampler, SamplerRun
from sdegen.samplers.grid import TimeGrid, uniform_times
from sdegen.sde.base import SDE
from sdegen.sde.probability_flow import ProbabilityFlowODE

__all__ = ["ProbabilityFlowSampler"]


class _Method(NamedTuple):
    order: float
    nfe_per_step: int | None  # None: adaptive, or varying (implicit Adams' corrector iterations)
    adaptive: bool


# Trajectory resolution of adaptive solvers when ``steps`` is not given.
_DEFAULT_OUTPUTS = 100
# The default bound on adaptive steps, as for the likelihood's solve.
MAX_STEPS = 10_000


class ProbabilityFlowSampler(Sampler):
    """The probability-flow ODE dx/dt = f - 1/2 g^2 score (Song et al. 2021, eq. 13), solved in t.

    Deterministic: the same x_T always gives the same sample. Adaptive methods (dopri5, ...) choose
    their own steps to meet ``rtol``/``atol``, and the grid only sets the times of the returned
    trajectory (100 uniform intervals by default); fixed-grid methods (euler, rk4, ...) take
    exactly the steps of the grid: ``steps`` uniform steps, or those of ``grid``.

    Fixed-step Runge-Kutta in t is a poor few-step solver for VE, whose probability-flow ODE is
    stiff in t (linear rate ~ log(sigma_max / sigma_min)); the exponential integrators
    (:class:`DPMSolverMultistepSampler`, :class:`DDIMSampler`) integrate the linear part exactly.

    | method          | NFE/step | order | adaptive | loop (LinearSDE)  |
    |-----------------|----------|-------|----------|-------------------|
    | euler           | 1        | 1     | no       | sdegen            |
    | midpoint, heun2 | 2        | 2     | no       | sdegen            |
    | heun3           | 3        | 3     | no       | sdegen            |
    | rk4 (3/8 rule)  | 4        | 4     | no       | sdegen            |
    | explicit_adams  | 1 (+6)   | 4     | no       | torchdiffeq       |
    | implicit_adams  | >= 2     | 4     | no       | torchdiffeq       |
    | dopri5          | 6        | 5     | yes      | torchdiffeq       |
    | dopri8          | 12       | 8     | yes      | torchdiffeq       |
    | bosh3           | 3        | 3     | yes      | torchdiffeq       |
    | fehlberg2       | 2        | 2     | yes      | torchdiffeq       |
    | adaptive_heun   | 2        | 2     | yes      | torchdiffeq       |

    The fixed-grid Runge-Kutta methods run sdegen's own loop on a :class:`~sdegen.sde.LinearSDE`
    (``sdegen.samplers._runge_kutta``): torchdiffeq's tableaus, the same stage times, the same
    samples to float rounding, but each stage state formed as one weighted sum of x and the
    earlier scores with host-float coefficients (f = a(t) x is linear), where torchdiffeq's
    generic step for any field costs 2-2.5 times as much on these problems (it forms every
    slope, reads ``y.abs()`` of the state at every evaluation and stores every step's state).
    Like sdegen's other grid loops it never synchronises with the device: a non-finite score
    raises ``FloatingPointError`` naming its first time when the run ends (``check_finite_every``
    as for every sampler). A general :class:`~sdegen.sde.SDE` (drift non-linear in x), the
    Adams methods and the adaptive ones are solved by ``torchdiffeq.odeint``; the Adams and
    adaptive methods check every evaluation, since their step control or corrector iteration fed
    NaN would not end.

    With ``observation=`` or ``callback=`` (fixed-grid one-step methods: not adaptive, not Adams)
    the observed coordinates are replaced by the noised observation (the callback told) after
    every step of the grid: the replacement method on a deterministic sampler, whose only
    randomness is then the noise of the replaced coordinates.

    Args:
        method: a method from the table (torchdiffeq's names and tableaus).
        rtol: relative tolerance of adaptive methods.
        atol: absolute tolerance of adaptive methods.
        steps: number of uniform steps of a fixed-grid method (required for those, unless ``grid``
            is given).
        grid: a :class:`~sdegen.samplers.grid.TimeGrid` (or decreasing times) instead of ``steps``:
            the steps of a fixed-grid method, the output times of an adaptive one. Samples are
            taken at its last time.
        ts: the same as ``grid=ts`` (custom decreasing times in [eps, T]).
        max_steps: bound on the steps of an adaptive method; a solve that needs more (a stiff
            score) raises :class:`~sdegen.SolverError` with the time it reached, as does a
            step-size underflow. None: no bound.
    """

    stochastic: ClassVar[bool] = False
    METHODS: ClassVar[dict[str, _Method]] = {
        "euler": _Method(1.0, 1, False),
        "midpoint": _Method(2.0, 2, False),
        "heun2": _Method(2.0, 2, False),
        "heun3": _Method(3.0, 3, False),
        "rk4": _Method(4.0, 4, False),
        "explicit_adams": _Method(4.0, 1, False),
        "implicit_adams": _Method(4.0, None, False),
        "dopri5": _Method(5.0, None, True),
        "dopri8": _Method(8.0, None, True),
        "bosh3": _Method(3.0, None, True),
        "fehlberg2": _Method(2.0, None, True),
        "adaptive_heun": _Method(2.0, None, True),
    }

    def __init__(
        self,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        ts: Tensor | Sequence[float] | None = None,
        max_steps: int | None = MAX_STEPS,
    ) -> None:
        if method not in self.METHODS:
            raise ValueError(
                f"method must be one of the torchdiffeq methods {sorted(self.METHODS)}; got method={method!r}"
            )
        self.method = method
        self.rtol, self.atol = check_positive("rtol", rtol), check_positive("atol", atol)
        self._set_grid(steps, grid, ts=ts)
        if not self.METHODS[method].adaptive and self.grid is None:
            raise ValueError(
                f"method={method!r} is a fixed-grid method: pass steps=N (or grid=...) to "
                f"ProbabilityFlowSampler, e.g. ProbabilityFlowSampler({method!r}, steps=100)"
            )
        self.max_steps = None if max_steps is None else check_steps("max_steps", max_steps)

    def __repr__(self) -> str:
        if self.METHODS[self.method].adaptive:
            outputs = "" if self.grid is None else f", {self._grid_repr()}"
            return f"ProbabilityFlowSampler(method={self.method!r}, rtol={self.rtol:g}, atol={self.atol:g}{outputs})"
        return f"ProbabilityFlowSampler(method={self.method!r}, {self._grid_repr()})"

    @property
    def order(self) -> float:
        return self.METHODS[self.method].order

    @property
    def check_finite_every(self) -> int | None:  # type: ignore[override]
        """None (once, at the end) for the fixed-grid Runge-Kutta methods, whose loops run on to the
        end of the grid whatever the values; 1 for the adaptive and Adams methods, whose step-size
        control or corrector iteration fed NaN would never end (and which read their state on the
        host every step anyway)."""
        return None if self.method in TABLEAUS else 1

    @property
    def nfe_per_step(self) -> int | None:
        return self.METHODS[self.method].nfe_per_step

    @property
    def supports_observation(self) -> bool:  # type: ignore[override]
        return not self.METHODS[self.method].adaptive and not self.method.endswith("adams")

    def check_observation(self) -> None:
        if not self.supports_observation:
            why = "chooses its own steps" if self.METHODS[self.method].adaptive else "is a multistep method"
            raise TypeError(
                f"{self!r} cannot condition on an observation: method={self.method!r} {why}, and the "
                f"observation is imposed after every step of a fixed grid. Use a one-step fixed-grid "
                f"method (euler, midpoint, heun2, heun3, rk4) with steps=N, or a stochastic grid sampler."
            )

    def time_grid(self, sde: SDE, eps: float) -> Tensor:
        if self.grid is None:
            return uniform_times(sde.T, eps, _DEFAULT_OUTPUTS)
        return self.grid.times(sde, eps)

    def _sample(self, run: SamplerRun, x: Tensor) -> SamplePath:
        grid, score, generator, path = run
        if self.method in TABLEAUS and grid.linear:
            return runge_kutta_flow(TABLEAUS[self.method], grid, score, x, path)
        ts = grid.ts
        ode = ProbabilityFlowODE(grid.sde, score)
        field = LoggedField(ode)
        if path.per_step:  # an observation or a callback at every grid time: one odeint call per step
            if x.device.type == "cpu":
                ode.tabulate(ts, x.dtype)
            for i in range(grid.steps):
                score.step = i
                x = path.reached(i + 1, self._solve(field, x, ts[i : i + 2])[-1])
            return path.result(x)
        adaptive = self.METHODS[self.method].adaptive
        t = ts if (path.keep or not adaptive) else ts[[0, -1]]
        if adaptive:
            # Adaptive solvers step past the last output time and interpolate back; a last step
            # that ends exactly at ts[-1] never leaves [eps, T].
            options = {"step_t": ts[-1:]}
            if self.max_steps is not None:
                options["max_num_steps"] = self.max_steps
            xs = self._solve(field, x, t, rtol=self.rtol, atol=self.atol, options=options)
        else:
            if x.device.type == "cpu":
                ode.tabulate(ts, x.dtype)  # stage times on the grid skip the coefficient functions
            # torchdiffeq's Adams methods raise their order up to 12 as history accumulates; fix it
            # at the declared 4 (explicit_adams costs 1 evaluation per step after 2 rk4 steps).
            options = {"max_order": 4} if self.method.endswith("adams") else None
            xs = self._solve(field, x, t, options=options)
        return path.result(xs[-1], xs)

    def _solve(self, field: LoggedField, x: Tensor, t: Tensor, **kwargs: object) -> Tensor:
        try:
            return torchdiffeq.odeint(field, x, t, method=self.method, **kwargs)
        except AssertionError as err:
            adaptive = self.METHODS[self.method].adaptive
            tolerances = {"rtol": self.rtol, "atol": self.atol} if adaptive else {}
            raise solve_failure(
                err, field.log, what="the probability-flow ODE", method=self.method, **tolerances
            ) from err
