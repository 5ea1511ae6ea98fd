"""Closed forms for one-step tests of predictors and correctors on Gaussian data.

Data x_0 ~ N(m, s^2 I) under a linear SDE has Gaussian marginals p_t = N(alpha(t) m, S(t) I),
S(t) = alpha(t)^2 s^2 + sigma(t)^2, with the exact score -(x - alpha(t) m) / S(t). The SDE
coefficients are written out here from Song et al. 2021 (eq. 9, 11, 17 and App. B), independently
of sdegen's implementation, so the tests compare the code against the formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

import sdegen

M = torch.tensor([1.0, -0.5], dtype=torch.float64)  # the data mean, per coordinate
S_DATA = 0.5  # the data std


@dataclass(frozen=True)
class Coefficients:
    """a(t) (f = a x), g(t)^2, alpha(t) and sigma(t)^2 of one SDE, as Python floats."""

    a: float
    g2: float
    alpha: float
    sigma2: float

    @property
    def marginal_variance(self) -> float:
        return self.alpha**2 * S_DATA**2 + self.sigma2


def vp(t: float, beta_min: float = 0.1, beta_max: float = 20.0) -> Coefficients:
    beta = beta_min + t * (beta_max - beta_min)
    B = beta_min * t + 0.5 * (beta_max - beta_min) * t**2
    return Coefficients(-0.5 * beta, beta, math.exp(-0.5 * B), -math.expm1(-B))


def subvp(t: float, beta_min: float = 0.1, beta_max: float = 20.0) -> Coefficients:
    beta = beta_min + t * (beta_max - beta_min)
    B = beta_min * t + 0.5 * (beta_max - beta_min) * t**2
    return Coefficients(-0.5 * beta, beta * -math.expm1(-2 * B), math.exp(-0.5 * B), math.expm1(-B) ** 2)


def ve(t: float, sigma_min: float = 0.01, sigma_max: float = 50.0) -> Coefficients:
    s2 = (sigma_min * (sigma_max / sigma_min) ** t) ** 2
    return Coefficients(0.0, 2 * s2 * math.log(sigma_max / sigma_min), 1.0, s2 - sigma_min**2)


#: (name, sdegen SDE, closed-form coefficients)
SDES = [
    ("VP", sdegen.VPSDE(0.1, 20.0), vp),
    ("subVP", sdegen.SubVPSDE(0.1, 20.0), subvp),
    ("VE", sdegen.VESDE(0.01, 50.0), ve),
]


def exact_score(coefficients):
    """The exact score of p_t for Gaussian data: (t, x) -> -(x - alpha(t) m) / S(t)."""

    def score(t: Tensor, x: Tensor) -> Tensor:
        c = coefficients(float(t[0]))
        return -(x - c.alpha * M.to(x)) / c.marginal_variance

    return score


def z_mean(x: Tensor, mean: Tensor, variance: float) -> float:
    """Largest |z| of the per-coordinate sample means of ``x`` [n, d] against ``mean`` [d]."""
    return float(((x.mean(0) - mean).abs() / math.sqrt(variance / x.shape[0])).max())


def z_variance(x: Tensor, variance: float) -> float:
    """Largest |z| of the per-coordinate sample variances of Gaussian ``x`` against ``variance``."""
    se = variance * math.sqrt(2.0 / (x.shape[0] - 1))
    return float(((x.var(0) - variance).abs() / se).max())
