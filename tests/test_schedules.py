"""The cosine VP schedule (Nichol and Dhariwal 2021) and EDM's sigma(t) = t VE (Karras et al. 2022):
their published formulas, exact marginals, well-defined ends, errors, and the samplers on them."""

import functools
import math

import pytest
import torch
from _oracle_data import MIXTURE
from test_samplers_oracle import SAMPLERS

from sdegen import EDMVESDE, VESDE, CosineVPSDE, ProbabilityFlowSampler
from sdegen.testing import calibrate, check_marginals, check_moment_odes, check_sampler

F64 = torch.float64


# -- cosine VP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("s, T", [(0.008, 1.0), (0.02, 3.0)])
def test_cosine_schedule_is_improved_ddpms_abar_up_to_the_clip(s, T):
    """alpha(t)^2 = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi/2) (Nichol and Dhariwal 2021,
    eq. 17) on [0, t_c]; the clipped rate beta_max makes log alpha linear after t_c."""
    sde = CosineVPSDE(s=s, T=T)
    f = lambda t: torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    t = torch.linspace(0, sde.t_clip, 101, dtype=F64)
    torch.testing.assert_close(sde.alpha(t) ** 2, f(t) / f(torch.zeros(1, dtype=F64)), rtol=1e-12, atol=0)
    torch.testing.assert_close(sde.alpha(t) ** 2 + sde.sigma(t) ** 2, torch.ones_like(t), rtol=0, atol=1e-14)
    # beta = -d log abar / dt reaches beta_max = 999 / T at t_c (improved DDPM's clip, 0.999 at N = 1000)
    # and stays there; log alpha is then linear with slope -beta_max / 2.
    assert sde.beta_max == pytest.approx(999 / T)
    tail = torch.linspace(sde.t_clip, T, 11, dtype=F64)
    torch.testing.assert_close(sde.beta(tail), torch.full_like(tail, 999 / T), rtol=1e-12, atol=0)
    expected = sde.log_alpha(tail[:1]) - 0.5 * sde.beta_max * (tail - sde.t_clip)
    torch.testing.assert_close(sde.log_alpha(tail), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cosine_schedule_is_well_defined_at_T(dtype):
    """Unclipped, alpha(T) = cos(pi/2) is -4e-8 in float32 and 6e-17 in float64; clipped it is 1.15e-3,
    lambda(T) = -6.77, and every coefficient is finite and of the right sign on [0, T]."""
    sde = CosineVPSDE()
    T = torch.tensor([sde.T], dtype=dtype)
    assert float(sde.alpha(T)) == pytest.approx(1.15e-3, rel=2e-3)
    assert float(sde.log_snr(T)) == pytest.approx(-6.770, abs=2e-3)
    t = torch.linspace(0, 1, 2001, dtype=dtype)
    for name in ("alpha", "sigma", "beta", "diffusion_squared", "drift_coefficient"):
        assert bool(torch.isfinite(getattr(sde, name)(t)).all()), name
    assert bool((sde.alpha(t) > 0).all()) and bool((sde.beta(t) > 0).all())
    assert sde.prior_std == 1.0


def test_cosine_schedule_is_accurate_in_float32_near_zero():
    """sigma(t) and lambda(t) are computed without cancellation (1 - alpha^2 = sin w sin(w + 2 u0) /
    cos^2 u0): float32 agrees with float64 to float32 rounding at t = 1e-6."""
    sde = CosineVPSDE()
    t = torch.tensor([1e-6, 1e-4, 1e-3, 0.5, 0.999])
    torch.testing.assert_close(sde.sigma(t).double(), sde.sigma(t.double()), rtol=1e-5, atol=0)
    torch.testing.assert_close(sde.log_snr(t).double(), sde.log_snr(t.double()), rtol=1e-5, atol=0)


def test_cosine_marginals_are_exact():
    """check_marginals: the moment ODEs at the default times, and 10000 simulated paths at 0.1, 0.5, 0.9 T,
    where 100 SRK steps resolve the drift; the moment ODEs also across the clip and at T, where the
    rate a(t) = -500 is too stiff for an explicit simulation of 100 steps."""
    sde = CosineVPSDE()
    result = check_marginals(sde, times=[0.1, 0.5, 0.9], n_paths=10000, seed=3)
    assert result, result
    stiff = [0.99, sde.t_clip - 1e-6, sde.t_clip + 1e-6, 0.999, 1.0]
    result = check_moment_odes(sde, times=stiff, rtol=1e-9)
    assert result, result


@pytest.mark.slow
def test_cosine_marginals_by_simulation_up_to_T():
    result = check_marginals(CosineVPSDE(), n_paths=4000, steps=2000, seed=4)
    assert result, result


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"s": 0.0}, ValueError, "s must be > 0"),
        ({"s": "0.008"}, TypeError, "s must be a real number"),
        (
            {"beta_max": 0.01},
            ValueError,
            r"beta_max must exceed the schedule's rate at t = 0, beta\(0\) = 0.03",
        ),
        ({"beta_max": math.nan}, ValueError, "beta_max must be finite"),
        ({"T": -1.0}, ValueError, "T must be > 0"),
    ],
)
def test_cosine_schedule_rejects_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        CosineVPSDE(**kwargs)


# -- EDM VE ------------------------------------------------------------------------------------


def test_edm_ve_is_sigma_equals_t():
    """alpha = 1, sigma(t) = t, a = 0, g^2 = 2 t, lambda = -log t on [0, T = sigma_max]; prior
    N(0, sigma_max^2 I); samplers stop at EDM's sigma_min = 0.002."""
    sde = EDMVESDE()
    assert sde.T == sde.sigma_max == 80.0 and sde.sampling_eps == 0.002
    t = torch.tensor([0.0, 0.002, 1.0, 80.0], dtype=F64)
    torch.testing.assert_close(sde.alpha(t), torch.ones_like(t), rtol=0, atol=0)
    torch.testing.assert_close(sde.sigma(t), t, rtol=0, atol=0)
    torch.testing.assert_close(sde.drift_coefficient(t), torch.zeros_like(t), rtol=0, atol=0)
    torch.testing.assert_close(sde.diffusion_squared(t), 2 * t, rtol=0, atol=0)
    torch.testing.assert_close(sde.log_snr(t[1:]), -torch.log(t[1:]), rtol=0, atol=0)
    z = sde.prior_sampling((20000, 2), generator=torch.Generator().manual_seed(0), dtype=F64)
    assert float(z.std()) == pytest.approx(80.0, rel=0.02)
    expected = -0.5 * (z**2).sum(1) / 80.0**2 - math.log(2 * math.pi * 80.0**2)
    torch.testing.assert_close(sde.prior_logp(z), expected)


def test_edm_ve_marginals_are_exact():
    result = check_marginals(EDMVESDE(), n_paths=10000, seed=5)
    assert result, result


@pytest.mark.parametrize(
    "sigma_max, error, match",
    [
        (-1.0, ValueError, "sigma_max must be > 0"),
        (0.001, ValueError, "sigma_max must exceed the default end noise level"),
        ("80", TypeError, "sigma_max must be a real number"),
    ],
)
def test_edm_ve_rejects_bad_parameters(sigma_max, error, match):
    with pytest.raises(error, match=match):
        EDMVESDE(sigma_max)


# -- the existing samplers on the new schedules --------------------------------------------------

# EDM VE with sigma_max = 10, about the spread of the oracle (as the VE of the sampler suite);
# with EDM's 80, grids uniform in t = sigma leave the last step from sigma = 0.27 to 0.002, too
# coarse for srk at 100 steps and for annealed Langevin at 100 levels: that is what noise-level
# grids are for.
NEW_SDES = {"cosine": CosineVPSDE(), "edm": EDMVESDE(10.0)}
N = 500


@functools.cache
def null(name: str):
    sde = NEW_SDES[name]
    return calibrate(MIXTURE.marginal(sde, sde.sampling_eps), N, seed=54321, n_null=24)


# One sampler of each kind by default (reverse SDE, probability-flow ODE, DDPM chain); all in the slow suite.
QUICK = ["sde-euler", "ode-rk4", "ddpm"]


def check_on(name: str, sampler, n: int, seed: int, nulls=None):
    result = check_sampler(sampler, NEW_SDES[name], MIXTURE, n=n, seed=seed, null=nulls, z_tolerance=4.5)
    assert result, result


@pytest.mark.parametrize("name", list(NEW_SDES))
@pytest.mark.parametrize("make", [m for i, m in SAMPLERS if i in QUICK], ids=QUICK)
def test_existing_samplers_reproduce_the_oracle(name, make):
    check_on(name, make(), N, seed=6, nulls=null(name))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NEW_SDES))
@pytest.mark.parametrize("make", [m for _, m in SAMPLERS], ids=[i for i, _ in SAMPLERS])
def test_every_existing_sampler_reproduces_the_oracle(name, make):
    check_on(name, make(), 2000, seed=7)


def test_probability_flow_is_the_same_ode_in_sigma_on_both_ve_schedules():
    """EDM's VE and Song et al.'s VE share alpha = 1, so both probability-flow ODEs are
    dx/dsigma = -sigma score_sigma(x): from the same x_T at the same noise level, dopri5 at tight
    tolerance ends at the same points at the same noise level, whatever the time variable."""
    ve = VESDE(0.01, 10.0)
    sigma = lambda t: float(ve.sigma(torch.tensor(t, dtype=F64)))  # noqa: E731
    edm = EDMVESDE(sigma(ve.T))
    t_end = 0.5  # VE's sigma(0.5) = 0.316
    x_T = edm.prior_sampling((200, 2), generator=torch.Generator().manual_seed(8), dtype=F64)
    solve = ProbabilityFlowSampler("dopri5", rtol=1e-9, atol=1e-9)
    a = solve(edm, MIXTURE.score(edm), x_T, eps=sigma(t_end)).x
    b = solve(ve, MIXTURE.score(ve), x_T, eps=t_end).x
    assert float((a - b).abs().max()) < 1e-6
