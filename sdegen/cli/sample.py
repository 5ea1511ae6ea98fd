"""``sdegen sample``: draw samples from a trained run with a chosen sampler.

Sample i is drawn from its own seed, derived from ``--seed`` and i
(:class:`~sdegen.random.PerSampleGenerator`), in fixed chunks of ``--batch-size`` by index
(:func:`sdegen.distributed.map_chunks`); under ``torchrun --nproc_per_node=N`` the chunks are shared
out over the processes and gathered on process 0, which writes, with the same samples bit for bit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import sdegen
from sdegen import distributed
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
from sdegen.random import PerSampleGenerator, derive_seed
from sdegen.training.files import atomic_write, check_writable

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
    p.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLERS,
        help="sampler [default: annealed-langevin on the noise levels of an NCSN run, else pc]",
    )
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
        "sampler's own (uniform for reverse-sde, pc, ddpm; logsnr for ddim, dpmpp-*, unipc; karras for edm-*; "
        "geometric levels for annealed-langevin)",
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
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    world = distributed.init(device)
    device = world.device(device)
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir
    if args.sampler is not None and args.grid != "default" and not SAMPLERS[args.sampler].fixed_steps:
        raise UsageError(
            f"--grid {args.grid} applies to fixed-step samplers; --sampler {args.sampler} is adaptive"
        )
    trained = load_run(run_dir, device, ema=not args.no_ema)
    bundle, model, levels = trained.data, trained.model, trained.levels
    # Before the work: samples that cannot be written would be lost.
    world.run(lambda: check_writable(out), where="main")
    name = args.sampler or ("annealed-langevin" if levels is not None else "pc")
    spec = SAMPLERS[name]
    # An NCSN run's annealed Langevin steps through exactly its training levels.
    ts = levels.t if levels is not None and name == "annealed-langevin" and args.eps is None else None
    options = SamplerOptions(
        steps=args.steps, snr=args.snr or spec.snr, n_steps_each=args.n_steps_each, ts=ts, grid=args.grid
    )
    with as_usage_error("sampler settings"):
        sampler = spec.factory(options)
    eps = check_end_time(model.sde, trained.end_time(args.eps))
    if args.compile:
        model.net.compile()
    start = time.perf_counter()

    def draw(begin: int, end: int) -> dict:
        g = PerSampleGenerator([derive_seed(args.seed, i) for i in range(begin, end)], device)
        result = sdegen.sample(
            model.sde,
            model,
            (end - begin, *bundle.event_shape),
            sampler,
            eps=eps,
            generator=g,
            device=device,
            return_trajectory=not bundle.is_image,
            progress=world.is_main,
            denoise=args.denoise,
        )
        chunk = {"x": result.x, "nfe": result.nfe}
        if result.trajectory is not None:
            chunk["trajectory"] = result.trajectory.transpose(0, 1)  # samples first, for the gather
        return chunk

    gathered = distributed.map_chunks(draw, args.n, args.batch_size, world=world)
    if not world.is_main:
        world.barrier()  # until process 0 has written
        return 0
    try:
        _write(args, out, name, sampler, spec, bundle, gathered, eps, time.perf_counter() - start, world)
    finally:
        world.barrier()
    return 0


def _write(args, out, name, sampler, spec, bundle, gathered, eps, seconds, world) -> None:
    x = gathered["x"]
    trajectory = gathered["trajectory"].transpose(0, 1) if "trajectory" in gathered else None
    atomic_write(out / "samples.pt", lambda f: torch.save(x, f))
    report = {
        "sampler": name,
        "grid": args.grid,
        "repr": repr(sampler),
        "n": args.n,
        "eps": eps,
        "nfe": gathered["nfe"],
        "seconds": seconds,
        "processes": world.size,
    }
    title = spec.title
    fresh = None
    if not bundle.is_image:
        fresh = bundle.distribution.sample(args.n, torch.Generator().manual_seed(args.seed + 1))
        report["energy_distance"] = float(energy_distance(x, fresh))
    extra = f", energy distance to fresh data {report['energy_distance']:.4g}" if fresh is not None else ""
    # Printed before the figures and the report are written, so that a failed write loses nothing.
    print(f"{title}: {args.n} samples, {report['nfe']} score evaluations, {seconds:.1f} s{extra}")
    figure = out / "figures" / f"samples-{name}.png"
    if bundle.is_image:
        _report.image_figure(bundle, x, figure)
    else:
        _report.scatter_figure({"data": fresh, title: x}, figure)
        _report.trajectory_figure({title: trajectory}, out / "figures" / f"trajectories-{name}.png")
    write_json(out / "samples.json", report)
    print(f"wrote {out / 'samples.pt'}, {out / 'samples.json'} and {figure}")
