"""Time grids fitted to a score model: the N + 1 times that minimise a sampler's endpoint error.

For a deterministic grid sampler with N steps, a score model and a small calibration batch of
x_T, :func:`fit_grid` finds the times T = t_0 > t_1 > ... > t_N = eps that minimise the mean
endpoint error

    E(t_1, ..., t_{N-1}) = mean_b |Phi_t(x_T^b) - x*(x_T^b)|,

where Phi_t is the sampler on those times and x* a high-accuracy solve of the probability-flow ODE
from the same x_T (dopri5 at tight tolerances, or a reference the caller passes). This is the
objective that Align Your Steps (Sabour et al. 2024) bounds and that GITS (Chen et al. 2024)
splits into one-step local errors; here it is minimised directly, for whatever sampler is given
(its multistep history, lower-order steps and final step included), by a derivative-free pattern
search (a compass search: Kolda, Lewis and Torczon 2003) over the log-lengths of the N steps in
lambda = log(alpha/sigma). The objective has several local minima, and which grid family lies in
the best basin differs between samplers and models, so the search starts from the sampler's own
grid and the built-in grids of the same N: each searches with an equal share of half the budget,
and the best of them goes on with the rest. The ends t_0 and t_N stay fixed, and every candidate is strictly decreasing by
construction.

The cost is bounded and reported: one reference solve plus at most ``max_evaluations`` runs of the
sampler on the calibration batch (the starting grids included), N score evaluations each. The
calibration batch should be large enough that the mean error does not overfit its few hard
x_T: with 256 2-D states the fitted grids' error on other x_T was up to 1.4x their calibration
error at NFE 5, with 2048 within 1.1x. The search ends by itself when no move of its smallest
size lowers the error; at N = 5 on 2-D mixtures that took 800-1600 runs, and 1000 runs instead of
300 lowered the error by 0-13% (0.141 -> 0.128 on an anisotropic 5-component mixture; nothing on a
multi-scale one). What a grid cannot fix at N = 5: on a mixture of tight clusters beside a broad
component, 4.7% of the trajectories of the best fitted 5-evaluation sampler (UniPC bh1) still end
in another component than their reference does, since the clusters separate from the broad
component within its last two steps (about 40% of its excess energy distance); that is the
solver's limit, and larger grid searches did not move it (24 extra random starts, 2000 runs, a
4096-state calibration batch, or squared, square-root and energy-distance objectives in place of
the mean error). What the grid cannot fix, the solver's step coefficients can: fitted on the
fitted grid (:func:`~sdegen.samplers.fit_solver`), they lowered the endpoint error of the same
sampler at NFE 5 by a further 1.5-2.4x on the multi-scale and anisotropic mixtures (VE and VP). The result is a
:class:`~sdegen.samplers.grid.CustomGrid` with its fit record (:class:`FittedGrid`), which saves to
and loads from a small JSON file that stores the float64 times exactly, so that a reloaded grid
gives bit-identical samples.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from sdegen._checks import (
    check_batch_shape,
    check_positive,
    check_score_fn,
    check_sde,
    check_steps,
    check_tensor,
)
from sdegen.samplers.base import Sampler, resolve_eps
from sdegen.samplers.grid import CustomGrid, KarrasGrid, LogSNRGrid, TimeGrid, UniformGrid
from sdegen.samplers.pf_ode import ProbabilityFlowSampler
from sdegen.sde.base import SDE, LinearSDE, ScoreFn

__all__ = ["FittedGrid", "fit_grid"]

F64 = torch.float64
#: the version of the JSON layout written by :meth:`FittedGrid.save`
FORMAT = 1


@dataclass(frozen=True)
class FittedGrid:
    """A time grid fitted to a model by :func:`fit_grid`, and how it was fitted.

    Attributes:
        times: the N + 1 float64 times, decreasing from t_0 to t_N.
        denoising_final_step: whether the last step is a denoising step from a noise floor, as
            on the sampler's own grid (multistep samplers take it at first order).
        sampler: ``repr`` of the sampler it was fitted for (on its own grid).
        sde: ``repr`` of the SDE.
        error: mean endpoint error on the calibration batch with the fitted times.
        initial_error: the same with the first starting grid (the sampler's own, unless ``starts``
            says otherwise).
        nfe: score evaluations of the whole fit, per calibration sample (reference solve included).
        reference_nfe: those of the reference solve.
        evaluations: runs of the sampler on the calibration batch.
        calibration_size: the number of x_T in the calibration batch.
    """

    times: tuple[float, ...]
    denoising_final_step: bool
    sampler: str
    sde: str
    error: float
    initial_error: float
    nfe: int
    reference_nfe: int
    evaluations: int
    calibration_size: int

    @property
    def steps(self) -> int:
        """N, the number of steps."""
        return len(self.times) - 1

    @property
    def grid(self) -> CustomGrid:
        """The times as a :class:`~sdegen.samplers.grid.CustomGrid`, to pass as a sampler's ``grid=``."""
        return CustomGrid(torch.tensor(self.times, dtype=F64), denoising_final_step=self.denoising_final_step)

    def save(self, path: str | Path) -> None:
        """Write the grid and its record as JSON (float64 times written exactly, by their repr)."""
        Path(path).write_text(json.dumps({"format": FORMAT, **asdict(self)}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FittedGrid:
        """Read a grid written by :meth:`save`; ``ValueError`` naming the file if it is not one."""
        path = Path(path)
        record = read_record(path, "fitted grid", "sdegen.samplers.fit_grid")
        fields = set(cls.__dataclass_fields__)
        if not isinstance(record, dict) or record.get("format") != FORMAT or not fields <= set(record):
            raise ValueError(
                f"{path} is not a fitted-grid file of format {FORMAT} (it needs the keys "
                f"{sorted(fields | {'format'})}); write one with FittedGrid.save"
            )
        times = record["times"]
        # the times must make a grid: strictly decreasing, finite, at least two
        CustomGrid(times if isinstance(times, list) else [], name=f"the times in {path}")
        return cls(**{k: record[k] for k in fields} | {"times": tuple(float(t) for t in times)})


def fit_grid(
    sampler: Sampler,
    sde: SDE,
    score_fn: ScoreFn,
    x_T: Tensor,
    *,
    eps: float | None = None,
    reference: Tensor | None = None,
    max_evaluations: int = 200,
    rtol: float = 1e-6,
    starts: Sequence[TimeGrid] | None = None,
) -> FittedGrid:
    """Fit the times of ``sampler``'s grid to ``score_fn`` on the calibration batch ``x_T``.

    Minimises the mean endpoint error against a reference solve over the N - 1 interior times of a
    grid of the sampler's N steps, from T to ``eps`` (see the module docstring). The sampler is
    not changed: pass ``grid=result.grid`` to a sampler of the same kind, e.g.
    ``DPMSolverMultistepSampler(grid=result.grid, order=3)``.

    Args:
        sampler: a deterministic grid sampler; its grid sets N and the starting times.
        sde: the forward SDE (its log-SNR places the search; a general SDE searches in t).
        score_fn: the score model ``(t [B], x [B, ...]) -> [B, ...]``.
        x_T: ``[B, ...]`` calibration states at T (a few hundred prior samples suffice for a
            low-dimensional model; the fitted grid has only N - 1 free times).
        eps: the end time (default ``sde.sampling_eps``).
        reference: ``[B, ...]`` the exact endpoints of ``x_T`` at ``eps``, if known; else a dopri5
            solve of the probability-flow ODE at ``rtol`` gives them.
        max_evaluations: bound on the runs of the sampler on the calibration batch.
        rtol: relative (and absolute) tolerance of the reference solve.
        starts: the grids of N steps from T to ``eps`` to search from (each with a share of the
            budget, then the best with the rest); default: the sampler's own grid and, on a
            :class:`~sdegen.sde.LinearSDE`, ``UniformGrid``, ``LogSNRGrid`` and ``KarrasGrid`` of
            its N steps, with and without the noise floor. ``[sampler.grid]`` starts from the
            sampler's grid alone.

    Returns:
        :class:`FittedGrid`, whose ``nfe`` is the cost of the fit per calibration sample.

    Raises:
        TypeError: a stochastic sampler, or one without a grid (an adaptive solver).
    """
    check_fittable(sampler)
    check_sde(sde)
    check_score_fn(score_fn)
    check_tensor("x_T", x_T)
    check_batch_shape("x_T", x_T)
    max_evaluations = check_steps("max_evaluations", max_evaluations)
    rtol = check_positive("rtol", rtol)
    eps = resolve_eps(sde, eps)
    start = sampler.time_grid(sde, eps)
    steps = len(start) - 1
    if steps < 2:
        raise ValueError(f"a grid of {steps} step has no interior time to fit; use steps >= 2 ({sampler!r})")
    if abs(float(start[0]) - sde.T) > 1e-9 * max(1.0, sde.T):
        raise ValueError(
            f"fit_grid fits grids that start at T={sde.T:g}; {sampler!r} starts at {float(start[0]):.6g}"
        )

    given = starts is not None
    if given:
        starts = list(starts)
        for grid in starts:
            if not isinstance(grid, TimeGrid) or grid.steps != steps:
                raise TypeError(
                    f"starts must be TimeGrids of the sampler's {steps} steps (e.g. UniformGrid({steps})); "
                    f"got {grid!r}"
                )
        if not starts:
            raise ValueError("starts is empty; pass None for the built-in grids, or [sampler.grid]")
    else:
        starts = [sampler.grid, *_families(sde, steps)]
    # Each start keeps its structure: a floored grid's last step stays its denoising step (first
    # order for the multistep samplers), wherever the fit moves the floor.
    points, seen = [], set()
    for grid in starts:
        times = grid.times(sde, eps) if grid is not sampler.grid else start
        ends = torch.stack([times[0], times[-1]])
        if not torch.allclose(ends, start[[0, -1]], rtol=1e-9, atol=0.0):
            if given:
                raise ValueError(
                    f"starts must span the sampler's grid, from {float(start[0]):.6g} to "
                    f"{float(start[-1]):.6g}; {grid!r} spans {float(times[0]):.6g} to {float(times[-1]):.6g}"
                )
            continue  # the built-in grids span T to eps; a custom grid with other ends starts alone
        denoising = grid.denoising_final_step(sde, eps)
        if (key := (tuple(times.tolist()), denoising)) not in seen:  # e.g. a floor below the end time
            seen.add(key)
            points.append((times, denoising))

    check_reference(reference, x_T)
    reference, reference_nfe = reference_endpoints(sde, score_fn, x_T, eps, rtol, reference)

    axis = _Axis(sde, float(start[0]), float(start[-1]))
    runs = [0, 0]  # sampler runs, score evaluations per sample path

    def error(log_lengths: Tensor, denoising: bool) -> float:
        candidate = copy.copy(sampler)
        try:
            candidate.grid = CustomGrid(axis.times(log_lengths), denoising_final_step=denoising)
        except ValueError:  # two times closer than float64 resolves: not a grid
            return math.inf
        runs[0] += 1
        try:
            out = candidate(sde, score_fn, x_T, eps=eps)
        except FloatingPointError:  # the sampler diverged on these times: the worst candidate
            return math.inf
        runs[1] += out.nfe
        value = float((out.x - reference).flatten(1).norm(dim=1).mean())
        return value if math.isfinite(value) else math.inf

    searches = []
    for times, denoising in points:
        z = axis.log_lengths(times)
        searches.append(_CompassSearch(z, error(z, denoising), denoising))
    initial = searches[0].value
    searches = [search for search in searches if math.isfinite(search.value)]
    if not searches:
        raise FloatingPointError(
            f"{sampler!r} diverged on every starting grid on the calibration batch; nothing to fit"
        )
    # The start of least error is not always in the best basin (UniPC at NFE 5 under VE: the
    # floored grid starts lower and ends 1.3x higher than the uniform one), so every start first
    # searches with an equal share of half the budget, and the best goes on with the rest.
    share = (max_evaluations - runs[0]) // (2 * len(searches))
    if len(searches) > 1 and share > 0:
        for search in searches:
            search.run(error, runs, until=runs[0] + share)
    search = min(searches, key=lambda s: s.value)
    search.run(error, runs, until=max_evaluations)
    z, best, denoising = search.z, search.value, search.denoising
    return FittedGrid(
        times=tuple(axis.times(z).tolist()),
        denoising_final_step=denoising,
        sampler=repr(sampler),
        sde=repr(sde),
        error=best,
        initial_error=initial,
        nfe=reference_nfe + runs[1],
        reference_nfe=reference_nfe,
        evaluations=runs[0],
        calibration_size=x_T.shape[0],
    )


class _CompassSearch:
    """A compass search (Kolda, Lewis and Torczon 2003) over a grid's log-lengths, resumable.

    Each sweep tries every log-length up and down by delta and keeps any improvement; a sweep
    without one halves delta. Lengths are relative, so delta = 0.5 first moves a step by ~1.6x.
    """

    def __init__(self, z: Tensor, value: float, denoising: bool) -> None:
        self.z, self.value, self.denoising, self.delta = z, value, denoising, 0.5

    def run(self, error: Callable[[Tensor, bool], float], runs: list[int], *, until: int) -> None:
        """Search until ``runs[0]`` (the sampler runs so far) reaches ``until`` or delta < 1e-3."""
        while runs[0] < until and self.delta > 1e-3:
            improved = False
            for j in range(len(self.z)):
                for sign in (1.0, -1.0):  # the other direction only if this one did not help
                    if runs[0] >= until:
                        return
                    trial = self.z.clone()
                    trial[j] += sign * self.delta
                    value = error(trial, self.denoising)
                    if value < self.value:
                        self.z, self.value, improved = trial, value, True
                        break
            if not improved:
                self.delta /= 2


def _families(sde: SDE, steps: int) -> list[TimeGrid]:
    """The built-in grids of ``steps`` steps that apply to ``sde``."""
    if not isinstance(sde, LinearSDE):
        return [UniformGrid(steps)]
    return [
        UniformGrid(steps),
        *(family(steps, floor=floor) for family in (LogSNRGrid, KarrasGrid) for floor in (False, True)),
    ]


class _Axis:
    """The grid's coordinates: the log-lengths of its N steps in lambda (in t for a general SDE),
    normalised so that the steps span the fixed ends."""

    def __init__(self, sde: SDE, t_start: float, t_end: float) -> None:
        self.sde = sde
        self.linear = isinstance(sde, LinearSDE)
        self.t_start, self.t_end = t_start, t_end
        self.start, self.end = (float(v) for v in self._to_axis(torch.tensor([t_start, t_end], dtype=F64)))

    def _to_axis(self, t: Tensor) -> Tensor:
        return self.sde.log_snr(t) if self.linear else -t

    def log_lengths(self, times: Tensor) -> Tensor:
        return torch.diff(self._to_axis(times.to(F64))).clamp_min(1e-300).log()

    def times(self, log_lengths: Tensor) -> Tensor:
        fractions = torch.cumsum(torch.softmax(log_lengths, 0), 0)
        values = self.start + (self.end - self.start) * fractions[:-1]
        inner = self.sde.inverse_log_snr(values) if self.linear else -values
        return torch.cat(
            [torch.tensor([self.t_start], dtype=F64), inner, torch.tensor([self.t_end], dtype=F64)]
        )


def read_record(path: Path, what: str, fit_with: str) -> object:
    """The JSON value in ``path``, a file of a fitted ``what``; ``FileNotFoundError`` or ``ValueError``
    naming the file and how to make one."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}; fit one with {fit_with}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a {what.replace(' ', '-')} JSON file ({e})") from None


def check_reference(reference: Tensor | None, x_T: Tensor) -> None:
    """Raise unless ``reference`` is None or a tensor of endpoints shaped like ``x_T``."""
    if reference is not None:
        check_tensor("reference", reference)
        if reference.shape != x_T.shape:
            raise ValueError(
                f"reference must be the endpoints of x_T, of its shape {tuple(x_T.shape)}; got "
                f"shape {tuple(reference.shape)}"
            )


def reference_endpoints(
    sde: SDE, score_fn: ScoreFn, x_T: Tensor, eps: float, rtol: float, reference: Tensor | None
) -> tuple[Tensor, int]:
    """The endpoints at ``eps`` a fit measures its error against, and the score evaluations per
    sample they cost: ``reference`` where the caller knows them (no cost), else the probability-flow
    ODE solved by dopri5 at relative and absolute tolerance ``rtol``."""
    if reference is not None:
        return reference, 0
    out = ProbabilityFlowSampler("dopri5", rtol=rtol, atol=rtol)(sde, score_fn, x_T, eps=eps)
    return out.x, out.nfe


def check_fittable(sampler: object) -> None:
    """Raise ``TypeError`` unless ``sampler`` is a deterministic sampler stepping through a grid of its
    own: what :func:`fit_grid` and :func:`~sdegen.samplers.fit_solver` fit to a reference solve."""
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be an sdegen Sampler; got {type(sampler).__name__}")
    if sampler.stochastic:
        raise TypeError(
            f"a fit matches a deterministic sampler's endpoints to a reference solve; {sampler!r} is "
            f"stochastic. Fit its deterministic form (e.g. DDIMSampler(eta=0)) instead."
        )
    if sampler.grid is None:
        raise TypeError(
            f"{sampler!r} places its own times (an adaptive solver) and has no grid to fit; pass a grid "
            f"sampler such as DPMSolverMultistepSampler(steps=10)"
        )
