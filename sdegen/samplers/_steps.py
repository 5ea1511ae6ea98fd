"""The steps the few-step samplers share: the exponential-integrator step and the multistep order rule.

Written in lambda = log(alpha / sigma) against the data prediction x0_hat, for any kernel
N(alpha x_0, sigma^2 I) (no alpha^2 + sigma^2 = 1 assumed), where the probability-flow ODE is
d(x / sigma) / d lambda = e^lambda x0_hat (Lu et al. 2022b, "DPM-Solver++", eq. 9).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["exponential_step", "multistep_order", "LOWER_ORDER_FINAL_BELOW"]

# DPM-Solver lowers the order of the last steps only for short runs (its `lower_order_final`
# applies below 10 steps), where a high-order extrapolation over few, long steps near the data
# is least reliable; diffusers uses 15.
LOWER_ORDER_FINAL_BELOW = 10


def exponential_step(x: Tensor, x0_hat: Tensor, *, sigma_ratio: float, alpha_to: float, h: float) -> Tensor:
    """x_s = (sigma_s / sigma_t) x_t + alpha_s (1 - e^{-h}) x0_hat, with h = lambda_s - lambda_t.

    The exact solution of d(x / sigma) / d lambda = e^lambda x0_hat from t to s for x0_hat held
    constant over the step: DDIM (Song et al. 2021, eq. 12 with eta = 0), DPM-Solver++(1) (Lu et
    al. 2022b, eq. 10), the first-order part of every multistep and singlestep method here.

    Args:
        x: the state at t.
        x0_hat: the data prediction the step holds constant.
        sigma_ratio: sigma_s / sigma_t.
        alpha_to: alpha_s.
        h: lambda_s - lambda_t (> 0 towards the data).
    """
    return torch.add(x * sigma_ratio, x0_hat, alpha=-alpha_to * math.expm1(-h))


def multistep_order(order: int, i: int, steps: int, lower_order_final: bool) -> int:
    """The order of step i of N of a multistep method: lower at the start (only i earlier values of
    x0_hat exist) and, with ``lower_order_final`` and N < 10, at the end (order N - i)."""
    k = min(order, i + 1)
    if lower_order_final and steps < LOWER_ORDER_FINAL_BELOW:
        k = min(k, steps - i)
    return k
