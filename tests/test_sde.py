"""The three SDEs of Song et al. (2021): moment equations, forward simulation, priors, errors."""

import math

import pytest
import torch
from _sdes import OrnsteinUhlenbeck
from hypothesis import given
from hypothesis import strategies as st

import sdegen
from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.testing import strategies as sst
from sdegen.testing.marginals import check_forward_simulation

F64 = torch.float64


def _d_dt(fn, t: torch.Tensor) -> torch.Tensor:
    t = t.clone().requires_grad_(True)
    out = fn(t).sum()
    if not out.requires_grad:  # constant in t (VE's mean)
        return torch.zeros_like(t)
    (d,) = torch.autograd.grad(out, t)
    return d


# -- the moment equations of a linear SDE ------------------------------------------------------


@given(sde=sst.linear_sdes(), data=st.data())
def test_marginals_solve_the_moment_odes(sde, data):
    """m = alpha x0 and v = sigma^2 satisfy dm/dt = a m, dv/dt = 2 a v + g^2, v(0) = 0."""
    t = torch.tensor(data.draw(st.lists(st.floats(1e-3 * sde.T, sde.T), min_size=1, max_size=5)), dtype=F64)
    x0 = torch.linspace(-2, 3, 4, dtype=F64).expand(t.shape[0], 4)
    a = sde.drift_coefficient(t)
    g2 = sde.diffusion(t) ** 2
    mean = lambda s: sde.marginal_prob(s, x0)[0].sum(dim=1)  # noqa: E731
    var = lambda s: sde.marginal_prob(s, x0)[1] ** 2  # noqa: E731
    torch.testing.assert_close(_d_dt(mean, t), a * mean(t), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_d_dt(var, t), 2 * a * var(t) + g2, rtol=1e-8, atol=1e-12)
    # The drift is the linear one the moment equations assume.
    torch.testing.assert_close(sde.drift(t, x0), a[:, None] * x0)
    zero = torch.zeros(3, dtype=F64)
    mean0, std0 = sde.marginal_prob(zero, x0[:1].expand(3, 4))
    torch.testing.assert_close(std0, zero, rtol=0, atol=0)
    torch.testing.assert_close(mean0, x0[:1].expand(3, 4))


def test_user_subclass_gets_drift_and_diffusion_by_autograd():
    sde = OrnsteinUhlenbeck(theta=1.5)
    t = torch.tensor([0.0, 0.1, 1.0, 2.0], dtype=F64)
    torch.testing.assert_close(sde.drift_coefficient(t), torch.full_like(t, -1.5))
    torch.testing.assert_close(sde.diffusion(t), torch.full_like(t, math.sqrt(3.0)))
    assert sde.prior_std == pytest.approx(math.sqrt(1 - math.exp(-6.0)))


# -- forward simulation through torchsde -------------------------------------------------------

SIM_SDES = [VPSDE(0.1, 20.0), SubVPSDE(0.1, 20.0), VESDE(0.01, 50.0), OrnsteinUhlenbeck()]


@pytest.mark.parametrize("sde", SIM_SDES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("frac", [0.1, 1.0])
def test_forward_simulation_matches_marginal_prob(sde, frac):
    """20000 SRK paths from fixed x0: sample mean and std within 5 standard errors of the closed form
    (sdegen.testing's check; standard errors std/sqrt(n) for the mean, std/sqrt(2n) for the std).
    SRK's weak error at 100 steps is below one standard error (400 steps change the std by < 1 se).
    """
    x0 = torch.tensor([[1.0, -2.0]], dtype=F64)
    result = check_forward_simulation(sde, times=[frac * sde.T], x0=x0, n_paths=20000, steps=100, seed=1)
    assert result, result


# -- numerics near t = 0 ---------------------------------------------------------------------


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("t", [1e-7, 1e-5, 1e-3])
def test_std_is_accurate_in_float32_near_zero(sde, t):
    s32 = sde.sigma(torch.tensor([t], dtype=torch.float32)).double()
    s64 = sde.sigma(torch.tensor([t], dtype=F64))
    assert float((s32 / s64 - 1).abs()) < 1e-6


def test_ve_std_is_the_exact_transition_std_not_the_noise_scale():
    """sigma(t)^2 = s(t)^2 - sigma_min^2; score_sde's s(t) is 77x too large at t=1e-5."""
    sde = VESDE(0.01, 50.0)
    t = torch.tensor([1e-5, 1e-3, 0.5, 1.0], dtype=F64)
    s = 0.01 * (50.0 / 0.01) ** t
    torch.testing.assert_close(sde.sigma(t), torch.sqrt(s**2 - 0.01**2))
    ratio = s / sde.sigma(t)
    assert 76 < float(ratio[0]) < 78 and 7.6 < float(ratio[1]) < 7.8


def test_closed_forms_of_vp_and_subvp():
    t = torch.tensor([0.3, 1.0], dtype=F64)
    B = 0.1 * t + 0.5 * 19.9 * t**2
    vp, sub = VPSDE(), SubVPSDE()
    torch.testing.assert_close(vp.sigma(t) ** 2, 1 - torch.exp(-B))
    torch.testing.assert_close(sub.sigma(t), 1 - torch.exp(-B))
    torch.testing.assert_close(vp.alpha(t), torch.exp(-B / 2))
    torch.testing.assert_close(sub.diffusion(t) ** 2, (0.1 + 19.9 * t) * (1 - torch.exp(-2 * B)))


# -- the prior -------------------------------------------------------------------------------


@given(
    sde=sst.linear_sdes(),
    shape=sst.data_shapes(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_prior_logp_is_the_density_of_prior_sampling(sde, shape, dtype):
    g = torch.Generator().manual_seed(0)
    z = sde.prior_sampling(shape, generator=g, dtype=dtype)
    assert z.shape == shape and z.dtype == dtype
    logp = sde.prior_logp(z)
    assert logp.shape == (shape[0],) and logp.dtype == dtype
    ref = torch.distributions.Normal(0.0, sde.prior_std).log_prob(z.double())
    torch.testing.assert_close(logp.double(), ref.reshape(shape[0], -1).sum(1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda s: type(s).__name__)
def test_prior_sampling_has_the_prior_std(sde):
    g = torch.Generator().manual_seed(3)
    z = sde.prior_sampling((50000, 2), generator=g, dtype=F64)
    n = z.numel()
    assert abs(float(z.mean())) < 5 * sde.prior_std / math.sqrt(n)
    assert abs(float(z.std()) / sde.prior_std - 1) < 5 / math.sqrt(2 * n)


@given(sde=sst.linear_sdes(), shape=sst.data_shapes(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_shapes_and_dtypes(sde, shape, dtype):
    x = torch.ones(shape, dtype=dtype)
    t = torch.full((shape[0],), 0.5 * sde.T, dtype=dtype)
    assert sde.drift(t, x).shape == shape and sde.drift(t, x).dtype == dtype
    assert sde.drift(0.5 * sde.T, x).shape == shape
    assert sde.diffusion(t).shape == (shape[0],) and sde.diffusion(t).dtype == dtype
    mean, std = sde.marginal_prob(t, x)
    assert mean.shape == shape and std.shape == (shape[0],)
    assert mean.dtype == dtype and std.dtype == dtype
    assert sde.diffusion(0.5 * sde.T).ndim == 0


# -- discretisations for ancestral sampling ------------------------------------------------------


def test_vp_discretize_is_the_ddpm_schedule():
    sched = VPSDE(0.1, 20.0).discretize(1000, dtype=F64)
    assert sched.betas.dtype == F64 and sched.t.shape == (1000,)
    torch.testing.assert_close(sched.betas, torch.linspace(0.1 / 1000, 20.0 / 1000, 1000, dtype=F64))
    torch.testing.assert_close(sched.alphas_cumprod, torch.cumprod(1 - sched.betas, 0))
    # The discrete chain approximates the continuous marginal: prod(1 - beta_j) ~ exp(-B(t_i)).
    # log(1 - beta) = -beta - beta^2/2 - ..., so the gap is about sum_j beta_j^2 / 2 < 2e-3 here.
    alpha2 = VPSDE().alpha(sched.t) ** 2
    assert float((sched.alphas_cumprod - alpha2).abs().max()) < 2e-3


def test_ve_discretize_is_the_geometric_smld_schedule():
    sched = VESDE(0.01, 50.0).discretize(10, dtype=torch.float32)
    assert sched.sigmas.dtype == torch.float32
    torch.testing.assert_close(sched.sigmas[0], torch.tensor(0.01))
    torch.testing.assert_close(sched.sigmas[-1], torch.tensor(50.0))
    ratios = sched.sigmas[1:] / sched.sigmas[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 5000 ** (1 / 9)))


def test_subvp_has_no_discretization():
    with pytest.raises(NotImplementedError, match="SubVPSDE"):
        SubVPSDE().discretize(10)


# -- invalid input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: VPSDE(beta_min=-0.1), "beta_min must be >= 0; got beta_min=-0.1"),
        (lambda: VPSDE(beta_min=1.0, beta_max=1.0), "beta_max must be > beta_min"),
        (lambda: SubVPSDE(beta_min=5.0, beta_max=1.0), "beta_max must be > beta_min"),
        (lambda: VPSDE(beta_max=float("nan")), "beta_max must be finite"),
        (lambda: VPSDE(T=0.0), "T must be > 0; got T=0"),
        (lambda: VESDE(T=-1.0), "T must be > 0"),
        (lambda: VESDE(sigma_min=0.0), "sigma_min must be > 0"),
        (lambda: VESDE(sigma_min=5.0, sigma_max=1.0), "sigma_max must be > sigma_min"),
        (lambda: VESDE(sigma_max=float("inf")), "sigma_max must be finite"),
        (lambda: VPSDE().discretize(1), "N must be >= 2"),
    ],
)
def test_invalid_parameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_invalid_parameter_types_raise_type_error():
    with pytest.raises(TypeError, match="beta_min must be a real number"):
        VPSDE(beta_min="0.1")
    with pytest.raises(TypeError, match="N must be an int"):
        VESDE().discretize(10.0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        VPSDE().drift(0.5, [1.0, 2.0])


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda s: type(s).__name__)
def test_invalid_times_and_shapes_raise(sde):
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]; got t=1.5"):
        sde.drift(1.5, x)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]; got t=-0.1"):
        sde.marginal_prob(torch.tensor([0.1, -0.1, 0.2]), x)
    with pytest.raises(ValueError, match="t contains NaN"):
        sde.diffusion(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \[3\]"):
        sde.drift(torch.full((4,), 0.5), x)
    with pytest.raises(ValueError, match=r"x0 must have shape \[B, ...\]"):
        sde.marginal_prob(0.5, torch.tensor(1.0))
    with pytest.raises(ValueError, match="shape must be a non-empty sequence"):
        sde.prior_sampling(())
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        sde.drift(0.5, torch.zeros(3, 2, dtype=torch.long))


def test_public_api_exports():
    for name in ["SDE", "LinearSDE", "VPSDE", "SubVPSDE", "VESDE", "analytic"]:
        assert hasattr(sdegen, name)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda s: type(s).__name__)
def test_reverse_and_probability_flow_drifts(sde):
    """Song et al. (2021) eq. 6 and 13 for a [B, C, H, W] state."""
    g = torch.Generator().manual_seed(0)
    x, score = torch.randn(3, 1, 2, 2, generator=g), torch.randn(3, 1, 2, 2, generator=g)
    t = torch.tensor([0.2, 0.5, 0.9])
    g2 = (sde.diffusion(t) ** 2)[:, None, None, None]
    torch.testing.assert_close(sde.reverse_drift(t, x, score), sde.drift(t, x) - g2 * score)
    torch.testing.assert_close(sde.probability_flow_drift(t, x, score), sde.drift(t, x) - 0.5 * g2 * score)


# -- the variance-preserving family ------------------------------------------------------------


@pytest.mark.parametrize(
    "sde",
    [VPSDE(0.1, 20.0), sdegen.CosineVPSDE(), sdegen.DiscreteVPSDE.from_beta_schedule("linear", dtype=F64)],
    ids=lambda s: type(s).__name__,
)
def test_every_vp_schedule_is_variance_preserving_with_a_minus_half_beta_and_g2_beta(sde):
    """alpha^2 + sigma^2 = 1, and the closed forms the VP family states once (a = -beta/2, g^2 = beta)
    are the moment equations' a = d log alpha/dt and g^2 = d sigma^2/dt - 2 a sigma^2, taken by
    autograd from each schedule's own alpha and sigma^2."""
    from sdegen.sde.vp import VariancePreserving

    assert isinstance(sde, VariancePreserving) and sde.prior_std == 1.0
    t = torch.linspace(0.05, 0.95, 7, dtype=F64) * sde.T
    torch.testing.assert_close(sde.alpha(t) ** 2 + sde.sigma(t) ** 2, torch.ones_like(t), rtol=0, atol=1e-12)
    torch.testing.assert_close(sde.drift_coefficient(t), -0.5 * sde.beta(t), rtol=0, atol=0)
    torch.testing.assert_close(sde.diffusion_squared(t), sde.beta(t), rtol=0, atol=0)
    torch.testing.assert_close(
        sde.drift_coefficient(t), sdegen.LinearSDE.drift_coefficient(sde, t), rtol=1e-7, atol=1e-9
    )
    torch.testing.assert_close(
        sde.diffusion_squared(t), sdegen.LinearSDE.diffusion_squared(sde, t), rtol=1e-6, atol=1e-9
    )
