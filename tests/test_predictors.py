"""One predictor step in closed form on Gaussian data (Song et al. 2021, Alg. 2-3, eq. 46-47).

Each test takes one step from t0 to t1 through the public sampler API,
``PredictorCorrectorSampler(predictor, NoneCorrector(), ts=[t0, t1])``, starting every sample at
the same known state x, with the exact score of Gaussian data. A step is Gaussian with a mean
affine in x and a fixed variance:

* Euler-Maruyama:     mean = x - h [a(t0) x - g(t0)^2 s(t0, x)],   var = g(t0)^2 h,   h = t0 - t1;
* reverse diffusion:  mean = (2 - A) x + v s(t0, x),               var = v;
* ancestral sampling: mean = (x + v s(t0, x)) / A,                 var = v sigma(t1)^2 / sigma(t0)^2
                                                                   (or v without the posterior variance),

with the exact forward transition x_t0 = A x_t1 + sqrt(v) z: A = alpha(t0) / alpha(t1),
v = sigma(t0)^2 - A^2 sigma(t1)^2. The sample mean and variance of 40,000 steps are compared with
these formulas as z-scores, and the mean's slope in x exactly, with common random numbers.
"""

from __future__ import annotations

import pytest
import torch
from _gaussian_steps import SDES, M, exact_score, z_mean, z_variance

import sdegen

T0, T1 = 0.6, 0.4
N = 40_000
X = torch.tensor([0.8, -1.5], dtype=torch.float64)  # the known state, both coordinates
Z_TOL = 5.0


def one_step(predictor, sde, coefficients, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    sampler = sdegen.PredictorCorrectorSampler(predictor, sdegen.samplers.NoneCorrector(), ts=[T0, T1])
    out = sampler(sde, exact_score(coefficients), x, generator=torch.Generator().manual_seed(seed))
    assert out.nfe == 1
    return out.x


def euler_maruyama(c0, c1, x, score):
    h = T0 - T1
    return x - h * (c0.a * x - c0.g2 * score), c0.g2 * h


def reverse_diffusion(c0, c1, x, score):
    A = c0.alpha / c1.alpha
    v = c0.sigma2 - A**2 * c1.sigma2
    return (2 - A) * x + v * score, v


def ancestral(posterior_variance):
    def step(c0, c1, x, score):
        A = c0.alpha / c1.alpha
        v = c0.sigma2 - A**2 * c1.sigma2
        return (x + v * score) / A, v * c1.sigma2 / c0.sigma2 if posterior_variance else v

    return step


PREDICTORS = [
    ("EulerMaruyama", sdegen.samplers.EulerMaruyama(), euler_maruyama),
    ("ReverseDiffusion", sdegen.samplers.ReverseDiffusion(), reverse_diffusion),
    ("AncestralSampling", sdegen.samplers.AncestralSampling(), ancestral(True)),
    ("AncestralSampling-v", sdegen.samplers.AncestralSampling(posterior_variance=False), ancestral(False)),
]


@pytest.mark.parametrize("sde_name, sde, coefficients", SDES, ids=[s[0] for s in SDES])
@pytest.mark.parametrize("name, predictor, formula", PREDICTORS, ids=[p[0] for p in PREDICTORS])
def test_one_step_mean_and_variance(name, predictor, formula, sde_name, sde, coefficients):
    c0, c1 = coefficients(T0), coefficients(T1)
    score = -(X - c0.alpha * M) / c0.marginal_variance
    mean, var = formula(c0, c1, X, score)

    x1 = one_step(predictor, sde, coefficients, X.expand(N, 2).clone())
    assert z_mean(x1, mean, var) < Z_TOL, f"mean {x1.mean(0).tolist()} vs {mean.tolist()}"
    assert z_variance(x1, var) < Z_TOL, f"variance {x1.var(0).tolist()} vs {var:.6g}"

    # Common random numbers: the same noise from another state moves the mean by slope * dx,
    # exactly, with slope = d mean / d x of the formula.
    slope = (formula(c0, c1, X + 1.0, score - 1.0 / c0.marginal_variance)[0] - mean)[0]
    x1b = one_step(predictor, sde, coefficients, (X + 1.0).expand(N, 2).clone())
    torch.testing.assert_close(x1b - x1, torch.full_like(x1, float(slope)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sde_name, sde, coefficients", SDES, ids=[s[0] for s in SDES])
def test_ancestral_mean_is_the_exact_posterior_mean(sde_name, sde, coefficients):
    """Tweedie: E[x_t1 | x_t0 = x] = (x + v grad log p_t0(x)) / A for any data; for Gaussian data it
    is alpha1 m + S1 A (x - alpha0 m) / S0, and DDPM's last step, noise-free, returns it exactly."""
    c0, c1 = coefficients(T0), coefficients(T1)
    A = c0.alpha / c1.alpha
    posterior_mean = c1.alpha * M + c1.marginal_variance * A * (X - c0.alpha * M) / c0.marginal_variance
    score = -(X - c0.alpha * M) / c0.marginal_variance
    mean, _ = ancestral(True)(c0, c1, X, score)
    torch.testing.assert_close(mean, posterior_mean, rtol=1e-12, atol=1e-12)

    out = sdegen.DDPMSampler(ts=[T0, T1])(sde, exact_score(coefficients), X.expand(3, 2).clone())
    torch.testing.assert_close(out.x, posterior_mean.expand(3, 2), rtol=1e-10, atol=1e-10)
