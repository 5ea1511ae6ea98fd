"""``sdegen demo``: train, sample and evaluate a score model on a 2-D mixture with a known density.

On 2 CPU cores it takes about a minute: an MLP learns the ring of 8 Gaussians; three samplers
(reverse SDE, probability-flow ODE, predictor-corrector) draw from it, beside a few-step sampler
(DPM-Solver++(2M) at 10 and 20 score evaluations), and are scored by their energy distance to
fresh data; the probability-flow ODE gives the exact held-out NLL, printed
beside the true NLL of the same points under the mixture. Figures and ``report.json`` go to --out.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import sdegen
from sdegen.cli import _report
from sdegen.cli._common import (
    add_common_arguments,
    positive_float,
    positive_int,
    resolve_device,
    write_json,
)
from sdegen.figures import density_on_grid
from sdegen.likelihood import summarize_nll
from sdegen.metrics import energy_distance
from sdegen.parameterization import ScoreModel
from sdegen.run.config import CONFIG, Run, RunConfig, build_run, sde_section
from sdegen.run.registry import DATASETS, LOSSES, SAMPLERS, SamplerOptions
from sdegen.training import HeldOutLoss, RunDirectory, TrainConfig, Trainer, TrainResult

__all__ = ["add_parser", "run"]

# (registry name, steps): None takes --sampler-steps; the few-step sampler runs at NFE 10 and 20.
DEMO_SAMPLERS: tuple[tuple[str, int | None], ...] = (
    ("reverse-sde", None),
    ("ode", None),
    ("pc", None),
    ("dpmpp-2m", 10),
    ("dpmpp-2m", 20),
)
LIMITS = (-6.5, 6.5, -6.5, 6.5)  # of every 2-D figure: the ring has radius 4 and std 0.5


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train, sample and evaluate on a 2-D Gaussian mixture (about a minute on CPU)",
        description="Train an MLP score model on the ring of 8 Gaussians (VP SDE, noise prediction, DSM), "
        "sample it with the reverse SDE, the probability-flow ODE, a predictor-corrector sampler and "
        "DPM-Solver++(2M) at 10 and 20 steps, "
        "compute the held-out NLL with the probability-flow ODE beside the true NLL, and write figures "
        "and report.json.",
    )
    # One thread: a 128-wide MLP gains little from a second, and on a shared machine two OpenMP
    # threads waiting on each other were measured up to 60x slower per step.
    add_common_arguments(
        p, out="runs/demo", out_help="directory for figures, report.json and the run", threads=1
    )
    p.add_argument("--steps", type=positive_int, default=3000, help="training steps")
    p.add_argument("--batch-size", type=positive_int, default=512, help="training batch size")
    p.add_argument("--hidden", type=positive_int, default=128, help="MLP width (3 hidden layers)")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak AdamW learning rate")
    p.add_argument("--n-samples", type=positive_int, default=2000, help="samples per sampler")
    p.add_argument("--n-nll", type=positive_int, default=1000, help="held-out points for the NLL")
    p.add_argument("--sampler-steps", type=positive_int, default=500, help="steps of the SDE and PC samplers")
    p.add_argument("--grid", type=positive_int, default=64, help="points per side of the density heat map")
    p.set_defaults(run=run)
    # `sdegen sample/nll runs/demo` work on the result: the demo writes a run's config.json.


def run(args: argparse.Namespace) -> int:
    """Train, then the held-out NLL, the samplers, the figures and the report, each a stage below."""
    wall = time.perf_counter()
    device = resolve_device(args.device)
    out = RunDirectory(args.out)
    with out.lock():  # the demo is the directory's only writer, and it can write there
        trained = train(args, out, device)
        nll = held_out_nll(trained, progress=not args.no_progress)
        samplers = sample(args, trained, device)
        figures = draw_figures(args, trained, samplers, out.path / "figures", device)
        report = build_report(args, trained, nll, samplers, figures, time.perf_counter() - wall)
        print(_table(report))  # before writing: a failed write must not lose the result
        print(f"figures: {', '.join(report['figures'])}")
        write_json(out.path / "report.json", report)
    print(f"report: {out.path / 'report.json'}; total {report['wall_seconds']:.1f} s")
    return 0


# -- stage 1: training -------------------------------------------------------------------------------
@dataclass
class Trained:
    """The demo's run, its EMA score model, the held-out points and how training went."""

    run: Run
    score_model: ScoreModel
    held_out: Tensor
    result: TrainResult

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.run.model.parameters())


def demo_config(args: argparse.Namespace) -> RunConfig:
    """The demo's settings as a run configuration, so `sdegen sample` and `sdegen nll` work on it."""
    train = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup_steps=min(100, args.steps),
        ema_decay=0.995,
        seed=args.seed,
        log_every=max(1, args.steps // 10),
        checkpoint_every=0,
        progress=not args.no_progress,
    )
    return RunConfig(
        data={"name": "ring"},
        sde=sde_section("vp"),
        model={"name": "mlp", "hidden": args.hidden, "depth": 3},
        parameterization="noise",
        loss={"name": "dsm", "eps": 1e-5},
        batch_size=args.batch_size,
        train=train,
        eval={"every": max(1, args.steps // 5), "n": args.n_nll},
        seed=args.seed,
    )


def train(args: argparse.Namespace, out: RunDirectory, device: torch.device) -> Trained:
    """Train on the ring in ``out``, replacing any run there (the demo is meant to be rerun)."""
    cfg = demo_config(args)
    r = build_run(cfg, device, training=True)
    held_out = r.data.distribution.sample(args.n_nll, torch.Generator().manual_seed(args.seed + 1)).to(device)
    trainer = Trainer(
        r.model,
        r.loss,
        r.data.batches(cfg.batch_size, cfg.seed),
        cfg.train,
        run_dir=out,
        if_exists="overwrite",
        callbacks=[HeldOutLoss(held_out, every=cfg.eval["every"])],
        device=device,
        metadata={"config": cfg.to_dict()},
    )
    write_json(out.path / CONFIG, cfg.to_dict())
    n_params = sum(p.numel() for p in r.model.parameters())
    print(
        f"sdegen demo: {DATASETS[r.data.name].title}, {r.sde!r}, ScoreMLP 3 x {args.hidden} "
        f"({n_params:,} parameters), noise prediction, {LOSSES[cfg.loss['name']].title}"
    )
    result = trainer.fit()
    print(
        f"trained {result.step} steps x {args.batch_size} points in {result.wall_time:.1f} s "
        f"(final loss {result.final_loss:.3f})"
    )
    return Trained(r, trainer.ema_model.eval(), held_out, result)


# -- stage 2: held-out NLL by the probability-flow ODE, beside the truth ------------------------------
def held_out_nll(trained: Trained, progress: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    x, dist = trained.held_out, trained.run.data.distribution
    nll = sdegen.log_likelihood(
        x, trained.run.sde, trained.score_model, divergence=sdegen.ExactTrace(), progress=progress
    )
    seconds = time.perf_counter() - start
    model_nll = -nll.logp.detach().double().cpu()
    true_nll = -dist.log_prob(x.double()).cpu()
    return {
        "points": x.shape[0],
        "model_nats": _mean_se(model_nll),
        "true_nats": _mean_se(true_nll),
        "gap_nats": _mean_se(model_nll - true_nll),
        "nfe": int(nll.nfe),
        "seconds": seconds,
        "method": "probability-flow ODE, dopri5, rtol = atol = 1e-5, exact divergence",
    }


def _mean_se(nll: Tensor) -> dict[str, float]:
    """The mean of per-point NLLs and its standard error over the points."""
    summary = summarize_nll(-nll)
    return {"mean": summary.nll, "se": summary.se}


# -- stage 3: samples from three samplers, scored against fresh data ----------------------------------
@dataclass
class Samples:
    fresh: Tensor  # fresh data the samples are compared with
    x: dict[str, Tensor]  # by sampler short title
    trajectories: dict[str, Tensor | None]
    rows: dict[str, dict[str, Any]]  # by sampler name: the report's table
    reference: Tensor  # energy distances between independent draws of data: the statistic's scale


def sample(args: argparse.Namespace, trained: Trained, device: torch.device) -> Samples:
    dist = trained.run.data.distribution
    fresh = dist.sample(args.n_samples, torch.Generator().manual_seed(args.seed + 2))
    out = Samples(fresh, {}, {}, {}, torch.empty(0))
    for i, (name, few_steps) in enumerate(DEMO_SAMPLERS):
        spec = SAMPLERS[name]
        steps = few_steps or args.sampler_steps
        sampler = spec.factory(SamplerOptions(steps=steps))
        g = torch.Generator(device).manual_seed(args.seed + 10 + i)
        start = time.perf_counter()
        result = sdegen.sample(
            trained.run.sde,
            trained.score_model,
            (args.n_samples, 2),
            sampler,
            eps=1e-3,
            generator=g,
            device=device,
            return_trajectory=True,
            progress=not args.no_progress,
        )
        seconds = time.perf_counter() - start
        x = result.x.detach().cpu()
        panel = spec.short_title + (f", {few_steps} steps" if few_steps else "")
        out.x[panel], out.trajectories[panel] = x, result.trajectory
        out.rows[f"{name}-{few_steps}" if few_steps else name] = {
            "title": spec.title + (f", {steps} steps" if spec.fixed_steps else ""),
            "sampler": repr(sampler),
            "nfe": int(result.nfe),
            "seconds": seconds,
            "energy_distance": float(energy_distance(x, fresh)),
        }
    # The statistic's own scale: data against data, from independent draws (E = 0, unbiased).
    out.reference = torch.stack(
        [
            energy_distance(
                dist.sample(args.n_samples, torch.Generator().manual_seed(args.seed + 100 + k)), fresh
            )
            for k in range(5)
        ]
    )
    return out


# -- stage 4: figures --------------------------------------------------------------------------------
@dataclass
class Figures:
    paths: list[Path]
    density_seconds: float


def draw_figures(
    args: argparse.Namespace, trained: Trained, samples: Samples, figures: Path, device: torch.device
) -> Figures:
    paths = [
        _report.scatter_figure({"data": samples.fresh, **samples.x}, figures / "samples.png", limits=LIMITS),
        _report.trajectory_figure(samples.trajectories, figures / "trajectories.png", limits=LIMITS),
    ]
    start = time.perf_counter()
    model_grid = _report.model_density(trained.run.sde, trained.score_model, LIMITS, args.grid, device)
    true_grid = density_on_grid(trained.run.data.distribution.log_prob, LIMITS, args.grid)
    seconds = time.perf_counter() - start
    panels = {"true density": true_grid, "model density (exact likelihood)": model_grid}
    paths.append(_report.density_figure(panels, LIMITS, figures / "density.png"))
    return Figures(paths, seconds)


# -- stage 5: the report -----------------------------------------------------------------------------
def build_report(
    args: argparse.Namespace,
    trained: Trained,
    nll: dict[str, Any],
    samples: Samples,
    figures: Figures,
    wall_seconds: float,
) -> dict[str, Any]:
    return {
        "data": DATASETS[trained.run.data.name].title,
        "sde": repr(trained.run.sde),
        "model": {"network": f"ScoreMLP(2, hidden={args.hidden}, depth=3)", "parameters": trained.n_params},
        "training": {
            "steps": trained.result.step,
            "batch_size": args.batch_size,
            "seconds": trained.result.wall_time,
            "final_loss": trained.result.final_loss,
        },
        "nll": nll,
        "samplers": samples.rows,
        "reference_energy_distance": {
            "mean": float(samples.reference.mean()),
            "sd": float(samples.reference.std()),
            "draws": samples.reference.numel(),
        },
        "density_grid": {"resolution": args.grid, "seconds": figures.density_seconds},
        "figures": [str(p) for p in figures.paths],
        "wall_seconds": wall_seconds,
        "settings": vars_for_json(args),
    }


def _table(r: dict[str, Any]) -> str:
    nll = r["nll"]
    (m, ms), (t, ts), (g, gs) = (
        (nll[k]["mean"], nll[k]["se"]) for k in ("model_nats", "true_nats", "gap_nats")
    )
    lines = [
        "",
        f"held-out NLL of {nll['points']} points (nats per point in the data's coordinates, +- one standard "
        f"error), probability-flow ODE ({nll['nfe']} evaluations, "
        f"{nll['seconds']:.1f} s):",
        f"  model {m:.3f} +- {ms:.3f}    true {t:.3f} +- {ts:.3f}    model - true {g:.3f} +- {gs:.3f}",
        "",
        f"{'sampler':<52}{'NFE':>6}{'seconds':>9}   energy distance to fresh data",
    ]
    for row in r["samplers"].values():
        lines.append(
            f"{row['title']:<52}{row['nfe']:>6}{row['seconds']:>9.1f}   {row['energy_distance']:.4f}"
        )
    ref = r["reference_energy_distance"]
    lines.append(
        f"{'fresh data vs fresh data (reference, ' + str(ref['draws']) + ' draws)':<52}{'-':>6}{'-':>9}   "
        f"{ref['mean']:.4f} +- {ref['sd']:.4f} (sd)"
    )
    lines.append("")
    return "\n".join(lines)


def vars_for_json(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("run", "explicit")}
