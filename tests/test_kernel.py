"""The Gaussian kernel's conversions between score, noise, data and v: exact on the kernel's own
draws, mutually inverse, Tweedie's formula on Gaussian data with a closed-form posterior mean, and
v as Salimans and Ho define it -- on SDEs with alpha = 1 (VE) and alpha^2 + sigma^2 != 1 (sub-VP)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sdegen import EDMVESDE, VESDE, VPSDE, CosineVPSDE, GaussianKernel, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.parameterization import TransitionKernel
from sdegen.testing import strategies as sst

F64 = torch.float64
SDES = [VPSDE(), SubVPSDE(), VESDE(0.01, 50.0), CosineVPSDE(), EDMVESDE(80.0)]


def _draw(sde, seed, shape=(64, 3)):
    g = torch.Generator().manual_seed(seed)
    t = sde.T * (0.02 + 0.96 * torch.rand(shape[0], generator=g, dtype=F64))
    x0 = torch.randn(shape, generator=g, dtype=F64)
    eps = torch.randn(shape, generator=g, dtype=F64)
    kernel = GaussianKernel.of(sde, t)
    return kernel, x0, eps, kernel.noised(x0, eps), t


def _close(a, b, tol=1e-9):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_the_kernel_is_an_sde_s_alpha_and_sigma_and_its_old_name_still_imports():
    sde = SubVPSDE()
    t = torch.tensor([0.1, 0.5, 1.0], dtype=F64)
    kernel = GaussianKernel.of(sde, t)
    _close(kernel.alpha, sde.alpha(t))
    _close(kernel.sigma, sde.sigma(t))
    _close(kernel.log_snr, sde.log_snr(t))
    assert TransitionKernel is GaussianKernel
    # the sub-VP kernel is not variance preserving: the v inversion must not assume it
    assert float((kernel.alpha**2 + kernel.sigma**2 - 1).abs().max()) > 0.05


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_each_view_of_a_draw_is_exact(sde):
    """On x_t = alpha x0 + sigma eps, each conversion returns the x0, eps, score or v of that draw."""
    kernel, x0, eps, x_t, _ = _draw(sde, 0)
    a, s = kernel.alpha[:, None], kernel.sigma[:, None]
    _close(x_t, a * x0 + s * eps)
    score = -eps / s  # grad_x log N(x; alpha x0, sigma^2 I) at x_t
    _close(kernel.score_from_noise(eps), score)
    _close(kernel.noise_from_score(score), eps)
    _close(kernel.data_from_noise(x_t, eps), x0, tol=1e-8)
    _close(kernel.noise_from_data(x_t, x0), eps, tol=1e-8)
    _close(kernel.data_from_score(x_t, score), x0, tol=1e-8)
    _close(kernel.score_from_data(x_t, x0), score, tol=1e-8)
    v = kernel.velocity(x0, eps)
    _close(v, a * eps - s * x0)  # the definition (Salimans and Ho 2022)
    _close(kernel.data_from_v(x_t, v), x0, tol=1e-8)
    _close(kernel.noise_from_v(x_t, v), eps, tol=1e-8)
    _close(kernel.score_from_v(x_t, v), score, tol=1e-8)
    _close(kernel.v_from_data(x_t, x0), v, tol=1e-8)
    _close(kernel.v_from_noise(x_t, eps), v, tol=1e-8)
    _close(kernel.v_from_score(x_t, score), v, tol=1e-8)


def test_the_conditional_score_is_the_gradient_of_the_kernel_s_log_density():
    kernel, x0, eps, x_t, _ = _draw(SubVPSDE(), 1)
    x = x_t.clone().requires_grad_(True)
    a, s = kernel.alpha[:, None], kernel.sigma[:, None]
    log_density = (-0.5 * ((x - a * x0) / s) ** 2 - torch.log(s)).sum()
    (grad,) = torch.autograd.grad(log_density, x)
    _close(kernel.score_from_noise(eps), grad)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_tweedie_gives_the_posterior_mean_of_gaussian_data(sde):
    """Data x0 ~ N(mu, c^2 I): p_t = N(alpha mu, (alpha^2 c^2 + sigma^2) I) and the posterior mean is
    E[x0 | x_t] = mu + alpha c^2 (x_t - alpha mu) / (alpha^2 c^2 + sigma^2) (Gaussian conditioning;
    Bishop 2006, eq. 2.116). The score comes from the analytic oracle, not from the kernel."""
    mu, c = torch.tensor([0.7, -1.3, 2.0], dtype=F64), 0.6
    data = GaussianMixture([1.0], mu[None], c**2)
    kernel, _, _, x_t, t = _draw(sde, 2)
    score = data.score(sde)(t, x_t)
    a, s = kernel.alpha[:, None], kernel.sigma[:, None]
    var = a * a * c**2 + s * s
    x0_post = mu + a * c**2 * (x_t - a * mu) / var
    eps_post = s * (x_t - a * mu) / var  # E[eps | x_t], by the same conditioning
    _close(kernel.data_from_score(x_t, score), x0_post, tol=1e-7)
    _close(kernel.noise_from_score(score), eps_post, tol=1e-7)
    # v is linear in (x0, eps), so its posterior mean is alpha E[eps | x_t] - sigma E[x0 | x_t]
    _close(kernel.v_from_score(x_t, score), a * eps_post - s * x0_post, tol=1e-7)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_tweedie_by_monte_carlo_on_a_bimodal_prior(sde):
    """E[x0 | x_t] estimated by self-normalised importance weights over prior draws matches the data
    prediction of the exact mixture score: Tweedie's formula for a non-Gaussian prior."""
    data = GaussianMixture.ring(4, radius=2.0, std=0.3)
    g = torch.Generator().manual_seed(3)
    x0s = data.sample(100_000, generator=g)
    t = torch.full((4,), 0.35 * sde.T, dtype=F64)
    kernel = GaussianKernel.of(sde, t)
    x_t = torch.tensor([[1.5, 0.2], [-0.3, -1.0], [0.0, 0.0], [2.5, 2.5]], dtype=F64) * float(kernel.alpha[0])
    logw = -0.5 * ((x_t[:, None] - kernel.alpha[0] * x0s[None]) ** 2).sum(-1) / kernel.sigma[0] ** 2
    w = torch.softmax(logw, dim=1)
    x0_mc = w @ x0s
    n_eff = 1.0 / (w**2).sum(1)
    score = data.score(sde)(t, x_t)
    x0_hat = kernel.data_from_score(x_t, score)
    # the estimate's standard error is ~ posterior std / sqrt(n_eff) <= 2.1 / sqrt(n_eff)
    tol = 5 * 2.1 / n_eff.sqrt().min()
    assert float((x0_hat - x0_mc).abs().max()) < float(tol)


def test_v_is_the_velocity_of_the_angle_for_a_variance_preserving_kernel():
    """alpha = cos phi, sigma = sin phi: v = d x_phi / d phi (Salimans and Ho 2022, sec. 4), and
    x0 = alpha x - sigma v, eps = sigma x + alpha v."""
    sde = VPSDE()
    kernel, x0, eps, x_t, _ = _draw(sde, 4)
    phi = torch.atan2(kernel.sigma, kernel.alpha).requires_grad_(True)
    x_phi = torch.cos(phi)[:, None] * x0 + torch.sin(phi)[:, None] * eps
    v = kernel.velocity(x0, eps)
    dx = torch.autograd.functional.jvp(
        lambda p: torch.cos(p)[:, None] * x0 + torch.sin(p)[:, None] * eps, phi.detach(), torch.ones_like(phi)
    )[1]
    _close(x_phi.detach(), x_t)
    _close(dx, v)
    a, s = kernel.alpha[:, None], kernel.sigma[:, None]
    _close(kernel.data_from_v(x_t, v), a * x_t - s * v, tol=1e-8)
    _close(kernel.noise_from_v(x_t, v), s * x_t + a * v, tol=1e-8)


@given(sde=sst.linear_sdes(), seed=st.integers(0, 2**16))
def test_round_trips_on_any_linear_sde(sde, seed):
    """Each conversion followed by its inverse is the identity on an arbitrary prediction."""
    kernel, _, _, x_t, _ = _draw(sde, seed, shape=(8, 2))
    p = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    # dividing by alpha amplifies rounding by 1 / alpha (2e-9 for VP at T = 4), by sigma likewise
    scale = 1.0 / float(torch.minimum(kernel.alpha, kernel.sigma).min())
    tol = 1e-12 * scale**2 + 1e-9
    _close(kernel.score_from_data(x_t, kernel.data_from_score(x_t, p)), p, tol=tol)
    _close(kernel.data_from_score(x_t, kernel.score_from_data(x_t, p)), p, tol=tol)
    _close(kernel.noise_from_data(x_t, kernel.data_from_noise(x_t, p)), p, tol=tol)
    _close(kernel.score_from_noise(kernel.noise_from_score(p)), p, tol=tol)
    _close(kernel.v_from_data(x_t, kernel.data_from_v(x_t, p)), p, tol=tol)
    _close(kernel.v_from_noise(x_t, kernel.noise_from_v(x_t, p)), p, tol=tol)
    _close(kernel.v_from_score(x_t, kernel.score_from_v(x_t, p)), p, tol=tol)
    # and the paths through the score agree with the direct maps
    _close(kernel.data_from_score(x_t, kernel.score_from_noise(p)), kernel.data_from_noise(x_t, p), tol=tol)


def test_float_coefficients_give_the_tensor_results():
    """A sampler's grid passes Python floats (one time for the batch): the same numbers as [B] tensors."""
    sde = VESDE(0.01, 50.0)
    t = torch.full((5,), 0.3, dtype=F64)
    kt = GaussianKernel.of(sde, t)
    kf = GaussianKernel(float(kt.alpha[0]), float(kt.sigma[0]))
    g = torch.Generator().manual_seed(5)
    x, p = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    for name in ("data_from_score", "score_from_data", "data_from_noise", "noise_from_data", "data_from_v"):
        _close(getattr(kf, name)(x, p), getattr(kt, name)(x, p), tol=1e-12)
    _close(kf.noised(x, p), kt.noised(x, p), tol=1e-12)
    assert math.isclose(kf.log_snr, float(kt.log_snr[0]), rel_tol=1e-12)
    assert kt.to(torch.float32).alpha.dtype == torch.float32
