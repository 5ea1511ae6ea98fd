"""Check that an SDE's closed-form marginals are those of its drift and diffusion."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdegen._checks import check_positive, check_sde, check_steps
from sdegen.sde.base import SDE
from sdegen.testing.result import CheckResult
from sdegen.testing.simulate import simulate_forward

__all__ = ["check_marginals", "check_moment_odes", "check_forward_simulation"]

F64 = torch.float64


def _time_derivative(fn: Callable[[Tensor], Tensor], t: Tensor) -> Tensor:
    """d fn(t)[i, ...] / dt[i] for a function whose row i depends on t[i] only.

    By autograd, one backward pass per coordinate; by central differences where ``fn`` is not
    differentiable in t (constant in t, like VE's mean, or computed outside autograd).
    """
    tt = t.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = fn(tt)
        if out.requires_grad:
            flat = out.reshape(out.shape[0], -1)
            cols = []
            for j in range(flat.shape[1]):
                (d,) = torch.autograd.grad(flat[:, j].sum(), tt, retain_graph=True, allow_unused=True)
                cols.append(torch.zeros_like(t) if d is None else d)
            return torch.stack(cols, dim=1).reshape(out.shape)
    h = 1e-6 * max(1.0, float(t.abs().max()))
    with torch.no_grad():
        return (fn(t + h) - fn(t - h)) / (2 * h)


def _default_x0(dim: int = 2) -> Tensor:
    return torch.linspace(1.0, -2.0, dim, dtype=F64)[None]


def check_moment_odes(
    sde: SDE,
    *,
    times: Sequence[float] | None = None,
    x0: Tensor | None = None,
    rtol: float = 1e-6,
) -> CheckResult:
    """Check the moment equations of a linear SDE against ``marginal_prob``, in float64.

    With mean m(t) and variance v(t) from ``marginal_prob(t, x0)``, the drift f and diffusion g:

        dm/dt = f(t, m),   dv/dt = 2 a(t) v + g(t)^2,   v(0) = 0,   m(0) = x0,

    where a(t) = f(t, 1) is the drift's linear coefficient (Sarkka and Solin 2019, eq. 6.2-6.3).
    Time derivatives come from autograd (central differences where ``marginal_prob`` is not
    differentiable). The statistic is the largest relative residual.
    """
    rtol = check_positive("rtol", rtol)
    x0 = _default_x0() if x0 is None else x0.to(F64)
    if times is None:
        times = [sde.T * f for f in (0.01, 0.1, 0.3, 0.6, 1.0)]
    t = torch.tensor(list(times), dtype=F64)
    xb = x0.expand((t.shape[0],) + tuple(x0.shape[1:]))
    mean = lambda s: sde.marginal_prob(s, xb)[0]  # noqa: E731
    var = lambda s: sde.marginal_prob(s, xb)[1] ** 2  # noqa: E731

    dm = _time_derivative(mean, t)
    f_m = sde.drift(t, mean(t).detach())
    mean_res = float(((dm - f_m).abs() / (dm.abs() + f_m.abs() + 1e-12)).max())

    a = sde.drift(t, torch.ones_like(xb)).reshape(t.shape[0], -1)[:, 0]
    g2 = sde.diffusion(t) ** 2
    v = var(t).detach()
    dv = _time_derivative(var, t)
    rhs = 2 * a * v + g2
    var_res = float(((dv - rhs).abs() / (dv.abs() + (2 * a * v).abs() + g2 + 1e-12)).max())

    zero = torch.zeros(1, dtype=F64)
    m0, s0 = sde.marginal_prob(zero, x0)
    init = float(s0.abs().max()) + float((m0 - x0).abs().max())

    ts = ", ".join(f"{float(v):.3g}" for v in t)
    return CheckResult.all_of(
        f"moment ODEs of {sde!r}",
        [
            CheckResult.from_statistic("dm/dt = f(t, m)", mean_res, rtol, f"relative residual at t = {ts}"),
            CheckResult.from_statistic(
                "dv/dt = 2 a v + g^2", var_res, rtol, f"relative residual at t = {ts}"
            ),
            CheckResult.from_statistic("m(0) = x0, v(0) = 0", init, 1e-12, "|std(0)| + |mean(0) - x0|"),
        ],
    )


def check_forward_simulation(
    sde: SDE,
    *,
    times: Sequence[float] | None = None,
    x0: Tensor | None = None,
    n_paths: int = 20000,
    steps: int = 100,
    seed: int = 0,
    z_tolerance: float = 5.0,
) -> CheckResult:
    """Check ``marginal_prob`` against ``n_paths`` forward paths simulated by torchsde (SRK).

    From a fixed x0, at each time the sample mean and std of every coordinate are compared with
    the closed form through z-scores: |mean_hat - m| / (s / sqrt(n)) and |s_hat - s| / (s / sqrt(2n))
    (the std's standard error for Gaussian marginals). The statistic is the largest z-score; at the
    default 5 a correct SDE fails with probability < 1e-5 over a dozen comparisons, while a
    diffusion off by 5 % gives z ~ 10 at n = 20000. Deterministic for a given ``seed``.
    """
    n_paths = check_steps("n_paths", n_paths, minimum=2)
    z_tolerance = check_positive("z_tolerance", z_tolerance)
    x0 = _default_x0() if x0 is None else x0.to(F64)
    if times is None:
        times = [sde.T * f for f in (0.1, 0.5, 1.0)]
    xs = simulate_forward(
        sde, x0.expand((n_paths,) + tuple(x0.shape[1:])).contiguous(), list(times), steps=steps, seed=seed
    )
    z_mean, z_std = 0.0, 0.0
    for t, xt in zip(times, xs, strict=True):
        mean, std = sde.marginal_prob(t, x0)
        s = float(std[0])
        if s == 0:
            raise ValueError(f"marginal std is 0 at t={t:.4g}; choose times where the SDE has noise")
        flat = xt.reshape(n_paths, -1)
        z_mean = max(z_mean, float((flat.mean(0) - mean.reshape(-1)).abs().max()) / (s / math.sqrt(n_paths)))
        z_std = max(z_std, float((flat.std(0) - s).abs().max()) / (s / math.sqrt(2 * n_paths)))
    ts = ", ".join(f"{v:.3g}" for v in times)
    return CheckResult.all_of(
        f"forward simulation of {sde!r}",
        [
            CheckResult.from_statistic(
                "mean", z_mean, z_tolerance, f"z-score of {n_paths} SRK paths ({steps} steps) at t = {ts}"
            ),
            CheckResult.from_statistic(
                "std", z_std, z_tolerance, f"z-score of {n_paths} SRK paths ({steps} steps) at t = {ts}"
            ),
        ],
    )


def check_marginals(
    sde: SDE,
    *,
    x0: Tensor | None = None,
    times: Sequence[float] | None = None,
    n_paths: int = 20000,
    steps: int = 100,
    seed: int = 0,
    rtol: float = 1e-6,
    z_tolerance: float = 5.0,
) -> CheckResult:
    """Check that ``sde.marginal_prob`` is exact for ``sde.drift`` and ``sde.diffusion``:
    the moment ODEs hold (:func:`check_moment_odes`) and forward simulation through torchsde
    agrees (:func:`check_forward_simulation`).

    ``x0`` is one starting point of shape ``[1, ...]`` (default ``[[1, -2]]``). ``times`` are the
    times both parts compare at (default: 0.01, 0.1, 0.3, 0.6 and 1 T for the moment equations,
    0.1, 0.5 and 1 T for the simulation). The simulation takes ``steps`` uniform explicit steps to
    the last time, so it needs h |a(t)| well below 1 there: where the drift is stiff (the cosine
    schedule's a(t) reaches -500 near T) end ``times`` before it or take more steps.
    """
    check_sde(sde)
    if type(sde).marginal_prob is SDE.marginal_prob:
        raise TypeError(
            f"{type(sde).__name__} defines no marginal_prob; check_marginals needs a closed-form marginal "
            f"(subclass sdegen.LinearSDE)"
        )
    if x0 is not None and (x0.ndim < 2 or x0.shape[0] != 1):
        raise ValueError(f"x0 must have shape [1, ...] (one starting point); got shape {tuple(x0.shape)}")
    return CheckResult.all_of(
        f"marginals of {sde!r}",
        [
            check_moment_odes(sde, times=times, x0=x0, rtol=rtol),
            check_forward_simulation(
                sde, times=times, x0=x0, n_paths=n_paths, steps=steps, seed=seed, z_tolerance=z_tolerance
            ),
        ],
    )
