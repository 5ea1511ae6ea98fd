"""Sampling the reverse-time SDE: sdegen's own Euler-Maruyama loop on a fixed grid, torchsde otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
import torchsde
from torch import Tensor

from sdegen._checks import check_bool, check_positive
from sdegen._score_evaluator import ScoreEvaluator
from sdegen.brownian import SequentialBrownian
from sdegen.random import BatchGenerator, RandomSource
from sdegen.samplers._trajectory import SamplePath, Trajectory
from sdegen.samplers.base import Sampler, SamplerRun
from sdegen.samplers.correctors import NoneCorrector
from sdegen.samplers.grid import TimeGrid, UniformGrid
from sdegen.samplers.predictor_corrector import PredictorCorrectorSampler
from sdegen.samplers.predictors import EulerMaruyama
from sdegen.sde.coefficients import CoefficientGrid
from sdegen.sde.reverse import ReverseTimeSDE

__all__ = ["ReverseSDESampler"]


class _Method(NamedTuple):
    sde_type: str  # the label torchsde checks; Ito = Stratonovich here since g(t) is state-independent
    noise_type: str  # "additive" where the method needs no dense g, "diagonal" otherwise
    weak_order: float  # as torchsde declares it
    nfe_per_step: int
    sequential_brownian: bool  # one sequential query per step, no Levy area A


def _step_starts(start: float, end: float, dt: float, steps: int) -> list[float]:
    """The times s_k = min(s_{k-1} + dt, end) torchsde's fixed-step loop visits, bit for bit."""
    out, s = [start], start
    for _ in range(steps):
        s = min(s + dt, end)
        out.append(s)
    return out


# Euler-Maruyama; Milstein's correction g g' vanishes for additive noise (torchsde's is 0 there).
_EULER_MARUYAMA = ("euler", "milstein")


class ReverseSDESampler(Sampler):
    """The reverse-time SDE dx = [f - g^2 score] dt + g dW_bar (Song et al. 2021, eq. 6), from t = T to eps.

    Euler-Maruyama ('euler', and 'milstein', the same scheme for additive noise) on fixed steps
    runs sdegen's own loop (that of :class:`~sdegen.samplers.PredictorCorrectorSampler` with no
    corrector), the :class:`~sdegen.samplers.EulerMaruyama` step

        x_{i+1} = x_i + [f(t_i, x_i) - g(t_i)^2 score(t_i, x_i)] (t_{i+1} - t_i) + g(t_i) sqrt(t_i - t_{i+1}) z_i,

    on ``steps`` uniform steps or the steps of ``grid``, with z_i drawn in order from ``generator``
    into one reused buffer (the draws torchsde makes with
    :class:`~sdegen.brownian.SequentialBrownian`, so the samples are the same to float
    rounding); torchsde's generic step for any SDE costs 1.5 times as much here (it forms f dt and
    g dW separately and checks every evaluation on the host). Like sdegen's other grid loops it
    never synchronises with the device: a non-finite score raises ``FloatingPointError`` naming
    its first time when the run ends.

    Every other method is torchsde's (``torchsde.sdeint`` on :class:`~sdegen.sde.reverse.ReverseTimeSDE`),
    with ``steps`` uniform steps, or with the steps of ``grid`` (one torchsde call per step,
    since torchsde's fixed-step loop steps uniformly and interpolates at output times;
    reversible_heun, which carries state from step to step, needs uniform steps). With
    ``adaptive=True`` (euler included) the grid gives the output times. Fixed-step methods draw
    their Brownian increments from :class:`~sdegen.brownian.SequentialBrownian`, which costs one
    ``normal_`` per step and takes a :class:`~sdegen.random.PerSampleGenerator` (per-sample seeds);
    ``adaptive=True`` and log_ode (which needs the Levy area) use ``torchsde.BrownianInterval``
    seeded from ``generator``, which draws the whole batch's path from one seed and so refuses
    per-sample seeds.

    | method          | NFE/step | weak order | loop (fixed steps) | notes                          |
    |-----------------|----------|------------|--------------------|--------------------------------|
    | euler           | 1        | 1          | sdegen             | Euler-Maruyama                 |
    | milstein        | 1        | 1          | sdegen             | = euler for additive noise     |
    | srk             | 2        | 1.5        | torchsde           | Roessler's SRA1, additive noise|
    | heun, midpoint  | 2        | 1          | torchsde           | Stratonovich                   |
    | euler_heun      | 1        | 1          | torchsde           | Stratonovich                   |
    | reversible_heun | 1        | 1          | torchsde           | weakly damped: many steps here |
    | log_ode         | 2        | 1          | torchsde           | BrownianInterval, Levy area    |

    With ``observation=`` or ``callback=`` (fixed steps only) the observed coordinates are replaced
    (the callback told) after every step of the grid (for torchsde's methods, one ``sdeint`` call
    per step); the result has the law of the same method with the projection after every step
    (reversible_heun restarts its auxiliary state at every step).

    Args:
        method: a torchsde method name from the table.
        steps: number of uniform steps (default 1000; the initial step count with ``adaptive=True``).
        grid: a :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``.
        adaptive: torchsde's adaptive step-size control (then ``rtol``, ``atol`` apply).
    """

    stochastic: ClassVar[bool] = True
    default_steps: ClassVar[int] = 1000
    METHODS: ClassVar[dict[str, _Method]] = {
        "euler": _Method("ito", "additive", 1.0, 1, True),
        "milstein": _Method("ito", "additive", 1.0, 1, True),
        "srk": _Method("ito", "additive", 1.5, 2, True),
        "heun": _Method("stratonovich", "additive", 1.0, 2, True),
        "midpoint": _Method("stratonovich", "additive", 1.0, 2, True),
        "euler_heun": _Method("stratonovich", "additive", 1.0, 1, True),
        "reversible_heun": _Method("stratonovich", "diagonal", 1.0, 1, True),
        "log_ode": _Method("stratonovich", "diagonal", 1.0, 2, False),
    }

    def __init__(
        self,
        method: str = "euler",
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        adaptive: bool = False,
        rtol: float = 1e-5,
        atol: float = 1e-4,
    ) -> None:
        if method not in self.METHODS:
            raise ValueError(
                f"method must be one of the torchsde methods {sorted(self.METHODS)}; got method={method!r}"
            )
        self.method = method
        self._set_grid(steps, grid)
        self.adaptive = check_bool("adaptive", adaptive)
        self.rtol, self.atol = check_positive("rtol", rtol), check_positive("atol", atol)
        if method == "reversible_heun" and not self.adaptive and not isinstance(self.grid, UniformGrid):
            raise ValueError(
                f"method='reversible_heun' carries its state from step to step and needs uniform steps; "
                f"got grid={self.grid!r}. Pass steps=N, or choose another method."
            )

    def __repr__(self) -> str:
        extra = f", adaptive=True, rtol={self.rtol:g}, atol={self.atol:g}" if self.adaptive else ""
        return f"ReverseSDESampler(method={self.method!r}, {self._grid_repr()}{extra})"

    @property
    def order(self) -> float:
        return self.METHODS[self.method].weak_order

    @property
    def _own_loop(self) -> bool:
        """Whether sdegen's Euler-Maruyama loop runs this method (else torchsde)."""
        return self.method in _EULER_MARUYAMA and not self.adaptive

    @property
    def check_finite_every(self) -> int | None:  # type: ignore[override]
        """None (once, at the end) for sdegen's Euler-Maruyama loop; 1 for torchsde's loops, which read
        their state on the host every step anyway (and whose adaptive step-size control fed NaN
        would shrink its step for ever)."""
        return None if self._own_loop else 1

    @property
    def supports_observation(self) -> bool:  # type: ignore[override]
        return not self.adaptive

    def check_observation(self) -> None:
        if self.adaptive:
            raise TypeError(
                f"{self!r} cannot condition on an observation: adaptive=True chooses its own steps, and "
                f"the observation is imposed on a fixed grid. Use ReverseSDESampler({self.method!r}, "
                f"steps=N) or a PredictorCorrectorSampler."
            )

    @property
    def nfe_per_step(self) -> int | None:
        return None if self.adaptive else self.METHODS[self.method].nfe_per_step

    def _sample(self, run: SamplerRun, x: Tensor) -> SamplePath:
        grid, score, generator, path = run
        if self._own_loop:  # the predictor-corrector loop with no corrector: one home for the step
            return PredictorCorrectorSampler(EulerMaruyama(), NoneCorrector())._sample(run, x)
        spec = self.METHODS[self.method]
        ts = grid.ts
        rsde = ReverseTimeSDE(
            grid.sde, score, event_shape=x.shape[1:], sde_type=spec.sde_type, noise_type=spec.noise_type
        )
        s = rsde.reversed_times(ts)  # torchsde needs increasing times: s = T - t
        if path.per_step:
            return self._sample_per_step(rsde, s, grid, score, x, generator, path)
        y0 = rsde.flatten(x)
        start, end = float(s[0]), float(s[-1])
        uniform = isinstance(self.grid, UniformGrid)
        # Slightly more than (end - start) / steps, so float rounding never adds a tiny extra step;
        # the last step is clipped to s[-1] (torchsde steps min(s + dt, s[-1])).
        dt = (end - start) / grid.steps * (1 + 1e-9)
        bm = self._brownian(start, end, y0, x, generator, dt=dt)
        solve = dict(bm=bm, method=self.method, adaptive=self.adaptive, rtol=self.rtol, atol=self.atol)
        if self.adaptive or uniform:
            if not self.adaptive:
                rsde.tabulate(_step_starts(start, end, dt, grid.steps))
            s_out = s if path.keep else s[[0, -1]]
            ys = torchsde.sdeint(rsde, y0, s_out, dt=dt, **solve)
        else:
            # One call per step: torchsde's own loop would step uniformly and interpolate.
            rsde.tabulate(s)
            ys = [y0]
            for k in range(grid.steps):
                h = float(s[k + 1] - s[k]) * (1 + 1e-9)
                ys.append(torchsde.sdeint(rsde, ys[-1], s[k : k + 2], dt=h, **solve)[-1])
            ys = torch.stack(ys) if path.keep else torch.stack([ys[0], ys[-1]])
        xs = rsde.unflatten(ys)
        return path.result(xs[-1], xs)

    def _brownian(
        self, start: float, end: float, y: Tensor, x: Tensor, generator: RandomSource, dt: float | None = None
    ) -> torchsde.BrownianInterval | SequentialBrownian:
        """The Brownian motion of one sdeint call over [start, end] in s, shaped like the flat state
        ``y``: fresh increments from ``generator`` where each fixed step queries it once
        (``sequential_brownian``), else torchsde's BrownianInterval seeded from ``generator``
        (``dt``: its step, a hint for its search)."""
        spec = self.METHODS[self.method]
        if spec.sequential_brownian and not self.adaptive:
            return SequentialBrownian(
                start, end, y.shape, dtype=y.dtype, device=y.device, generator=generator
            )
        return torchsde.BrownianInterval(
            start,
            end,
            size=y.shape,
            dtype=y.dtype,
            device=y.device,
            entropy=self._entropy(generator, x),
            dt=dt,
            levy_area_approximation="space-time" if spec.sequential_brownian else "foster",
        )

    def _entropy(self, generator: RandomSource, x: Tensor) -> int:
        """The seed of a torchsde BrownianInterval, drawn from ``generator``."""
        if isinstance(generator, BatchGenerator):
            raise ValueError(
                f"{self!r} cannot draw per-sample noise from a {type(generator).__name__}: "
                f"{'adaptive stepping' if self.adaptive else 'log_ode'} needs torchsde's BrownianInterval, "
                f"which draws the whole batch's Brownian path from one seed. Use fixed steps with another "
                f"method (e.g. ReverseSDESampler('euler')), or a torch.Generator"
            )
        return int(torch.randint(0, 2**62, (1,), generator=generator, device=x.device))

    def _sample_per_step(
        self,
        rsde: ReverseTimeSDE,
        s: Tensor,
        grid: CoefficientGrid,
        score: ScoreEvaluator,
        x: Tensor,
        generator: RandomSource,
        path: Trajectory,
    ) -> SamplePath:
        """One sdeint call per grid interval (exactly one step each), ``path.reached`` after each:
        for an observation imposed, or a callback told, at every grid time."""
        rsde.tabulate(s[:-1])  # every step starts at a grid time
        for i in range(grid.steps):
            score.step = i
            start, end = float(s[i]), float(s[i + 1])
            y = rsde.flatten(x)
            bm = self._brownian(start, end, y, x, generator)
            dt = (end - start) * (1 + 1e-9)  # one step, clipped to the interval's end
            y = torchsde.sdeint(rsde, y, s[i : i + 2], bm=bm, method=self.method, dt=dt)[-1]
            x = path.reached(i + 1, rsde.unflatten(y))
        return path.result(x)
