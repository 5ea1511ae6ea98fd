"""``sdegen nll``: log-likelihood (and bits/dim for images) of a data split, averaged over repeats."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import sdegen
from sdegen.cli._common import (
    add_common_arguments,
    check_end_time,
    positive_float,
    positive_int,
    resolve_device,
    write_json,
)
from sdegen.cli.run import load_run
from sdegen.training.files import check_writable

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "nll",
        help="negative log-likelihood of held-out data",
        description="Exact negative log-likelihood through the probability-flow ODE of a split of the run's "
        "data (bits/dim for images, from uniformly dequantized pixels), averaged over repeats of the "
        "dequantization noise and divergence probes. 2-D sets draw fresh points from --seed; where the "
        "density is known its true NLL on the same points is printed beside the model's. Writes nll.json.",
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory written by `sdegen train`")
    add_common_arguments(p, out=None, out_help="where to write nll.json [default: RUN]")
    p.add_argument("--split", default="test", choices=("test", "train"), help="image split")
    p.add_argument("--n", type=positive_int, default=500, help="number of points or images")
    p.add_argument("--repeats", type=positive_int, default=1, help="repeats of dequantization and probes")
    p.add_argument(
        "--divergence",
        default="auto",
        choices=("auto", "exact", "hutchinson"),
        help="auto: exact for d <= 16",
    )
    p.add_argument("--rtol", type=positive_float, default=1e-5, help="ODE relative tolerance")
    p.add_argument("--atol", type=positive_float, default=1e-5, help="ODE absolute tolerance")
    p.add_argument("--eps", type=positive_float, default=1e-5, help="start time of the ODE")
    p.add_argument("--batch-size", type=positive_int, default=1000, help="points per ODE solve")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else run_dir
    trained = load_run(run_dir, device, ema=not args.no_ema)
    bundle, model = trained.data, trained.model
    check_writable(out)  # before the work: a result that cannot be written would be lost
    check_end_time(model.sde, args.eps)
    d = math.prod(bundle.event_shape)
    exact = args.divergence == "exact" or (args.divergence == "auto" and d <= 16)
    divergence = sdegen.ExactTrace() if exact else sdegen.Hutchinson()
    g = torch.Generator(device).manual_seed(args.seed)
    start = time.perf_counter()
    nll_per_repeat, bpd_per_repeat, true_nll, nfe = [], [], None, 0
    if bundle.is_image:
        images = bundle.test if args.split == "test" else bundle.train
        pixels = images.pixels[: min(args.n, len(images))].to(device)
    else:
        points = bundle.distribution.sample(args.n, torch.Generator().manual_seed(args.seed)).to(device)
        if bundle.distribution.has_density:
            true_nll = -float(bundle.distribution.log_prob(points.double()).mean())
    for _ in range(args.repeats):
        x = images.to_model(pixels, g) if bundle.is_image else points
        logps = []
        for chunk in x.split(args.batch_size):
            res = sdegen.log_likelihood(
                chunk,
                model.sde,
                model,
                divergence=divergence,
                rtol=args.rtol,
                atol=args.atol,
                eps=args.eps,
                generator=g,
            )
            logps.append(res.logp.detach())
            nfe += res.nfe
        logp = torch.cat(logps)
        nll_per_repeat.append(-float(logp.mean()))
        if bundle.is_image:
            bpd_per_repeat.append(float(images.bits_per_dim(logp).mean()))
    seconds = time.perf_counter() - start
    report = {
        "split": args.split if bundle.is_image else "fresh",
        "n": int(x.shape[0]),
        "repeats": args.repeats,
        "divergence": repr(divergence),
        "nll": sum(nll_per_repeat) / args.repeats,
        "nll_per_repeat": nll_per_repeat,
        "nfe": nfe,
        "seconds": seconds,
    }
    line = f"NLL {report['nll']:.4f} nats"
    if bpd_per_repeat:
        report["bits_per_dim"] = sum(bpd_per_repeat) / args.repeats
        report["bits_per_dim_per_repeat"] = bpd_per_repeat
        line += f", {report['bits_per_dim']:.4f} bits/dim"
    if true_nll is not None:
        report["true_nll"] = true_nll
        line += f" (true NLL of the same points {true_nll:.4f} nats)"
    # Printed before it is written, so that a failed write does not lose it.
    print(f"{line}; {report['n']} points x {args.repeats} repeat(s), {nfe} evaluations, {seconds:.1f} s")
    write_json(out / "nll.json", report)
    print(f"wrote {out / 'nll.json'}")
    return 0
