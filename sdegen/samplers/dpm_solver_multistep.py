"""DPM-Solver++(2M) and (3M): multistep exponential integrators in data prediction (Lu et al. 2022b)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from sdegen._checks import check_bool, check_steps
from sdegen.random import RandomSource
from sdegen.samplers._denoiser import DenoiserSampler
from sdegen.samplers._steps import multistep_order, weighted_sum
from sdegen.samplers.grid import TimeGrid
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["DPMSolverMultistepSampler"]

# 3M's D2 = c h^2 x0_hat'' is 2c (D1_0 - D1_1) / (r_0 + r_1): c = 1/2 as in the reference code, or 1.
CURVATURE = {"reference": 1.0, "taylor": 2.0}
# The second-order step's weight of D1_0, over alpha_{i+1}, as a function of h: -phi_1 / 2 (DPM-Solver++
# Alg. 2) or phi_2 = phi_1 / h + 1 (the exact integral of x0_hat interpolated linearly in lambda).
SECOND_ORDER = {
    "midpoint": lambda h: -0.5 * math.expm1(-h),
    "taylor": lambda h: math.expm1(-h) / h + 1.0,
}


class DPMSolverMultistepSampler(DenoiserSampler):
    """DPM-Solver++(2M) and (3M) (Lu et al. 2022b, "DPM-Solver++", Alg. 2 and app. B) on any linear SDE.

    Solves the probability-flow ODE in lambda = log(alpha/sigma) through its exact form
    x_{i+1} = (sigma_{i+1} / sigma_i) x_i + sigma_{i+1} int e^lambda x0_hat d lambda (eq. 9),
    with x0_hat extrapolated from its values at the last ``order`` grid times. With
    h = lambda_{i+1} - lambda_i, r_k = h_{i-k} / h, D_k = x0_hat at t_{i-k}, phi_1 = e^{-h} - 1:

        order 1:  x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} phi_1 D_0                    (DDIM)
        order 2:  ... - alpha_{i+1} phi_1 D1_0 / 2,   D1_0 = (D_0 - D_1) / r_0               (Alg. 2)
                  or ... + alpha_{i+1} phi_2 D1_0                     (``second_order="taylor"``)
        order 3:  ... + alpha_{i+1} phi_2 D1 - alpha_{i+1} phi_3 D2,
                  phi_2 = phi_1 / h + 1, phi_3 = phi_2 / h - 1/2,

    where D1 = h x0_hat'(lambda_i) + O(h^3) and D2 = c h^2 x0_hat''(lambda_i) + O(h^3) are divided
    differences of D_0, D_1, D_2: the Taylor expansion of x0_hat in lambda, integrated exactly
    against e^lambda. The exact Taylor weight is c = 1 (``third_order="taylor"``, third order).

    3M has two forms. DPM-Solver's reference code (``multistep_dpm_solver_third_update``),
    k-diffusion's ``sample_dpmpp_3m_sde(eta=0)`` and diffusers all use D2 = (D1_0 - D1_1) / (r_0 + r_1),
    which is c = 1/2: half the curvature term, so their 3M is second order in the limit (its error
    falls 4x per doubling of N, the exact form's 8x). That is the default here
    (``third_order="reference"``), because it is the more accurate one at few steps on data that is not
    Gaussian. The reason is mode commitment: on a mixture, x0_hat(lambda) along a trajectory
    switches from near the data mean to one mode within a lambda-interval of about 1 (the posterior
    over modes sharpens like exp(2 lambda)), so its higher derivatives are large against its second,
    and the quadratic extrapolation through three points overshoots the switch. The local errors
    are about alpha (1 - c) (h^3 / 6) x0_hat'' for the reference form and alpha (3/8) h^4 x0_hat'''
    for the exact one, so the reference wins while h |x0_hat''' / x0_hat''| > ~0.2, which holds at
    every step at NFE <= 30 (h = 0.3-2). Measured (endpoint error, exact scores, log-SNR grids without
    a floor, n = 1000): on the ring under VE at NFE 10 / 20 / 40 / 80 the reference form gives
    0.17 / 0.025 / 0.0046 / 0.0011, the exact one 0.18 / 0.059 / 0.0084 / 0.0010; under VP 0.043 /
    0.012 / 0.0025 / 0.0006 against 0.15 / 0.026 / 0.0034 / 0.0004; on a multi-scale mixture the
    crossover is also at NFE 40-80. For Gaussian data (x0_hat smooth in lambda) the exact form wins
    at every NFE >= 20 (VP: 0.0028 against 0.0074 at 20): use it for many steps or nearly Gaussian
    data; it is also the one whose order tests assert 3.

    The second-order step has two forms too, both second order, differing in the weight of D1_0 at
    O(h^2): -phi_1 / 2 = h/2 - h^2/4 + ... (``second_order="midpoint"``, the default: DPM-Solver++
    Alg. 2, k-diffusion's ``sample_dpmpp_2m``, diffusers' ``solver_type="midpoint"``) and
    phi_2 = h/2 - h^2/6 + ..., the exact integral against e^lambda of x0_hat interpolated linearly in
    lambda (``"taylor"``: DPM-Solver's ``solver_type="taylor"``, diffusers' ``solver_type="heun"``,
    and the warm-up step of k-diffusion's ``sample_dpmpp_3m_sde``). It is used by 2M and by every
    step 3M takes at order 2 (its second step, and wherever ``multistep_order`` lowers it). The
    midpoint form is the default because it is the more accurate one at few steps on mixtures, and
    by a wide margin for 2M. Measured (endpoint error of "taylor" over "midpoint", exact scores, the
    ring, anisotropic and multi-scale 2-D mixtures of the benchmark page under VE and VP, floored
    log-SNR and Karras grids, NFE 5, 10, 15, 20, 30, n = 2000): 2M 1.01-2.09x in 59 of 60 cases
    (0.996 once); 3M, where only its warm-up and its lowered final steps change, 0.976-1.007 at
    NFE >= 10 and 1.01-2.09x at NFE 5. The "taylor" form is there to reproduce diffusers'
    ``solver_type="heun"`` and k-diffusion's 3M step for step.

    The order of each step follows ``multistep_order``: lower at the start (the reference's
    warm start), at a denoising final step, in the last steps of runs shorter than 10 steps (as
    DPM-Solver), and where a step is much longer than its history's. A first-order first step adds
    an O(h^2) error proportional to the slope of x0_hat at T, which is ~ (data scale /
    (sigma/alpha)(T))^2 small: it shows in the order of 3M only when sigma(T)/alpha(T) is not large
    against the data. One evaluation per step: x0_hat at the last grid time is never needed.

    Args:
        steps: N steps of a :class:`~sdegen.samplers.grid.LogSNRGrid` stopping at the SDE's noise
            floor (default 20; see :class:`~sdegen.samplers.grid.LogSNRGrid`).
        grid: any :class:`~sdegen.samplers.grid.TimeGrid` or decreasing times instead of ``steps``.
        order: 2 (2M) or 3 (3M).
        lower_order_final: lower the order of the last steps of runs shorter than 10 steps.
        third_order: 3M's curvature weight: ``"reference"`` (the default: c = 1/2, DPM-Solver's,
            k-diffusion's and diffusers' 3M step for step; global order 2) or ``"taylor"`` (c = 1,
            global order 3). Ignored by 2M.
        second_order: the form of the second-order step (2M, and 3M's steps at order 2):
            ``"midpoint"`` (the default, DPM-Solver++'s) or ``"taylor"`` (k-diffusion's 3M warm-up,
            diffusers' ``solver_type="heun"``).
    """

    nfe_per_step = 1
    history = 3

    def __init__(
        self,
        steps: int | None = None,
        *,
        grid: TimeGrid | Tensor | Sequence[float] | None = None,
        order: int = 2,
        lower_order_final: bool = True,
        third_order: str = "reference",
        second_order: str = "midpoint",
    ) -> None:
        super().__init__(steps, grid=grid)
        if check_steps("order", order) not in (2, 3):
            raise ValueError(f"order must be 2 (DPM-Solver++(2M)) or 3 (3M); got order={order}")
        if third_order not in CURVATURE:
            raise ValueError(
                f"third_order must be 'reference' (3M as DPM-Solver, k-diffusion and diffusers: half the "
                f"curvature term, more accurate at few steps) or 'taylor' (third order); got "
                f"third_order={third_order!r}"
            )
        if second_order not in SECOND_ORDER:
            raise ValueError(
                f"second_order must be 'midpoint' (DPM-Solver++(2M), diffusers' solver_type='midpoint') or "
                f"'taylor' (diffusers' solver_type='heun', k-diffusion's 3M warm-up); got "
                f"second_order={second_order!r}"
            )
        check_bool("lower_order_final", lower_order_final)
        self._order, self.lower_order_final = order, lower_order_final
        self.third_order, self.second_order = third_order, second_order

    def __repr__(self) -> str:
        variant = f", third_order={self.third_order!r}" if self._order == 3 else ""
        if self.second_order != "midpoint":
            variant += f", second_order={self.second_order!r}"
        return (
            f"DPMSolverMultistepSampler({self._grid_repr()}, order={self._order}{variant}, "
            f"lower_order_final={self.lower_order_final})"
        )

    @property
    def order(self) -> float:
        """The global order of convergence: 2 for 2M and for the reference 3M, 3 for the exact 3M."""
        return 3.0 if self._order == 3 and self.third_order == "taylor" else 2.0

    def _weights(self, k: int, i: int, alpha_to: float, lam: list[float]) -> list[float]:
        """The weights of D_0, ..., D_{k-1} in x_{i+1} = (sigma_{i+1} / sigma_i) x_i + sum_j w_j D_j.

        First order: w_0 = -alpha phi_1 (the exact step for x0_hat constant over it). Order 2 adds
        -alpha phi_1 D1_0 / 2 (or alpha phi_2 D1_0) with D1_0 = (D_0 - D_1) / r_0; order 3 adds alpha phi_2 D1 - alpha phi_3 D2
        with D1 = (1 + w) D1_0 - w D1_1, w = r_0 / (r_0 + r_1), D2 = 2c (D1_0 - D1_1) / (r_0 + r_1)
        and D1_1 = (D_1 - D_2) / r_1: u D1_0 + v D1_1 expanded in D_0, D_1, D_2.
        """
        h = lam[i + 1] - lam[i]
        phi_1 = math.expm1(-h)
        w0 = -alpha_to * phi_1
        if k == 1:
            return [w0]
        r0 = (lam[i] - lam[i - 1]) / h
        if k == 2:
            c = alpha_to * SECOND_ORDER[self.second_order](h) / r0
            return [w0 + c, -c]
        r1 = (lam[i - 1] - lam[i - 2]) / h
        phi_2 = phi_1 / h + 1.0
        phi_3 = phi_2 / h - 0.5
        w = r0 / (r0 + r1)
        b = (
            alpha_to * phi_3 * CURVATURE[self.third_order] / (r0 + r1)
        )  # the weight of D1_0 - D1_1 in D2's term
        u = alpha_to * phi_2 * (1.0 + w) - b  # of D1_0
        v = b - alpha_to * phi_2 * w  # of D1_1
        return [w0 + u / r0, v / r1 - u / r0, -v / r1]

    def _step(
        self, grid: CoefficientGrid, i: int, x: Tensor, D: list[Tensor], generator: RandomSource
    ) -> Tensor:
        k = multistep_order(self._order, i, grid, self.lower_order_final)
        # The update is linear in D_0, D_1, D_2 with float weights: one pass per term instead of
        # forming the divided differences as tensors.
        weights = self._weights(k, i, grid.alpha[i + 1], grid.log_snr)
        return weighted_sum(grid.sigma[i + 1] / grid.sigma[i], x, zip(weights, D, strict=False))
