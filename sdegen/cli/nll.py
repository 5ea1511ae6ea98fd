"""``sdegen nll``: log-likelihood (and bits/dim for images) of a data split, averaged over repeats.

Every (repeat, example) pair has its own seed, derived from ``--seed``, the repeat and the
example's index, from which its dequantization noise and divergence probes are drawn
(:class:`~sdegen.random.PerSampleGenerator`). The pairs are solved in fixed chunks of
``--batch-size`` by global index (:func:`sdegen.distributed.map_chunks`); under ``torchrun
--nproc_per_node=N`` the chunks are shared out over the processes, which meet only to gather the
per-example results on process 0, which writes them. The per-example log-likelihoods are then
bit-identical for any number of processes at the same ``--batch-size``.

With ``--bound elbo`` or ``--bound ddpm`` the same examples get an upper bound on -log p instead,
of the stochastic model (:func:`sdegen.elbo`, :func:`sdegen.ddpm_bound`): no ODE solve, a Monte-Carlo
average whose standard error is reported as ``monte_carlo_stderr``; the ddpm bound is a code length
of the pixels themselves (no dequantization).

A class-conditional run is evaluated as -log p(x | y) with each example's own label (the model
given that example's label, in whatever chunk it is solved), or with ``--unconditional`` as
-log p(x) of its unconditional half (the null label).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import sdegen
from sdegen import distributed
from sdegen.cli._common import (
    UsageError,
    add_common_arguments,
    check_end_time,
    describe_evaluations,
    evaluations,
    positive_float,
    positive_int,
    resolve_device,
    write_json,
)
from sdegen.cli.brought import add_model_arguments, describe_space, load_model
from sdegen.likelihood import summarize_nll
from sdegen.random import PerSampleGenerator, derive_seed
from sdegen.run.config import CONFIG, read_config
from sdegen.run.registry import check_options_apply
from sdegen.training.files import atomic_write, check_writable

__all__ = ["add_parser", "run", "PER_EXAMPLE"]

PER_EXAMPLE = "nll_per_example.pt"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "nll",
        help="negative log-likelihood of held-out data",
        description="Exact negative log-likelihood through the probability-flow ODE of a split of the run's "
        "data (bits/dim for images, from uniformly dequantized pixels), averaged over repeats of the "
        "dequantization noise and divergence probes. 2-D sets draw fresh points from --seed; where the "
        "density is known its true NLL on the same points is printed beside the model's. Writes nll.json "
        f"and the per-example log-likelihoods {PER_EXAMPLE}. Under torchrun the examples are split "
        "over the processes, with the same per-example results. --bound elbo|ddpm reports a variational "
        "upper bound of the stochastic model instead (no ODE solve).",
    )
    p.add_argument(
        "run_dir", metavar="RUN", nargs="?", default=None, help="run directory written by `sdegen train`"
    )
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
    p.add_argument(
        "--eps",
        type=positive_float,
        default=None,
        help="start time of the ODE [default: the smallest noise level of an NCSN run, step 0 (t = 1/N) of a "
        "brought discrete-time model, else 1e-5]",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=1000,
        help="examples per ODE solve: the fixed chunks by global index (results depend on it at the "
        "level of the tolerances, since a solve's steps are shared by its chunk)",
    )
    p.add_argument(
        "--bound",
        default=None,
        choices=("elbo", "ddpm"),
        help="instead of the exact ODE likelihood: elbo, the continuous-time variational bound of the "
        "reverse SDE at the same dequantized data (Song et al. 2021); ddpm, the discrete bound "
        "L_T + sum L_t-1 + L_0 of the DDPM chain on --steps steps with the discretized Gaussian decoder, "
        "a lossless code length of the pixels (images only) [default: exact ODE likelihood]",
    )
    p.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        help="Monte-Carlo draws per example: of (t, noise) for elbo [default 100], replicates of the "
        "whole sum for ddpm [default 2, for a standard error]",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="ddpm: steps N of the chain [default 1000; a discrete-time model (DiscreteVPSDE) is bounded "
        "on its own steps]",
    )
    p.add_argument(
        "--variance",
        default="beta",
        choices=("beta", "beta_tilde"),
        help="ddpm: reverse variances, beta_t or the posterior's beta-tilde_t (Ho et al. 2020)",
    )
    p.add_argument(
        "--time-law",
        default="importance",
        choices=("importance", "uniform"),
        help="elbo: law of t, proportional to g^2 / sigma^2 (uniform in log-SNR) or uniform",
    )
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (slow first call)")
    p.add_argument(
        "--unconditional",
        action="store_true",
        help="of a class-conditional run: -log p(x) of its unconditional half (the null label) instead "
        "of -log p(x | y) with the data's labels",
    )
    add_model_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    world = distributed.init(device)
    device = world.device(device)
    if args.run_dir is not None and (Path(args.run_dir) / CONFIG).is_file():  # options its data do not read
        data = read_config(args.run_dir).data["name"]
        check_options_apply("nll", set(getattr(args, "explicit", ())), {"data": data})
    trained, out = load_model(args, device, needs_data=True)
    run_dir = Path(args.run_dir)
    bundle, model = trained.data, trained.model
    if trained.kind == "classifier":
        raise UsageError(
            f"{run_dir} is a classifier run (`sdegen train --classifier`): it has no likelihood; evaluate a "
            f"score model run"
        )
    if args.unconditional and trained.kind != "conditional":
        raise UsageError(
            f"--unconditional evaluates the null label of a class-conditional run; {run_dir} is not one"
        )
    # A conditional run is evaluated as -log p(x | y) with the data's labels (or its null label).
    labelled = trained.kind == "conditional" and not args.unconditional
    if args.bound == "ddpm" and not bundle.is_image:
        raise UsageError(
            "--bound ddpm is a code length of discrete data (pixels); the 2-D sets are continuous: use "
            "--bound elbo, or the exact likelihood"
        )
    # A discrete-time model is bounded on its own chain; a continuous one on --steps steps of it.
    own_chain = isinstance(model.sde, sdegen.DiscreteVPSDE)
    if args.steps is not None and (args.bound != "ddpm" or own_chain):
        why = "only --bound ddpm reads it" if args.bound != "ddpm" else "this model's chain has its own steps"
        raise UsageError(f"--steps {args.steps} does not apply: {why}; drop --steps")
    chain_steps = None if own_chain else (args.steps or 1000)
    if args.bound == "ddpm" and chain_steps is not None and chain_steps < 2:
        raise UsageError(f"--steps must be >= 2 for --bound ddpm; got {args.steps}")
    if args.bound is not None and not isinstance(model.sde, sdegen.LinearSDE):
        raise UsageError(
            f"--bound {args.bound} needs a linear SDE (a Gaussian kernel); the run's is {model.sde!r}"
        )
    # Before the work: a result that cannot be written would be lost.
    world.run(lambda: check_writable(out), where="main")
    eps = check_end_time(model.sde, trained.end_time(args.eps) or model.sde.likelihood_eps)
    if args.compile:
        model.net.compile()
    d = math.prod(bundle.event_shape)
    exact = args.divergence == "exact" or (args.divergence == "auto" and d <= 16)
    divergence = sdegen.ExactTrace() if exact else sdegen.Hutchinson()
    start = time.perf_counter()
    true_nll, labels = None, None
    if bundle.is_image:
        images = bundle.test if args.split == "test" else bundle.train
        pixels = images.pixels[: min(args.n, len(images))].to(device)
        n = pixels.shape[0]
        if labelled:
            labels = images.labels[:n].to(device)
    else:
        draw = torch.Generator().manual_seed(args.seed)
        if labelled:
            points, labels = bundle.distribution.sample_labelled(args.n, draw)
            points, labels = points.to(device), labels.to(device)
        else:
            points = bundle.distribution.sample(args.n, draw).to(device)
        n = points.shape[0]
        mixture = getattr(bundle.distribution, "mixture", None)
        if mixture is not None:  # exactly at eps: the data convolved with the kernel at eps
            true_nll = -_mixture_log_prob(mixture, model.sde, eps, points, labels)
        elif bundle.distribution.has_density and not labelled:
            true_nll = -bundle.distribution.log_prob(points.double()).cpu()

    def solve(begin: int, end: int) -> dict:
        # Work item j is example j % n in repeat j // n; each has its own stream.
        j = torch.arange(begin, end)
        example, repeat = (j % n).tolist(), (j // n).tolist()
        g = PerSampleGenerator(
            [derive_seed(args.seed, r, i) for r, i in zip(repeat, example, strict=True)], device
        )
        score_fn = model
        if model.is_conditional:  # each example's own label, or the null label
            score_fn = model.given(model.null_label if labels is None else labels[example])
        if args.bound == "ddpm":  # the pixels themselves, at their bins' centres
            x = images.to_model(pixels[example], dequantize=False)
            L = images.levels
            res = sdegen.ddpm_bound(
                x,
                model.sde,
                score_fn,
                grid=sdegen.DataGrid((-1 + 1 / L, 1 - 1 / L), L),
                steps=chain_steps,
                variance=args.variance,
                n_samples=args.samples or 2,
                generator=g,
            )
            return _bound_row(res)
        x = images.to_model(pixels[example], g) if bundle.is_image else points[example]
        if args.bound == "elbo":
            res = sdegen.elbo(
                x,
                model.sde,
                score_fn,
                n_samples=args.samples or 100,
                time_law=args.time_law,
                eps=eps,
                generator=g,
            )
            return _bound_row(res)
        res = sdegen.log_likelihood(
            x,
            model.sde,
            score_fn,
            divergence=divergence,
            rtol=args.rtol,
            atol=args.atol,
            eps=eps,
            generator=g,
            progress=world.is_main and not args.no_progress,
        )
        return {"logp": res.logp.detach(), "nfe": res.nfe, "batches": 1}

    gathered = distributed.map_chunks(solve, n * args.repeats, args.batch_size, world=world)
    if not world.is_main:
        world.barrier()  # until process 0 has written
        return 0
    try:
        report = _report(
            args, gathered, n, divergence, bundle, images if bundle.is_image else None, labelled, true_nll
        )
        report["eps"] = eps
        report["nats_of"] = describe_space(bundle)
        report["seconds"] = time.perf_counter() - start
        report["processes"] = world.size
        # Printed before it is written, so that a failed write does not lose it.
        print(
            f"{describe(report)}; {n} {report['unit']}s x {args.repeats} repeat(s), "
            f"{describe_evaluations(report)}, {report['seconds']:.1f} s"
            + (f" on {world.size} processes" if world.distributed else "")
        )
        logp = gathered["logp"].view(args.repeats, n)
        atomic_write(out / PER_EXAMPLE, lambda f: torch.save({"logp": logp}, f))
        write_json(out / "nll.json", report)
        print(f"wrote {out / 'nll.json'} and {out / PER_EXAMPLE}")
    finally:
        world.barrier()
    return 0


def _bound_row(res: sdegen.BoundResult) -> dict:
    """A chunk's entries for a bound: -bound as ``logp`` (a lower bound on log p), its standard error."""
    return {"logp": -res.nll.detach(), "stderr": res.stderr.detach(), "nfe": res.nfe, "batches": 1}


def _report(args, gathered, n, divergence, bundle, images, labelled, true_nll) -> dict:
    """What nll.json holds: the mean NLL (or bound) over examples with its standard error, the space
    it is a density in, bits/dim for images, and the true NLL of the same points where it is known."""
    logp = gathered["logp"].view(args.repeats, n)
    summary = summarize_nll(logp, bits_per_dim=None if images is None else images.bits_per_dim)
    report = {
        "of": ("-log p(x | y), the data's labels" if labelled else "-log p(x)")
        + ("" if args.bound is None else f", upper bound ({args.bound})"),
        "split": args.split if bundle.is_image else "fresh",
        "n": n,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "nll": summary.nll,
        "nll_se": summary.se,
        "nll_per_repeat": (-logp.double().mean(dim=1)).tolist(),
        **evaluations(gathered),
    }
    if args.bound is None:
        report["divergence"] = repr(divergence)
    else:
        # The Monte-Carlo standard error of the mean bound (the examples' estimates are independent).
        se = gathered["stderr"].double().nan_to_num(0.0)
        report["bound"] = args.bound
        report["samples"] = args.samples or (2 if args.bound == "ddpm" else 100)
        report["monte_carlo_stderr"] = float(se.square().sum().sqrt()) / (n * args.repeats)
        if args.bound == "ddpm":
            report.update(steps=args.steps, variance=args.variance)
        else:
            report["time_law"] = args.time_law
    if images is not None:
        c, h, w = images.event_shape
        report["unit"] = "image"
        if args.bound == "ddpm":  # a code length of the pixels: no offset
            d = math.prod(images.event_shape)
            to_bpd = lambda lp: -lp / (d * math.log(2))  # noqa: E731
            report["space"] = f"nats per image: a code length of the discrete pixels 0..{images.levels - 1}"
        else:
            to_bpd = images.bits_per_dim
            report["space"] = (
                f"nats per image of x = 2 (k + u) / {images.levels} - 1 in [-1, 1]^({c}x{h}x{w}): the pixels "
                f"k in 0..{images.levels - 1}, dequantized by u ~ U[0, 1) and scaled, as the model sees them"
            )
        bpd = summarize_nll(logp, bits_per_dim=to_bpd)
        report["bits_per_dim"] = bpd.bits_per_dim
        report["bits_per_dim_se"] = bpd.bits_per_dim_se
        report["bits_per_dim_per_repeat"] = [float(to_bpd(row.double()).mean()) for row in logp]
        report["bits_per_dim_scale"] = (
            f"the pixels' own 0..{images.levels - 1} scale ({images.levels} levels)"
        )
    else:
        report["unit"] = "point"
        report["space"] = f"nats per point of the {bundle.name} data as drawn, in its own 2-D coordinates"
    if true_nll is not None:
        report["true_nll"] = float(true_nll.mean())
        # per example: -log p(x_i) - true_nll_i, summarised as the NLL of log p + true_nll
        gap = summarize_nll(logp.double().cpu() + true_nll.double().cpu())
        report["nll_minus_true"], report["nll_minus_true_se"] = gap.nll, gap.se
    return report


def describe(report: dict) -> str:
    """The NLL line of ``sdegen nll``: the mean over examples +- its standard error, saying which
    density it is of (``report["nats_of"]``), bits/dim for images, and the true NLL where known."""
    conditional = "conditional " if report["of"].startswith("-log p(x | y)") else ""
    what = {None: "NLL", "elbo": "ELBO bound on the NLL", "ddpm": "DDPM bound on the NLL"}[
        report.get("bound")
    ]
    unit = report["unit"]
    line = f"{conditional}{what} {report['nll']:.4f} +- {report['nll_se']:.2g} nats of {report['nats_of']}"
    line += f" per {unit} at t = {report['eps']:g}"
    if "bits_per_dim" in report:
        line += f"; {report['bits_per_dim']:.4f} +- {report['bits_per_dim_se']:.2g} bits/dim on {report['bits_per_dim_scale']}"
    if "true_nll" in report:
        line += (
            f"; true NLL of the same points {report['true_nll']:.4f}, model - true "
            f"{report['nll_minus_true']:.4f} +- {report['nll_minus_true_se']:.2g}"
        )
    return f"{line} (+- one standard error over the {unit}s)"


def _mixture_log_prob(
    mixture, sde, eps: float, points: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """log p_eps(x) of the mixture's marginal at eps, or log p_eps(x | y) of each point's class."""
    x = points.double().cpu()
    if labels is None:
        return mixture.marginal(sde, eps).log_prob(x)
    out = torch.empty(x.shape[0], dtype=torch.float64)
    y = labels.cpu()
    for k in y.unique().tolist():
        out[y == k] = mixture.class_conditional(k).marginal(sde, eps).log_prob(x[y == k])
    return out
