"""Langevin correctors in closed form (Song et al. 2021, Alg. 4-5; Song and Ermon 2019, Alg. 1).

A corrector step at time t_i is x <- x + eps s + sqrt(2 eps) z with

* LangevinCorrector:          eps = 2 alpha_i (snr ||z|| / ||s||)^2 (per-sample norms, batch means),
* AnnealedLangevinCorrector:  eps = 2 alpha_i (snr sigma(t_i))^2,

alpha_i = (alpha(t_{i-1}) / alpha(t_i))^2, i.e. 1 - beta_i of the DDPM step into t_i (1 for VE).
The step sizes are checked exactly with a constant score and known noise; at the exact score of
Gaussian data the step leaves p_t = N(mu, S) invariant up to the discretisation: one step maps
N(mu, S) to N(mu, (1 - eps/S)^2 S + 2 eps) = N(mu, S + eps^2 / S).
"""

from __future__ import annotations

import math

import pytest
import torch
from _gaussian_steps import SDES, M, exact_score, z_mean, z_variance

import sdegen
from sdegen.analytic import GaussianMixture
from sdegen.sde.coefficients import CoefficientGrid  # the one place these tests name the grid type
from sdegen.testing import check_samples

T0, T1 = 0.6, 0.4


@pytest.fixture
def grid():
    """The grid object correctors receive, on the two-point grid [T0, T1]."""
    return lambda sde: CoefficientGrid(sde, torch.tensor([T0, T1], dtype=torch.float64))


def langevin_alpha(coefficients) -> float:
    """alpha_i at t_1 of the grid [T0, T1]: A^2 of the exact transition from T1 up to T0."""
    return (coefficients(T0).alpha / coefficients(T1).alpha) ** 2


def _step_with_known_noise(corrector, grid, c: float, zeta: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Run ``corrector`` at t_1 from x = 0 with the constant score (c, 0) and the noise (0, zeta_b).

    The first coordinate then moves by eps * c and the second by sqrt(2 eps) * zeta; returns the
    step size eps read from the first and the second coordinate's displacement.
    """
    x = torch.zeros(zeta.shape[0], 2, dtype=torch.float64)
    calls = []

    def score(t, y):
        calls.append(float(t[0]))
        return torch.stack([torch.full_like(y[:, 0], c), torch.zeros_like(y[:, 1])], dim=1)

    noise = torch.stack([torch.zeros_like(zeta), zeta], dim=1)
    out = corrector.update(grid, 1, x, score, lambda: noise)
    assert calls == [T1] * corrector.n_steps, "one score evaluation per Langevin step, at t_1"
    return float(out[0, 0]) / (c * corrector.n_steps), out[:, 1] / corrector.n_steps


@pytest.mark.parametrize("sde_name, sde, coefficients", SDES, ids=[s[0] for s in SDES])
@pytest.mark.parametrize("n_steps", [1, 3])
def test_langevin_step_size(grid, sde_name, sde, coefficients, n_steps):
    zeta = torch.tensor([0.5, -1.0, 2.0, -0.25], dtype=torch.float64)
    c, snr = 3.0, 0.16
    eps, moved = _step_with_known_noise(sdegen.samplers.LangevinCorrector(snr, n_steps), grid(sde), c, zeta)
    # ||s|| = |c| for every sample; ||z|| = |zeta_b|: both averaged over the batch.
    expected = 2 * langevin_alpha(coefficients) * (snr * float(zeta.abs().mean()) / c) ** 2
    assert eps == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(moved, math.sqrt(2 * expected) * zeta, rtol=1e-12, atol=0)


@pytest.mark.parametrize("sde_name, sde, coefficients", SDES, ids=[s[0] for s in SDES])
@pytest.mark.parametrize("n_steps", [1, 3])
def test_annealed_langevin_step_size(grid, sde_name, sde, coefficients, n_steps):
    zeta = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    snr = 0.2
    corrector = sdegen.samplers.AnnealedLangevinCorrector(snr, n_steps)
    eps, moved = _step_with_known_noise(corrector, grid(sde), 3.0, zeta)
    expected = 2 * langevin_alpha(coefficients) * (snr * math.sqrt(coefficients(T1).sigma2)) ** 2
    assert eps == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(moved, math.sqrt(2 * expected) * zeta, rtol=1e-12, atol=0)


def test_langevin_alpha_is_one_minus_the_ddpm_beta(grid):
    """For VP, alpha_i = 1 - beta_i with beta_i = 1 - exp(-int_{t1}^{t0} beta) the DDPM variance."""
    B = lambda t: 0.1 * t + 0.5 * 19.9 * t**2  # noqa: E731
    beta_step = -math.expm1(-(B(T0) - B(T1)))
    assert grid(sdegen.VPSDE(0.1, 20.0)).langevin_alpha(1) == pytest.approx(1 - beta_step, rel=1e-12)
    assert grid(sdegen.VESDE(0.01, 50.0)).langevin_alpha(1) == 1.0


CORRECTORS = [
    ("Langevin", lambda: sdegen.samplers.LangevinCorrector(snr=0.16, n_steps=2)),
    ("AnnealedLangevin", lambda: sdegen.samplers.AnnealedLangevinCorrector(snr=0.16, n_steps=2)),
]


def _correct(corrector, sde, coefficients, n: int, seed: int) -> tuple[torch.Tensor, float]:
    """Exact samples of p_T1 = N(alpha m, S), corrected at T1 through the public sampler API."""
    c1 = coefficients(T1)
    g = torch.Generator().manual_seed(seed)
    x = c1.alpha * M + math.sqrt(c1.marginal_variance) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    sampler = sdegen.PredictorCorrectorSampler(sdegen.samplers.NonePredictor(), corrector, ts=[T0, T1])
    out = sampler(sde, exact_score(coefficients), x, generator=g)
    assert out.nfe == corrector.n_steps
    return out.x, c1.marginal_variance


@pytest.mark.parametrize("sde_name, sde, coefficients", SDES, ids=[s[0] for s in SDES])
@pytest.mark.parametrize("name, make", CORRECTORS, ids=[c[0] for c in CORRECTORS])
def test_corrector_at_the_exact_score_keeps_the_gaussian(name, make, sde_name, sde, coefficients):
    corrector = make()
    x, S = _correct(corrector, sde, coefficients, 100_000, seed=0)
    mu = coefficients(T1).alpha * M
    # The step size of each of the n_steps: Langevin's batch norms are E|z| = sqrt(pi/2) and
    # E|s| = sqrt(pi/2) / sqrt(S) in 2-D, so eps = 2 alpha snr^2 S; Annealed's is 2 alpha snr^2 sigma^2.
    scale = S if name == "Langevin" else coefficients(T1).sigma2
    eps = 2 * langevin_alpha(coefficients) * corrector.snr**2 * scale
    variance = S
    for _ in range(corrector.n_steps):
        variance = (1 - eps / S) ** 2 * variance + 2 * eps
    assert abs(variance / S - 1) < 0.01, "invariant up to O(eps^2)"
    assert z_mean(x, mu, variance) < 5.0
    assert z_variance(x, variance) < 5.0


def test_corrected_samples_pass_the_oracle_check():
    """In distribution, not only in moments: the toolkit's oracle check on the corrected samples."""
    _, sde, coefficients = SDES[0]
    x, S = _correct(sdegen.samplers.LangevinCorrector(snr=0.16, n_steps=2), sde, coefficients, 1000, seed=1)
    c1 = coefficients(T1)
    p_t1 = GaussianMixture([1.0], (c1.alpha * M)[None], S)
    check_samples(x, p_t1).raise_if_failed()
