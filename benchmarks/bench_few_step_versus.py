"""sdegen against k-diffusion at few steps: endpoint error per NFE, each library's best configuration.

On mixtures with exact scores -- by default the ring ``GaussianMixture.ring(8, 4.0, 0.5)``, the
anisotropic 5-component mixture of ``bench_few_step.py`` and a multi-scale mixture (a broad component
beside clusters of std 0.02-0.6, unequal weights); on request (``--problems``) a heavy-tailed
16-component mixture, a thin spiral curve of 24 components and a 6-component mixture in d = 8 --
under VE(0.01, 50) and VP(0.1, 20), every
deterministic sampler of both libraries runs from the same n states x_T (exact samples of p_T), and
its endpoint error is the mean distance |x - x*| to a dopri5 solve of the probability-flow ODE from
the same x_T at rtol = atol = 1e-9, down to the SDE's ``sampling_eps``. For every NFE in
{5, 10, 15, 20, 30} the best configuration of each library is taken (a configuration using fewer
evaluations than the budget competes at that budget):

* sdegen: DDIM, DPM-Solver++ 2M, 3M (the default, DPM-Solver's form), 3M ``third_order="taylor"``
  and 3M ``second_order="taylor"`` (k-diffusion's 3M step for step; 2M in that form is less accurate
  than the default at every budget measured, so it is left out), 2S, UniPC (bh2 and bh1, orders 2 and 3) and EDM Heun, on its built-in grids (``LogSNRGrid`` and
  ``KarrasGrid``, each plain and stopping at the SDE's noise floor before one last first-order step
  -- the floored log-SNR grid is the samplers' default --, and ``UniformGrid``), through
  ``sdegen.sample``;
* k-diffusion: ``sample_euler``, ``sample_heun``, ``sample_dpm_2``, ``sample_lms``,
  ``sample_dpmpp_2m``, ``sample_dpmpp_3m_sde(eta=0)``, ``sample_dpmpp_2m_sde(eta=0)``,
  ``sample_dpmpp_2s_ancestral(eta=0)``, ``sample_dpmpp_sde(eta=0)`` on ``get_sigmas_karras`` and
  ``get_sigmas_exponential`` grids, each ending either at s(eps) or at sigma_min = max(0.01, s(eps))
  followed by its step to sigma = 0 (the denoising step, as k-diffusion's grids end), and
  ``sample_dpm_fast``; through the exact denoiser D(y, s) = x0_hat in the scaled variable
  y = x / alpha, s = sigma / alpha.

Fitted samplers: for each NFE, ``sdegen.samplers.fit_grid`` fits the grids of every sdegen sampler
(at NFE <= 10) or of the best configuration of each of the two best sampler classes (above) on a
calibration batch of 2048 other x_T (``--calibration``), and ``sdegen.samplers.fit_solver`` then
fits the step coefficients of each of those that take one evaluation per step, on its fitted grid
(``--solver-evaluations``; 0: grids only; a quarter of the batch is held out of it and picks its
iterate); the fitted sampler of least calibration error (for a fitted solver, on that held-out
quarter) is scored on the benchmark's x_T. The fit's cost is the score evaluations per calibration x_T of the grid fit,
of the coefficient fit (each run also differentiated once) and of their shared dopri5 reference. The excess energy distance is
ED(samples, y) - ED(converged, y), y n exact samples of p_eps (``sdegen.metrics``), averaged over
four independent sets y and over four independent sets of n x_T (the benchmark's and three more,
each with its own dopri5 endpoints): at n = 5000 one set's value varies by about 1e-3 with either.

k-diffusion is loaded as in ``bench_few_step.py`` (``pip install --no-deps k-diffusion`` suffices).

Run:  python benchmarks/bench_few_step_versus.py [--n 5000] [--problems ring anisotropic multiscale]
      [--sdes VE VP] [--nfe 5 10 15 20 30] [--fit-evaluations K (0: built-in grids only)]
      [--solver-evaluations K] [--calibration M] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from bench_few_step import PROBLEMS as BASE_PROBLEMS
from bench_few_step import k_diffusion_available, k_diffusion_sampling
from torch import Tensor

import sdegen
from sdegen import VESDE, VPSDE
from sdegen.analytic import GaussianMixture
from sdegen.metrics import energy_distance
from sdegen.samplers import (
    DDIMSampler,
    DPMSolverMultistepSampler,
    DPMSolverSinglestepSampler,
    EDMHeunSampler,
    KarrasGrid,
    LogSNRGrid,
    ProbabilityFlowSampler,
    TimeGrid,
    UniformGrid,
    UniPCSampler,
    fit_grid,
    fit_solver,
)
from sdegen.sde.base import LinearSDE

F64 = torch.float64
#: independent sets of n exact samples of p_eps that the excess energy distance is averaged over
Y_SETS = 4
#: independent sets of n states x_T (the first is the benchmark's) the fitted samplers' excess
#: energy distance is averaged over
X_SETS = 4


def multiscale_mixture() -> GaussianMixture:
    """A broad component (std 2) beside tight clusters (std 0.02-0.6) of unequal weights."""
    means = [[0.0, 0.0], [6.0, 1.0], [6.5, 1.3], [-5.0, 4.0], [1.0, -7.0], [-2.0, -3.0]]
    stds = [2.0, 0.05, 0.08, 0.6, 0.02, 0.3]
    cov = torch.stack([torch.eye(2, dtype=F64) * s**2 for s in stds])
    return GaussianMixture([0.35, 0.1, 0.1, 0.15, 0.1, 0.2], means, cov)


def heavy_mixture() -> GaussianMixture:
    """16 components of std 0.05-1.5 (log-spaced), Zipf weights, four far outliers (means x 10)."""
    g = torch.Generator().manual_seed(11)
    means = torch.randn(16, 2, generator=g, dtype=F64) * 4.0
    means[:4] *= 2.5
    stds = torch.exp(torch.linspace(math.log(0.05), math.log(1.5), 16, dtype=F64))
    weights = 1.0 / torch.arange(1, 17, dtype=F64)
    cov = torch.stack([torch.eye(2, dtype=F64) * s**2 for s in stds])
    return GaussianMixture((weights / weights.sum()).tolist(), means.tolist(), cov)


def curve_mixture() -> GaussianMixture:
    """A 1-D curve: 24 equal Gaussians along a spiral, std 0.35 along it and 0.03 across."""
    theta = torch.linspace(0.5, 3.5 * math.pi, 24, dtype=F64)
    means = torch.stack([0.6 * theta * torch.cos(theta), 0.6 * theta * torch.sin(theta)], 1)
    tangent = torch.stack(
        [torch.cos(theta) - theta * torch.sin(theta), torch.sin(theta) + theta * torch.cos(theta)], 1
    )
    tangent = tangent / tangent.norm(dim=1, keepdim=True)
    normal = torch.stack([-tangent[:, 1], tangent[:, 0]], 1)
    cov = (
        0.35**2 * tangent[:, :, None] * tangent[:, None, :]
        + 0.03**2 * normal[:, :, None] * normal[:, None, :]
    )
    return GaussianMixture([1.0 / 24] * 24, means.tolist(), cov)


def d8_mixture() -> GaussianMixture:
    """d = 8: six rotated components, per-axis stds 0.03-1.2 scaled by 0.5-1.33, unequal weights."""
    g = torch.Generator().manual_seed(7)
    means = torch.randn(6, 8, generator=g, dtype=F64) * 3.0
    cov = []
    for k in range(6):
        q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=F64))
        s = torch.exp(torch.linspace(math.log(0.03), math.log(1.2), 8, dtype=F64)) * (0.5 + k / 6)
        cov.append(q @ torch.diag(s**2) @ q.T)
    return GaussianMixture([0.3, 0.25, 0.15, 0.12, 0.1, 0.08], means.tolist(), torch.stack(cov))


PROBLEMS: dict[str, Callable[[], GaussianMixture]] = {
    **BASE_PROBLEMS,
    "multiscale": multiscale_mixture,
    "heavy": heavy_mixture,
    "curve": curve_mixture,
    "d8": d8_mixture,
}
#: run by default: the issue's two problems and the multi-scale check
DEFAULT_PROBLEMS = ["ring", "anisotropic", "multiscale"]
SDES: dict[str, Callable[[], LinearSDE]] = {"VE": lambda: VESDE(0.01, 50.0), "VP": lambda: VPSDE(0.1, 20.0)}
# "lambda floor" is the few-step samplers' default grid (``steps=N``)
GRIDS: dict[str, Callable[[int], TimeGrid]] = {
    "lambda floor": lambda n: LogSNRGrid(n, floor=True),
    "lambda": LogSNRGrid,
    "karras floor": lambda n: KarrasGrid(n, floor=True),
    "karras": KarrasGrid,
    "t": UniformGrid,
}


@dataclass(frozen=True)
class Config:
    """An sdegen sampler on a kind of grid."""

    name: str
    nfe_per_step: int
    make: Callable[[TimeGrid], sdegen.Sampler]


SDEGEN: list[Config] = [
    Config("DDIM", 1, lambda g: DDIMSampler(grid=g)),
    Config("DPM-Solver++ 2M", 1, lambda g: DPMSolverMultistepSampler(grid=g, order=2)),
    Config("DPM-Solver++ 3M", 1, lambda g: DPMSolverMultistepSampler(grid=g, order=3)),
    Config(
        "DPM-Solver++ 3M exact", 1, lambda g: DPMSolverMultistepSampler(grid=g, order=3, third_order="taylor")
    ),
    Config(
        "DPM-Solver++ 3M taylor-2",
        1,
        lambda g: DPMSolverMultistepSampler(grid=g, order=3, second_order="taylor"),
    ),
    Config("DPM-Solver++ 2S", 2, lambda g: DPMSolverSinglestepSampler(grid=g)),
    Config("UniPC bh2", 1, lambda g: UniPCSampler(grid=g)),
    Config("UniPC bh1", 1, lambda g: UniPCSampler(grid=g, variant="bh1")),
    Config("UniPC-3 bh2", 1, lambda g: UniPCSampler(grid=g, order=3)),
    Config("EDM Heun", 2, lambda g: EDMHeunSampler(grid=g)),
]

# k-diffusion's deterministic samplers: (function, keyword arguments, evaluations per step)
KD: dict[str, tuple[str, dict, int]] = {
    "euler": ("sample_euler", {}, 1),
    "heun": ("sample_heun", {}, 2),
    "dpm_2": ("sample_dpm_2", {}, 2),
    "lms": ("sample_lms", {}, 1),
    "dpmpp_2m": ("sample_dpmpp_2m", {}, 1),
    "dpmpp_3m_sde eta=0": ("sample_dpmpp_3m_sde", {"eta": 0.0}, 1),
    "dpmpp_2m_sde eta=0": ("sample_dpmpp_2m_sde", {"eta": 0.0}, 1),
    "dpmpp_2s_ancestral eta=0": ("sample_dpmpp_2s_ancestral", {"eta": 0.0}, 2),
    "dpmpp_sde eta=0": ("sample_dpmpp_sde", {"eta": 0.0}, 2),
}


@dataclass
class Best:
    err: float = math.inf
    name: str = "-"
    nfe: int = 0

    def offer(self, err: float, name: str, nfe: int) -> None:
        if err < self.err:
            self.err, self.name, self.nfe = err, name, nfe


class Problem:
    """One mixture under one SDE: x_T, the dopri5 endpoints x*, the denoiser, the exact p_eps samples."""

    def __init__(self, problem: str, sde_name: str, n: int, calibration: int = 2048) -> None:
        self.name = f"{problem} {sde_name}"
        self.mixture, self.sde = PROBLEMS[problem](), SDES[sde_name]()
        self.eps = self.sde.sampling_eps
        self.score = self.mixture.score(self.sde)
        prior = self.mixture.marginal(self.sde, self.sde.T)
        self.x_T = prior.sample(n, generator=torch.Generator().manual_seed(1))
        self.x_cal = prior.sample(calibration, generator=torch.Generator().manual_seed(5))
        self.solve = ProbabilityFlowSampler("dopri5", rtol=1e-9, atol=1e-9)
        self._cal_reference: tuple[Tensor, int] | None = None
        self.exact = self.solve(self.sde, self.score, self.x_T, eps=self.eps).x
        # The excess energy distance of one point set against one exact set y varies by about 1e-3
        # with y at n = 5000 (the same samples scored against four sets: +1.2, -1.2, +0.9, +0.8);
        # it is averaged over Y_SETS independent sets.
        p_eps = self.mixture.marginal(self.sde, self.eps)
        self.ys = [
            p_eps.sample(n, generator=torch.Generator().manual_seed(2 + 97 * k)) for k in range(Y_SETS)
        ]
        self.converged_ed = [float(energy_distance(self.exact, y)) for y in self.ys]
        self.x_T_sets: list[tuple[Tensor, list[float]]] | None = None
        ends = torch.tensor([self.sde.T, self.eps], dtype=F64)
        self.s_T, self.s_eps = torch.exp(-self.sde.log_snr(ends)).tolist()
        self.alpha_T, self.alpha_eps = self.sde.alpha(ends).tolist()
        self.calls = 0

    def excess_energy_distance(self, sampler: sdegen.Sampler) -> list[float]:
        """ED(x, y) - ED(x*, y) of the sampler's samples x from each of X_SETS sets of x_T (x* their
        dopri5 endpoints), each averaged over the exact sets y."""
        if self.x_T_sets is None:  # built on first use: three more dopri5 solves of n states
            prior = self.mixture.marginal(self.sde, self.sde.T)
            self.x_T_sets = [(self.x_T, self.converged_ed)]
            for k in range(1, X_SETS):
                x_T = prior.sample(self.x_T.shape[0], generator=torch.Generator().manual_seed(1 + 1000 * k))
                exact = self.solve(self.sde, self.score, x_T, eps=self.eps).x
                self.x_T_sets.append((x_T, [float(energy_distance(exact, y)) for y in self.ys]))
        out = []
        for x_T, converged in self.x_T_sets:
            x = sdegen.sample(self.sde, self.score, None, sampler, x_T=x_T, eps=self.eps).x
            excess = [float(energy_distance(x, y)) - c for y, c in zip(self.ys, converged, strict=True)]
            out.append(sum(excess) / len(excess))
        return out

    @property
    def cal_reference(self) -> tuple[Tensor, int]:
        """The dopri5 endpoints of the calibration batch (shared by every fit) and their NFE."""
        if self._cal_reference is None:
            out = ProbabilityFlowSampler("dopri5", rtol=1e-6, atol=1e-6)(
                self.sde, self.score, self.x_cal, eps=self.eps
            )
            self._cal_reference = (out.x, out.nfe)
        return self._cal_reference

    def error(self, x: Tensor | None) -> float:
        if x is None or not bool(torch.isfinite(x).all()):
            return math.inf
        return float((x - self.exact).norm(dim=1).mean())

    def denoiser(self, y: Tensor, s: Tensor) -> Tensor:
        """D(y, s) = x0_hat(t, alpha y) at the t where sigma/alpha = s (k-diffusion's model call)."""
        self.calls += 1
        t = self.sde.inverse_log_snr(-torch.log(s.to(F64))).expand(y.shape[0])
        alpha, sigma = self.sde.alpha(t)[:, None], self.sde.sigma(t)[:, None]
        x = alpha * y
        return (x + sigma**2 * self.score(t, x)) / alpha


def run_sdegen(p: Problem, sampler: sdegen.Sampler) -> tuple[float, int]:
    try:
        out = sdegen.sample(p.sde, p.score, None, sampler, x_T=p.x_T, eps=p.eps)
    except FloatingPointError:
        return math.inf, 0
    return p.error(out.x), out.nfe


def run_k_diffusion(ks, p: Problem, name: str, grid: str, end: str, nfe: int) -> tuple[float, int]:
    """``end``: "eps" -- steps down to s(eps); "zero" -- down to sigma_min = max(0.01, s(eps)), then to 0."""
    function, kwargs, per_step = KD[name]
    make = {"karras": ks.get_sigmas_karras, "exponential": ks.get_sigmas_exponential}[grid]
    if end == "eps":
        sigmas = make(nfe // per_step + 1, p.s_eps, p.s_T)[:-1].to(F64)  # drop the appended zero
    else:
        # the last step to 0 costs one evaluation for every sampler (an Euler step for the 2-stage ones)
        sigmas = make((nfe - 1) // per_step + 1, max(0.01, p.s_eps), p.s_T).to(F64)
    p.calls = 0
    try:
        out = getattr(ks, function)(p.denoiser, p.x_T / p.alpha_T, sigmas, disable=True, **kwargs)
    except (FloatingPointError, RuntimeError):
        return math.inf, p.calls
    return p.error(out * (p.alpha_eps if end == "eps" else 1.0)), p.calls


def run_dpm_fast(ks, p: Problem, nfe: int) -> tuple[float, int]:
    p.calls = 0
    out = ks.sample_dpm_fast(p.denoiser, p.x_T / p.alpha_T, p.s_eps, p.s_T, nfe, disable=True)
    return p.error(p.alpha_eps * out), p.calls


@dataclass
class Row:
    sdegen: Best
    kd: Best
    fitted: Best
    fit_cost: int = 0
    fitted_ed: float = math.nan
    fitted_ed_range: tuple[float, float] = (math.nan, math.nan)
    fitted_sampler: sdegen.Sampler | None = None


def measure(p: Problem, nfes: list[int], ks, fit_evaluations: int, solver_evaluations: int) -> dict[int, Row]:
    rows = {k: Row(Best(), Best(), Best()) for k in nfes}
    errors: dict[tuple[str, str, int], float] = {}
    for config in SDEGEN:
        for grid in GRIDS:
            for nfe in nfes:
                if nfe // config.nfe_per_step < 1:
                    continue
                err, used = run_sdegen(p, config.make(GRIDS[grid](nfe // config.nfe_per_step)))
                if used <= nfe:
                    errors[(config.name, grid, nfe)] = err
                    rows[nfe].sdegen.offer(err, f"{config.name}, {grid}", used)
    if ks is not None:
        for name in KD:
            for grid in ("karras", "exponential"):
                for end in ("eps", "zero"):
                    for nfe in nfes:
                        err, used = run_k_diffusion(ks, p, name, grid, end, nfe)
                        if used <= nfe:
                            rows[nfe].kd.offer(
                                err, f"{name}, {grid}{', to 0' if end == 'zero' else ''}", used
                            )
        for nfe in nfes:
            err, used = run_dpm_fast(ks, p, nfe)
            if used <= nfe:
                rows[nfe].kd.offer(err, "dpm_fast", used)
    calibration_errors: dict[int, float] = {}
    for nfe in nfes if fit_evaluations > 0 else []:
        # Fit the grids of every sampler at NFE <= 10 (a sampler poor on the built-in grids can fit
        # best: UniPC bh1 at NFE 5), at larger budgets of the best configuration of each of the two
        # best sampler classes (so that two variants of one method, e.g. 3M's, do not crowd out
        # another); each from its best grid.
        ranked = sorted(((e, c, g) for (c, g, k), e in errors.items() if k == nfe and math.isfinite(e)))
        chosen: dict[str, str] = {}
        classes: set[type] = set()
        for _, config_name, grid in ranked:
            cls = type(next(c for c in SDEGEN if c.name == config_name).make(GRIDS[grid](2)))
            if nfe <= 10 or (cls not in classes and len(classes) < 2):
                classes.add(cls)
                chosen.setdefault(config_name, grid)
        reference, reference_nfe = p.cal_reference
        for config_name, grid in chosen.items():
            config = next(c for c in SDEGEN if c.name == config_name)
            sampler = config.make(GRIDS[grid](nfe // config.nfe_per_step))
            fit = fit_grid(
                sampler,
                p.sde,
                p.score,
                p.x_cal,
                eps=p.eps,
                reference=reference,
                max_evaluations=fit_evaluations,
            )
            fitted, name, cost, error = (
                config.make(fit.grid),
                f"{config_name}, fitted grid",
                fit.nfe,
                fit.error,
            )
            if solver_evaluations > 0 and config.nfe_per_step == 1:
                solver = fit_solver(
                    fitted,
                    p.sde,
                    p.score,
                    p.x_cal,
                    eps=p.eps,
                    reference=reference,
                    max_evaluations=solver_evaluations,
                )
                grid_only = p.error(sdegen.sample(p.sde, p.score, None, fitted, x_T=p.x_T, eps=p.eps).x)
                # its error on the quarter of the calibration batch held out of the coefficient fit
                fitted, cost, error = solver, cost + solver.fit.nfe, solver.fit.validation_error
                name = f"{config_name}, fitted grid and coefficients (grid only {grid_only:.3g})"
            # chosen by the calibration error, as a user would choose, and scored on the benchmark's x_T
            if error < calibration_errors.get(nfe, math.inf):
                out = sdegen.sample(p.sde, p.score, None, fitted, x_T=p.x_T, eps=p.eps)
                calibration_errors[nfe] = error
                rows[nfe].fitted = Best(p.error(out.x), name, out.nfe)
                rows[nfe].fit_cost = cost + reference_nfe
                rows[nfe].fitted_sampler = fitted
        if nfe in (5, 10) and rows[nfe].fitted_sampler is not None:
            # One x_T set's excess varies by about 1e-3 with the set at n = 5000: the mean of four.
            excess = p.excess_energy_distance(rows[nfe].fitted_sampler)
            rows[nfe].fitted_ed = sum(excess) / len(excess)
            rows[nfe].fitted_ed_range = (min(excess), max(excess))
        print(f"  {p.name} NFE {nfe} done", file=sys.stderr, flush=True)
    return rows


def ratio(a: Best, b: Best) -> str:
    return f"{a.err / b.err:.2f}" if math.isfinite(a.err) and math.isfinite(b.err) and b.err > 0 else "-"


def tables(results: dict[str, dict[int, Row]], nfes: list[int], fitted: bool = True) -> str:
    head = "| | " + " | ".join(f"NFE {k}" for k in nfes) + " |\n|---|" + "---:|" * len(nfes)
    out = ["#### Endpoint error ratio sdegen / k-diffusion, built-in grids", "", head]
    out += [
        f"| {name} | " + " | ".join(ratio(r[k].sdegen, r[k].kd) for k in nfes) + " |"
        for name, r in results.items()
    ]
    if not fitted:
        out += ["", "#### The configurations (endpoint error, NFE used)", ""]
        out += ["| problem | NFE | sdegen, built-in | k-diffusion |", "|---|---:|---|---|"]
        for name, r in results.items():
            for k in nfes:
                a, b = r[k].sdegen, r[k].kd
                out.append(
                    f"| {name} | {k} | {a.name}: {a.err:.3g} ({a.nfe}) | {b.name}: {b.err:.3g} ({b.nfe}) |"
                )
        return "\n".join(out)
    out += ["", "#### Endpoint error ratio sdegen / k-diffusion, fitted samplers", "", head]
    out += [
        f"| {name} | " + " | ".join(ratio(r[k].fitted, r[k].kd) for k in nfes) + " |"
        for name, r in results.items()
    ]
    ed_nfes = [k for k in nfes if k in (5, 10)]
    if ed_nfes:
        out += ["", "#### Excess energy distance over the converged value, fitted samplers (x 1e-3)", ""]
        out += [
            "Mean over four sets of x_T (and four exact sets y each); in brackets the least and greatest set.",
            "",
        ]
        out += ["| | " + " | ".join(f"NFE {k}" for k in ed_nfes) + " |", "|---|" + "---:|" * len(ed_nfes)]

        def ed(row: Row) -> str:
            lo, hi = row.fitted_ed_range
            return f"{1e3 * row.fitted_ed:+.2f} ({1e3 * lo:+.2f} to {1e3 * hi:+.2f})"

        out += [f"| {name} | " + " | ".join(ed(r[k]) for k in ed_nfes) + " |" for name, r in results.items()]
    out += ["", "#### The configurations (endpoint error, NFE used)", ""]
    out += [
        "| problem | NFE | sdegen, built-in | k-diffusion | sdegen, fitted (fit cost: NFE per calibration x_T) |"
    ]
    out += ["|---|---:|---|---|---|"]
    for name, r in results.items():
        for k in nfes:
            row = r[k]
            out.append(
                f"| {name} | {k} | {row.sdegen.name}: {row.sdegen.err:.3g} ({row.sdegen.nfe}) | {row.kd.name}: "
                f"{row.kd.err:.3g} ({row.kd.nfe}) | {row.fitted.name}: {row.fitted.err:.3g} ({row.fitted.nfe}); "
                f"cost {row.fit_cost} |"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=DEFAULT_PROBLEMS)
    parser.add_argument("--sdes", nargs="+", choices=list(SDES), default=list(SDES))
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 15, 20, 30])
    parser.add_argument(
        "--fit-evaluations",
        type=int,
        default=300,
        help="bound on fit_grid's sampler runs (0: no fitted grids)",
    )
    parser.add_argument(
        "--solver-evaluations",
        type=int,
        default=200,
        help="bound on fit_solver's runs (0: fitted grids only)",
    )
    parser.add_argument("--calibration", type=int, default=2048, help="x_T in the fits' calibration batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # k-diffusion's eta = 0 samplers still build a Brownian tree, which warns at float rounding of its ends
    warnings.filterwarnings("ignore", module="torchsde")
    version = k_diffusion_available()
    ks = k_diffusion_sampling() if version else None
    header = (
        f"torch {torch.__version__}, sdegen {sdegen.__version__}, k-diffusion {version or 'not installed'}, "
        f"{args.threads} thread(s), float64, CPU, n = {args.n}"
    )
    print(header)
    start = time.perf_counter()
    results = {}
    for problem in args.problems:
        for sde_name in args.sdes:
            p = Problem(problem, sde_name, args.n, args.calibration)
            results[p.name] = measure(p, args.nfe, ks, args.fit_evaluations, args.solver_evaluations)
    text = tables(results, args.nfe, fitted=args.fit_evaluations > 0)
    print("\n" + text + f"\n\ntotal {time.perf_counter() - start:.0f} s")
    if args.markdown:
        command = "python benchmarks/bench_few_step_versus.py " + " ".join(sys.argv[1:])
        with open(args.markdown, "w") as f:
            f.write(f"Measured with `{command.strip()}`: {header}.\n\n{text}\n")


if __name__ == "__main__":
    main()
