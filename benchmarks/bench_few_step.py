"""Few-step sampling: sample quality per score evaluation (NFE) on 2-D mixtures with exact scores.

For two problems -- ``GaussianMixture.ring(8, 4.0, 0.5)`` (the issue's) and an anisotropic
5-component mixture -- and three SDEs -- VP(0.1, 20), sub-VP(0.1, 20), VE(0.01, 50) -- every
sampler runs on every time grid at NFE 5, 10, 20 and 50, all from the same x_T: n exact samples of
the mixture's marginal p_T (not the prior, so that only the sampler's error is measured), with the
oracle's exact score, in float64, on one thread. Columns:

* ``ED``: the energy distance (Szekely and Rizzo 2013) between the samples and one fixed set of n
  exact samples of p_eps, the sampler's target; ``null`` in the header is its mean +- std between
  two independent exact sets of n (what a perfect sampler scores).
* ``MMD``: the Gaussian-kernel MMD^2 at the components' scale (the "local MMD" of
  ``sdegen.testing``), sensitive to mode widths, against the same reference, with its own null,
  on the first ``--n-mmd`` (2000) points of each set (its kernel costs an exp per pair).
* ``err``: for deterministic samplers, the mean distance |x - x*| to a dopri5 solve of the
  probability-flow ODE from the same x_T at rtol = atol = 1e-9: the discretisation error itself,
  free of sampling noise. ``conv`` in the header is the ED of that converged point set.
* ``ms/NFE``: wall time per score evaluation, median over the four NFE (the score dominates).

A sampler with k evaluations per step takes NFE // k steps; a cell whose actual NFE differs shows it
in brackets. ``nan`` or ``div`` marks a solver that diverged (non-finite or |x| > 1e3).

k-diffusion (0.1.1) rows appear when k-diffusion is installed -- it is not a dependency of
sdegen. Its package imports its training code (scikit-image, kornia, ...) on ``import
k_diffusion``; when that fails, :func:`k_diffusion_sampling` loads ``k_diffusion/sampling.py``
alone (it needs only torch, scipy, torchsde, torchdiffeq and tqdm), so ``pip install --no-deps
k-diffusion`` suffices. Its samplers run on the same problems through the denoiser D(x, s) = x0_hat in the
scaled variable x / alpha, s = sigma / alpha, on grids from s(T) to s(eps) (no final step to 0).

Run:  python benchmarks/bench_few_step.py [--n 5000] [--nfe 5 10 20 50] [--quick] [--markdown PATH]
(``--quick``: n = 1000, the ring only, a smoke test of a few minutes; the full run is CPU-heavy.)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

import sdegen
from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.metrics import energy_distance, mmd
from sdegen.samplers import (
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
    TimeGrid,
    UniformGrid,
    UniPCSampler,
)
from sdegen.sde.base import LinearSDE

F64 = torch.float64
DIVERGED = 1e3  # |x| beyond this on 2-D data of radius ~5 is a diverged solver


# -- problems ------------------------------------------------------------------------------------


def anisotropic_mixture() -> GaussianMixture:
    """Five components of unequal weight, thin (axis ratios 5-60) and rotated: stiff local structure."""
    angles = torch.tensor([0.0, 45.0, 90.0, 135.0, 20.0], dtype=F64) * math.pi / 180
    c, s = torch.cos(angles), torch.sin(angles)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    evals = torch.tensor([[0.8, 0.02], [0.5, 0.05], [1.2, 0.03], [0.3, 0.06], [0.6, 0.01]], dtype=F64)
    cov = rot @ torch.diag_embed(evals) @ rot.transpose(-1, -2)
    means = [[-3.0, -2.0], [3.0, -2.0], [0.0, 3.0], [-4.0, 3.0], [4.0, 2.5]]
    return GaussianMixture([0.3, 0.25, 0.2, 0.15, 0.1], means, cov)


PROBLEMS: dict[str, Callable[[], GaussianMixture]] = {
    "ring": lambda: GaussianMixture.ring(8, 4.0, 0.5),
    "anisotropic": anisotropic_mixture,
}
SDES: dict[str, Callable[[], LinearSDE]] = {
    "VP": lambda: VPSDE(0.1, 20.0),
    "sub-VP": lambda: SubVPSDE(0.1, 20.0),
    "VE": lambda: VESDE(0.01, 50.0),
}


# -- time grids and samplers ----------------------------------------------------------------------

GRIDS: dict[str, Callable[[int], TimeGrid]] = {"t": UniformGrid, "lambda": LogSNRGrid, "karras": KarrasGrid}


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler on a given time grid; ``nfe_per_step`` sets the steps for an NFE budget."""

    name: str
    nfe_per_step: int
    deterministic: bool
    make: Callable[[TimeGrid], sdegen.Sampler]
    grids: tuple[str, ...] = tuple(GRIDS)


SAMPLERS: list[SamplerSpec] = [
    # the few-step samplers, written in lambda against x0_hat
    SamplerSpec("DDIM", 1, True, lambda g: DDIMSampler(grid=g)),
    SamplerSpec("DPM-Solver++ 2M", 1, True, lambda g: DPMSolverMultistepSampler(grid=g, order=2)),
    SamplerSpec("DPM-Solver++ 3M", 1, True, lambda g: DPMSolverMultistepSampler(grid=g, order=3)),
    SamplerSpec("DPM-Solver++ 2S", 2, True, lambda g: DPMSolverSinglestepSampler(grid=g)),
    SamplerSpec("UniPC bh2", 1, True, lambda g: UniPCSampler(grid=g)),
    SamplerSpec("EDM Heun", 2, True, lambda g: EDMHeunSampler(grid=g)),
    SamplerSpec("DDIM eta=1", 1, False, lambda g: DDIMSampler(grid=g, eta=1.0)),
    SamplerSpec("DPM-Solver++ 2M SDE", 1, False, lambda g: DPMSolverSDESampler(grid=g)),
    # EDM's ImageNet-64 churn setting (Karras et al. 2022, Table 5)
    SamplerSpec(
        "EDM churn 40",
        2,
        False,
        lambda g: EDMStochasticSampler(grid=g, s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003),
    ),
    # the samplers that were there before, in t
    SamplerSpec("PF-ODE euler", 1, True, lambda g: ProbabilityFlowSampler("euler", grid=g)),
    SamplerSpec("PF-ODE heun2", 2, True, lambda g: ProbabilityFlowSampler("heun2", grid=g)),
    SamplerSpec("PF-ODE rk4", 4, True, lambda g: ProbabilityFlowSampler("rk4", grid=g)),
    SamplerSpec("reverse SDE Euler-Maruyama", 1, False, lambda g: ReverseSDESampler("euler", grid=g)),
    SamplerSpec("DDPM ancestral", 1, False, lambda g: DDPMSampler(grid=g)),
]


# -- metrics -------------------------------------------------------------------------------------


@dataclass
class Reference:
    """One fixed exact sample y of p_eps, with its within-sample terms computed once.

    The energy distance uses all n points; the MMD, whose Gaussian kernel costs an exp per pair,
    uses the first ``n_mmd`` of x and of y (a random subset: the rows are independent draws).
    """

    y: Tensor
    bandwidth: float
    n_mmd: int
    yy_dist: float = field(init=False)
    yy_kernel: float = field(init=False)

    def __post_init__(self) -> None:
        self.yy_dist = _mean_distance(torch.pdist(self.y))
        self.yy_kernel = _mean_kernel(torch.pdist(self.y[: self.n_mmd]), self.bandwidth)

    def statistics(self, x: Tensor) -> tuple[float, float, float]:
        """(energy distance, its V-statistic, MMD^2) of x against y.

        The energy distance and MMD^2 are the unbiased U-statistics of sdegen.metrics (zero mean for
        equal laws). The V-statistic keeps the zero diagonal in the within-sample means (as
        dcor/scipy-style implementations do): it is the U-statistic plus E|X - X'| / n + E|Y - Y'| / m,
        a positive offset of ~2 E|X - X'| / n (0.002 on the ring at n = 5000).
        """
        xx_dist = _mean_distance(torch.pdist(x))
        xy_dist = sum(float(torch.cdist(c, self.y).sum()) for c in x.split(1000)) / (len(x) * len(self.y))
        ed = 2 * xy_dist - xx_dist - self.yy_dist
        ed_v = ed + xx_dist / x.shape[0] + self.yy_dist / self.y.shape[0]
        xm, ym, h = x[: self.n_mmd], self.y[: self.n_mmd], self.bandwidth
        mmd2 = _mean_kernel(torch.pdist(xm), h) + self.yy_kernel - 2 * _mean_kernel(torch.cdist(xm, ym), h)
        return ed, ed_v, mmd2


def _mean_distance(d: Tensor) -> float:
    return float(d.sum()) / d.numel()


def _mean_kernel(d: Tensor, h: float) -> float:
    """Mean of exp(-d^2 / 2h^2) over the given pairwise distances."""
    return float(torch.exp(d.square_().mul_(-0.5 / h**2)).sum()) / d.numel()


def local_bandwidth(mixture: GaussianMixture) -> float:
    """The local MMD's kernel width: the components' mean std (as sdegen.testing.check_samples)."""
    return math.sqrt(float(torch.linalg.eigvalsh(mixture.covariances).mean()))


def check_statistics_against_sdegen_metrics() -> None:
    """The cached statistics are sdegen.metrics' energy_distance and mmd (torch.cdist's matmul path
    there, exact pairwise distances here: equal to ~1e-9)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 2, generator=g, dtype=F64), 1.1 * torch.randn(300, 2, generator=g, dtype=F64)
    ed, _, m = Reference(y, 0.4, 300).statistics(x)
    assert math.isclose(ed, float(energy_distance(x, y)), rel_tol=1e-6, abs_tol=1e-9), ed
    assert math.isclose(m, float(mmd(x, y, bandwidth=0.4)), rel_tol=1e-6, abs_tol=1e-9), m


# -- one problem x SDE ---------------------------------------------------------------------------


@dataclass
class Cell:
    ed: float
    ed_v: float
    mmd: float
    err: float | None
    nfe: int
    seconds: float
    status: str = ""  # "" or "nan" / "div"


@dataclass
class Setting:
    problem: str
    sde_name: str
    n: int
    null_ed: tuple[float, float]
    null_ed_v: tuple[float, float]
    null_mmd: tuple[float, float]
    converged_ed: float
    converged_ed_v: float
    converged_mmd: float
    reference_nfe: int
    cells: dict[tuple[str, str, int], Cell] = field(default_factory=dict)


def run_setting(
    problem: str, sde_name: str, n: int, n_mmd: int, nfes: list[int], n_null: int, extra: list
) -> Setting:
    mixture, sde = PROBLEMS[problem](), SDES[sde_name]()
    eps = sde.sampling_eps
    score = mixture.score(sde)
    target = mixture.marginal(sde, eps)
    x_T = mixture.marginal(sde, sde.T).sample(n, generator=torch.Generator().manual_seed(1))
    y = target.sample(n, generator=torch.Generator().manual_seed(2))
    ref = Reference(y, local_bandwidth(mixture), min(n, n_mmd))
    # The null: the same statistics between independent exact sets of n (seeds 100, 101, ...).
    nulls = [ref_stats(target, n, ref.bandwidth, ref.n_mmd, s) for s in range(100, 100 + 2 * n_null, 2)]
    null_ed, null_ed_v, null_mmd = (
        (statistics.mean(v[i] for v in nulls), statistics.stdev(v[i] for v in nulls)) for i in range(3)
    )

    solve = ProbabilityFlowSampler("dopri5", rtol=1e-9, atol=1e-9)
    exact = solve(sde, score, x_T, eps=eps)
    conv = ref.statistics(exact.x)
    setting = Setting(problem, sde_name, n, null_ed, null_ed_v, null_mmd, *conv, exact.nfe)

    for spec in [*SAMPLERS, *extra]:
        for grid in spec.grids:
            for nfe in nfes:
                steps = nfe // spec.nfe_per_step
                if steps < 1:
                    continue
                x, used, seconds = spec_run(spec, sde, score, x_T, eps, grid, steps)
                setting.cells[(spec.name, grid, nfe)] = measure(x, used, seconds, ref, exact.x, spec)
            print(f"  {spec.name} [{grid}] done", file=sys.stderr, flush=True)
    return setting


def ref_stats(target: GaussianMixture, n: int, h: float, n_mmd: int, seed: int) -> tuple[float, float, float]:
    a = target.sample(n, generator=torch.Generator().manual_seed(seed))
    b = target.sample(n, generator=torch.Generator().manual_seed(seed + 1))
    return Reference(b, h, n_mmd).statistics(a)


def spec_run(spec, sde, score, x_T, eps, grid, steps) -> tuple[Tensor | None, int, float]:
    generator = torch.Generator().manual_seed(3)
    start = time.perf_counter()
    try:
        if isinstance(spec, KDiffusionSpec):
            x, used = spec.run(sde, score, x_T, eps, grid, steps)
        else:
            sampler = spec.make(GRIDS[grid](steps))
            out = sdegen.sample(sde, score, None, sampler, x_T=x_T, eps=eps, generator=generator)
            x, used = out.x, out.nfe
    except FloatingPointError:
        return None, steps * spec.nfe_per_step, time.perf_counter() - start
    return x, used, time.perf_counter() - start


def measure(x, used, seconds, ref: Reference, exact: Tensor, spec) -> Cell:
    if x is None or not bool(torch.isfinite(x).all()):
        return Cell(math.nan, math.nan, math.nan, None, used, seconds, "nan")
    if float(x.abs().max()) > DIVERGED:
        return Cell(math.nan, math.nan, math.nan, None, used, seconds, "div")
    err = float((x - exact).norm(dim=1).mean()) if spec.deterministic else None
    return Cell(*ref.statistics(x), err, used, seconds)


# -- k-diffusion, optional -----------------------------------------------------------------------


@dataclass(frozen=True)
class KDiffusionSpec:
    """A k-diffusion sampler on the scaled variable x / alpha with the exact denoiser."""

    name: str
    nfe_per_step: int
    deterministic: bool
    function: str
    grids: tuple[str, ...] = ("karras",)

    def run(self, sde, score, x_T, eps, grid, steps) -> tuple[Tensor, int]:
        """Deterministic samplers only: k-diffusion's noise would come from torch's global generator."""
        ks = k_diffusion_sampling()
        calls = [0]

        def denoiser(x_scaled: Tensor, s: Tensor) -> Tensor:
            """D(x, s) = x0_hat = (x + sigma^2 score(t, x)) / alpha at x = alpha x_scaled, s = sigma / alpha."""
            calls[0] += 1
            t = sde.inverse_log_snr(-torch.log(s.to(F64))).expand(x_scaled.shape[0])
            alpha, sigma = sde.alpha(t)[:, None], sde.sigma(t)[:, None]
            x = alpha * x_scaled
            return (x + sigma**2 * score(t, x)) / alpha

        ends = torch.tensor([sde.T, eps], dtype=F64)
        alpha_T, alpha_eps = sde.alpha(ends).tolist()
        ts = GRIDS[grid](steps).times(sde, eps)
        sigmas = torch.exp(-sde.log_snr(ts))
        x = x_T / alpha_T
        fn = getattr(ks, self.function)
        if self.function == "sample_dpm_fast":
            out = fn(
                denoiser, x, float(sigmas[-1]), float(sigmas[0]), steps * self.nfe_per_step, disable=True
            )
        elif self.function == "sample_dpmpp_3m_sde":  # eta = 0: DPM-Solver++(3M), deterministic
            out = fn(denoiser, x, sigmas, disable=True, eta=0.0)
        else:
            out = fn(denoiser, x, sigmas, disable=True)
        return alpha_eps * out, calls[0]


K_DIFFUSION = [
    KDiffusionSpec("k-diffusion sample_euler", 1, True, "sample_euler"),
    KDiffusionSpec("k-diffusion sample_heun", 2, True, "sample_heun"),
    KDiffusionSpec("k-diffusion sample_lms", 1, True, "sample_lms"),
    KDiffusionSpec("k-diffusion sample_dpm_fast", 1, True, "sample_dpm_fast", ("lambda",)),
    KDiffusionSpec("k-diffusion sample_dpmpp_2m", 1, True, "sample_dpmpp_2m", ("karras",)),
    KDiffusionSpec("k-diffusion sample_dpmpp_3m_sde eta=0", 1, True, "sample_dpmpp_3m_sde", ("lambda",)),
]


def k_diffusion_sampling():
    """k-diffusion's ``sampling`` module, or None when k-diffusion is not installed.

    ``import k_diffusion`` runs its package ``__init__``, which imports the training stack
    (scikit-image, kornia, ...); the samplers need none of it. When that import fails for a missing
    module, the package is registered as an empty namespace over its installed directory, so that
    ``k_diffusion.sampling`` (and its ``utils``) load alone. Benchmark-only: sdegen never imports it.
    """
    import importlib
    import importlib.util
    import types

    try:
        return importlib.import_module("k_diffusion.sampling")
    except ImportError:
        spec = importlib.util.find_spec("k_diffusion")
        if spec is None or not spec.submodule_search_locations:
            return None
    for name in [m for m in sys.modules if m == "k_diffusion" or m.startswith("k_diffusion.")]:
        del sys.modules[name]
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = package
    return importlib.import_module("k_diffusion.sampling")


def k_diffusion_available() -> str | None:
    if k_diffusion_sampling() is None:
        return None
    from importlib.metadata import version

    return version("k-diffusion")


# -- output --------------------------------------------------------------------------------------


def fmt_cell(cell: Cell | None, nfe: int, value: str) -> str:
    if cell is None:
        return "-"
    if cell.status:
        return cell.status
    v = getattr(cell, value)
    text = "-" if v is None else (f"{1e3 * v:.2f}" if value in ("ed", "mmd") else f"{v:.2g}")
    return text if cell.nfe == nfe else f"{text} ({cell.nfe})"


def table(setting: Setting, nfes: list[int], specs: list) -> str:
    lines = [
        f"### {setting.problem}, {setting.sde_name}, n = {setting.n}",
        "",
        f"Energy distance x 1e-3 (null {1e3 * setting.null_ed[0]:.2f} +- {1e3 * setting.null_ed[1]:.2f}, "
        f"converged {1e3 * setting.converged_ed:.2f}; on the V-statistic scale null "
        f"{1e3 * setting.null_ed_v[0]:.2f}, converged {1e3 * setting.converged_ed_v:.2f}); local MMD^2 x 1e-3 (null "
        f"{1e3 * setting.null_mmd[0]:.3f} +- {1e3 * setting.null_mmd[1]:.3f}, converged "
        f"{1e3 * setting.converged_mmd:.3f}); endpoint error against dopri5 (rtol = atol = 1e-9, "
        f"{setting.reference_nfe} NFE).",
        "",
        "| sampler | grid | "
        + " | ".join(f"ED {k}" for k in nfes)
        + " | "
        + " | ".join(f"MMD {k}" for k in nfes)
        + " | "
        + " | ".join(f"err {k}" for k in nfes)
        + " | ms/NFE |",
        "|---|---|" + "---:|" * (3 * len(nfes) + 1),
    ]
    for spec in specs:
        for grid in spec.grids:
            cells = [setting.cells.get((spec.name, grid, k)) for k in nfes]
            if all(c is None for c in cells):
                continue
            per_nfe = [1e3 * c.seconds / c.nfe for c in cells if c is not None and c.nfe]
            row = [spec.name, grid]
            row += [fmt_cell(c, k, "ed") for c, k in zip(cells, nfes, strict=True)]
            row += [fmt_cell(c, k, "mmd") for c, k in zip(cells, nfes, strict=True)]
            row += [fmt_cell(c, k, "err") for c, k in zip(cells, nfes, strict=True)]
            row.append(f"{statistics.median(per_nfe):.1f}" if per_nfe else "-")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def targets(settings: list[Setting], specs: list) -> str:
    """The issue's targets on the ring, VE and VP alike: at NFE 10 an energy distance <= 0.004, at
    NFE 20 within 0.0005 of the converged value (the ED of the dopri5 point set from the same x_T).

    One row per sampler, each cell on that sampler's best grid at that NFE. The energy distance is
    sdegen.metrics' (the scale on which the issue's k-diffusion sample_lms value at NFE 10, 0.0040,
    reproduces here); its null spread at n = 5000 is ~0.0017, so the NFE 10 cell also gives the
    draw-independent gap to the converged value, and the issue's 0.004 is about converged + 0.002.
    """
    ring = {s.sde_name: s for s in settings if s.problem == "ring" and s.sde_name in ("VE", "VP")}
    if not ring:
        return ""
    names = list(ring)
    head = " | ".join(f"{k}: NFE 10, ED <= 4.0 (gap) | {k}: NFE 20, ED - conv within 0.5" for k in names)
    lines = [f"| sampler | {head} |", "|---|" + "---:|---:|" * len(names)]
    miss = " **miss**"
    for spec in specs:
        row = [spec.name]
        for k in names:
            s = ring[k]
            for nfe in (10, 20):
                ok = [
                    (s.cells[(spec.name, g, nfe)].ed, g)
                    for g in spec.grids
                    if (spec.name, g, nfe) in s.cells
                    and not s.cells[(spec.name, g, nfe)].status
                    and s.cells[(spec.name, g, nfe)].nfe == nfe
                ]
                if not ok:
                    row.append("-")
                    continue
                ed, grid = min(ok, key=lambda v: v[0] if nfe == 10 else abs(v[0] - s.converged_ed))
                gap = ed - s.converged_ed
                if nfe == 10:
                    row.append(f"{1e3 * ed:.2f} ({1e3 * gap:+.2f}) {grid}{'' if ed <= 0.004 else miss}")
                else:
                    row.append(f"{1e3 * gap:+.2f} {grid}{'' if abs(gap) <= 0.0005 else miss}")
        lines.append("| " + " | ".join(row) + " |")
    conv = ", ".join(
        f"{k}: converged {1e3 * s.converged_ed:.2f}, exact-vs-exact null {1e3 * s.null_ed[0]:.2f} +- "
        f"{1e3 * s.null_ed[1]:.2f}"
        for k, s in ring.items()
    )
    return "Energy distances x 1e-3. " + conv + ".\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="samples per run (default 5000)")
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--n-mmd", type=int, default=2000, help="samples of the local MMD (default 2000)")
    parser.add_argument("--null", type=int, default=5, help="exact-vs-exact pairs for the null (default 5)")
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--sdes", nargs="+", choices=list(SDES), default=list(SDES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="n = 1000, 3 null pairs, the ring only")
    parser.add_argument("--no-k-diffusion", action="store_true", help="skip k-diffusion even if installed")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    if args.quick:
        args.n, args.null, args.problems = 1000, 3, ["ring"]
    torch.set_num_threads(args.threads)
    check_statistics_against_sdegen_metrics()
    kd_version = None if args.no_k_diffusion else k_diffusion_available()
    extra = K_DIFFUSION if kd_version else []
    specs = [*SAMPLERS, *extra]
    header = (
        f"torch {torch.__version__}, sdegen {sdegen.__version__}, "
        f"k-diffusion {kd_version or 'not installed (rows skipped)'}, {args.threads} thread(s), float64, CPU"
    )
    print(header)
    settings, sections = [], []
    start = time.perf_counter()
    for problem in args.problems:
        for sde_name in args.sdes:
            print(f"{problem} / {sde_name} ...", file=sys.stderr, flush=True)
            setting = run_setting(problem, sde_name, args.n, args.n_mmd, args.nfe, args.null, extra)
            settings.append(setting)
            sections.append(table(setting, args.nfe, specs))
            print("\n" + sections[-1], flush=True)
    summary = targets(settings, specs) if {10, 20} <= set(args.nfe) else ""
    if summary:
        print("\n### Targets on the ring\n\n" + summary)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.markdown:
        command = "python benchmarks/bench_few_step.py " + " ".join(sys.argv[1:])
        with open(args.markdown, "w") as f:
            f.write(f"Measured with `{command.strip()}`: {header}.\n\n")
            if summary:
                f.write("#### Targets on the ring\n\n" + summary + "\n\n")
            f.write("\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
