"""Train a U-Net score model on scikit-learn's 8x8 digits; report test bits/dim; write a sample grid.

Run: python examples/digits.py [--steps 3000] [--size tiny] [--out runs/digits] [--quick]

The digits have 17 grey levels, so a model that knows nothing scores log2(17) = 4.09 bits/dim.
Pixels k are dequantized to x = 2 (k + u) / 17 - 1, u ~ U[0, 1) (sdegen.data.ImageData), and
bits/dim come from the exact probability-flow ODE likelihood of the EMA model on the 359 test
images (Hutchinson divergence, averaged over --repeats draws of the dequantization noise).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import sdegen
from sdegen import data as D
from sdegen.figures import image_grid
from sdegen.losses import DenoisingScoreMatching, LikelihoodWeighting
from sdegen.nn import UNet
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.samplers import LangevinCorrector, PredictorCorrectorSampler, ReverseDiffusion
from sdegen.training import HeldOutLoss, TrainConfig, Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--likelihood-weighting", action="store_true", help="train with importance-sampled g^2")
    p.add_argument("--repeats", type=int, default=3, help="dequantization draws for bits/dim")
    p.add_argument("--out", default="runs/digits")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (what the tests run)")
    args = p.parse_args()
    if args.quick:
        args.steps, args.batch_size, args.repeats = 2, 16, 1
    device, out = torch.device(args.device), Path(args.out)
    wall = time.perf_counter()

    train, test = D.load_digits("train"), D.load_digits("test")
    sde = sdegen.VPSDE()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)  # parameter initialisation only
        model = ScoreModel(UNet.from_size(args.size, in_channels=1), sde, NoisePrediction())
    weighting = LikelihoodWeighting(importance_sampling=True) if args.likelihood_weighting else None
    if args.quick:
        test = test.split(8 / len(test), seed=0)[1]  # 8 test images
    held_out = test.to_model(test.pixels, torch.Generator().manual_seed(1))
    trainer = Trainer(
        model,
        DenoisingScoreMatching(weighting),
        D.DatasetBatches(train, args.batch_size, seed=args.seed),
        TrainConfig(
            steps=args.steps, lr=args.lr, warmup_steps=200, ema_decay=0.999, seed=args.seed, log_every=200
        ),
        run_dir=out,
        if_exists="overwrite",  # rerunning the example replaces its previous run
        callbacks=[HeldOutLoss(held_out, every=1000)],
        device=device,
    )
    n_params = sum(q.numel() for q in model.parameters())
    print(f"U-Net {args.size} ({n_params:,} parameters) on {len(train)} digits, {args.steps} steps")
    trained = trainer.fit()
    ema = trainer.ema_model.eval()

    # Test bits/dim from the exact likelihood, averaged over dequantization draws.
    start = time.perf_counter()
    g = torch.Generator(device).manual_seed(args.seed + 1)
    bpds = []
    for _ in range(args.repeats):
        x = test.to_model(test.pixels.to(device), g)
        tol = 1e-2 if args.quick else 1e-5
        logp = sdegen.log_likelihood(x, sde, ema, generator=g, rtol=tol, atol=tol).logp
        bpds.append(test.bits_per_dim(logp.detach()).cpu())
    bpd = torch.stack(bpds).mean(0)
    nll_seconds = time.perf_counter() - start

    start = time.perf_counter()
    sampler = PredictorCorrectorSampler(
        ReverseDiffusion(), LangevinCorrector(snr=0.16), steps=5 if args.quick else 1000
    )
    result = sdegen.sample(
        sde,
        ema,
        (8 if args.quick else 64, 1, 8, 8),
        sampler,
        eps=1e-3,
        generator=torch.Generator(device).manual_seed(args.seed + 2),
        device=device,
        denoise=True,
        progress=not args.quick,
    )
    grid = image_grid(test.to_unit_interval(result.x), out / "samples.png")
    real = image_grid(
        test.to_unit_interval(test.to_model(test.pixels[:64], dequantize=False)), out / "test.png"
    )
    sample_seconds = time.perf_counter() - start

    total = time.perf_counter() - wall
    print(f"training: {trained.step} steps in {trained.wall_time:.0f} s, final loss {trained.final_loss:.3f}")
    print(
        f"test bits/dim: {float(bpd.mean()):.3f} +- {float(bpd.std() / math.sqrt(bpd.numel())):.3f} "
        f"({len(test)} images x {args.repeats} dequantizations, {nll_seconds:.0f} s); uniform: {math.log2(17):.3f}"
    )
    print(f"samples: {grid} ({result.nfe} evaluations, {sample_seconds:.0f} s); test images: {real}")
    print(f"total {total:.0f} s")


if __name__ == "__main__":
    main()
