"""The Gaussian-mixture oracle: density, samples, exact marginals and scores under every SDE."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.testing import strategies as sst
from sdegen.testing.oracle import check_moments
from sdegen.testing.simulate import simulate_forward

F64 = torch.float64


def _scipy_log_prob(gm: GaussianMixture, x: torch.Tensor) -> np.ndarray:
    comps = [
        stats.multivariate_normal(gm.means[k].numpy(), gm.covariances[k].numpy()).logpdf(x.numpy())
        for k in range(gm.n_components)
    ]
    comps = np.stack([np.atleast_1d(c) for c in comps], axis=1)
    return np.logaddexp.reduce(comps + np.log(gm.weights.numpy())[None], axis=1)


@given(gm=sst.gaussian_mixtures(), seed=st.integers(0, 100))
def test_log_prob_matches_scipy(gm, seed):
    x = 3 * torch.randn(16, gm.dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    np.testing.assert_allclose(gm.log_prob(x).numpy(), _scipy_log_prob(gm, x), rtol=1e-10, atol=1e-10)


@given(gm=sst.gaussian_mixtures(), sde=sst.linear_sdes(), data=st.data())
def test_score_is_the_gradient_of_the_marginal_log_density(gm, sde, data):
    """score(sde)(t, x) == autograd grad_x of marginal(sde, t).log_prob, with a different t per row."""
    ts = data.draw(st.lists(sst.times(sde), min_size=4, max_size=4))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 100)))
    x = 2 * torch.randn(4, gm.dim, generator=g, dtype=F64)
    score = gm.score(sde)(torch.tensor(ts, dtype=F64), x)
    for i, t in enumerate(ts):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(gm.marginal(sde, t).log_prob(xi).sum(), xi)
        torch.testing.assert_close(score[i : i + 1], grad, rtol=1e-8, atol=1e-8)
    logp = gm.marginal_log_prob(sde)(torch.tensor(ts, dtype=F64), x)
    expected = torch.cat([gm.marginal(sde, t).log_prob(x[i : i + 1]) for i, t in enumerate(ts)])
    torch.testing.assert_close(logp, expected, rtol=1e-10, atol=1e-10)


@given(gm=sst.gaussian_mixtures(), sde=sst.linear_sdes())
def test_marginal_at_zero_is_the_data_distribution(gm, sde):
    x = torch.linspace(-2, 2, 5 * gm.dim, dtype=F64).reshape(5, gm.dim)
    torch.testing.assert_close(gm.marginal(sde, 0.0).log_prob(x), gm.log_prob(x))
    torch.testing.assert_close(gm.score(sde)(0.0, x), gm.score_at_zero(x))


def test_score_is_float64_in_float64_out_and_keeps_float32():
    gm, sde = GaussianMixture.ring(), VPSDE()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    assert gm.score(sde)(0.5, x).dtype == torch.float32
    assert gm.score(sde)(0.5, x.double()).dtype == F64
    assert gm.log_prob(x.double()).dtype == F64


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(0.05, 10.0)], ids=lambda s: type(s).__name__)
def test_sample_moments_match_the_mixture(sde):
    gm = GaussianMixture(
        [0.3, 0.7], [[-1.0, 0.5], [2.0, 0.0]], [[[0.5, 0.2], [0.2, 0.3]], [[0.2, 0.0], [0.0, 1.0]]]
    )
    n = 40000
    x = gm.sample(n, generator=torch.Generator().manual_seed(1))
    cov = gm.covariance()
    se = torch.sqrt(torch.diagonal(cov) / n)
    assert ((x.mean(0) - gm.mean()).abs() < 5 * se).all()
    # Var of an empirical covariance entry <= E[(x_i x_j)^2] / n; a loose 5-se band.
    centred = x - gm.mean()
    se_cov = ((centred[:, :, None] * centred[:, None, :]).pow(2).mean(0) / n).sqrt()
    assert ((torch.cov(x.T) - cov).abs() < 5 * se_cov).all()


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(0.05, 10.0)], ids=lambda s: type(s).__name__)
def test_marginal_matches_forward_simulation(sde):
    """Simulate x0 ~ p_0 forward to t; mean, covariance and mean log-density match the closed form."""
    gm = GaussianMixture(
        [0.3, 0.7], [[-1.0, 0.5], [2.0, 0.0]], [[[0.5, 0.2], [0.2, 0.3]], [[0.2, 0.0], [0.0, 1.0]]]
    )
    n, t = 20000, 0.3
    x0 = gm.sample(n, generator=torch.Generator().manual_seed(2))
    xt = simulate_forward(sde, x0, t, steps=100, seed=3)
    pt = gm.marginal(sde, t)
    check_moments(xt, pt, z_tolerance=5.0).raise_if_failed()
    # E[log p_t(x_t)] is the negative entropy: the simulated points are as likely as exact samples.
    exact = pt.sample(n, generator=torch.Generator().manual_seed(4))
    lp_sim, lp_exact = pt.log_prob(xt), pt.log_prob(exact)
    se_lp = math.sqrt(float(lp_sim.var() + lp_exact.var()) / n)
    assert abs(float(lp_sim.mean() - lp_exact.mean())) < 5 * se_lp


def test_event_shape_lets_the_oracle_stand_in_for_images():
    d = 1 * 2 * 2
    gm = GaussianMixture([0.5, 0.5], torch.stack([torch.ones(d), -torch.ones(d)]), 0.2, event_shape=(1, 2, 2))
    x = gm.sample(7, generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 1, 2, 2)
    s = gm.score(VPSDE())(torch.full((7,), 0.4, dtype=F64), x)
    assert s.shape == x.shape
    flat = GaussianMixture([0.5, 0.5], torch.stack([torch.ones(d), -torch.ones(d)]), 0.2)
    torch.testing.assert_close(s.reshape(7, d), flat.score(VPSDE())(0.4, x.reshape(7, d)))


def test_covariance_shortcuts_are_equivalent():
    means = [[0.0, 1.0], [1.0, 0.0]]
    full = GaussianMixture([0.5, 0.5], means, [[[0.3, 0.0], [0.0, 0.3]], [[0.5, 0.0], [0.0, 0.5]]])
    diag = GaussianMixture([0.5, 0.5], means, [[0.3, 0.3], [0.5, 0.5]])
    iso = GaussianMixture([0.5, 0.5], means, [0.3, 0.5])
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(diag.log_prob(x), full.log_prob(x))
    torch.testing.assert_close(iso.log_prob(x), full.log_prob(x))
    shared = GaussianMixture([0.5, 0.5], means, 0.3)
    torch.testing.assert_close(shared.covariances[1], 0.3 * torch.eye(2, dtype=F64))


def test_ring_and_grid_constructors():
    ring = GaussianMixture.ring(8, radius=4.0, std=0.5)
    assert ring.n_components == 8 and ring.dim == 2
    torch.testing.assert_close(ring.means.norm(dim=1), torch.full((8,), 4.0, dtype=F64))
    grid = GaussianMixture.grid(5, spacing=2.0)
    assert grid.n_components == 25
    torch.testing.assert_close(grid.mean(), torch.zeros(2, dtype=F64), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (([0.5, 0.6], [[0.0], [1.0]], 1.0), {}, ValueError, "weights must sum to 1"),
        (([-0.5, 1.5], [[0.0], [1.0]], 1.0), {}, ValueError, "weights must be non-negative"),
        (([0.5, 0.5], [0.0, 1.0], 1.0), {}, ValueError, r"means must have shape \[K, d\]"),
        (([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]]), {}, ValueError, "positive definite"),
        (([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]]), {}, ValueError, "symmetric"),
        (([1.0], [[0.0, 0.0]], [[1.0, 1.0, 1.0]]), {}, ValueError, "covariances must have shape"),
        (([1.0], [[float("nan"), 0.0]], 1.0), {}, ValueError, "means must be finite"),
        (([1.0], [[0.0, 0.0]], -1.0), {}, ValueError, "covariances must be > 0"),
        (([1.0], [[0.0, 0.0]], 1.0), {"event_shape": (3,)}, ValueError, "event_shape must have d = 2"),
        (("abc", [[0.0]], 1.0), {}, TypeError, "weights must be a tensor"),
    ],
)
def test_invalid_mixtures_raise(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        GaussianMixture(*args, **kwargs)


def test_invalid_calls_raise():
    gm = GaussianMixture.ring()
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2\]"):
        gm.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]; got t=2"):
        gm.marginal(VPSDE(), 2.0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        gm.score(VPSDE())(torch.tensor([0.5, 1.5]), torch.zeros(2, 2))
    with pytest.raises(TypeError, match="needs the Gaussian transition kernel of a LinearSDE"):
        gm.score(object())
    with pytest.raises(ValueError, match="n must be >= 1"):
        gm.sample(0)
