"""The sampler protocol: one call signature, one result type, validation and NFE counting in one place."""

from __future__ import annotations

import abc
import functools
from collections.abc import Sequence
from typing import ClassVar, NamedTuple, NoReturn

import torch
from torch import Tensor

from sdegen._checks import (
    all_finite,
    check_batch_shape,
    check_bool,
    check_finite,
    check_fits_model,
    check_generator,
    check_linear_sde,
    check_nonempty,
    check_positive,
    check_same_sde,
    check_score_fn,
    check_sde,
    check_steps,
)
from sdegen._score_evaluator import ScoreEvaluator
from sdegen.observations.base import Observation
from sdegen.random import RandomSource
from sdegen.samplers._projection import ObservationProjection
from sdegen.samplers._trajectory import SamplePath, Stopped, Trajectory
from sdegen.samplers.callback import SamplingCallback, check_callback
from sdegen.samplers.grid import TimeGrid, UniformGrid, resolve_grid
from sdegen.sde.base import SDE, ScoreFn
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["Sampler", "SampleResult", "SamplePath", "SamplerRun"]


class SampleResult(NamedTuple):
    """What a sampler returns.

    Attributes:
        x: the samples, shaped like ``x_T`` (denoised if asked).
        nfe: the number of score evaluations, the cost of sampling.
        trajectory: ``[K, B, ...]`` states at the times ``ts`` (``return_trajectory=True``), else None.
        ts: ``[K]`` float64 times of ``trajectory``, decreasing from T, else None.
    """

    x: Tensor
    nfe: int
    trajectory: Tensor | None
    ts: Tensor | None


class SamplerRun(NamedTuple):
    """What a sampler's ``_sample`` carries its state through, built once per call by the base class.

    Attributes:
        grid: the coefficients at the grid times (t, alpha, sigma, log-SNR, g^2).
        score: the score model, counted (NFE) and checked for finite values.
        generator: the source of the run's randomness.
        path: the trajectory: projection onto an observation, the callback, the kept states.
    """

    grid: CoefficientGrid
    score: ScoreEvaluator
    generator: RandomSource
    path: Trajectory


class Sampler(abc.ABC):
    """A method that turns states at time T into samples at a small time eps > 0.

    Every sampler is called the same way, ``sampler(sde, score_fn, x_T, eps=..., generator=...)``,
    or through :func:`sdegen.sample`. This base class validates the arguments, resolves ``eps``
    (``sde.sampling_eps`` by default), builds the time grid and the SDE's coefficients on it once
    (a :class:`~sdegen.sde.coefficients.CoefficientGrid`, which validates the schedule there),
    counts score evaluations, turns a NaN or infinite score into a ``FloatingPointError`` naming
    the time, runs the optional final denoising step, and disables autograd. Subclasses implement
    ``_sample`` (the method itself) and may override :meth:`time_grid` and :meth:`check`
    (requirements on the SDE, raised before any work).

    A grid sampler steps through a :class:`~sdegen.samplers.grid.TimeGrid`, its ``grid``:
    ``steps=N`` gives N steps of its ``default_grid`` kind, ``grid=`` any grid (passing both
    is an error; ``_set_grid`` resolves them).

    Capabilities are attributes: ``stochastic`` (draws noise), ``order`` (weak order for SDE
    schemes, global order for ODE schemes; None where the method is not a time discretisation),
    ``nfe_per_step`` (None where it varies) and ``supports_observation``.

    Conditioning on an observation (``observation=``, an :class:`~sdegen.observations.Observation`)
    and the per-step ``callback=`` are one mechanism for every sampler that steps on a grid of its
    own (``supports_observation``, ``supports_callback``): the base class checks them before any
    work and hands ``_sample`` a ``Trajectory`` (``sdegen.samplers._trajectory``); the sampler calls
    ``x = path.reached(i, x)`` at every grid time t_i it reaches, which imposes the observation,
    records the state when the trajectory is asked for, and tells the callback (which may stop the
    run there), and returns ``path.result(x)``. The base class sets the observed coordinates exactly
    after ``denoise=True``. Samplers without ``supports_observation`` refuse an observation before
    any work, and deterministic samplers refuse a noisy one (it must be sampled below its noise
    level).

    ``default_steps`` is N when neither ``steps`` nor ``grid`` is given (None: the sampler needs
    one, or places its own times); :mod:`sdegen.samplers.registry` and the command line read it.
    """

    stochastic: ClassVar[bool]
    default_grid: ClassVar[type[TimeGrid]] = UniformGrid
    """The kind of grid ``steps=N`` means."""
    #: whether ``steps=N`` means ``default_grid(N, floor=True)`` (a grid in the noise level that
    #: stops at the SDE's noise floor before a final denoising step)
    default_floor: ClassVar[bool] = False
    #: N when neither ``steps`` nor ``grid`` is given: 1000 for the SDE and Langevin samplers, a
    #: few-step budget for the few-step ones, None where steps must be given or are adaptive
    default_steps: ClassVar[int | None] = None
    grid: TimeGrid | None = None
    """The time grid; None where the sampler places its own times (adaptive solvers)."""
    #: How often the score's finiteness is read back to the host by default: ``None`` once at the
    #: end (sdegen's own loops never synchronise), 1 on every evaluation (for solvers whose loops
    #: synchronise anyway, or that would step on with NaN for ever).
    check_finite_every: ClassVar[int | None] = None
    #: whether ``_sample`` reports x0_hat(t_i, x_i) to the callback itself (``path.report``)
    reports_x0_hat: ClassVar[bool] = False

    @property
    def steps(self) -> int | None:
        """N, the number of steps of the grid (None without one)."""
        return None if self.grid is None else self.grid.steps

    #: whether the sampler stops at every time of its grid (and so imposes an observation there)
    supports_observation: ClassVar[bool] = False

    @property
    def supports_callback(self) -> bool:
        """Whether the sampler can call back after every step: exactly where it stops at every grid
        time, as for an observation (adaptive and Adams solvers do not)."""
        return self.supports_observation

    @property
    @abc.abstractmethod
    def order(self) -> float | None:
        """Order of convergence in the step size (weak for SDE schemes), or None."""

    @property
    @abc.abstractmethod
    def nfe_per_step(self) -> int | None:
        """Score evaluations per step, or None where it varies (adaptive solvers)."""

    def time_grid(self, sde: SDE, eps: float) -> Tensor:
        """The decreasing float64 times T = t_0 > ... > t_N = eps the sampler steps through."""
        return self.grid.times(sde, eps)

    def check(self, grid: CoefficientGrid) -> None:
        """Raise before any work if the SDE lacks what this sampler needs (default: nothing)."""
        return None

    def check_observation(self) -> None:
        """Raise ``TypeError`` before any work unless this sampler can condition on an observation."""
        self._needs_own_grid(
            self.supports_observation,
            "condition on an observation",
            "supports_observation",
            "condition by guidance with sdegen.composition.ReconstructionGuidance, which works with every sampler",
        )

    def check_callback(self) -> None:
        """Raise ``TypeError`` before any work unless this sampler can call back after every step."""
        self._needs_own_grid(
            self.supports_callback,
            "call back after every step",
            "adaptive and multistep Adams solvers choose or carry their own steps",
            "return_trajectory=True for its states at the grid times after the run",
        )

    def _needs_own_grid(self, supported: bool, what: str, why: str, instead: str) -> None:
        if not supported:
            raise TypeError(
                f"{self!r} cannot {what}: it does not step through a grid of its own ({why}). Use a grid "
                f"sampler ({_grid_sampler_names()}), or {instead}."
            )

    @abc.abstractmethod
    def _sample(self, run: SamplerRun, x: Tensor) -> SamplePath:
        """Carry ``x`` from ``grid.t[0]`` to ``grid.t[-1]`` of ``run`` (a :class:`SamplerRun`: ``grid, score,
        generator, path = run``); ``score`` counts and checks its evaluations.

        ``x`` arrives projected onto the observation at t_0 (if any). A grid sampler calls
        ``x = path.reached(i, x)`` at every later grid time t_i and returns ``path.result(x)``; a
        solver that integrates across the whole grid in one call may do so unless
        ``path.per_step``, and returns ``path.result(x, states)`` with the states at the grid times
        when ``path.keep``.
        """

    def __call__(
        self,
        sde: SDE,
        score_fn: ScoreFn,
        x_T: Tensor,
        *,
        eps: float | None = None,
        generator: RandomSource = None,
        return_trajectory: bool = False,
        progress: bool = False,
        denoise: bool = False,
        check_finite_every: int | None = None,
        observation: Observation | None = None,
        callback: SamplingCallback | None = None,
    ) -> SampleResult:
        """Sample from ``x_T`` (the state at the grid's first time, usually T) down to eps.

        Args:
            sde: the forward SDE.
            score_fn: ``(t [B], x [B, ...]) -> [B, ...]``, the score of p_t.
            x_T: ``[B, ...]`` initial states; the samples have its shape, dtype and device.
            eps: end time (default ``sde.sampling_eps``).
            generator: the source of all randomness (on ``x_T``'s device): a ``torch.Generator``,
                or a :class:`~sdegen.random.PerSampleGenerator` with one seed per sample, which makes
                sample i depend on seed i only, whatever the batch it is drawn in.
            return_trajectory: also return the states at every time of the grid.
            progress: show progress, labelled with the sampler's class: a tqdm bar on a terminal,
                plain periodic lines in a log or pipe.
            denoise: finish with Tweedie's formula E[x_0 | x_eps] (one more score evaluation).
            check_finite_every: read the score's finiteness back to the host every this many
                evaluations (default: the sampler's ``check_finite_every``; for sdegen's own loops,
                once at the end, so a GPU is never synchronised while sampling). A non-finite score
                raises ``FloatingPointError`` naming its first time and evaluation either way. A run
                that can be repeated (it draws no noise, or draws it from a ``torch.Generator``, whose
                state at the start is kept) is judged by its samples alone, and when they are not
                finite it runs again from ``x_T`` with every evaluation checked (the callback is not
                called again), which names the first non-finite one exactly. A run with a
                :class:`~sdegen.random.PerSampleGenerator` or the global generator sums part of each
                evaluation and locates a failure to a few evaluations; one with an observation (whose
                projection overwrites part of the state) sums each evaluation whole.
            observation: condition on it by projection at every grid time (see the class
                docstring and :mod:`sdegen.observations`); needs ``supports_observation`` and a
                LinearSDE.
            callback: ``callback(info)`` after every step, with a
                :class:`~sdegen.samplers.callback.StepInfo` (step, t, x, x0_hat); returning
                :data:`~sdegen.samplers.callback.StopSampling` ends the run at that state (see
                :mod:`sdegen.samplers.callback`); needs ``supports_callback``.
        """
        # sdegen.sample passes a PriorDraw as x_T: the prior is drawn once the grid is known to start at T.
        check_sde(sde)
        check_score_fn(score_fn)
        check_same_sde(sde, score_fn, "score_fn", "of the sampler")
        for flag, value in (
            ("return_trajectory", return_trajectory),
            ("progress", progress),
            ("denoise", denoise),
        ):
            check_bool(flag, value)
        eps = resolve_eps(sde, eps)
        if callback is not None:
            check_callback(callback)
            self.check_callback()
        if isinstance(x_T, PriorDraw):
            x_T.check(generator)
            if observation is not None:
                self.check_observation()  # before drawing the prior
        else:
            _check_state(x_T, score_fn, generator)
        if check_finite_every is None:
            check_finite_every = self.check_finite_every
        else:
            check_finite_every = check_steps("check_finite_every", check_finite_every)
        grid = CoefficientGrid(sde, self.time_grid(sde, eps))
        grid.check_range(
            x_T.dtype if torch.is_tensor(x_T) else (x_T.dtype or torch.get_default_dtype()), "x_T"
        )
        if self.grid is not None:
            grid.denoising_final_step = self.grid.denoising_final_step(sde, eps)
        if isinstance(x_T, PriorDraw):
            x_T = x_T.draw(sde, grid, generator)
            _check_state(x_T, score_fn, generator)
        self.check(grid)
        if denoise:
            check_linear_sde(sde, "denoising (denoise=True)", "Sample without denoise=True.")
        projection = None
        if observation is not None:
            projection = self._bind_observation(observation, grid, x_T, generator)
        # A run that can be repeated (it draws no noise, or draws it from a torch.Generator whose state
        # is kept here) is judged by its samples alone: every evaluation flows into them, so one sum
        # at the end costs nothing per step, and a failure is named exactly by running again. Not
        # with an observation, whose projection overwrites the observed coordinates of the state,
        # and with them a non-finite score that stayed there.
        replayable = (
            check_finite_every is None
            and projection is None
            and (not self.stochastic or isinstance(generator, torch.Generator))
        )
        start = generator.get_state() if replayable and isinstance(generator, torch.Generator) else None
        score = ScoreEvaluator(
            score_fn,
            T=sde.T,
            t_end=grid.t[-1],
            progress=progress,
            check_every=check_finite_every,
            times=grid.t,
            label=type(self).__name__,
            final_state=True,
            state_only=replayable,
            sparse=projection is None,
        )
        try:
            with torch.no_grad():
                out, x = self._run(
                    grid, score, generator, x_T, projection, return_trajectory, callback, denoise
                )
                if replayable:
                    if not all_finite(x):
                        again = None
                        if start is not None:  # the generator as it was at the start of the run
                            again = torch.Generator(device=generator.device)
                            again.set_state(start)
                        self._raise_first_nonfinite(grid, score_fn, x_T, denoise, again)
                else:
                    score.raise_if_nonfinite(x)
                score.finish()
        finally:
            score.close()
        if not replayable:
            check_finite(
                "the sampled x", x, f"after {type(self).__name__} (a solver diverged; try more steps)"
            )
        if not return_trajectory:
            return SampleResult(x, score.nfe, None, None)
        return SampleResult(x, score.nfe, out.trajectory, out.ts)

    def _run(
        self,
        grid: CoefficientGrid,
        score: ScoreEvaluator,
        generator: RandomSource,
        x_T: Tensor,
        projection: ObservationProjection | None,
        keep: bool,
        callback: SamplingCallback | None,
        denoise: bool,
    ) -> tuple[SamplePath, Tensor]:
        """One run from ``x_T`` down the grid: the path ``_sample`` returns and the samples (denoised
        and set to the observation where asked)."""
        if projection is not None:
            x_T = projection(0, x_T)
        path = Trajectory(
            grid,
            x_T,
            keep=keep,
            observation=projection,
            callback=callback,
            reports_x0_hat=self.reports_x0_hat,
        )
        x0_hat = None
        try:
            out = self._sample(SamplerRun(grid, score, generator, path), x_T)
            end = -1
        except Stopped as stopped:  # the callback ended the run at t_end
            out, end, x0_hat = stopped.path, stopped.step, stopped.x0_hat
        x = out.x
        if denoise:
            score.step = None
            if x0_hat is None:
                x0_hat = score.data_prediction(grid.t[end], x, grid.alpha[end], grid.sigma[end])
            x = x0_hat
            if projection is not None:
                x = projection.exact(x)
        return out, x

    def _raise_first_nonfinite(
        self,
        grid: CoefficientGrid,
        score_fn: ScoreFn,
        x_T: Tensor,
        denoise: bool,
        generator: torch.Generator | None,
    ) -> NoReturn:
        """The samples of a run hold NaN or inf: run it again from the same ``x_T`` with every
        evaluation checked as it is made, which raises ``FloatingPointError`` naming the first
        non-finite one (or the update that diverged before it).

        The run is a function of ``x_T`` and of the noise it draws, which ``generator`` (in the state
        the first run started from, or None for a run without noise) draws again, so the second run
        repeats the first up to its failure; the callback is not called again.
        """
        score = ScoreEvaluator(score_fn, T=grid.sde.T, t_end=grid.t[-1], check_every=1, times=grid.t)
        _, x = self._run(grid, score, generator, x_T, None, False, None, denoise)
        raise FloatingPointError(
            f"the sampled x has {int((~torch.isfinite(x)).sum())} non-finite value(s) after {type(self).__name__}, "
            f"but every score evaluation of a second run from the same x_T was finite: the sampler's last "
            f"update diverged (try more steps, or float64), or score_fn is not deterministic"
        )

    def _bind_observation(
        self, observation: object, grid: CoefficientGrid, x_T: Tensor, generator: RandomSource
    ) -> ObservationProjection:
        """Validate ``observation`` for this sampler, SDE and ``x_T``, and bind it to the grid."""
        if not isinstance(observation, Observation):
            raise TypeError(
                f"observation must be an sdegen.observations.Observation (Inpainting, Colorization, "
                f"LinearObservation); got {type(observation).__name__}"
            )
        self.check_observation()
        check_linear_sde(
            grid.sde,
            "conditioning on an observation (observation=...)",
            "The noised observation is drawn from the kernel N(alpha(t) x_0, sigma(t)^2 I).",
        )
        if observation.noise_std > 0 and not self.stochastic:
            # Below the noise level t* the observed coordinates are left to the sampler, which must
            # draw from p(x_0 | x_t*); a deterministic flow maps the point x_t* to a single x_0.
            raise TypeError(
                f"{self!r} is deterministic, but a noisy observation (noise_std={observation.noise_std:g}) "
                f"is imposed only down to its noise level and must be sampled below it. Use a stochastic "
                f"sampler ({_grid_sampler_names(stochastic=True)}), or "
                f"condition by guidance (ReconstructionGuidance)."
            )
        observation.check(x_T)
        return ObservationProjection(observation, grid, generator)

    def _set_grid(
        self,
        steps: int | None,
        grid: TimeGrid | Tensor | Sequence[float] | None,
        *,
        ts: Tensor | Sequence[float] | None = None,
    ) -> None:
        """Set ``grid`` from a sampler's ``steps``, ``grid`` and legacy ``ts`` arguments.

        ``ts=`` is the older spelling of ``grid=`` with a tensor of times; giving more than one of
        ``steps``, ``grid`` and ``ts`` is a ``ValueError``; giving none, ``default_steps`` steps.
        """
        if ts is not None and grid is not None:
            raise ValueError("pass grid=... or ts=..., not both (ts=ts is the same as grid=CustomGrid(ts))")
        name = "ts" if ts is not None else "grid"
        default = (
            functools.partial(self.default_grid, floor=True) if self.default_floor else self.default_grid
        )
        self.grid = resolve_grid(
            steps,
            grid if ts is None else ts,
            default=default,
            default_steps=self.default_steps,
            grid_name=name,
        )

    def _grid_repr(self) -> str:
        """``steps=N`` for the default kind of grid, else ``grid=...``."""
        if type(self.grid) is self.default_grid and getattr(self.grid, "floor", False) == self.default_floor:
            return f"steps={self.steps}"
        return f"grid={self.grid!r}"


def resolve_eps(sde: SDE, eps: float | None) -> float:
    """``eps`` validated against (0, T); ``sde.sampling_eps`` when None."""
    eps = sde.sampling_eps if eps is None else check_positive("eps", eps)
    if not eps < sde.T:
        raise ValueError(f"eps must be < T = {sde.T:.6g}; got eps={eps:.6g}")
    return eps


class PriorDraw(NamedTuple):
    """A request to start from samples of the prior p_T (what :func:`sdegen.sample` passes without
    ``x_T``), drawn once the grid is known to start at T."""

    shape: tuple[int, ...]
    device: torch.device | None
    dtype: torch.dtype | None

    def check(self, generator: object) -> None:
        """Raise before any work unless ``generator`` can draw the prior on ``device``."""
        check_generator(generator)
        if generator is not None and self.device is not None and self.device.type != generator.device.type:
            raise ValueError(
                f"generator is on {generator.device} but device={str(self.device)!r}: the prior is drawn on "
                f"the generator's device; create the generator there, "
                f"torch.Generator(device={str(self.device)!r})"
            )

    def draw(self, sde: SDE, grid: CoefficientGrid, generator: RandomSource) -> Tensor:
        start = grid.t[0]
        if abs(start - sde.T) > 1e-9 * max(1.0, sde.T):
            raise ValueError(
                f"the sampler's time grid starts at ts[0]={start:.6g} < T={sde.T:.6g}, where the prior "
                f"does not hold; pass x_T, the state at time ts[0]"
            )
        device = generator.device if self.device is None and generator is not None else self.device
        return sde.prior_sampling(self.shape, generator=generator, device=device, dtype=self.dtype)


def _check_state(x_T: object, score_fn: object, generator: object) -> None:
    check_batch_shape("x_T", x_T, min_ndim=1)
    check_nonempty("x_T", x_T)
    check_fits_model("x_T", x_T, score_fn)
    check_generator(generator, x_T, "x_T")


def _grid_sampler_names(*, stochastic: bool = False) -> str:
    """The registered samplers that step through a grid of their own (and draw noise, with
    ``stochastic``), for error messages."""
    from sdegen.samplers.registry import SAMPLERS  # the registry imports every sampler

    return ", ".join(SAMPLERS.grid_sampler_titles(stochastic=stochastic))
