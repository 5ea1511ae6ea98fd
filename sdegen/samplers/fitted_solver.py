"""Solvers fitted to a score model: a multistep sampler's step coefficients, fitted with its times.

Every deterministic one-evaluation-per-step sampler here (DDIM, DPM-Solver++ multistep, UniPC) is
a linear multistep method in the data prediction: with D_j = x0_hat(t_j, x_j), each step is

    x_{k+1} = a_k x_k + sum_{j <= k} b_kj D_j,        k = 0, ..., N - 1,

where (a_k, b_kj) depend only on the times (for UniPC, x_k is the state its evaluation is made at,
the predictor's). A :class:`FittedSolver` is that update with its own N(N + 3)/2 coefficients, and
:func:`fit_solver` fits them, for a given model and grid, to minimise the mean endpoint error

    E(a, b) = mean_b |x_N(x_T^b; a, b) - x*(x_T^b)|

against a high-accuracy solve x* of the probability-flow ODE from the same calibration x_T, as
:func:`~sdegen.samplers.fit_grid` does for the times. It starts from the sampler's own
coefficients (read off the sampler, see :meth:`FittedSolver.from_sampler`) and runs L-BFGS
(Nocedal and Wright 2006, Alg. 7.5, with a strong-Wolfe line search) on E, whose gradient flows
through the score model by autograd. This is the approach of the learned solvers fitted to a
model's own ODE solutions on a small batch, without distillation: Bespoke solvers (Shaul et al.
2023) fit a solver's time reparametrisation and scaling, LD3 (Tong et al. 2024) its times, and S4S
(Frankel et al. 2025) the coefficients of a multistep update with its times, as here. A grid alone
cannot correct a few-step solver's error where the data's modes separate (see
:mod:`sdegen.samplers.fitted_grid`); the coefficients can, since each step may weigh every earlier
prediction. Use it after :func:`~sdegen.samplers.fit_grid`: fit the times, then the coefficients
on those times. On 2-D mixtures at NFE 5 (2048 calibration x_T) that lowered the endpoint error
on fresh x_T by a further 1.5-2.4x (6.3x on one), and the excess energy distance of the samples
from 0.06-2.8e-3 (fitted grids alone) to 0.01-0.91e-3.

Few parameters at N = 5 (20) against thousands of calibration numbers, but N(N + 3)/2 grows: at
N = 30 (495) a fit run to its end overfitted, its error on fresh x_T 1.3x the unfitted sampler's
on the same fitted grid (anisotropic 2-D mixture, VP) at half its calibration error. So a part of
the calibration batch (``validation``, a quarter by default) is held out of the fit, and of the
iterates of L-BFGS, the sampler's own coefficients included, the one of least error on it is
returned (early stopping): never worse there than the sampler, and in that case 0.56x the
unfitted sampler's error on fresh x_T (0.00035 against 0.00062); at N = 5 the held-out selection
changed the fresh-x_T error by 0-5%. The fit is a local search from the sampler's
coefficients; E is not convex.

The fit differentiates the score in x (one backward pass per run of the solver), so ``score_fn``
must be differentiable with autograd; a calibration batch of a few thousand states of a small
model, or a few hundred of a large one, suffices. The result saves to and loads from a small JSON
file that stores the float64 times and coefficients exactly, so a reloaded solver gives
bit-identical samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from sdegen._checks import (
    check_batch_shape,
    check_linear_sde,
    check_nonempty,
    check_positive,
    check_real,
    check_score_differentiable,
    check_score_fn,
    check_sde,
    check_steps,
    check_tensor,
)
from sdegen._score_evaluator import ScoreEvaluator
from sdegen.random import RandomSource
from sdegen.samplers._denoiser import DenoiserSampler
from sdegen.samplers._steps import weighted_sum
from sdegen.samplers.base import Sampler, resolve_eps
from sdegen.samplers.fitted_grid import check_fittable, check_reference, read_record, reference_endpoints
from sdegen.samplers.grid import CustomGrid
from sdegen.sde.base import SDE, ScoreFn
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["FittedSolver", "SolverFit", "fit_solver"]

F64 = torch.float64
#: the version of the JSON layout written by :meth:`FittedSolver.save`
FORMAT = 1
#: what the "kind" key of that file says, so that a fitted grid's file is told apart
KIND = "fitted-solver"
#: A sampler whose update is linear in (x, x0_hat) is reproduced by the read-off coefficients to
#: round-off; a larger relative residual means the update is not of that form.
LINEARITY_TOLERANCE = 1e-8


@dataclass(frozen=True)
class SolverFit:
    """How a :class:`FittedSolver` was fitted by :func:`fit_solver`.

    Attributes:
        sampler: ``repr`` of the sampler whose coefficients the fit started from.
        sde: ``repr`` of the SDE.
        error: mean endpoint error on the calibration states fitted on, with the fitted coefficients.
        initial_error: the same with the sampler's own coefficients.
        validation_error: mean endpoint error on the held-out calibration states with the fitted
            coefficients (None without held-out states).
        initial_validation_error: the same with the sampler's own coefficients.
        nfe: score evaluations of the whole fit per calibration sample (reference solve
            included); every run of the solver in it is also differentiated (one backward pass).
        reference_nfe: those of the reference solve.
        evaluations: runs of the solver on the calibration batch (each differentiated on the
            states fitted on).
        calibration_size: the number of x_T in the calibration batch (held-out ones included).
        validation_size: the number of them held out of the fit.
    """

    sampler: str
    sde: str
    error: float
    initial_error: float
    validation_error: float | None
    initial_validation_error: float | None
    nfe: int
    reference_nfe: int
    evaluations: int
    calibration_size: int
    validation_size: int


class FittedSolver(DenoiserSampler):
    """The linear multistep update x_{k+1} = a_k x_k + sum_{j <= k} b_kj D_j with given coefficients.

    D_j = x0_hat(t_j, x_j) is the data prediction at the j-th time (one evaluation per step), and
    the last step ends at t_N; see the module docstring and :func:`fit_solver`, which fits the
    coefficients to a model. Row k of ``coefficients`` is ``[a_k, b_k0, ..., b_kk]`` (k + 2
    numbers). On an observation (``observation=``) the states are projected at every time, as for
    the other multistep samplers; the coefficients were fitted without one.

    Args:
        times: the N + 1 decreasing times t_0 > ... > t_N (t_0 = T to start from the prior).
        coefficients: N rows, row k the k + 2 numbers ``[a_k, b_k0, ..., b_kk]``.
        sde: ``repr`` of the SDE the coefficients belong to: sampling on another one is refused
            (None: not checked).
        fit: the record of the fit, if fitted (:class:`SolverFit`).
    """

    order = None  # a fitted method, not a discretisation of a known order
    nfe_per_step = 1

    def __init__(
        self,
        times: Tensor | Sequence[float],
        coefficients: Sequence[Sequence[float]],
        *,
        sde: str | None = None,
        fit: SolverFit | None = None,
    ) -> None:
        super().__init__(grid=CustomGrid(times, name="times"))
        self.coefficients = _check_coefficients(coefficients, self.grid.steps)
        if sde is not None and not isinstance(sde, str):
            raise TypeError(f"sde must be the repr of an SDE (a str) or None; got {type(sde).__name__}")
        if fit is not None and not isinstance(fit, SolverFit):
            raise TypeError(f"fit must be a SolverFit or None; got {type(fit).__name__}")
        self.sde, self.fit = sde, fit
        # every step weighs every earlier prediction: the loop keeps all N of them
        self.history = self.grid.steps

    @property
    def times(self) -> tuple[float, ...]:
        """t_0, ..., t_N."""
        return tuple(self.grid.ts.tolist())

    def __repr__(self) -> str:
        return f"FittedSolver({self.grid!r}{'' if self.sde is None else f', sde={self.sde}'})"

    def check(self, grid: CoefficientGrid) -> None:
        super().check(grid)
        if self.sde is not None and repr(grid.sde) != self.sde:
            raise ValueError(
                f"this FittedSolver's coefficients were fitted on {self.sde}, but the sampler was called "
                f"with {grid.sde!r}; fit one for it with fit_solver"
            )

    def _step(
        self, grid: CoefficientGrid, i: int, x: Tensor, D: list[Tensor], generator: RandomSource
    ) -> Tensor:
        a, *b = self.coefficients[i]  # b_i0 ... b_ii; D[0] is D_i, D[i] is D_0
        return weighted_sum(a, x, [(b[j], D[i - j]) for j in range(i + 1)])

    @classmethod
    def from_sampler(cls, sampler: Sampler, sde: SDE, *, eps: float | None = None) -> FittedSolver:
        """``sampler``'s own update in this form: its times from T to ``eps`` and its coefficients.

        The coefficients are read off by running the sampler once on a probe: a few 1-D states and a
        "model" whose x0_hat is an independent random number at every evaluation, so that the states
        and predictions of each step are linearly independent and the least-squares fit of x_{k+1}
        on (x_k, D_0, ..., D_k) recovers (a_k, b_kj) exactly (to round-off). No score evaluations of
        a model are made. Samples of the result equal the sampler's to round-off.

        Raises:
            TypeError: a stochastic sampler, one without a grid, one that evaluates the model at
                other times than t_0, ..., t_{N-1} once each (2S, EDM's Heun), or one whose update
                is not linear in (x, x0_hat).
        """
        check_sde(sde)
        check_linear_sde(sde, "FittedSolver", "Use a linear SDE (VE, VP, sub-VP, EDM).")
        eps = resolve_eps(sde, eps)
        times, coefficients = _read_coefficients(sampler, sde, eps)
        return cls(times, coefficients, sde=repr(sde))

    def save(self, path: str | Path) -> None:
        """Write the times, coefficients and fit record as JSON (float64 values exactly, by repr)."""
        record = {
            "format": FORMAT,
            "kind": KIND,
            "times": list(self.times),
            "coefficients": [list(row) for row in self.coefficients],
            "sde": self.sde,
            "fit": None if self.fit is None else asdict(self.fit),
        }
        Path(path).write_text(json.dumps(record, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> FittedSolver:
        """Read a solver written by :meth:`save`; ``ValueError`` naming the file if it is not one."""
        path = Path(path)
        record = read_record(path, "fitted solver", "sdegen.samplers.fit_solver")
        keys = {"format", "kind", "times", "coefficients", "sde", "fit"}
        if (
            not isinstance(record, dict)
            or record.get("format") != FORMAT
            or record.get("kind") != KIND
            or not keys <= set(record)
        ):
            raise ValueError(
                f"{path} is not a fitted-solver file of format {FORMAT} (it needs the keys {sorted(keys)} "
                f"and kind {KIND!r}); write one with FittedSolver.save"
            )
        fit = record["fit"]
        if fit is not None:
            fields = set(SolverFit.__dataclass_fields__)
            if not isinstance(fit, dict) or set(fit) != fields:
                raise ValueError(f"the fit record in {path} needs exactly the keys {sorted(fields)}")
            fit = SolverFit(**fit)
        times = record["times"]
        try:
            return cls(
                times if isinstance(times, list) else [], record["coefficients"], sde=record["sde"], fit=fit
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path} holds no valid fitted solver: {e}") from None


def fit_solver(
    sampler: Sampler,
    sde: SDE,
    score_fn: ScoreFn,
    x_T: Tensor,
    *,
    eps: float | None = None,
    reference: Tensor | None = None,
    max_evaluations: int = 200,
    rtol: float = 1e-6,
    validation: float = 0.25,
) -> FittedSolver:
    """Fit the step coefficients of ``sampler`` on its grid to ``score_fn`` on the calibration batch.

    Minimises the mean endpoint error against a reference solve over the coefficients of the
    update x_{k+1} = a_k x_k + sum_{j <= k} b_kj D_j on the sampler's times (see the module
    docstring), from the sampler's own coefficients, by L-BFGS with the gradient through the
    model. To fit the times too, fit them first: ``fit_solver(UniPCSampler(grid=fit_grid(...).grid,
    variant="bh1"), ...)``.

    Args:
        sampler: a deterministic grid sampler that evaluates the model once at each of its times
            t_0, ..., t_{N-1} (:class:`~sdegen.samplers.DDIMSampler`,
            :class:`~sdegen.samplers.DPMSolverMultistepSampler`, :class:`~sdegen.samplers.UniPCSampler`,
            or a :class:`FittedSolver` to refit).
        sde: the forward SDE, linear.
        score_fn: the score model ``(t [B], x [B, ...]) -> [B, ...]``, differentiable in x.
        x_T: ``[B, ...]`` calibration states at T (a few thousand for a small model).
        eps: the end time (default ``sde.sampling_eps``).
        reference: ``[B, ...]`` the exact endpoints of ``x_T`` at the sampler's last time, if known;
            else a dopri5 solve of the probability-flow ODE at ``rtol`` gives them.
        max_evaluations: bound on the runs of the solver on the calibration batch (each a forward
            and a backward pass through N evaluations).
        rtol: relative (and absolute) tolerance of the reference solve.
        validation: the fraction of ``x_T`` (its last states) held out of the fit: of the
            iterates of the search, the sampler's own coefficients included, the one of least error
            on them is returned (early stopping), so that the fit does not end worse than the
            sampler on x_T it has not seen. 0: none held out, the iterate of least calibration
            error is returned.

    Returns:
        the :class:`FittedSolver`, with its fit record in ``.fit`` (``nfe`` is the cost of the fit
        per calibration sample).

    Raises:
        TypeError: a sampler :meth:`FittedSolver.from_sampler` cannot read (stochastic, adaptive,
            several evaluations per step, not linear).
        ValueError: a score model without a gradient path to x, or a ``reference`` of another shape.
    """
    check_sde(sde)
    check_linear_sde(sde, "fit_solver", "Use a linear SDE (VE, VP, sub-VP, EDM).")
    check_score_fn(score_fn)
    check_tensor("x_T", x_T)
    check_batch_shape("x_T", x_T)
    check_nonempty("x_T", x_T)
    max_evaluations = check_steps("max_evaluations", max_evaluations)
    rtol = check_positive("rtol", rtol)
    validation = check_real("validation", validation)
    held_out = math.floor(validation * x_T.shape[0])
    if not 0.0 <= validation < 1.0 or (validation > 0 and not 0 < held_out < x_T.shape[0]):
        raise ValueError(
            f"validation must be a fraction in [0, 1) that holds out at least one of the {x_T.shape[0]} "
            f"states of x_T and fits on the others; got validation={validation:g}"
        )
    eps = resolve_eps(sde, eps)
    check_reference(reference, x_T)
    base = FittedSolver.from_sampler(sampler, sde, eps=eps)
    grid = CoefficientGrid(sde, torch.tensor(base.times, dtype=F64))
    tb = torch.full((min(8, x_T.shape[0]),), grid.t[0], dtype=x_T.dtype, device=x_T.device)
    check_score_differentiable(
        score_fn, tb, x_T[: tb.shape[0]], why="fit_solver, which differentiates the solver's endpoints"
    )

    reference, reference_nfe = reference_endpoints(sde, score_fn, x_T, grid.t[-1], rtol, reference)
    steps = grid.steps

    def evaluator(check_every: int | None) -> ScoreEvaluator:
        return ScoreEvaluator(score_fn, T=sde.T, t_end=grid.t[-1], check_every=check_every, times=grid.t)

    fit_x, fit_ref = x_T[: x_T.shape[0] - held_out], reference[: x_T.shape[0] - held_out]
    check_x, check_ref = x_T[x_T.shape[0] - held_out :], reference[x_T.shape[0] - held_out :]

    def endpoints(
        rows: Sequence[Sequence[Tensor | float]],
        x: Tensor,
        score: ScoreEvaluator,
        rms: list[list[float]] | None = None,
    ) -> Tensor:
        """x_N of the update with coefficients ``rows`` from ``x`` (and into ``rms`` the root mean
        square of each step's x_k, D_0, ..., D_k)."""
        D = []
        for k in range(steps):
            score.step = k
            D.append(score.data_prediction(grid.t[k], x, grid.alpha[k], grid.sigma[k]))
            if rms is not None:
                rms.append([float(v.pow(2).mean().sqrt()) for v in (x, *D)])
            a, *b = rows[k]
            x = a * x + sum(b_j * D_j for b_j, D_j in zip(b, D, strict=True))
        return x

    def error(x: Tensor, exact: Tensor) -> Tensor:
        return (x - exact).flatten(1).norm(dim=1).mean()

    def checked(rows: Sequence[Sequence[Tensor | float]]) -> float:
        """The error on the held-out states (no gradient); inf for a non-finite one."""
        with torch.no_grad():
            value = float(error(endpoints(rows, check_x, evaluator(None)), check_ref))
        return value if math.isfinite(value) else math.inf

    with torch.no_grad():
        # the sampler's own run, checked at every evaluation: a non-finite score is named here
        rms: list[list[float]] = []
        initial = float(error(endpoints(base.coefficients, fit_x, evaluator(1), rms), fit_ref))
        if held_out:
            initial_check = float(error(endpoints(base.coefficients, check_x, evaluator(1)), check_ref))
    # Parameters in units of the output they move: a unit change of theta_kj moves x_{k+1} by
    # about the data's scale, whatever the scale of the state or prediction it multiplies (under
    # VE the states at T are ~sigma_max times the data's), so that L-BFGS starts well conditioned.
    scale = float(fit_ref.pow(2).mean().sqrt()) or 1.0
    scales = [torch.tensor([scale / r if r > 0 else 1.0 for r in row], dtype=F64) for row in rms]
    runs = 1
    start = [torch.tensor(row, dtype=F64) for row in base.coefficients]
    theta = [torch.zeros_like(row, requires_grad=True) for row in start]

    def rows() -> list[Tensor]:
        return [c + s * th for c, s, th in zip(start, scales, theta, strict=True)]

    # the iterate returned: least held-out error (least calibration error without a held-out part)
    best = [initial_check if held_out else initial, initial, [row.clone() for row in start]]
    optimizer = torch.optim.LBFGS(
        theta,
        lr=1.0,
        max_iter=max_evaluations,
        max_eval=max_evaluations,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        nonlocal runs
        optimizer.zero_grad()
        with torch.enable_grad():
            current = rows()
            coefficients = [row.to(x_T.dtype) for row in current]
            # non-finite values end in the loss, which is checked: the evaluator need not sum them
            loss = error(endpoints(coefficients, fit_x, evaluator(None)), fit_ref)
            runs += 1
            if not torch.isfinite(loss):  # a step too far for the line search: the worst value
                return torch.tensor(math.inf, dtype=F64)
            loss.backward()
        value = float(loss.detach())
        selected = checked(coefficients) if held_out else value
        if selected < best[0]:
            best[:] = [selected, value, [row.detach().clone() for row in current]]
        return loss.detach().to(F64)

    optimizer.step(closure)
    fitted = [row.tolist() for row in best[2]]
    record = SolverFit(
        sampler=repr(sampler),
        sde=repr(sde),
        error=best[1],
        initial_error=initial,
        validation_error=best[0] if held_out else None,
        initial_validation_error=initial_check if held_out else None,
        nfe=reference_nfe + runs * steps,
        reference_nfe=reference_nfe,
        evaluations=runs,
        calibration_size=x_T.shape[0],
        validation_size=held_out,
    )
    return FittedSolver(base.times, fitted, sde=repr(sde), fit=record)


def _read_coefficients(sampler: Sampler, sde: SDE, eps: float) -> tuple[list[float], list[list[float]]]:
    """``sampler``'s times and its coefficients (a_k, b_kj), read off a probe run (see
    :meth:`FittedSolver.from_sampler`)."""
    check_fittable(sampler)
    times = sampler.time_grid(sde, eps)
    steps = len(times) - 1
    alpha, sigma = (v.tolist() for v in (sde.alpha(times), sde.sigma(times)))
    # Enough 1-D probe states that the last step's k + 2 unknowns are overdetermined 4 times over.
    size = 4 * (steps + 2)
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn(size, 1, generator=generator, dtype=F64)
    evaluated: list[tuple[float, Tensor, Tensor]] = []

    def probe(t: Tensor, x: Tensor) -> Tensor:
        # the score whose x0_hat = (x + sigma^2 score) / alpha is a fresh random D
        k = min(len(evaluated), steps - 1)  # a sampler evaluating more often is refused below
        D = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        evaluated.append((float(t.reshape(-1)[0]), x.clone(), D))
        return (alpha[k] * D - x) / sigma[k] ** 2

    x_N = sampler(sde, probe, x_T, eps=eps).x
    evaluation_times = [t for t, _, _ in evaluated]
    if len(evaluated) != steps or not torch.allclose(
        torch.tensor(evaluation_times, dtype=F64), times[:-1], rtol=1e-12, atol=0.0
    ):
        raise TypeError(
            f"{sampler!r} evaluates the model at {len(evaluated)} times for {steps} steps; a fitted solver "
            f"takes one evaluation at each grid time t_0, ..., t_(N-1) (DDIMSampler, "
            f"DPMSolverMultistepSampler, UniPCSampler)"
        )
    states = [x for _, x, _ in evaluated] + [x_N]
    D = [d for _, _, d in evaluated]
    coefficients = []
    for k in range(steps):
        features = torch.cat([states[k], *D[: k + 1]], dim=1)
        target = states[k + 1]
        row = torch.linalg.lstsq(features, target).solution[:, 0]
        residual = float((features @ row[:, None] - target).abs().max())
        if residual > LINEARITY_TOLERANCE * max(1.0, float(target.abs().max())):
            raise TypeError(
                f"{sampler!r}'s step {k} is not linear in (x, x0_hat) (residual {residual:.3g} of the "
                f"best linear fit); a fitted solver fits the coefficients of a linear multistep update "
                f"(DDIMSampler, DPMSolverMultistepSampler, UniPCSampler)"
            )
        coefficients.append(row.tolist())
    return times.tolist(), coefficients


def _check_coefficients(coefficients: object, steps: int) -> tuple[tuple[float, ...], ...]:
    """N rows of k + 2 finite floats, as a tuple of tuples; ``ValueError``/``TypeError`` otherwise."""
    if not isinstance(coefficients, Sequence) or isinstance(coefficients, str):
        raise TypeError(
            f"coefficients must be a sequence of {steps} rows [a_k, b_k0, ..., b_kk]; got "
            f"{type(coefficients).__name__}"
        )
    if len(coefficients) != steps:
        raise ValueError(
            f"coefficients must have one row per step, {steps} for {steps + 1} times; got {len(coefficients)}"
        )
    rows = []
    for k, row in enumerate(coefficients):
        if isinstance(row, Tensor):
            row = row.tolist()
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != k + 2:
            raise ValueError(
                f"coefficients[{k}] must be the {k + 2} numbers [a_{k}, b_{k}0, ..., b_{k}{k}]; got {row!r}"
            )
        values = []
        for v in row:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"coefficients[{k}] must hold finite numbers; got {row!r}")
            values.append(float(v))
        rows.append(tuple(values))
    return tuple(rows)
