"""The sampler protocol: one call signature, one result type, validation and NFE counting in one place."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from sdegen._checks import (
    check_batch_shape,
    check_finite,
    check_fits_model,
    check_generator,
    check_linear_sde,
    check_nonempty,
    check_positive,
    check_steps,
)
from sdegen.observations.base import Observation
from sdegen.random import RandomSource
from sdegen.samplers._projection import ObservationProjection
from sdegen.samplers._score import ScoreEvaluator
from sdegen.samplers.grid import TimeGrid, UniformGrid, resolve_grid
from sdegen.sde.base import SDE, ScoreFn
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["Sampler", "SampleResult", "SamplePath"]


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


class SamplePath(NamedTuple):
    """What ``Sampler._sample`` returns: the final state and, if asked, the path to it."""

    x: Tensor
    trajectory: Tensor | None = None
    ts: Tensor | None = None


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
    is one mechanism for every sampler that steps on a grid of its own: the base class checks the
    observation against ``x_T`` and the SDE, binds it to the grid as an
    ``ObservationProjection`` (``sdegen.samplers._projection``), and passes that to
    ``_sample`` as ``observation=``; the sampler applies it to the state it reaches at every
    grid time (and the base class sets the observed coordinates exactly after ``denoise=True``).
    Samplers without ``supports_observation`` refuse an observation before any work, and
    deterministic samplers refuse a noisy one (it must be sampled below its noise level).
    """

    stochastic: ClassVar[bool]
    default_grid: ClassVar[type[TimeGrid]] = UniformGrid
    """The kind of grid ``steps=N`` means."""
    default_steps: ClassVar[int | None] = None
    """N when neither ``steps`` nor a grid is given (``sdegen sample``'s default ``--steps`` too);
    None for a sampler that places its own times (an adaptive solver)."""
    grid: TimeGrid | None = None
    """The time grid; None where the sampler places its own times (adaptive solvers)."""
    #: How often the score's finiteness is read back to the host by default: ``None`` once at the
    #: end (sdegen's own loops never synchronise), 1 on every evaluation (for solvers whose loops
    #: synchronise anyway, or that would step on with NaN for ever).
    check_finite_every: ClassVar[int | None] = None

    @property
    def steps(self) -> int | None:
        """N, the number of steps of the grid (None without one)."""
        return None if self.grid is None else self.grid.steps

    #: whether ``_sample`` takes ``observation=`` (conditioning by projection on its grid)
    supports_observation: ClassVar[bool] = False

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
        if not self.supports_observation:
            raise TypeError(
                f"{self!r} cannot condition on an observation: it does not declare supports_observation "
                f"(a sampler that steps through a grid of its own and imposes the observation there). Use "
                f"a grid sampler (PredictorCorrectorSampler, DDPMSampler, AnnealedLangevinSampler, DDIM, "
                f"DPM-Solver, EDM, UniPC, ReverseSDESampler with fixed steps, ProbabilityFlowSampler with a "
                f"one-step fixed-grid method), or condition by guidance with "
                f"sdegen.composition.ReconstructionGuidance, which works with every sampler."
            )

    @abc.abstractmethod
    def _sample(
        self,
        grid: CoefficientGrid,
        score: ScoreEvaluator,
        x: Tensor,
        *,
        generator: RandomSource,
        return_trajectory: bool,
    ) -> SamplePath:
        """Carry ``x`` from ``grid.t[0]`` to ``grid.t[-1]``; ``score`` counts and checks its evaluations.

        A sampler with ``supports_observation`` also takes ``observation``, an
        ``ObservationProjection`` (passed only when the caller conditions): ``x`` arrives already
        projected at t_0, and the sampler applies ``x = observation(i, x)`` to its state at every
        later grid time t_i.
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
                raises ``FloatingPointError`` naming its first time and evaluation either way.
            observation: condition on it by projection at every grid time (see the class
                docstring and :mod:`sdegen.observations`); needs ``supports_observation`` and a
                LinearSDE.
        """
        sde, x_T, eps = _check_arguments(sde, score_fn, x_T, eps, generator)
        if check_finite_every is None:
            check_finite_every = self.check_finite_every
        else:
            check_finite_every = check_steps("check_finite_every", check_finite_every)
        grid = CoefficientGrid(sde, self.time_grid(sde, eps))
        self.check(grid)
        if denoise:
            check_linear_sde(sde, "denoising (denoise=True)", "Sample without denoise=True.")
        extra = {}
        if observation is not None:
            extra["observation"] = projection = self._bind_observation(observation, grid, x_T, generator)
        score = ScoreEvaluator(
            score_fn,
            T=sde.T,
            t_end=grid.t[-1],
            progress=progress,
            check_every=check_finite_every,
            times=grid.t,
            label=type(self).__name__,
        )
        try:
            with torch.no_grad():
                if observation is not None:
                    x_T = projection(0, x_T)
                path = self._sample(
                    grid, score, x_T, generator=generator, return_trajectory=return_trajectory, **extra
                )
                x = path.x
                if denoise:
                    score.step = None
                    x = score.data_prediction(grid.t[-1], x, grid.alpha[-1], grid.sigma[-1])
                    if observation is not None:
                        x = projection.exact(x)
                score.raise_if_nonfinite()
                score.finish()
        finally:
            score.close()
        check_finite("the sampled x", x, f"after {type(self).__name__} (a solver diverged; try more steps)")
        if not return_trajectory:
            return SampleResult(x, score.nfe, None, None)
        return SampleResult(x, score.nfe, path.trajectory, path.ts)

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
                f"sampler (DDPMSampler, DDIMSampler(eta=1.0), DPMSolverSDESampler, ReverseSDESampler, a "
                f"PredictorCorrectorSampler), or condition by guidance (ReconstructionGuidance)."
            )
        observation.check(x_T)
        return ObservationProjection(observation, grid, generator)

    def _set_grid(
        self,
        steps: int | None,
        grid: TimeGrid | Tensor | Sequence[float] | None,
        *,
        default_steps: int | None,
        ts: Tensor | Sequence[float] | None = None,
    ) -> None:
        """Set ``grid`` from a sampler's ``steps``, ``grid`` and legacy ``ts`` arguments.

        ``ts=`` is the older spelling of ``grid=`` with a tensor of times; giving more than one of
        ``steps``, ``grid`` and ``ts`` is a ``ValueError``.
        """
        if ts is not None and grid is not None:
            raise ValueError("pass grid=... or ts=..., not both (ts=ts is the same as grid=CustomGrid(ts))")
        name = "ts" if ts is not None else "grid"
        self.grid = resolve_grid(
            steps,
            grid if ts is None else ts,
            default=self.default_grid,
            default_steps=default_steps,
            grid_name=name,
        )

    def _grid_repr(self) -> str:
        """``steps=N`` for the default kind of grid, else ``grid=...``."""
        if type(self.grid) is self.default_grid:
            return f"steps={self.steps}"
        return f"grid={self.grid!r}"


def resolve_eps(sde: SDE, eps: float | None) -> float:
    """``eps`` validated against (0, T); ``sde.sampling_eps`` when None."""
    eps = sde.sampling_eps if eps is None else check_positive("eps", eps)
    if not eps < sde.T:
        raise ValueError(f"eps must be < T = {sde.T:.6g}; got eps={eps:.6g}")
    return eps


def _check_arguments(
    sde: object, score_fn: object, x_T: object, eps: float | None, generator: object
) -> tuple[SDE, Tensor, float]:
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an sdegen.SDE (e.g. VPSDE()); got {type(sde).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(t, x); got {type(score_fn).__name__}")
    check_batch_shape("x_T", x_T, min_ndim=1)
    check_nonempty("x_T", x_T)
    check_fits_model("x_T", x_T, score_fn)
    check_generator(generator, x_T, "x_T")
    return sde, x_T, resolve_eps(sde, eps)
