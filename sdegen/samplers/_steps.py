"""The steps the grid samplers share: the weighted sum every update is written as, the
exponential-integrator step, deterministic or with injected noise, and the multistep order rule.

Written in lambda = log(alpha / sigma) against the data prediction x0_hat, for any kernel
N(alpha x_0, sigma^2 I) (no alpha^2 + sigma^2 = 1 assumed), where the probability-flow ODE is
d(x / sigma) / d lambda = e^lambda x0_hat (Lu et al. 2022b, "DPM-Solver++", eq. 9).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from sdegen import random
from sdegen.random import RandomSource
from sdegen.sde.coefficients import CoefficientGrid

__all__ = [
    "weighted_sum",
    "exponential_step",
    "noisy_exponential_step",
    "multistep_order",
    "LOWER_ORDER_FINAL_BELOW",
]

# DPM-Solver lowers the order of the last steps only for short runs (its `lower_order_final`
# applies below 10 steps), where a high-order extrapolation over few, long steps near the data
# is least reliable; diffusers uses 15.
LOWER_ORDER_FINAL_BELOW = 10
# A step longer than this many times the mean step of its history is taken at a lower order.
MAX_STEP_RATIO = 2.0


def weighted_sum(c: float, x: Tensor, terms: Iterable[tuple[float, Tensor]]) -> Tensor:
    """c x + sum_j c_j T_j, for float weights and stored tensors T_j.

    One fused ``add`` per term of weight != 0, no multiplication by c = 1 (``x`` itself when
    nothing is added), and never a tensor per term: the first operation makes the result and the
    others add into it in place (the inputs are never written). On a CPU a write to a fresh buffer
    first reads it into the cache, so a new 5000 x 256 buffer per term made a 4-term sum 25% slower.
    Every update of the grid samplers whose coefficients are known on the host is one such sum: the
    exponential step and its multistep extrapolations, UniPC's predictor and corrector, the
    Runge-Kutta stages.
    """
    out = x if c == 1.0 else x * c
    for c_j, t in terms:
        if c_j != 0.0:
            out = torch.add(out, t, alpha=c_j) if out is x else out.add_(t, alpha=c_j)
    return out


def exponential_step(
    x: Tensor,
    x0_hat: Tensor | Sequence[tuple[float, Tensor]],
    *,
    sigma_ratio: float,
    alpha_to: float,
    h: float,
    log_k: float = 0.0,
) -> Tensor:
    """x_s = k (sigma_s / sigma_t) x_t + alpha_s (1 - k e^{-h}) x0_hat, with h = lambda_s - lambda_t.

    That is x_s = alpha_s x0_hat + k sigma_s eps_hat, eps_hat = (x_t - alpha_t x0_hat) / sigma_t
    (sigma_s alpha_t / sigma_t = alpha_s e^{-h}): the step that keeps the fraction k of the
    predicted noise. With k = 1 (the default) it is the exact solution of
    d(x / sigma) / d lambda = e^lambda x0_hat from t to s for x0_hat held constant over the step:
    DDIM (Song et al. 2021, eq. 12 with eta = 0), DPM-Solver++(1) (Lu et al. 2022b, eq. 10), the
    first-order part of every multistep and singlestep method here. With k < 1 it is the mean of
    :func:`noisy_exponential_step`.

    Args:
        x: the state at t.
        x0_hat: the data prediction the step holds constant, or a linear combination
            ``[(c_0, D_0), (c_1, D_1), ...]`` of stored predictions that is it (an extrapolation):
            then each term is added in one pass, and x0_hat is never formed.
        sigma_ratio: sigma_s / sigma_t.
        alpha_to: alpha_s.
        h: lambda_s - lambda_t (> 0 towards the data).
        log_k: log k <= 0 (-inf: k = 0, x_s = alpha_s x0_hat).
    """
    w = -alpha_to * math.expm1(log_k - h)
    terms = [(w, x0_hat)] if isinstance(x0_hat, Tensor) else [(w * c, d) for c, d in x0_hat]
    return weighted_sum(sigma_ratio * math.exp(log_k), x, terms)


def noisy_exponential_step(
    grid: CoefficientGrid,
    i: int,
    x: Tensor,
    x0_hat: Tensor | Sequence[tuple[float, Tensor]],
    *,
    log_k: float,
    generator: RandomSource,
) -> Tensor:
    """x_{i+1} = alpha_{i+1} x0_hat + sigma_{i+1} (k eps_hat + sqrt(1 - k^2) z), z ~ N(0, I), from t_i
    to t_{i+1} of ``grid``.

    The noise of x_{i+1} keeps the fraction k of the predicted noise eps_hat and draws the rest of
    its unit variance afresh. In x_i this is :func:`exponential_step` with ``log_k`` plus
    sigma_{i+1} sqrt(1 - k^2) z. It is DDIM's step (Song et al. 2021, eq. 12, with
    sqrt(sigma_{i+1}^2 - c^2) = k sigma_{i+1}; eta in [0, 1] is k = sqrt(1 - eta^2 (1 - e^{-2h})))
    and, with k = e^{-h}, SDE-DPM-Solver++(1): the exact solution of the reverse-time SDE
    dx = [f - g^2 score] dt + g dw over the step for x0_hat held constant (Lu et al. 2022b, app.;
    k-diffusion's ``sample_dpmpp_2m_sde``), which is DDIM with eta = 1. k = 1 (``log_k`` = 0) is
    the deterministic step and draws nothing.

    Args:
        grid, i: the step, from ``grid.t[i]`` to ``grid.t[i + 1]``.
        x: the state at t_i.
        x0_hat: the data prediction the step holds constant (or a linear combination, as for
            :func:`exponential_step`).
        log_k: log k <= 0 (-inf: k = 0).
        generator: the source of z.
    """
    sigma, h = grid.sigma, grid.log_snr[i + 1] - grid.log_snr[i]
    x = exponential_step(
        x, x0_hat, sigma_ratio=sigma[i + 1] / sigma[i], alpha_to=grid.alpha[i + 1], h=h, log_k=log_k
    )
    if log_k == 0.0:
        return x
    z = random.randn(x.shape, generator, dtype=x.dtype, device=x.device)
    return torch.add(x, z, alpha=sigma[i + 1] * math.sqrt(-math.expm1(2 * log_k)))


def multistep_order(order: int, i: int, grid: CoefficientGrid, lower_order_final: bool) -> int:
    """The order of step i of a multistep method on ``grid`` (N steps), by four rules:

    1. warm start: at most i + 1 (only i earlier values of x0_hat exist);
    2. a denoising final step from a noise floor (``grid.denoising_final_step``) is first order:
       its x0_hat is converged and an extrapolation over its long step would only amplify noise
       (k-diffusion and diffusers step to sigma = 0 with x0_hat itself);
    3. with ``lower_order_final``, a run of fewer than 10 steps (N, its number of evaluations, a
       denoising final step included, as diffusers counts) lowers its last regular steps to order
       (regular steps - i), as DPM-Solver does. Counting the denoising step matters at N = 10 on a
       floored grid (9 regular steps): keeping order 3 there lowered the endpoint error of 3M at
       NFE 10 on all six floored cases measured (three 2-D mixtures under VE and sub-VP; e.g. the
       ring under VE 0.052 -> 0.049, under sub-VP 0.15 -> 0.069);
    4. bounded extrapolation: the order drops while h_i exceeds twice the mean step of the history
       it extrapolates from, (lambda_i - lambda_{i-k+1}) / (k - 1). For 2M the extrapolated x0_hat
       is D_0 + (h_i / 2 h_{i-1}) (D_0 - D_1), so this keeps the step within one last difference of
       D_0. It is what keeps 3M stable on a uniform-t grid on VP, whose steps in lambda grow by
       5x at the end (NFE 10 on the ring: endpoint error 3.4 without it, 0.16 with it); it never
       acts on a grid uniform in lambda, nor on a Karras grid (rho = 7) of 10 or more steps.
    """
    k = min(order, i + 1)
    regular = grid.steps - 1 if grid.denoising_final_step else grid.steps
    if i >= regular:
        return 1
    if lower_order_final and grid.steps < LOWER_ORDER_FINAL_BELOW:
        k = min(k, regular - i)
    lam = grid.log_snr
    while k > 1 and lam[i + 1] - lam[i] > MAX_STEP_RATIO * (lam[i] - lam[i - k + 1]) / (k - 1):
        k -= 1
    return k
