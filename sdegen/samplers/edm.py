"""EDM's Heun samplers (Karras et al. 2022, "Elucidating the design space of diffusion-based generative
models", Alg. 1 and 2), in sigma/alpha for any linear SDE."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_real
from sdegen.samplers._denoiser import DenoiserSampler
from sdegen.samplers._trajectory import SamplePath, Trajectory
from sdegen.samplers.base import SamplerRun
from sdegen.samplers.grid import KarrasGrid, TimeGrid

__all__ = ["EDMHeunSampler", "EDMStochasticSampler"]


def _heun_step(
    x_hat: Tensor,
    s: float,
    s_next: float,
    D: Tensor,
    denoise_next: Callable[[Tensor], Tensor],
    alpha_next: float,
) -> Tensor:
    """One step of Alg. 1/2's lines 5-8 in the scaled state x_hat = x / alpha, from level s to s_next:
    Euler with d = (x_hat - D) / s, then the trapezoidal correction with the slope at s_next."""
    d = (x_hat - D) / s
    x_next = torch.add(x_hat, d, alpha=s_next - s)
    # alpha = 1 (VE, EDM): x is x_hat itself, no pass over the data
    d_next = (x_next - denoise_next(x_next if alpha_next == 1.0 else alpha_next * x_next)) / s_next
    return torch.add(x_hat, d + d_next, alpha=0.5 * (s_next - s))


class _EDMSampler(DenoiserSampler):
    """Alg. 2's loop in x_hat = x / alpha and s = sigma / alpha: at each level s_i, raise it to
    s_hat = (1 + gamma_i) s_i with fresh noise (the churn, where gamma_i > 0), then take a Heun step
    to s_{i+1}. Without churn (all gamma_i = 0) it is Alg. 1."""

    nfe_per_step = 2
    default_grid = KarrasGrid
    default_steps = 18
    #: S_noise, the scale of the churn's noise
    s_noise: float = 1.0

    def _churn(self, s: list[float]) -> list[float]:
        """gamma_i for each step i, given the levels s_0 > ... > s_N (none here: Alg. 1)."""
        return [0.0] * (len(s) - 1)

    def _sample(self, run: SamplerRun, x: Tensor) -> SamplePath:
        grid, score, generator, path = run
        alpha, s = grid.alpha, [sg / a for sg, a in zip(grid.sigma, grid.alpha, strict=True)]
        gamma = self._churn(s)
        # the times of the raised levels s_hat, where lambda = lambda_i - log(1 + gamma_i)
        churned = (
            self.times_at_log_snr(
                grid, [lam - math.log1p(g) for lam, g in zip(grid.log_snr[: grid.steps], gamma, strict=True)]
            )
            if any(gamma)
            else grid
        )
        if alpha[0] != 1.0:
            x_hat = x / alpha[0]
            x = alpha[0] * x_hat  # the state as the loop carries it, alpha x_hat
        else:
            x_hat = x
        for i in range(grid.steps):
            score.step = i
            at = churned if gamma[i] > 0 else grid  # the time of level s_hat; t_i itself without churn
            s_hat = s[i] * (1 + gamma[i])
            if gamma[i] > 0:
                path.report(i, x, None)  # x0_hat is evaluated at the churned state only
                z = random.randn(x_hat.shape, generator, dtype=x_hat.dtype, device=x_hat.device)
                x_hat = torch.add(x_hat, z, alpha=math.sqrt(s_hat**2 - s[i] ** 2) * self.s_noise)
                x = x_hat if at.alpha[i] == 1.0 else at.alpha[i] * x_hat
            D = self.denoised(at, i, x, score)
            if gamma[i] == 0:
                path.report(i, x, D)
            x_hat = _heun_step(
                x_hat, s_hat, s[i + 1], D, lambda y, i=i: self.denoised(grid, i + 1, y, score), alpha[i + 1]
            )
            x, x_hat = _reached(path, i + 1, x_hat, alpha[i + 1])
        return path.result(x)


class EDMHeunSampler(_EDMSampler):
    """EDM's deterministic sampler (Karras et al. 2022, Alg. 1): Heun's method in the noise level.

    For the kernel N(alpha x_0, sigma^2 I), x_hat = x / alpha and s = sigma / alpha obey EDM's ODE
    with s(t) = alpha(t) (eq. 4 with the scaling factored out),

        d x_hat / d s = (x_hat - x0_hat) / s,

    and each step from s_i to s_{i+1} is Heun's (trapezoidal) method in s, with x0_hat evaluated
    at x = alpha(t) x_hat. Order 2. The grid ends at eps > 0, so every step is a Heun step: two
    evaluations per step, 2N in all (Alg. 1 ends with an Euler step to sigma = 0, which is
    ``denoise=True`` here, one more evaluation).

    Args:
        steps: N steps of a :class:`~sdegen.samplers.grid.KarrasGrid` (rho = 7; default 18, EDM's).
        grid: any :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``.
    """

    order = 2.0


class EDMStochasticSampler(_EDMSampler):
    """EDM's stochastic sampler (Karras et al. 2022, Alg. 2): churn, then a Heun step, in sigma/alpha.

    At each level s_i = sigma_i / alpha_i of the grid (x_hat = x / alpha as in
    :class:`EDMHeunSampler`):

        gamma_i = min(S_churn / N, sqrt(2) - 1) if S_tmin <= s_i <= S_tmax, else 0,
        s_hat   = (1 + gamma_i) s_i,
        x_hat  <- x_hat + sqrt(s_hat^2 - s_i^2) S_noise z,          z ~ N(0, I) from ``generator``,

    then a Heun step of d x_hat / d s = (x_hat - x0_hat) / s from s_hat to s_{i+1}, with x0_hat at
    the time t_hat where sigma/alpha = s_hat. The raised level s_hat is capped at s(T), the largest
    the SDE defines (EDM starts at its sigma_max too; here the first step therefore has no churn).
    S_churn = 0 is Alg. 1. Two evaluations per step; weak order 1 (the churn is a Lie splitting of
    Langevin noise and the ODE). Churn corrects the errors of an imperfect denoiser over many
    steps (EDM tuned it at 256 steps); with an exact denoiser and few steps it only adds error
    (on a 2-D ring at 19 evaluations the endpoint moved further from the ODE's the more churn).

    Args:
        steps: N steps of a :class:`~sdegen.samplers.grid.KarrasGrid` (rho = 7; default 18).
        grid: any :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``.
        s_churn: total churn S_churn >= 0, required (EDM's ImageNet-64 setting: 40, with
            s_tmin=0.05, s_tmax=50, s_noise=1.003).
        s_tmin: the lowest noise level sigma/alpha that is churned (default 0).
        s_tmax: the highest noise level sigma/alpha that is churned (default: all).
        s_noise: the scale S_noise of the added noise (slightly above 1 offsets a denoiser's bias).
    """

    order = 1.0
    stochastic = True

    def __init__(
        self,
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        s_churn: float,
        s_tmin: float = 0.0,
        s_tmax: float = math.inf,
        s_noise: float = 1.0,
    ) -> None:
        super().__init__(steps, grid=grid)
        self.s_churn, self.s_noise = check_real("s_churn", s_churn), check_real("s_noise", s_noise)
        self.s_tmin = check_real("s_tmin", s_tmin)
        self.s_tmax = math.inf if s_tmax == math.inf else check_real("s_tmax", s_tmax)
        if self.s_churn < 0:
            raise ValueError(f"s_churn must be >= 0; got s_churn={s_churn:g}")
        if self.s_noise < 0:
            raise ValueError(f"s_noise must be >= 0; got s_noise={s_noise:g}")
        if not (0 <= self.s_tmin <= self.s_tmax):
            raise ValueError(
                f"the churned levels need 0 <= s_tmin <= s_tmax; got s_tmin={s_tmin!r}, s_tmax={s_tmax!r}"
            )

    def __repr__(self) -> str:
        return (
            f"EDMStochasticSampler({self._grid_repr()}, s_churn={self.s_churn:g}, s_tmin={self.s_tmin:g}, "
            f"s_tmax={self.s_tmax:g}, s_noise={self.s_noise:g})"
        )

    def _churn(self, s: list[float]) -> list[float]:
        N = len(s) - 1
        return [
            min(self.s_churn / N, math.sqrt(2) - 1, s[0] / s[i] - 1)
            if self.s_tmin <= s[i] <= self.s_tmax
            else 0.0
            for i in range(N)
        ]


def _reached(path: Trajectory, i: int, x_hat: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """The state x = alpha x_hat at grid time t_i through ``path.reached``, and its scaled x_hat
    (recomputed only when the observation has changed x, so that x_hat stays exact otherwise)."""
    x = x_hat if alpha == 1.0 else alpha * x_hat
    reached = path.reached(i, x)
    return (x, x_hat) if reached is x else (reached, reached / alpha)
