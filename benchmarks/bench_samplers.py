"""Cost of every sampler per score evaluation, against a bare network call and a hand-written loop.

For each network the script times, in one process with the repeats interleaved (config 1, 2, ...,
then again), and reports medians:

* ``bare``: one forward pass of the score network (no sampling at all);
* ``hand-written EM``: the tightest Euler-Maruyama loop for the reverse VP SDE -- float
  coefficients precomputed, in-place updates, one reused ``normal_`` buffer, no checks;
* ``sdeint + SequentialBrownian``: ``torchsde.sdeint(sde.reverse(net), bm=SequentialBrownian)``
  with euler, the engine path the issue's 1.10x target is about;
* ``sdeint + BrownianInterval``: the same with torchsde's default Brownian motion (dt given);
* every sampler through ``sdegen.sample`` (validation, NFE counting and NaN checks included).

Columns: ``/bare`` = wall time / (NFE x bare forward); ``/hand`` = wall time / (NFE x the hand
loop's time per step). Timings on a shared machine are noisy; the spread column is the
interquartile range of the hand loop's ratio to itself across repeats (its noise floor).

A third table uses the trivial score -x, so that ms / NFE is the overhead itself.

Run: python benchmarks/bench_samplers.py [--steps 200] [--repeats 5] [--threads 1] [--net all] [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torchsde

import sdegen
from sdegen import (
    AnnealedLangevinSampler,
    DDPMSampler,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseSDESampler,
    SequentialBrownian,
)
from sdegen.nn import ScoreMLP, UNet
from sdegen.samplers import (
    AncestralSampling,
    AnnealedLangevinCorrector,
    EulerMaruyama,
    LangevinCorrector,
    NoneCorrector,
    ReverseDiffusion,
)


class Negate(torch.nn.Module):
    """score(t, x) = -x, the score of N(0, I): nearly free, so timings show pure overhead."""

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -x


def hand_written_em(sde, net, x_T: torch.Tensor, steps: int, eps: float, seed: int) -> torch.Tensor:
    """x <- x (1 - h a) + h g^2 net(t, x) + g sqrt(h) z, the tightest reverse-SDE Euler loop."""
    g = torch.Generator().manual_seed(seed)
    ts = torch.linspace(sde.T, eps, steps + 1, dtype=torch.float64)
    a = sde.drift_coefficient(ts).tolist()
    g2 = sde.diffusion_squared(ts).tolist()
    t = ts.tolist()
    x = x_T.clone()
    z = torch.empty_like(x)
    for i in range(steps):
        h = t[i] - t[i + 1]
        score = net(torch.full((x.shape[0],), t[i]), x)
        x.mul_(1 - h * a[i]).add_(score, alpha=h * g2[i]).add_(
            z.normal_(generator=g), alpha=math.sqrt(g2[i] * h)
        )
    return x


def sdeint_direct(sde, net, x_T, steps, eps, seed, sequential: bool) -> torch.Tensor:
    rsde = sde.reverse(net, event_shape=x_T.shape[1:])
    y0 = rsde.flatten(x_T)
    span = sde.T - eps
    s = torch.tensor([0.0, span], dtype=torch.float64)
    dt = span / steps * (1 + 1e-9)
    g = torch.Generator().manual_seed(seed)
    if sequential:
        bm = SequentialBrownian(0.0, span, y0.shape, dtype=y0.dtype, generator=g)
    else:
        bm = torchsde.BrownianInterval(0.0, span, y0.shape, dtype=y0.dtype, entropy=seed, dt=dt)
    return torchsde.sdeint(rsde, y0, s, bm=bm, method="euler", dt=dt)[-1]


def samplers(steps: int) -> dict[str, sdegen.Sampler]:
    return {
        "ReverseSDESampler euler": ReverseSDESampler("euler", steps),
        "ReverseSDESampler milstein": ReverseSDESampler("milstein", steps),
        "ReverseSDESampler euler_heun": ReverseSDESampler("euler_heun", steps),
        "ReverseSDESampler reversible_heun": ReverseSDESampler("reversible_heun", steps),
        "ReverseSDESampler srk": ReverseSDESampler("srk", steps // 2),
        "ReverseSDESampler heun": ReverseSDESampler("heun", steps // 2),
        "ReverseSDESampler midpoint": ReverseSDESampler("midpoint", steps // 2),
        "ReverseSDESampler log_ode": ReverseSDESampler("log_ode", steps // 2),
        "ProbabilityFlowSampler euler": ProbabilityFlowSampler("euler", steps=steps),
        "ProbabilityFlowSampler rk4": ProbabilityFlowSampler("rk4", steps=steps // 4),
        "ProbabilityFlowSampler dopri5": ProbabilityFlowSampler("dopri5", rtol=1e-5, atol=1e-5),
        "PC EulerMaruyama + none": PredictorCorrectorSampler(EulerMaruyama(), NoneCorrector(), steps),
        "PC ReverseDiffusion + Langevin": PredictorCorrectorSampler(
            ReverseDiffusion(), LangevinCorrector(), steps // 2
        ),
        "PC Ancestral + AnnealedLangevin": PredictorCorrectorSampler(
            AncestralSampling(), AnnealedLangevinCorrector(), steps // 2
        ),
        "DDPMSampler": DDPMSampler(steps),
        "AnnealedLangevinSampler": AnnealedLangevinSampler(steps // 10, n_steps_each=10),
    }


def bench(name: str, net: torch.nn.Module, shape: tuple[int, ...], steps: int, repeats: int) -> None:
    sde = sdegen.VPSDE()
    eps = sde.sampling_eps
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    t_mid = torch.full((shape[0],), 0.5)

    def bare() -> int:
        for _ in range(steps):
            net(t_mid, x_T)
        return steps

    configs: dict[str, Callable[[], int]] = {
        "bare forward": bare,
        "hand-written EM": lambda: (hand_written_em(sde, net, x_T, steps, eps, 1), steps)[1],
        "sdeint + SequentialBrownian": lambda: (sdeint_direct(sde, net, x_T, steps, eps, 1, True), steps)[1],
        "sdeint + BrownianInterval": lambda: (sdeint_direct(sde, net, x_T, steps, eps, 1, False), steps)[1],
    }
    for label, sampler in samplers(steps).items():
        configs[label] = lambda sampler=sampler: (
            sdegen.sample(sde, net, None, sampler, x_T=x_T, generator=torch.Generator().manual_seed(1)).nfe
        )

    per_nfe: dict[str, list[float]] = {k: [] for k in configs}
    nfe: dict[str, int] = {}
    with torch.no_grad():
        bare()  # warm-up: allocator, lazy initialisation
        configs["hand-written EM"]()
        for _ in range(repeats):
            for label, fn in configs.items():
                start = time.perf_counter()
                nfe[label] = fn()
                per_nfe[label].append((time.perf_counter() - start) / nfe[label])
    med = {k: statistics.median(v) for k, v in per_nfe.items()}
    hand_ratios = [v / med["hand-written EM"] for v in per_nfe["hand-written EM"]]
    q = statistics.quantiles(hand_ratios, n=4) if len(hand_ratios) > 1 else [1.0, 1.0, 1.0]
    print(f"\n### {name}, x of shape {tuple(shape)}, {steps} steps, {repeats} interleaved repeats")
    print(f"noise floor: interquartile range of the hand loop's own ratio {q[0]:.3f}-{q[2]:.3f}\n")
    print("| sampler | NFE | ms / NFE | / bare | / hand |")
    print("|---|---:|---:|---:|---:|")
    for label in configs:
        print(
            f"| {label} | {nfe[label]} | {1e3 * med[label]:.3f} | {med[label] / med['bare forward']:.3f} "
            f"| {med[label] / med['hand-written EM']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--net", choices=["mlp", "unet", "trivial", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="40 steps, 2 repeats: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats = 40, 2
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, torchsde {torchsde.__version__}, {args.threads} thread(s), float32, CPU"
    )
    if args.net in ("mlp", "all"):
        mlp = ScoreMLP((2,)).eval().requires_grad_(False)
        bench("ScoreMLP((2,)) (3 x 256)", mlp, (1024, 2), args.steps, args.repeats)
    if args.net in ("unet", "all"):
        unet = UNet.from_size("tiny", 1).eval().requires_grad_(False)
        bench('UNet.from_size("tiny", 1)', unet, (64, 1, 8, 8), args.steps, args.repeats)
    if args.net in ("trivial", "all"):
        # score = -x costs ~4 us: ms / NFE is then the sampler's own overhead per evaluation.
        bench("trivial score -x (overhead per evaluation)", Negate(), (1024, 2), 5 * args.steps, args.repeats)


if __name__ == "__main__":
    main()
