"""Three likelihoods of one network on the 8x8 digits: the exact ODE one and the two variational bounds.

Trains (or reuses) a small VP score model on scikit-learn's 8x8 digits with ``sdegen train``, then
evaluates on the test split:

* exact ODE bits/dim: :func:`sdegen.log_likelihood` at uniformly dequantized pixels (one
  Rademacher probe, as ``sdegen nll``), of the probability-flow model at eps;
* the continuous ELBO (:func:`sdegen.elbo`) at the same dequantized points, bounding the reverse
  SDE's -log p_eps, with importance-sampled and uniform time laws; and with the discretized
  decoder on the pixels themselves (lossless), at eps = 1e-5 and at eps = 1e-3 = t_1 of the
  DDPM chain below (the limit of its beta-tilde bound as the steps between t_1 and T get finer);
* the discrete DDPM bound (:func:`sdegen.ddpm_bound`) on N = 1000 steps t_i = i / N of the same
  VP SDE, with beta and beta-tilde reverse variances, on the pixels (lossless).

Each row: the mean bits/dim over the test images with its standard error over images (which
includes the Monte-Carlo noise), the mean per-image Monte-Carlo standard error, network
evaluations per image, and seconds for the whole split.

Run: python benchmarks/bench_bounds.py [--run runs/bounds-digits] [--train-steps 20000] [--n 360]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import sdegen
from sdegen.cli import main as cli
from sdegen.run import load_run


def _row(name: str, bpd: torch.Tensor, mc_se: torch.Tensor | None, nfe: object, seconds: float) -> str:
    bpd = bpd.double()
    se = float(bpd.std() / math.sqrt(bpd.numel()))
    mc = "" if mc_se is None else f"{float(mc_se.double().nan_to_num(0).mean()):.3f}"
    return f"| {name} | {float(bpd.mean()):.3f} +- {se:.3f} | {mc} | {nfe} | {seconds:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/bounds-digits", help="run directory (trained if missing)")
    parser.add_argument("--train-steps", type=int, default=20000)
    parser.add_argument("--n", type=int, default=360, help="test images")
    parser.add_argument("--samples", type=int, default=100, help="ELBO draws per image")
    parser.add_argument("--steps", type=int, default=1000, help="DDPM steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run)
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        start = time.perf_counter()
        argv = [
            "train",
            "--data",
            "digits",
            "--sde",
            "vp",
            "--model",
            "mlp",
            "--hidden",
            "256",
            "--depth",
            "3",
        ]
        argv += [
            "--steps",
            str(args.train_steps),
            "--batch-size",
            "128",
            "--lr",
            "1e-3",
            "--out",
            str(run_dir),
        ]
        argv += [
            "--eval-every",
            str(args.train_steps),
            "--n-eval",
            "64",
            "--no-progress",
            "--seed",
            str(args.seed),
        ]
        assert cli(argv) == 0
        print(f"trained {run_dir} in {time.perf_counter() - start:.0f} s")
    run = load_run(run_dir, torch.device("cpu"))
    model, images, sde = run.model, run.data.test, run.model.sde
    pixels = images.pixels[: args.n]
    n, L = pixels.shape[0], images.levels
    D = math.prod(images.event_shape)
    grid = sdegen.DataGrid((-1 + 1 / L, 1 - 1 / L), L)
    g = torch.Generator().manual_seed(args.seed)
    x_deq = images.to_model(pixels, g)  # the dequantized points of the ODE and the ELBO
    x_pix = images.to_model(pixels, dequantize=False)  # the pixels, at their bins' centres
    print(f"{run_dir}: {sde!r}, {n} test images of {D} pixels with {L} levels, eps = 1e-5\n")
    print(
        "| likelihood | bits/dim (mean +- s.e. over images) | MC s.e. per image | NFE per image | seconds |"
    )
    print("|---|---|---|---|---|")

    start = time.perf_counter()
    ode = sdegen.log_likelihood(x_deq, sde, model, eps=1e-5, generator=g)
    print(
        _row(
            "exact ODE, dequantized",
            images.bits_per_dim(ode.logp),
            None,
            ode.nfe,
            time.perf_counter() - start,
        )
    )
    for law in ("importance", "uniform"):
        start = time.perf_counter()
        res = sdegen.elbo(
            x_deq, sde, model, n_samples=args.samples, time_law=law, generator=g, batch_size=2 * n * 25
        )
        seconds = time.perf_counter() - start
        bpd, mc = images.bits_per_dim(-res.nll), res.stderr / (D * math.log(2))
        print(_row(f"ELBO ({law} t), dequantized", bpd, mc, res.nfe, seconds))
    for eps in (1e-5, 1e-3):  # 1e-3 = t_1 of the DDPM chain on 1000 steps: its N -> infinity limit
        start = time.perf_counter()
        res = sdegen.elbo(
            x_pix,
            sde,
            model,
            n_samples=args.samples,
            eps=eps,
            decoder=grid,
            generator=g,
            batch_size=2 * n * 25,
        )
        seconds = time.perf_counter() - start
        print(_row(f"ELBO + decoder at eps = {eps:g}, pixels", res.bpd, res.bpd_stderr, res.nfe, seconds))
    for variance in ("beta", "beta_tilde"):
        start = time.perf_counter()
        res = sdegen.ddpm_bound(
            x_pix, sde, model, grid=grid, steps=args.steps, variance=variance, generator=g
        )
        seconds = time.perf_counter() - start
        print(_row(f"DDPM bound, N = {args.steps}, {variance}, pixels", res.bpd, None, res.nfe, seconds))


if __name__ == "__main__":
    main()
