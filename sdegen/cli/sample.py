"""``sdegen sample``: draw samples from a trained run with a chosen sampler."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import sdegen
from sdegen.cli import _report
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
from sdegen.cli.registry import GRIDS, SAMPLERS, SamplerOptions
from sdegen.cli.run import load_run
from sdegen.metrics import energy_distance

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="sample a trained run",
        description="Draw samples from the EMA model of a run directory; write samples.pt, a figure "
        "and samples.json (NFE, time, and for 2-D data the energy distance to fresh data).",
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory written by `sdegen train`")
    add_common_arguments(p, out=None, out_help="where to write the samples [default: RUN]")
    p.add_argument("--sampler", default="pc", choices=SAMPLERS, help="sampler")
    p.add_argument(
        "--steps",
        type=positive_int,
        default=1000,
        help="time steps of fixed-step samplers (10-20 suit the few-step samplers ddim, dpmpp-*, unipc, edm-*)",
    )
    p.add_argument(
        "--grid",
        default="default",
        choices=GRIDS,
        help="time grid of fixed-step samplers: uniform in t, uniform in log-SNR, Karras (rho = 7), or the "
        "sampler's own (uniform for reverse-sde, pc, ddpm; logsnr for ddim, dpmpp-*, unipc; karras for edm-*)",
    )
    p.add_argument(
        "--snr", type=positive_float, default=0.16, help="signal-to-noise ratio of the Langevin corrector"
    )
    p.add_argument("--n", type=positive_int, default=1000, help="number of samples")
    p.add_argument(
        "--eps",
        type=positive_float,
        default=None,
        help="time at which sampling stops [default: the SDE's sampling_eps: 1e-3 for vp, subvp and cosine, "
        "1e-5 for ve, 0.002 for edm]",
    )
    p.add_argument("--denoise", action="store_true", help="finish with one noise-free denoising step")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir
    spec = SAMPLERS[args.sampler]
    if args.grid != "default" and not spec.fixed_steps:
        raise UsageError(
            f"--grid {args.grid} applies to fixed-step samplers; --sampler {args.sampler} is adaptive"
        )
    with as_usage_error("sampler settings"):
        sampler = spec.factory(SamplerOptions(steps=args.steps, snr=args.snr, grid=args.grid))
    trained = load_run(run_dir, device, ema=not args.no_ema)
    bundle, model = trained.data, trained.model
    eps = check_end_time(model.sde, args.eps)
    g = torch.Generator(device).manual_seed(args.seed)
    start = time.perf_counter()
    result = sdegen.sample(
        model.sde,
        model,
        (args.n, *bundle.event_shape),
        sampler,
        eps=eps,
        generator=g,
        device=device,
        return_trajectory=not bundle.is_image,
        progress=True,
        denoise=args.denoise,
    )
    seconds = time.perf_counter() - start
    x = result.x.detach().cpu()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(x, out / "samples.pt")
    report = {
        "sampler": args.sampler,
        "grid": args.grid,
        "repr": repr(sampler),
        "n": args.n,
        "eps": eps,
        "nfe": result.nfe,
        "seconds": seconds,
    }
    title = spec.title
    if bundle.is_image:
        figure = _report.image_figure(bundle, x, out / "figures" / f"samples-{args.sampler}.png")
    else:
        fresh = bundle.distribution.sample(args.n, torch.Generator().manual_seed(args.seed + 1))
        report["energy_distance"] = float(energy_distance(x, fresh))
        figure = _report.scatter_figure(
            {"data": fresh, title: x}, out / "figures" / f"samples-{args.sampler}.png"
        )
        _report.trajectory_figure(
            {title: result.trajectory}, out / "figures" / f"trajectories-{args.sampler}.png"
        )
    write_json(out / "samples.json", report)
    extra = (
        f", energy distance to fresh data {report['energy_distance']:.4g}"
        if "energy_distance" in report
        else ""
    )
    print(f"{title}: {args.n} samples, {result.nfe} score evaluations, {seconds:.1f} s{extra}")
    print(f"wrote {out / 'samples.pt'} and {figure}")
    return 0
