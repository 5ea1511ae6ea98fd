"""``sdegen sample``: draw samples from a trained run with a chosen sampler, perhaps of a class
(classifier-free or classifier guidance) or filling in images (inpainting).

Sample i is drawn from its own seed, derived from ``--seed`` and i
(:class:`~sdegen.random.PerSampleGenerator`), in fixed chunks of ``--batch-size`` by index
(:func:`sdegen.distributed.map_chunks`); under ``torchrun --nproc_per_node=N`` the chunks are shared
out over the processes and gathered on process 0, which writes, with the same samples bit for bit.
What sample i is conditioned on (its class, the image it fills in) is also a function of i alone,
so a chunk is guided by the labels and observations of its own samples.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

import sdegen
from sdegen import distributed, figures
from sdegen.cli import _report
from sdegen.cli._common import (
    UsageError,
    add_common_arguments,
    as_usage_error,
    check_end_time,
    describe_evaluations,
    evaluations,
    nonnegative_int,
    positive_float,
    positive_int,
    real,
    resolve_device,
    write_json,
)
from sdegen.cli._conditioning import Classes, Inpaint, classes, inpaint
from sdegen.cli.brought import BroughtRun, add_model_arguments, load_model
from sdegen.cli.fit_grid import load_fitted_grid, load_fitted_solver
from sdegen.metrics import energy_distance
from sdegen.models import scheduler_thresholding
from sdegen.random import PerSampleGenerator, derive_seed
from sdegen.run.config import Run
from sdegen.run.registry import GRIDS, MASKS, SAMPLERS, SamplerOptions, check_options_apply
from sdegen.samplers import AnnealedLangevinSampler
from sdegen.training.files import atomic_write, check_writable

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="sample a trained run",
        description="Draw samples from the EMA model of a run directory; write samples.pt, a figure "
        "and samples.json (NFE, time, and for 2-D data the energy distance to fresh data). A "
        "class-conditional run samples one class (--label K) or every class in turn, with "
        "classifier-free guidance --guidance W; an unconditional run is guided to a class by a "
        "classifier run (--label K --classifier RUN). --inpaint MASK fills in test images.",
    )
    p.add_argument(
        "run_dir", metavar="RUN", nargs="?", default=None, help="run directory written by `sdegen train`"
    )
    add_common_arguments(p, out=None, out_help="where to write the samples [default: RUN]")
    p.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLERS,
        help="sampler: "
        + "; ".join(f"{name}: {spec.title}" for name, spec in SAMPLERS.items())
        + " [default: annealed-langevin on the noise levels of an NCSN run, else pc]",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help=f"time steps (noise levels of annealed-langevin) of fixed-step samplers (default: the "
        f"sampler's own: {_default_steps()})",
    )
    p.add_argument(
        "--grid",
        default="default",
        metavar="{" + ",".join([*GRIDS, "fitted"]) + "} or FILE",
        help="time grid of fixed-step samplers: uniform in t, uniform in log-SNR, Karras (rho = 7), or the "
        "sampler's own (uniform for reverse-sde, pc, ddpm; logsnr for ddim, dpmpp-*, unipc and karras for "
        "edm-*, both stopping at the SDE's noise floor before a denoising step; geometric levels for "
        "annealed-langevin); fitted: the run's grid fitted for --sampler and --steps by `sdegen fit-grid`; "
        "or a fitted grid's JSON file, or a fitted solver's (`sdegen fit-grid --coefficients`), which is "
        "the sampler itself",
    )
    p.add_argument(
        "--snr",
        type=positive_float,
        default=None,
        help="signal-to-noise ratio of the Langevin steps [default: 0.16, 0.22 for annealed-langevin]",
    )
    p.add_argument(
        "--n-steps-each", type=positive_int, default=100, help="Langevin steps per level of annealed-langevin"
    )
    p.add_argument("--n", type=positive_int, default=1000, help="number of samples")
    p.add_argument(
        "--batch-size", type=positive_int, default=1000, help="samples per call of the sampler (fixed chunks)"
    )
    p.add_argument(
        "--eps",
        type=positive_float,
        default=None,
        help="time at which sampling stops [default: the smallest noise level of an NCSN run, else the "
        "SDE's sampling_eps: 1e-3 for vp, subvp and cosine, 1e-5 for ve, 0.002 for edm]",
    )
    p.add_argument("--denoise", action="store_true", help="finish with one noise-free denoising step")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (slow first call)")
    g = p.add_argument_group("classes")
    g.add_argument(
        "--label",
        type=nonnegative_int,
        default=None,
        help="the class to sample [default: every class in turn, or with --inpaint each image's own] (a "
        "conditional run, or with --classifier)",
    )
    g.add_argument(
        "--guidance",
        type=real,
        default=argparse.SUPPRESS,
        help="w of classifier-free guidance (1 + w) s(t, x, y) - w s(t, x, null) of a conditional run: 0 "
        "the conditional model, -1 the unconditional one, > 0 sharper classes (default: 0)",
    )
    g.add_argument(
        "--classifier",
        default=None,
        metavar="CLF",
        help="a classifier run (`sdegen train --classifier`) guiding this unconditional run to --label",
    )
    g.add_argument(
        "--classifier-scale",
        type=real,
        default=argparse.SUPPRESS,
        help="scale of classifier guidance, score + scale * grad log p_t(y | x) (default: 1, exact Bayes)",
    )
    g = p.add_argument_group("inpainting")
    g.add_argument(
        "--inpaint",
        default=None,
        metavar="MASK",
        help=f"fill in test images where MASK is False: one of {', '.join(MASKS)}, or a .pt file holding a "
        f"bool tensor of the image shape (True where observed)",
    )
    g.add_argument(
        "--images",
        type=positive_int,
        default=None,
        help="with --inpaint: how many test images to fill in; sample i fills in image i mod K (default: 8)",
    )
    p.add_argument(
        "--preview-every",
        type=positive_int,
        default=None,
        metavar="K",
        help="every K steps of a fixed-step sampler, save the first batch's x0_hat (its state where the "
        "sampler has no x0_hat) to OUT/previews/step-NNNN.pt and .png",
    )
    add_model_arguments(p)
    p.add_argument(
        "--scheduler-thresholding",
        action="store_true",
        help="with --model diffusers:DIR: clip or dynamically threshold x0_hat as the saved scheduler's "
        "clip_sample / thresholding say (inexact: off by default)",
    )
    p.set_defaults(run=run)


def _default_steps() -> str:
    """Each fixed-step sampler's default ``--steps``, grouped: ``1000 for reverse-sde, ddpm; ...``."""
    groups: dict[str, list[str]] = {}
    for name, spec in SAMPLERS.items():
        if spec.fixed_steps:
            sampler = spec.factory(SamplerOptions())
            per_step = (
                "--n-steps-each" if isinstance(sampler, AnnealedLangevinSampler) else sampler.nfe_per_step
            )
            each = f" ({per_step} evaluations each)" if per_step != 1 else ""
            groups.setdefault(f"{sampler.steps}{each}", []).append(name)
    return "; ".join(f"{steps} for {', '.join(names)}" for steps, names in groups.items())


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    world = distributed.init(device)
    device = world.device(device)
    if args.sampler is not None and not SAMPLERS[args.sampler].fixed_steps:
        for given, flag in (
            (args.grid != "default", f"--grid {args.grid}"),
            (args.steps, f"--steps {args.steps}"),
        ):
            if given:
                raise UsageError(
                    f"{flag} applies to fixed-step samplers; --sampler {args.sampler} is adaptive (it places "
                    f"its own steps): drop {flag.split()[0]}, or choose a fixed-step sampler such as dpmpp-2m"
                )
    explicit = set(getattr(args, "explicit", ()))
    if args.sampler is not None:  # refused before the run is loaded
        check_options_apply("sample", explicit, {"sampler": args.sampler})
    trained, out = load_model(args, device, needs_data=args.inpaint is not None)
    run_dir = Path(args.run_dir)
    if isinstance(trained, BroughtRun) and args.classifier is not None:
        raise UsageError(
            "--classifier guides a run trained by sdegen (checked to classify its noised data); guide a "
            "brought model in Python with sdegen.ClassifierGuidance"
        )
    if trained.kind == "classifier":
        raise UsageError(
            f"{run_dir} is a classifier run (`sdegen train --classifier`), which has no samples: guide an "
            f"unconditional run with it, `sdegen sample RUN --label K --classifier {run_dir}`"
        )
    bundle, model, levels = trained.data, trained.model, trained.levels
    # Before the work: samples that cannot be written would be lost.
    world.run(lambda: check_writable(out), where="main")
    name = args.sampler or ("annealed-langevin" if levels is not None else "pc")
    check_options_apply("sample", explicit, {"sampler": name})
    spec = SAMPLERS[name]
    # An NCSN run's annealed Langevin steps through exactly its training levels.
    ts = levels.t if levels is not None and name == "annealed-langevin" and args.eps is None else None
    # Without --steps, the sampler's own number: a few-step sampler takes a few-step budget.
    steps = args.steps if args.steps is not None else spec.default_steps
    options = SamplerOptions(
        steps=steps, snr=args.snr or spec.snr, n_steps_each=args.n_steps_each, ts=ts, grid=args.grid
    )
    solver = None
    if args.grid not in GRIDS and args.grid != "fitted" and Path(args.grid).is_file():
        solver = load_fitted_solver(Path(args.grid), model.sde, args.steps)
    if solver is not None:
        sampler = solver
    elif args.grid not in GRIDS:
        if args.sampler is None:
            raise UsageError(f"--grid {args.grid} needs --sampler: a fitted grid belongs to one sampler")
        if args.grid != "fitted" and not Path(args.grid).is_file():
            raise UsageError(
                f"--grid {args.grid!r} is neither one of {', '.join([*GRIDS, 'fitted'])} nor a file"
            )
        fitted = load_fitted_grid(args.grid, run_dir, name, args.steps, model.sde)
        options = dataclasses.replace(options, custom_grid=fitted.grid)
    if solver is None:
        with as_usage_error("sampler settings"):
            sampler = spec.factory(options)
    fill = inpaint(args, trained, args.n)
    if fill is not None:
        with as_usage_error("sampler for --inpaint"):
            sampler.check_observation()
    with as_usage_error("conditioning"):
        cond = classes(args, trained, args.n, device, None if fill is None else fill.labels)
    eps = check_end_time(model.sde, trained.end_time(args.eps))
    if args.compile:
        model.net.compile()
    start = time.perf_counter()

    def score_fn(begin: int, end: int):
        score = cond.score_fn(begin, end)
        return scheduler_thresholding(model, score) if args.scheduler_thresholding else score

    if args.scheduler_thresholding:
        if not isinstance(trained, BroughtRun) or getattr(model.net, "scheduler_config", None) is None:
            raise UsageError("--scheduler-thresholding applies the scheduler config of --model diffusers:DIR")
        with as_usage_error("--scheduler-thresholding"):
            score_fn(0, min(args.n, args.batch_size))  # checked now, before any sample is drawn

    previews = None if args.preview_every is None else _previews(out, args.preview_every, trained)

    def draw(begin: int, end: int) -> dict:
        g = PerSampleGenerator([derive_seed(args.seed, i) for i in range(begin, end)], device)
        result = sdegen.sample(
            model.sde,
            score_fn(begin, end),
            (end - begin, *bundle.event_shape),
            sampler,
            eps=eps,
            generator=g,
            device=device,
            return_trajectory=not bundle.is_image,
            progress=world.is_main and not args.no_progress,
            denoise=args.denoise,
            observation=None if fill is None else fill.observation(begin, end),
            callback=previews if begin == 0 and world.is_main else None,
        )
        chunk = {"x": result.x, "nfe": result.nfe, "batches": 1}
        if result.trajectory is not None:
            chunk["trajectory"] = result.trajectory.transpose(0, 1)  # samples first, for the gather
        return chunk

    gathered = distributed.map_chunks(draw, args.n, args.batch_size, world=world)
    if not world.is_main:
        world.barrier()  # until process 0 has written
        return 0
    try:
        _write(
            args,
            out,
            gathered,
            name=name,
            sampler=sampler,
            title=spec.title,
            trained=trained,
            cond=cond,
            fill=fill,
            eps=eps,
            seconds=time.perf_counter() - start,
            world=world,
        )
    finally:
        world.barrier()
    return 0


def _previews(out: Path, every: int, trained: Run | BroughtRun):
    """The callback of ``--preview-every K``: after every K-th step, the first batch's x0_hat (or its
    state) as a tensor file and a figure in ``out/previews/``, each written atomically."""

    def callback(info: sdegen.StepInfo) -> None:
        if info.step % every:
            return None
        x = (info.x0_hat if info.x0_hat is not None else info.x).detach().cpu()
        what = "x0_hat" if info.x0_hat is not None else "x"
        path = out / "previews" / f"step-{info.step:04d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": info.step, "t": info.t, "what": what, "x": x}
        atomic_write(path.with_suffix(".pt"), lambda f: torch.save(record, f))
        title = f"{what} after step {info.step} (t = {info.t:.4g})"
        if x.ndim == 4:
            bundle = trained.data
            if bundle is not None and bundle.train is not None:
                _report.image_figure(bundle, x[:64], path.with_suffix(".png"))
            else:  # a brought model without data: pixels in [-1, 1]
                figures.image_grid((x[:64].clamp(-1, 1) + 1) / 2, path.with_suffix(".png"))
        elif x.ndim == 2 and x.shape[1] == 2:
            figures.scatter_panels({title: x}, path.with_suffix(".png"))
        return None

    return callback


def _write(
    args: argparse.Namespace,
    out: Path,
    gathered: dict,
    *,
    name: str,
    sampler: object,
    title: str,
    trained: Run | BroughtRun,
    cond: Classes,
    fill: Inpaint | None,
    eps: float,
    seconds: float,
    world: distributed.World,
) -> None:
    """On process 0: the gathered samples, their report and figures."""
    bundle, model = trained.data, trained.model
    x = gathered["x"]
    trajectory = gathered["trajectory"].transpose(0, 1) if "trajectory" in gathered else None
    atomic_write(out / "samples.pt", lambda f: torch.save(x, f))
    report = {
        "sampler": name,
        "grid": args.grid,
        "repr": repr(sampler),
        "n": args.n,
        "eps": eps,
        **evaluations(gathered),
        "seconds": seconds,
        "processes": world.size,
        **cond.report,
    }
    title = title + (f", {cond.title}" if cond.title else "")
    fresh, extra = None, ""
    if not bundle.is_image:
        fresh_g = torch.Generator().manual_seed(args.seed + 1)
        if cond.labels is None:
            fresh = bundle.distribution.sample(args.n, fresh_g)
        else:
            fresh = bundle.class_samples(cond.labels, fresh_g)
        report["energy_distance"] = float(energy_distance(x, fresh))
        of = "fresh data" if cond.labels is None else "fresh data of the same classes"
        extra = f", energy distance to {of} {report['energy_distance']:.4g}"
    if fill is not None:
        report["inpainting"] = _inpainting_report(fill, x)
        extra += (
            f", inpainting {fill.name}: RMSE {report['inpainting']['rmse_filled']:.3g} to the original "
            f"on the filled-in pixels"
        )
    # Printed before the figures and the report are written, so that a failed write loses nothing.
    print(f"{title}: {args.n} samples, {describe_evaluations(report)}, {seconds:.1f} s{extra}")
    suffix = "" if fill is None else f"-inpaint-{fill.name}"
    figure = out / "figures" / f"samples-{name}{suffix}.png"
    labels = cond.labels
    if bundle.is_image and fill is not None:
        _inpainting_figure(bundle, fill, x, figure)
    elif bundle.is_image:
        nrow = None if labels is None or args.label is not None else int(model.n_classes or labels.max() + 1)
        _report.image_figure(bundle, x, figure, nrow=nrow)
    else:
        colours = None if labels is None else {"data": labels, title: labels}
        _report.scatter_figure({"data": fresh, title: x}, figure, labels=colours)
        _report.trajectory_figure({title: trajectory}, out / "figures" / f"trajectories-{name}.png")
    write_json(out / "samples.json", report)
    print(f"wrote {out / 'samples.pt'}, {out / 'samples.json'} and {figure}")


def _inpainting_report(fill: Inpaint, x: torch.Tensor) -> dict[str, object]:
    """How far the samples are from the images they fill in: on the filled-in pixels (the
    reconstruction error) and on the observed ones (the noise left at the end time)."""
    originals = fill.originals[torch.arange(x.shape[0]) % fill.n_images]
    sq = (x.double() - originals.double()) ** 2
    mask = fill.mask.expand_as(sq)
    return {
        "mask": fill.name,
        "images": fill.n_images,
        "observed_pixels": int(fill.mask.sum()),
        "rmse_filled": float(sq[~mask].mean().sqrt()),
        "rmse_observed": float(sq[mask].mean().sqrt()),
    }


def _inpainting_figure(bundle, fill: Inpaint, x: torch.Tensor, path: Path) -> Path:
    """One column per test image: the original, what was observed (grey where filled in), then its samples."""
    k = fill.n_images
    shown = fill.originals.clone()
    shown[:, ~fill.mask] = 0.0  # mid-grey in [-1, 1]
    rows = x.shape[0] // k  # whole rows only
    labels = ["original", "observed", *(f"sample {i + 1}" for i in range(rows))]
    return _report.image_figure(
        bundle, torch.cat([fill.originals, shown, x[: rows * k]]), path, nrow=k, row_labels=labels
    )
