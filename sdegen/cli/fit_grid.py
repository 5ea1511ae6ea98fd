"""``sdegen fit-grid``: fit a sampler's time grid to a trained run (:func:`sdegen.samplers.fit_grid`),
and with ``--coefficients`` its step coefficients on that grid (:func:`sdegen.samplers.fit_solver`).

The fitted grid is written to ``RUN/grids/<sampler>-<steps>.json`` (or ``--out FILE``), where
``sdegen sample RUN --sampler S --steps N --grid fitted`` finds it; ``--grid FILE`` reads any file.
The fitted solver is written beside it, to ``<sampler>-<steps>.solver.json``, which
``sdegen sample RUN --grid FILE`` samples with.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sdegen.cli._common import (
    UsageError,
    add_common_arguments,
    as_usage_error,
    check_end_time,
    positive_float,
    positive_int,
    resolve_device,
    write_json,
)
from sdegen.run.config import load_run
from sdegen.run.registry import SAMPLERS, SamplerOptions
from sdegen.samplers.fitted_grid import FittedGrid, fit_grid
from sdegen.samplers.fitted_solver import KIND as SOLVER_KIND
from sdegen.samplers.fitted_solver import FittedSolver, fit_solver

__all__ = ["add_parser", "run", "fitted_grid_path", "load_fitted_grid", "load_fitted_solver"]

#: the folder of a run directory that holds its fitted grids
GRIDS_DIR = "grids"


def fitted_grid_path(run_dir: Path, sampler: str, steps: int) -> Path:
    """Where ``sdegen fit-grid`` writes the grid of ``sampler`` with ``steps`` steps for a run."""
    return Path(run_dir) / GRIDS_DIR / f"{sampler}-{steps}.json"


def load_fitted_grid(source: str, run_dir: Path, sampler: str, steps: int, sde: object) -> FittedGrid:
    """The grid ``--grid`` names: ``fitted`` (the run's own for this sampler and step count) or a file.

    Raises ``UsageError`` if it is missing or was fitted on another SDE.
    """
    path = fitted_grid_path(run_dir, sampler, steps) if source == "fitted" else Path(source)
    if source == "fitted" and not path.is_file():
        raise UsageError(
            f"{run_dir} has no fitted grid for --sampler {sampler} --steps {steps} ({path}); fit one with "
            f"`sdegen fit-grid {run_dir} --sampler {sampler} --steps {steps}`"
        )
    with as_usage_error(f"--grid {source}"):
        fitted = FittedGrid.load(path)
    if fitted.sde != repr(sde):
        raise UsageError(
            f"--grid {source}: the grid in {path} was fitted on {fitted.sde}, but the run's SDE is {sde!r}; "
            f"its times mean nothing there. Fit one for this run with `sdegen fit-grid {run_dir}`"
        )
    return fitted


def load_fitted_solver(path: Path, sde: object, steps: int | None) -> FittedSolver | None:
    """The solver in ``path`` if it is a fitted solver's file (None for any other file).

    Raises ``UsageError`` if it was fitted on another SDE, or has another number of steps than
    ``--steps`` asks for.
    """
    try:
        kind = json.loads(Path(path).read_text()).get("kind")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None  # not a solver's JSON: the grid's loader names what is wrong with it
    if kind != SOLVER_KIND:
        return None
    with as_usage_error(f"--grid {path}"):
        solver = FittedSolver.load(path)
    if solver.sde != repr(sde):
        raise UsageError(
            f"--grid {path}: the solver was fitted on {solver.sde}, but the run's SDE is {sde!r}; its "
            f"coefficients mean nothing there. Fit one for this run with `sdegen fit-grid RUN --coefficients`"
        )
    if steps is not None and steps != solver.steps:
        raise UsageError(f"--grid {path} is a fitted solver of {solver.steps} steps; drop --steps {steps}")
    return solver


def add_parser(sub: argparse._SubParsersAction) -> None:
    fitted = [name for name, spec in SAMPLERS.items() if spec.fixed_steps]
    p = sub.add_parser(
        "fit-grid",
        help="fit a sampler's time grid to a trained run",
        description="Fit the N + 1 times of a deterministic sampler's grid to the EMA model of a run: "
        "minimise the mean endpoint error against a dopri5 solve of the probability-flow ODE from the "
        "same prior samples (a calibration batch of --n), starting from the best of the sampler's own grid "
        "and the built-in grids of as many steps. Writes "
        "the grid to RUN/grids/SAMPLER-STEPS.json, where `sdegen sample RUN --sampler SAMPLER --steps "
        "STEPS --grid fitted` finds it, and reports the errors and the cost in score evaluations.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory written by `sdegen train`")
    add_common_arguments(p, out=None, out_help="the grid's JSON file [default: RUN/grids/SAMPLER-STEPS.json]")
    p.add_argument("--sampler", required=True, choices=fitted, help="the deterministic sampler to fit for")
    p.add_argument("--steps", type=positive_int, required=True, help="its number of steps N")
    p.add_argument("--n", type=positive_int, default=256, help="calibration prior samples (default 256)")
    p.add_argument(
        "--max-evaluations",
        type=positive_int,
        default=200,
        help="bound on the sampler's runs on the calibration batch, N evaluations each (default 200)",
    )
    p.add_argument(
        "--rtol",
        type=positive_float,
        default=1e-5,
        help="tolerance of the reference dopri5 solve (default 1e-5)",
    )
    p.add_argument(
        "--eps", type=positive_float, default=None, help="end time [default: the SDE's sampling_eps]"
    )
    p.add_argument(
        "--coefficients",
        action="store_true",
        help="also fit the sampler's step coefficients on the fitted grid (one-evaluation-per-step samplers: "
        "ddim, dpmpp-2m, dpmpp-3m, unipc; the model is differentiated) and write the fitted solver to "
        "SAMPLER-STEPS.solver.json beside the grid, for `sdegen sample RUN --grid FILE`",
    )
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    run_dir = Path(args.run_dir)
    trained = load_run(run_dir, device, ema=not args.no_ema)
    if trained.kind != "score":
        raise UsageError(
            f"{run_dir} is a {trained.kind} run; fit-grid fits the grids of an unconditional score run"
        )
    spec = SAMPLERS[args.sampler]
    with as_usage_error("sampler settings"):
        sampler = spec.factory(SamplerOptions(steps=args.steps))
    if sampler.stochastic:
        raise UsageError(
            f"--sampler {args.sampler} is stochastic; fit-grid fits a deterministic sampler's endpoints to an "
            f"ODE solve (e.g. --sampler ddim, dpmpp-2m, dpmpp-3m, unipc)"
        )
    model = trained.model
    eps = check_end_time(model.sde, trained.end_time(args.eps))
    generator = torch.Generator(device).manual_seed(args.seed)
    x_T = model.sde.prior_sampling((args.n, *trained.data.event_shape), generator=generator, device=device)
    with as_usage_error("fit-grid"):
        result = fit_grid(
            sampler, model.sde, model, x_T, eps=eps, max_evaluations=args.max_evaluations, rtol=args.rtol
        )
    path = Path(args.out) if args.out else fitted_grid_path(run_dir, args.sampler, args.steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.save(path)
    report = {
        "sampler": args.sampler,
        "steps": args.steps,
        "grid": str(path),
        "initial_error": result.initial_error,
        "error": result.error,
        "nfe_per_calibration_sample": result.nfe,
        "reference_nfe": result.reference_nfe,
        "sampler_runs": result.evaluations,
        "calibration_size": result.calibration_size,
    }
    write_json(path.with_suffix(".report.json"), report)
    print(
        f"fitted {args.steps} steps of {args.sampler} on {args.n} prior samples: endpoint error "
        f"{result.initial_error:.4g} -> {result.error:.4g}, cost {result.nfe} score evaluations per sample "
        f"({result.reference_nfe} of them the reference solve, {result.evaluations} sampler runs); wrote {path}"
    )
    if args.coefficients:
        with as_usage_error("fit-grid --coefficients"):
            solver = fit_solver(
                spec.factory(SamplerOptions(steps=args.steps, custom_grid=result.grid)),
                model.sde,
                model,
                x_T,
                eps=eps,
                max_evaluations=args.max_evaluations,
                rtol=args.rtol,
            )
        solver_path = path.with_suffix(".solver.json")
        solver.save(solver_path)
        fit = solver.fit
        print(
            f"fitted its step coefficients on that grid: endpoint error {fit.initial_error:.4g} -> "
            f"{fit.error:.4g} on the {fit.calibration_size - fit.validation_size} samples fitted on, "
            f"{fit.initial_validation_error:.4g} -> {fit.validation_error:.4g} on the {fit.validation_size} "
            f"held out; cost {fit.nfe} score evaluations per sample ({fit.evaluations} solver runs, "
            f"differentiated); wrote {solver_path}"
        )
    return 0
