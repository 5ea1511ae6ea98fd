"""Per-step cost of every grid sampler against a hand-written loop of the same algorithm.

Each of sdegen's samplers that steps through a time grid -- the few-step ones (DDIM with eta = 0
and 1, DPM-Solver++ 2M, 3M, 2S and 2M-SDE, UniPC of orders 2 and 3, EDM's Heun and churn
samplers), DDPM, predictor-corrector (reverse diffusion + Langevin), annealed Langevin, the
reverse SDE by Euler-Maruyama and the probability-flow ODE by torchdiffeq's fixed-grid Runge-Kutta
methods (Euler, midpoint, Heun 2 and 3, RK4's 3/8 rule; sdegen's own loops for both, on a linear
SDE) -- runs with all its checks (argument validation, NFE counting, the
finiteness check, the trajectory and observation hooks) against the tightest loop of the same
arithmetic a user would write: float coefficients from the same
:class:`~sdegen.sde.coefficients.CoefficientGrid`, fused ``torch.add(x, y, alpha=c)`` updates,
linear combinations of stored tensors as one weighted sum accumulated in place after its first
operation, no multiplication or division by a
coefficient equal to 1, noise drawn from the same generator in the same order, no checks. Both give
the same samples (asserted to float32 rounding), so they are the same algorithm.

The score is that of data N(0, I), -x / (alpha(t)^2 + sigma(t)^2): -x for VP, and for VE one
multiplication by a float computed on the host from t (exact, so that no sampler diverges, and
nearly free, so that the sampler's own cost is what is timed). d = 2 and d = 256, 5000 samples,
float32, on VP (alpha != 1) and VE (alpha = 1), CPU.

glibc's allocator hands a freed 5 MB tensor back to the operating system or keeps it depending on
its history (its mmap threshold adapts, its heap top is trimmed), so that the same loop at d = 256
runs either on warm memory or with a page fault on every new page of every new tensor (about 1600
faults and +3.5 ms per DDIM step here, for the hand loop as for sdegen's, from one process to the
next). That lottery swamps the difference being measured, so by default (``--malloc warm``) the
benchmark first tells glibc to keep freed memory (``mallopt``: no mmap, no trimming), as
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824`` in the environment would; both loops then
run on a warm heap. ``--malloc default`` leaves glibc as it is.

Times are CPU times of the process (``time.process_time``, one thread): on a machine shared with
other work the wall time of a run includes the time slices given to others, which at a load of 5-7
on 2 cores scattered the marginal costs by 2x and made some negative; the CPU time does not (the
contention for memory bandwidth and caches remains).

The per-step cost is the marginal one, (time of 2N steps - time of N steps) / N, so that the per-call
setup (validation, the grid and its coefficients, the final checks: reported separately, as
sdegen's intercept minus the hand loop's) cancels. Each repeat times the four runs (hand and sdegen,
N and 2N steps) back to back, in alternating order; the table shows the medians over repeats of
each marginal cost, and the median of the per-repeat ratios, which cancels slow drifts of the
machine's load.

Run:  python benchmarks/bench_few_step_overhead.py [--repeats 9] [--repeats-small 31] [--steps 20]
      [--steps-small 100] [--threads 1] [--malloc warm] [--only NAME ...] [--dims 2 256] [--sdes VP VE]
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

import sdegen
from sdegen import (
    VESDE,
    VPSDE,
    AnnealedLangevinSampler,
    DDIMSampler,
    DDPMSampler,
    DPMSolverMultistepSampler,
    DPMSolverSDESampler,
    DPMSolverSinglestepSampler,
    EDMHeunSampler,
    EDMStochasticSampler,
    KarrasGrid,
    LogSNRGrid,
    ProbabilityFlowSampler,
    ReverseSDESampler,
    UniformGrid,
    UniPCSampler,
)
from sdegen.samplers._runge_kutta import TABLEAUS, stage_weights
from sdegen.samplers.correctors import LangevinCorrector
from sdegen.samplers.predictor_corrector import PredictorCorrectorSampler
from sdegen.samplers.predictors import ReverseDiffusion
from sdegen.samplers.unipc import _coefficients as unipc_coefficients
from sdegen.sde.coefficients import CoefficientGrid

Score = Callable[[Tensor, Tensor], Tensor]
Generator = torch.Generator | None


def gaussian_score(sde: sdegen.SDE) -> Score:
    """The exact score of p_t for data N(0, I): -x / (alpha^2 + sigma^2), -x for VP."""
    if isinstance(sde, VPSDE):
        return lambda t, x: -x
    log_ratio, sigma_min = math.log(sde.sigma_max / sde.sigma_min), sde.sigma_min

    def score(t: Tensor, x: Tensor) -> Tensor:
        sigma = sigma_min * math.exp(float(t[0]) * log_ratio)  # t is one time for the whole batch
        return x * (-1.0 / (1.0 + sigma * sigma))

    return score


# -- the hand-written loops ------------------------------------------------------------------------
# Each takes the grid's coefficients (Python floats), the score, x_T and the generator.


def _x0(score: Score, t: float, alpha: float, sigma: float, x: Tensor) -> Tensor:
    """x0_hat = (x + sigma^2 score) / alpha, Tweedie's formula, without the division where alpha = 1."""
    d = torch.add(x, score(torch.full((x.shape[0],), t, dtype=x.dtype), x), alpha=sigma * sigma)
    return d if alpha == 1.0 else d / alpha


def hand_ddim(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator, eta: float = 0.0) -> Tensor:
    a, s, lam, t = g.alpha, g.sigma, g.log_snr, g.t
    for i in range(g.steps):
        x0 = _x0(score, t[i], a[i], s[i], x)
        h = lam[i + 1] - lam[i]
        if eta == 0.0:
            x = (x * (s[i + 1] / s[i])).add_(x0, alpha=-a[i + 1] * math.expm1(-h))
        else:
            c2 = eta**2 * -math.expm1(-2 * h)
            log_k = 0.5 * math.log1p(-c2) if c2 < 1.0 else -math.inf
            x = (x * (s[i + 1] / s[i] * math.exp(log_k))).add_(x0, alpha=-a[i + 1] * math.expm1(log_k - h))
            z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            x = torch.add(x, z, alpha=s[i + 1] * math.sqrt(c2))
    return x


def hand_multistep(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator, order: int) -> Tensor:
    """DDIM (order 1), DPM-Solver++ 2M and 3M (DPM-Solver's form): warm start only (N >= 10 steps on
    a grid uniform in lambda, where sdegen's other order rules do not act)."""
    a, s, lam, t = g.alpha, g.sigma, g.log_snr, g.t
    D: list[Tensor] = []
    for i in range(g.steps):
        D = [_x0(score, t[i], a[i], s[i], x), *D[:2]]
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
            x.add_(dj, alpha=wj)
    return x


def hand_2s(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator) -> Tensor:
    """DPM-Solver++(2S), r = 1/2: a DDIM half step in lambda, then the full step with x0_hat there."""
    a, s, lam, t = g.alpha, g.sigma, g.log_snr, g.t
    mid_t = g.sde.inverse_log_snr(torch.tensor([0.5 * (lam[i] + lam[i + 1]) for i in range(g.steps)]))
    m = CoefficientGrid(g.sde, mid_t.double())
    for i in range(g.steps):
        h = lam[i + 1] - lam[i]
        x0 = _x0(score, t[i], a[i], s[i], x)
        u = (x * (m.sigma[i] / s[i])).add_(x0, alpha=-m.alpha[i] * math.expm1(-0.5 * h))
        x0 = _x0(score, m.t[i], m.alpha[i], m.sigma[i], u)
        x = (x * (s[i + 1] / s[i])).add_(x0, alpha=-a[i + 1] * math.expm1(-h))
    return x


def hand_2m_sde(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator) -> Tensor:
    """SDE-DPM-Solver++(2M), midpoint form, as one weighted sum of x, D_0, D_1 and the noise."""
    a, s, lam, t = g.alpha, g.sigma, g.log_snr, g.t
    D: list[Tensor] = []
    for i in range(g.steps):
        D = [_x0(score, t[i], a[i], s[i], x), *D[:1]]
        h = lam[i + 1] - lam[i]
        w = -a[i + 1] * math.expm1(-2 * h)
        x = x * (s[i + 1] / s[i] * math.exp(-h))
        if i == 0:
            x.add_(D[0], alpha=w)
        else:
            c = 0.5 * w * h / (lam[i] - lam[i - 1])
            x.add_(D[0], alpha=w + c).add_(D[1], alpha=-c)
        z = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        x = torch.add(x, z, alpha=s[i + 1] * math.sqrt(-math.expm1(-2 * h)))
    return x


def hand_unipc(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator, order: int) -> Tensor:
    """UniPC-p with B(h) = e^h - 1 (bh2), its updates as weighted sums of x_lin and the D_k."""
    a, s, lam, t = g.alpha, g.sigma, g.log_snr, g.t
    D = [_x0(score, t[0], a[0], s[0], x)]
    for i in range(g.steps):
        p = min(order, i + 1)
        h = lam[i + 1] - lam[i]
        B_h = math.expm1(-h)
        rks = [(lam[i - k] - lam[i]) / h for k in range(1, p)] + [1.0]
        rho_p, rho_c = unipc_coefficients(rks, -h, B_h, p)  # host floats, not the timed work
        c = -a[i + 1] * B_h
        x_lin = (x * (s[i + 1] / s[i])).add_(D[0], alpha=-a[i + 1] * math.expm1(-h))
        # sum_k rho_k (D_k - D_0) / r_k: weights w_k on D_k, -sum(w) on D_0
        w = [c * rho / r for rho, r in zip(rho_p, rks, strict=False)]
        x = x_lin if not w else torch.add(x_lin, D[0], alpha=-sum(w))
        for wk, dk in zip(w, D[1:], strict=False):
            x.add_(dk, alpha=wk)
        if i < g.steps - 1:
            D_next = _x0(score, t[i + 1], a[i + 1], s[i + 1], x)
            w = [c * rho / r for rho, r in zip(rho_c[:-1], rks, strict=False)]
            x = torch.add(x_lin, D_next, alpha=c * rho_c[-1]).add_(D[0], alpha=-sum(w) - c * rho_c[-1])
            for wk, dk in zip(w, D[1:], strict=False):
                x.add_(dk, alpha=wk)
            D = [D_next, *D[: order - 1]]
    return x


def hand_edm(
    g: CoefficientGrid,
    score: Score,
    x: Tensor,
    gen: Generator,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> Tensor:
    """EDM's Alg. 2 (Alg. 1 for s_churn = 0) in x_hat = x / alpha and s = sigma / alpha."""
    a, t, N = g.alpha, g.t, g.steps
    lv = [sg / al for sg, al in zip(g.sigma, a, strict=True)]
    gamma = [
        min(s_churn / N, math.sqrt(2) - 1, lv[0] / lv[i] - 1) if s_tmin <= lv[i] <= s_tmax else 0.0
        for i in range(N)
    ]
    lam_hat = torch.tensor([lam - math.log1p(gm) for lam, gm in zip(g.log_snr[:N], gamma, strict=True)])
    c = CoefficientGrid(g.sde, g.sde.inverse_log_snr(lam_hat.double())) if s_churn > 0 else g
    x_hat = x if a[0] == 1.0 else x / a[0]
    for i in range(N):
        s_hat = lv[i] * (1 + gamma[i])
        if gamma[i] > 0:
            z = torch.randn(x_hat.shape, generator=gen, dtype=x_hat.dtype)
            x_hat = torch.add(x_hat, z, alpha=math.sqrt(s_hat**2 - lv[i] ** 2) * s_noise)
        al = c.alpha[i] if gamma[i] > 0 else a[i]
        x = x_hat if al == 1.0 else al * x_hat
        at = c if gamma[i] > 0 else g  # the time of level s_hat
        D = _x0(score, at.t[i], al, at.sigma[i], x)
        d = (x_hat - D) / s_hat
        x_next = torch.add(x_hat, d, alpha=lv[i + 1] - s_hat)
        x = x_next if a[i + 1] == 1.0 else a[i + 1] * x_next
        d_next = (x_next - _x0(score, t[i + 1], a[i + 1], g.sigma[i + 1], x)) / lv[i + 1]
        x_hat = torch.add(x_hat, d + d_next, alpha=0.5 * (lv[i + 1] - s_hat))
    return x_hat if a[N] == 1.0 else a[N] * x_hat


def hand_ddpm(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator) -> Tensor:
    """DDPM's Alg. 2 on the grid: x <- (x + beta score) / sqrt(1 - beta) + sqrt(beta) z, no last noise."""
    a, s, t = g.alpha, g.sigma, g.t
    z = torch.empty_like(x)
    for i in range(g.steps):
        A = a[i] / a[i + 1]
        v = max(s[i] ** 2 - (A * s[i + 1]) ** 2, 0.0)
        if i < g.steps - 1:
            z.normal_(generator=gen)
        x = torch.add(x, score(torch.full((x.shape[0],), t[i], dtype=x.dtype), x), alpha=v)
        if A != 1.0:
            x = x / A
        if i < g.steps - 1:
            x = torch.add(x, z, alpha=math.sqrt(v))
    return x


def hand_pc(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator, snr: float = 0.16) -> Tensor:
    """Song et al.'s PC sampler: reverse diffusion, then one Langevin step at the new time."""
    a, s, t = g.alpha, g.sigma, g.t
    z = torch.empty_like(x)
    tiny = torch.finfo(x.dtype).tiny
    for i in range(g.steps):
        z.normal_(generator=gen)
        A = a[i] / a[i + 1]
        v = max(s[i] ** 2 - (A * s[i + 1]) ** 2, 0.0)
        sc = score(torch.full((x.shape[0],), t[i], dtype=x.dtype), x)
        x = torch.add(x if A == 1.0 else x * (2.0 - A), sc, alpha=v)
        x = torch.add(x, z, alpha=math.sqrt(v))
        sc = score(torch.full((x.shape[0],), t[i + 1], dtype=x.dtype), x)
        z.normal_(generator=gen)
        grad_norm = sc.reshape(sc.shape[0], -1).norm(dim=-1).mean()
        noise_norm = z.reshape(z.shape[0], -1).norm(dim=-1).mean()
        step = 2.0 * A * A * (snr * noise_norm / grad_norm.clamp_min(tiny)) ** 2
        x = torch.addcmul(torch.addcmul(x, step, sc), (2.0 * step).sqrt(), z)
    return x


def hand_annealed(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator, snr: float = 0.22) -> Tensor:
    """NCSN's Alg. 1 with one Langevin step per level, x rescaled by alpha between levels."""
    a, s, t = g.alpha, g.sigma, g.t
    z = torch.empty_like(x)
    for i in range(g.steps):
        A = a[i] / a[i + 1]
        if A != 1.0:
            x = x / A
        step = 2.0 * (snr * s[i + 1]) ** 2
        sc = score(torch.full((x.shape[0],), t[i + 1], dtype=x.dtype), x)
        x = torch.add(torch.add(x, sc, alpha=step), z.normal_(generator=gen), alpha=math.sqrt(2.0 * step))
    return x


def hand_euler_maruyama(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator) -> Tensor:
    """Euler-Maruyama on the reverse SDE: x <- x - h (a x - g^2 score) + g sqrt(h) z."""
    t, drift, g2 = g.t, g.a, g.g2
    for i in range(g.steps):
        h = t[i] - t[i + 1]
        sc = score(torch.full((x.shape[0],), t[i], dtype=x.dtype), x)
        c = 1.0 - h * drift[i]
        x = torch.add(x if c == 1.0 else x * c, sc, alpha=h * g2[i])
        x.add_(torch.empty_like(x).normal_(generator=gen), alpha=math.sqrt(h * g2[i]))
    return x


def hand_pf_ode(g: CoefficientGrid, score: Score, x: Tensor, gen: Generator, method: str) -> Tensor:
    """The probability-flow ODE dx/dt = a x - g^2 score / 2 by an explicit Runge-Kutta method of
    torchdiffeq's (Euler, Heun, RK4's 3/8 rule): since the field is linear in x but for the score,
    each stage state and the step's end are one weighted sum of x and the scores so far, with host
    coefficients from the tableau (sdegen's ``stage_weights``, host floats, not the timed work),
    accumulated in place after its first term."""
    tableau = TABLEAUS[method]
    stages = _stages(g, list(tableau.c))
    n = x.shape[0]
    for i in range(g.steps):
        dt = g.t[i + 1] - g.t[i]
        at = [
            (st.t[i + 1], st.a[i + 1], st.g2[i + 1]) if c == 1.0 else (st.t[i], st.a[i], st.g2[i])
            for c, st in zip(tableau.c, stages, strict=True)
        ]
        rows = stage_weights(tableau, dt, [a for _, a, _ in at], [0.5 * g2 for _, _, g2 in at])
        scores: list[Tensor] = []
        for j, row in enumerate(rows):
            y = x if row[0] == 1.0 else x * row[0]
            for c, s in zip(row[1:], scores, strict=False):
                if c != 0.0:
                    y = torch.add(y, s, alpha=c) if y is x else y.add_(s, alpha=c)
            if j == len(tableau.c):
                x = y
            else:
                scores.append(score(torch.full((n,), at[j][0], dtype=x.dtype), y))
    return x


def _stages(g: CoefficientGrid, fractions: list[float]) -> list[CoefficientGrid]:
    """The coefficients at t_i + c (t_{i+1} - t_i) for each stage fraction c (c = 0, 1: the grid)."""
    out = []
    for c in fractions:
        if c in (0.0, 1.0):
            out.append(g)
        else:
            ts = [t0 + c * (t1 - t0) for t0, t1 in zip(g.t[:-1], g.t[1:], strict=True)]
            out.append(CoefficientGrid(g.sde, [*ts, g.t[-1]]))
    return out


# -- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A sampler on N steps of its grid, and the hand loop of the same algorithm."""

    name: str
    make: Callable[[int], sdegen.Sampler]
    hand: Callable[[CoefficientGrid, Score, Tensor, Generator], Tensor]


def _pc(n: int) -> PredictorCorrectorSampler:
    return PredictorCorrectorSampler(ReverseDiffusion(), LangevinCorrector(snr=0.16), grid=UniformGrid(n))


CHURN = dict(s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003)  # the registry's (EDM's ImageNet-64)

CASES = [
    Case("DDIM", lambda n: DDIMSampler(grid=LogSNRGrid(n)), hand_ddim),
    Case(
        "DDIM eta=1",
        lambda n: DDIMSampler(grid=LogSNRGrid(n), eta=1.0),
        lambda *a: hand_ddim(*a, eta=1.0),
    ),
    Case(
        "DPM-Solver++ 2M",
        lambda n: DPMSolverMultistepSampler(grid=LogSNRGrid(n)),
        lambda *a: hand_multistep(*a, order=2),
    ),
    Case(
        "DPM-Solver++ 3M",
        lambda n: DPMSolverMultistepSampler(grid=LogSNRGrid(n), order=3),
        lambda *a: hand_multistep(*a, order=3),
    ),
    Case("DPM-Solver++ 2S", lambda n: DPMSolverSinglestepSampler(grid=LogSNRGrid(n)), hand_2s),
    Case("DPM-Solver++ 2M SDE", lambda n: DPMSolverSDESampler(grid=LogSNRGrid(n)), hand_2m_sde),
    Case(
        "UniPC bh2 p=2",
        lambda n: UniPCSampler(grid=LogSNRGrid(n)),
        lambda *a: hand_unipc(*a, order=2),
    ),
    Case(
        "UniPC bh2 p=3",
        lambda n: UniPCSampler(grid=LogSNRGrid(n), order=3),
        lambda *a: hand_unipc(*a, order=3),
    ),
    Case("EDM Heun", lambda n: EDMHeunSampler(grid=KarrasGrid(n)), hand_edm),
    Case(
        "EDM churn",
        lambda n: EDMStochasticSampler(grid=KarrasGrid(n), **CHURN),
        lambda *a: hand_edm(*a, **CHURN),
    ),
    Case("DDPM", lambda n: DDPMSampler(grid=UniformGrid(n)), hand_ddpm),
    Case("PC (RD + Langevin)", _pc, hand_pc),
    Case(
        "annealed Langevin",
        lambda n: AnnealedLangevinSampler(grid=LogSNRGrid(n), n_steps_each=1, snr=0.22),
        hand_annealed,
    ),
    Case(
        "reverse SDE, Euler-Maruyama",
        lambda n: ReverseSDESampler("euler", grid=UniformGrid(n)),
        hand_euler_maruyama,
    ),
    *[
        Case(
            f"PF ODE, {m}",
            lambda n, m=m: ProbabilityFlowSampler(m, grid=UniformGrid(n)),
            lambda *a, m=m: hand_pf_ode(*a, method=m),
        )
        for m in ("euler", "midpoint", "heun2", "heun3", "rk4")
    ],
]


# -- the measurement ------------------------------------------------------------------------------


class _Passes(TorchDispatchMode):
    """Counts the tensor operations that read or write a tensor of ``numel`` numbers (the state)."""

    _FREE = {
        "view",
        "reshape",
        "_unsafe_view",
        "detach",
        "alias",
        "expand",
        "slice",
        "select",
        "empty",
        "empty_like",
    }

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.count = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ not in self._FREE:
            tensors = [a for a in (*args, *(kwargs or {}).values(), out) if isinstance(a, Tensor)]
            self.count += any(a.numel() == self.numel for a in tensors)
        return out


def passes_per_step(case: Case, sde: sdegen.SDE) -> tuple[float, float]:
    """(hand, sdegen): the marginal number of passes over the state per step, at 5000 x 5 (a
    deterministic measure of the work, whatever the load; x5 keeps the output above the size below
    which every evaluation's finiteness sum is a full one, as at d = 256)."""
    x = sde.prior_sampling((5000, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    score = gaussian_score(sde)
    counts = {}
    for n in (10, 20):
        sampler = case.make(n)
        grid = CoefficientGrid(sde, sampler.time_grid(sde, sde.sampling_eps))
        for who in ("hand", "sdegen"):
            with _Passes(x.numel()) as mode:
                if who == "hand":
                    case.hand(grid, score, x, torch.Generator().manual_seed(1))
                else:
                    sampler(sde, score, x, generator=torch.Generator().manual_seed(1))
            counts[(who, n)] = mode.count
    return tuple((counts[(who, 20)] - counts[(who, 10)]) / 10 for who in ("hand", "sdegen"))


def timed(fn: Callable[[], object]) -> float:
    """The CPU time ``fn`` takes: on a loaded machine the wall time adds whatever the scheduler
    gives other processes, the CPU time does not (with one thread, it is the work done)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


@dataclass
class Row:
    name: str
    nfe_per_step: int
    passes: tuple[float, float]  # hand, sdegen: passes over the state per step
    hand: float  # ms per step
    ours: float
    ratio: float  # median over repeats of the per-repeat ratio of marginal costs
    ratio_min: float  # the same ratio from the fastest run of each kind (the least disturbed)
    setup: float  # sdegen's intercept minus the hand loop's, ms per call


def measure(case: Case, sde: sdegen.SDE, x_T: Tensor, steps: int, repeats: int) -> Row:
    score = gaussian_score(sde)
    eps = sde.sampling_eps
    lib = {n: case.make(n) for n in (steps, 2 * steps)}
    grids = {n: CoefficientGrid(sde, lib[n].time_grid(sde, eps)) for n in (steps, 2 * steps)}

    def run(who: str, n: int) -> Callable[[], Tensor]:
        def go() -> Tensor:
            gen = torch.Generator().manual_seed(1)
            if who == "hand":
                return case.hand(grids[n], score, x_T, gen)
            return lib[n](sde, score, x_T, generator=gen).x

        return go

    torch.testing.assert_close(run("sdegen", steps)(), run("hand", steps)(), rtol=1e-4, atol=1e-4)
    runs = {(who, n): run(who, n) for who in ("hand", "sdegen") for n in (steps, 2 * steps)}
    times: dict[tuple[str, int], list[float]] = {key: [] for key in runs}
    order = list(runs)
    for r in range(repeats):
        for key in order if r % 2 == 0 else order[::-1]:
            times[key].append(timed(runs[key]))
    marginal = {
        who: [(b - a) / steps for a, b in zip(times[(who, steps)], times[(who, 2 * steps)], strict=True)]
        for who in ("hand", "sdegen")
    }
    per_step = {who: statistics.median(v) for who, v in marginal.items()}
    ratios = [o / h for o, h in zip(marginal["sdegen"], marginal["hand"], strict=True) if h > 0]
    intercept = {who: statistics.median(times[(who, steps)]) - steps * per_step[who] for who in per_step}
    fastest = {who: min(times[(who, 2 * steps)]) - min(times[(who, steps)]) for who in per_step}
    return Row(
        case.name,
        lib[steps].nfe_per_step,
        passes_per_step(case, sde),
        1e3 * per_step["hand"],
        1e3 * per_step["sdegen"],
        statistics.median(ratios) if ratios else math.nan,
        fastest["sdegen"] / fastest["hand"] if fastest["hand"] > 0 else math.nan,
        1e3 * (intercept["sdegen"] - intercept["hand"]),
    )


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory (no mmap of large blocks, no trimming of the heap),
    so that every run reuses warm pages; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # from glibc's malloc.h
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="repeats at d = 256")
    parser.add_argument("--repeats-small", type=int, default=31, help="repeats at d <= 16")
    parser.add_argument("--steps", type=int, default=20, help="N for d = 256")
    parser.add_argument("--steps-small", type=int, default=100, help="N for d <= 16 (microseconds a step)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 256])
    parser.add_argument("--sdes", nargs="+", default=["VP", "VE"], choices=["VP", "VE"])
    parser.add_argument("--only", nargs="+", default=None, help="run only the cases with these names")
    parser.add_argument(
        "--malloc", choices=["warm", "default"], default="warm", help="glibc's handling of freed memory"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    malloc = "glibc default" if args.malloc == "default" else "freed memory kept"
    if args.malloc == "warm" and not keep_freed_memory():
        malloc = "not glibc: allocator left as it is"
    cases = [c for c in CASES if args.only is None or c.name in args.only]
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), float32, CPU ({malloc}), 5000 samples, "
        f"N = {args.steps} vs {2 * args.steps} (d <= 16: {args.steps_small} vs {2 * args.steps_small}), "
        f"{args.repeats} repeats (d <= 16: {args.repeats_small}); load average at start "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(
        "\n| SDE | d | sampler | NFE/step | passes/step hand, sdegen | hand loop ms/step | sdegen ms/step | "
        "ratio | ratio of fastest runs | sdegen's extra setup ms/call |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for sde_name in args.sdes:
        sde = VPSDE() if sde_name == "VP" else VESDE()
        for d in args.dims:
            gen = torch.Generator().manual_seed(0)
            x_T = sde.prior_sampling((5000, d), generator=gen, dtype=torch.float32)
            for case in cases:
                small = d <= 16
                steps, repeats = (
                    (args.steps_small, args.repeats_small) if small else (args.steps, args.repeats)
                )
                row = measure(case, sde, x_T, steps, repeats)
                print(
                    f"| {sde_name} | {d} | {row.name} | {row.nfe_per_step} | "
                    f"{row.passes[0]:.1f}, {row.passes[1]:.1f} | {row.hand:.3f} | "
                    f"{row.ours:.3f} | {row.ratio:.2f} | {row.ratio_min:.2f} | {row.setup:.2f} |",
                    flush=True,
                )
    print(f"\nload average at end {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
