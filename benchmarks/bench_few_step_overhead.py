"""Per-step cost of the few-step samplers against hand-written loops of the same algorithms.

For DDIM, DPM-Solver++(2M) and (3M) -- sdegen's loops with their checks (argument validation,
NFE counting, the finiteness check, the trajectory and observation hooks) against the tightest
loop of the same arithmetic a user would write: float coefficients from the same grid, the update
as one weighted sum, ``torch.full`` for the time argument, no checks. Both produce the same samples
(asserted to float32 rounding), so they are the same algorithm. The score is the nearly free
``-x``, so that the step's own cost is what is timed, at d = 2 and d = 256 with 5000 samples in
float32 on one thread, on VP (alpha != 1) and VE (alpha = 1).

The per-step cost is the marginal one, (time of 2N steps - time of N steps) / N, so that the
per-call setup (the grid, the coefficients, the validation: reported separately) cancels; the
repeats are interleaved and the median taken.

Run:  python benchmarks/bench_few_step_overhead.py [--repeats 7] [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

import sdegen
from sdegen import VESDE, VPSDE, DDIMSampler, DPMSolverMultistepSampler, LogSNRGrid
from sdegen.sde.coefficients import CoefficientGrid


def score(t: Tensor, x: Tensor) -> Tensor:
    """The score of N(0, I) at t = 0: nearly free, so the timings show the sampler's own cost."""
    return -x


def hand_multistep(grid: CoefficientGrid, x: Tensor, order: int) -> Tensor:
    """DDIM (order 1), DPM-Solver++ 2M and 3M (DPM-Solver's form) written out: warm start only
    (N >= 10 steps on a grid uniform in lambda, where sdegen's other order rules do not act)."""
    a, s, lam, t = grid.alpha, grid.sigma, grid.log_snr, grid.t
    D: list[Tensor] = []
    for i in range(grid.steps):
        tb = torch.full((x.shape[0],), t[i], dtype=x.dtype)
        d = torch.add(x, score(tb, x), alpha=s[i] ** 2)
        D = [d if a[i] == 1.0 else d / a[i], *D[:2]]
        k = min(order, i + 1)
        h = lam[i + 1] - lam[i]
        p1 = math.expm1(-h)
        if k == 1:
            w = [-a[i + 1] * p1]
        elif k == 2:
            c = 0.5 * a[i + 1] * p1 * h / (lam[i] - lam[i - 1])
            w = [-a[i + 1] * p1 - c, c]
        else:
            r0, r1 = (lam[i] - lam[i - 1]) / h, (lam[i - 1] - lam[i - 2]) / h
            p2 = p1 / h + 1
            b = a[i + 1] * (p2 / h - 0.5) / (r0 + r1)
            u, v = a[i + 1] * p2 * (1 + r0 / (r0 + r1)) - b, b - a[i + 1] * p2 * r0 / (r0 + r1)
            w = [-a[i + 1] * p1 + u / r0, v / r1 - u / r0, -v / r1]
        x = x * (s[i + 1] / s[i])
        for wj, dj in zip(w, D, strict=False):
            x = torch.add(x, dj, alpha=wj)
    return x


SAMPLERS: dict[str, tuple[int, Callable[[int], sdegen.Sampler]]] = {
    "DDIM": (1, lambda n: DDIMSampler(grid=LogSNRGrid(n))),
    "DPM-Solver++ 2M": (2, lambda n: DPMSolverMultistepSampler(grid=LogSNRGrid(n))),
    "DPM-Solver++ 3M": (3, lambda n: DPMSolverMultistepSampler(grid=LogSNRGrid(n), order=3)),
}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(sde, d: int, steps: int, repeats: int) -> list[tuple[str, float, float, float]]:
    x_T = torch.randn(5000, d, generator=torch.Generator().manual_seed(0))
    eps = sde.sampling_eps
    rows = []
    for name, (order, make) in SAMPLERS.items():
        grids = {n: CoefficientGrid(sde, LogSNRGrid(n).times(sde, eps)) for n in (steps, 2 * steps)}
        lib = {n: make(n) for n in (steps, 2 * steps)}
        ours = lib[steps](sde, score, x_T).x
        torch.testing.assert_close(ours, hand_multistep(grids[steps], x_T, order), rtol=1e-4, atol=1e-4)
        runs = {
            ("hand", n): functools.partial(hand_multistep, grids[n], x_T, order) for n in (steps, 2 * steps)
        }
        runs |= {("sdegen", n): functools.partial(lib[n], sde, score, x_T) for n in (steps, 2 * steps)}
        times: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
        for _ in range(repeats):
            for key, fn in runs.items():
                times[key].append(timed(fn))
        med = {key: statistics.median(v) for key, v in times.items()}
        per_step = {who: (med[(who, 2 * steps)] - med[(who, steps)]) / steps for who in ("hand", "sdegen")}
        setup = (
            med[("sdegen", steps)]
            - steps * per_step["sdegen"]
            - (med[("hand", steps)] - steps * per_step["hand"])
        )
        rows.append((name, 1e3 * per_step["hand"], 1e3 * per_step["sdegen"], 1e3 * setup))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), float32, CPU, 5000 samples, N = {args.steps} vs {2 * args.steps}"
    )
    print(
        "\n| SDE | d | sampler | hand loop ms/step | sdegen ms/step | ratio | sdegen's extra setup ms/call |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for sde_name, sde in (("VP", VPSDE()), ("VE", VESDE())):
        for d in (2, 256):
            for name, hand, ours, setup in measure(sde, d, args.steps, args.repeats):
                print(
                    f"| {sde_name} | {d} | {name} | {hand:.3f} | {ours:.3f} | {ours / hand:.2f} | {setup:.2f} |"
                )


if __name__ == "__main__":
    main()
