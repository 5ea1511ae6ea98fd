"""Shared ground truth for the sampler tests: a 2-D Gaussian mixture and a Gaussian with closed forms."""

import functools

import torch

from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.testing.oracle import OracleNulls, calibrate

F64 = torch.float64

# Three anisotropic components of unequal weight: wrong mode weights, a wrong scale or a missing
# rotation all show in the moments or the energy distance.
MIXTURE = GaussianMixture(
    [0.5, 0.3, 0.2],
    [[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]],
    [[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.8]], [[0.3, -0.1], [-0.1, 0.3]]],
)

# sigma_max = 10 is about the largest distance between data points, as Song and Ermon (2020)
# recommend; the defaults of the other two are those of Song et al. (2021).
SDES = {"VP": VPSDE(0.1, 20.0), "subVP": SubVPSDE(0.1, 20.0), "VE": VESDE(0.01, 10.0)}


def gaussian_score(sde, mean: float, std: float):
    """The exact score of p_t for data N(mean, std^2 I): -(x - alpha m) / (alpha^2 s^2 + sigma^2)."""

    def score(t, x):
        tt = t.to(F64)
        alpha = sde.alpha(tt).to(x).reshape((-1,) + (1,) * (x.ndim - 1))
        sigma = sde.sigma(tt).to(x).reshape((-1,) + (1,) * (x.ndim - 1))
        return -(x - alpha * mean) / (alpha**2 * std**2 + sigma**2)

    return score


def gaussian_marginal(sde, t: float, mean: float, std: float) -> tuple[float, float]:
    """(alpha(t) m, alpha(t)^2 s^2 + sigma(t)^2): mean and variance of p_t for data N(m, s^2)."""
    tt = torch.tensor(t, dtype=F64)
    alpha, sigma = float(sde.alpha(tt)), float(sde.sigma(tt))
    return alpha * mean, alpha**2 * std**2 + sigma**2


@functools.cache
def null(name: str, n: int) -> OracleNulls:
    """The two-sample statistics' null distributions for n samples of the oracle at eps under SDES[name],
    calibrated once per session (sdegen.testing.oracle.calibrate)."""
    sde = SDES[name]
    return calibrate(MIXTURE.marginal(sde, sde.sampling_eps), n, seed=12345)
