"""Shared ground truth for the conditional-sampling tests: mixtures whose conditionals are known exactly."""

import functools
import math

import torch

from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.observations import Colorization, Inpainting, LinearObservation
from sdegen.testing.oracle import OracleNulls, calibrate

F64 = torch.float64
SDES = {"VP": VPSDE(0.1, 20.0), "subVP": SubVPSDE(0.1, 20.0), "VE": VESDE(0.01, 10.0)}


def independent_mixture(rotation: float = 0.0) -> GaussianMixture:
    """p(z_1) p(z_2) for two 1-D mixtures, in coordinates x = R(rotation) z: the observed coordinate z_1
    says nothing about z_2, so replacement in the rotated coordinates is exact."""
    w1, m1, v1 = [0.4, 0.6], [-2.0, 1.5], [0.25, 0.16]
    w2, m2, v2 = [0.3, 0.7], [-1.0, 2.0], [0.09, 0.36]
    weights = [a * b for a in w1 for b in w2]
    means = torch.tensor([[a, b] for a in m1 for b in m2], dtype=F64)
    covs = torch.diag_embed(torch.tensor([[a, b] for a in v1 for b in v2], dtype=F64))
    c, s = math.cos(rotation), math.sin(rotation)
    R = torch.tensor([[c, -s], [s, c]], dtype=F64)
    return GaussianMixture(weights, means @ R.T, R @ covs @ R.T)


def rgb_mixture() -> GaussianMixture:
    """A 1 x 1 RGB image whose gray level z_1 = sum_c x_c / sqrt(3) is independent of its two colour
    contrasts (z_2, z_3): colorization by replacement is exact for it."""
    weights, means, covs = [], [], []
    for a, m1, v1 in ((0.4, -1.0, 0.2), (0.6, 1.0, 0.3)):
        for b, m23, v23 in ((0.5, (1.0, 0.0), (0.2, 0.1)), (0.5, (-1.0, 0.5), (0.1, 0.3))):
            weights.append(a * b)
            means.append([m1, *m23])
            covs.append([v1, *v23])
    M = torch.tensor(
        [[1 / math.sqrt(3), -1 / math.sqrt(2), -1 / math.sqrt(6)],
         [1 / math.sqrt(3), 1 / math.sqrt(2), -1 / math.sqrt(6)],
         [1 / math.sqrt(3), 0.0, 2 / math.sqrt(6)]],
        dtype=F64,
    )  # fmt: skip
    mu = torch.tensor(means, dtype=F64) @ M.T
    cov = M @ torch.diag_embed(torch.tensor(covs, dtype=F64)) @ M.T
    return GaussianMixture(weights, mu, cov, event_shape=(3, 1, 1))


def rotation_row(rotation: float) -> torch.Tensor:
    """The row a with a^T x = z_1 for x = R(rotation) z."""
    return torch.tensor([[math.cos(rotation), math.sin(rotation)]], dtype=F64)


# Two strongly correlated components: observing x_1 = 0.5 makes the second component 7.4 times as
# likely as the first (exact weights 0.12, 0.88 against 0.5, 0.5 a priori).
CORRELATED = GaussianMixture(
    [0.5, 0.5], [[-2.0, -2.0], [2.0, 2.0]], [[[1.0, 0.8], [0.8, 1.0]], [[1.0, 0.8], [0.8, 1.0]]]
)

# One correlated Gaussian: every sampler driven by an affine score is a linear Gaussian chain, so the
# law of its samples is known exactly (see tests/test_conditional_sampling.py).
GAUSS_MEAN = torch.tensor([0.5, -0.5], dtype=F64)
GAUSS_COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=F64)
GAUSSIAN = GaussianMixture([1.0], GAUSS_MEAN[None], GAUSS_COV[None])

LABELLED = GaussianMixture(
    [0.3, 0.2, 0.3, 0.2],
    [[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5], [0.0, -1.5]],
    [0.5, 0.5, 0.3, 0.3],
    labels=[0, 1, 0, 1],
)


ROTATION = 0.6
# Observations and the exact conditionals they define (free coordinates).
INPAINT_X1 = Inpainting(torch.tensor([True, False]), torch.tensor([1.2, 0.0], dtype=F64))
ROTATED_NOISY = LinearObservation(2 * rotation_row(ROTATION), torch.tensor([2.4], dtype=F64), noise_std=0.3)
GRAY = Colorization(torch.tensor([[[0.6]]], dtype=F64))
CORRELATED_X1 = Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0], dtype=F64))

# Two experts whose product (4 components) the naive sum of noised scores does not sample.
EXPERT_1 = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[1.0, 0.25], [1.0, 0.25]])
EXPERT_2 = GaussianMixture([0.7, 0.3], [[0.0, -2.0], [0.0, 2.0]], [[0.25, 1.0], [0.25, 1.0]])

TARGETS = {
    # (key) -> the data distribution whose marginal at eps the samplers must reproduce
    "class 0": lambda: LABELLED.class_conditional(0),
    "class 1": lambda: LABELLED.class_conditional(1),
    "independent | x1": lambda: independent_mixture().condition(INPAINT_X1),
    "rotated | noisy z1": lambda: independent_mixture(ROTATION).condition(ROTATED_NOISY),
    "product": lambda: EXPERT_1.product(EXPERT_2),
    "rgb | gray": lambda: rgb_mixture().condition(GRAY),
    "labelled": lambda: LABELLED,
}


@functools.cache
def target(key: str, sde_name: str, t: float | None = None) -> GaussianMixture:
    """The exact law at time t (default eps) of the distribution registered under ``key``."""
    sde = SDES[sde_name]
    return TARGETS[key]().marginal(sde, sde.sampling_eps if t is None else t)


@functools.cache
def null(key: str, sde_name: str, n: int, t: float | None = None) -> OracleNulls:
    """Calibrated nulls of check_samples for :func:`target`, computed once per session."""
    return calibrate(target(key, sde_name, t), n, seed=54321, n_null=20)
