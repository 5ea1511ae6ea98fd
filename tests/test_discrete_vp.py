"""DiscreteVPSDE: a VP SDE through a discrete table alphas_cumprod, exact at the step times, with
diffusers' beta schedules, and every sampler, the likelihood and the losses on it."""

import functools
import math

import pytest
import torch
from _oracle_data import MIXTURE

import sdegen
from sdegen import (
    DDIMSampler,
    DDPMSampler,
    DiscreteVPSDE,
    DPMSolverMultistepSampler,
    ExactTrace,
    LogSNRGrid,
    UniPCSampler,
    log_likelihood,
)
from sdegen.losses import DDPMLoss, DenoisingScoreMatching
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.testing import calibrate, check_marginals, check_moment_odes, check_sampler

F64 = torch.float64

SCHEDULES = {
    "linear": DiscreteVPSDE.from_beta_schedule("linear"),
    "scaled_linear": DiscreteVPSDE.from_beta_schedule("scaled_linear", 1000, 0.00085, 0.012),
    "squaredcos_cap_v2": DiscreteVPSDE.from_beta_schedule("squaredcos_cap_v2"),
    "short": DiscreteVPSDE.from_betas(torch.linspace(0.01, 0.4, 20, dtype=F64)),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_kernel_is_the_table_exactly_at_the_step_times(name):
    """alpha(t_k)^2 = abar_k and sigma(t_k)^2 = 1 - abar_k at t_k = (k + 1) / N, to 1e-12 relative;
    the timestep map is exact there; alpha(0) = 1, sigma(0) = 0, lambda(0) = +inf."""
    sde = SCHEDULES[name]
    N, abar = sde.num_train_timesteps, sde.alphas_cumprod
    k = torch.arange(N)
    t = sde.timestep_to_t(k)
    assert t.dtype == F64 and float(t[-1]) == sde.T == 1.0 and sde.sampling_eps == 1 / N
    torch.testing.assert_close(t, (k + 1).double() / N, rtol=0, atol=0)
    torch.testing.assert_close(sde.t_to_timestep(t), k.double(), rtol=0, atol=1e-12)
    torch.testing.assert_close(sde.alpha(t) ** 2, abar, rtol=1e-12, atol=0)
    torch.testing.assert_close(sde.sigma(t) ** 2, 1 - abar, rtol=1e-12, atol=0)
    lam = 0.5 * torch.log(abar / (1 - abar))
    torch.testing.assert_close(sde.log_snr(t), lam, rtol=1e-12, atol=1e-12)
    zero = torch.zeros(1, dtype=F64)
    assert float(sde.alpha(zero)) == 1.0 and float(sde.sigma(zero)) == 0.0
    assert float(sde.log_snr(zero)) == math.inf


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_interpolation_is_a_monotone_c1_cubic_with_positive_continuous_g2(name):
    """Between the step times log alpha^2 is the monotone cubic spline through the knots (L_0 = 0
    at t = 0): alpha decreases, sigma and lambda are monotone, g^2 = beta(t) = -dL/dt is positive
    and continuous (also across the knots), the drift a = -beta / 2 is finite, and the VP identity
    alpha^2 + sigma^2 = 1 holds everywhere. Each step's mean rate is the table's:
    int_{t_{k-1}}^{t_k} beta = -log(1 - beta_k)."""
    sde = SCHEDULES[name]
    N = sde.num_train_timesteps
    t = torch.linspace(0, 1, 20 * N + 1, dtype=F64)
    alpha, sigma, g2 = sde.alpha(t), sde.sigma(t), sde.diffusion_squared(t)
    assert bool((alpha[1:] < alpha[:-1]).all()) and bool((sigma[1:] > sigma[:-1]).all())
    assert bool((g2 > 0).all()) and bool(torch.isfinite(sde.drift_coefficient(t)).all())
    torch.testing.assert_close(sde.drift_coefficient(t), -0.5 * g2, rtol=0, atol=0)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), rtol=0, atol=1e-15)
    lam = sde.log_snr(t[1:])
    assert bool((lam[1:] < lam[:-1]).all())
    # continuity of g^2 at the knots: the left and right limits agree
    knots = sde.timestep_to_t(torch.arange(N - 1))
    h = 1e-9
    torch.testing.assert_close(sde.beta(knots - h), sde.beta(knots + h), rtol=1e-5, atol=0)
    # Simpson on each step integrates the cubic's derivative exactly
    a, b = knots - 1 / N + 1 / N, knots + 1 / N  # step k + 1: (t_k, t_{k+1}]
    mid = 0.5 * (a + b)
    integral = (b - a) / 6 * (sde.beta(a + 1e-15) + 4 * sde.beta(mid) + sde.beta(b))
    torch.testing.assert_close(integral, -torch.log1p(-sde.betas[1:]), rtol=1e-9, atol=1e-15)


def test_interpolation_reproduces_a_smooth_schedule():
    """A table sampled from a continuous schedule (alphas_cumprod = alpha(t_k)^2) is interpolated
    to O(1/N^3) in L: the linear-beta VP SDE (a quadratic L) exactly, at any N."""
    vp = sdegen.VPSDE()
    for N in (20, 200):
        sde = DiscreteVPSDE(vp.alpha(torch.arange(1, N + 1, dtype=F64) / N) ** 2)
        t = torch.linspace(0, 1, 10 * N + 1, dtype=F64)
        torch.testing.assert_close(sde.log_alpha_bar(t), 2 * torch.log(vp.alpha(t)), rtol=0, atol=1e-12)
        torch.testing.assert_close(sde.beta(t), vp.beta(t), rtol=1e-9, atol=0)
    # cosine: L is not a polynomial; the spline follows it to O(1/N^3) (errors 1/8 per halving)
    cos = sdegen.CosineVPSDE()
    errors = []
    for N in (100, 200, 400):
        sde = DiscreteVPSDE(cos.alpha(torch.arange(1, N + 1, dtype=F64) / N * 0.9) ** 2)
        t = torch.linspace(0, 1, 10 * N + 1, dtype=F64)
        errors.append(float((sde.log_alpha_bar(t) - 2 * torch.log(cos.alpha(0.9 * t))).abs().max()))
    order = math.log2(errors[1] / errors[2])  # measured 2.92
    assert 2.7 < order < 3.3 and errors[2] < 1e-5, errors


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_log_snr_inverse_is_closed_form_per_segment(name):
    """t(lambda(t)) = t everywhere (knots, inside segments, the first segment), +inf -> 0,
    below lambda(T) -> T, and float32 in gives float32 out."""
    sde = SCHEDULES[name]
    N = sde.num_train_timesteps
    t = torch.cat(
        [
            torch.tensor([1e-9, 0.3 / N], dtype=F64),
            torch.rand(500, generator=torch.Generator().manual_seed(0), dtype=F64),
            sde.timestep_to_t(torch.arange(N)),
        ]
    )
    torch.testing.assert_close(sde.inverse_log_snr(sde.log_snr(t)), t, rtol=1e-9, atol=1e-13)
    lam_T = float(sde.log_snr(torch.ones(1, dtype=F64)))
    out = sde.inverse_log_snr(torch.tensor([math.inf, lam_T - 1.0], dtype=F64))
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0], dtype=F64), rtol=0, atol=0)
    t32 = torch.tensor([0.25, 0.5], dtype=torch.float32)
    back = sde.inverse_log_snr(sde.log_snr(t32))
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, t32, rtol=1e-5, atol=0)


def test_marginals_are_exact():
    """check_marginals: the moment ODEs (autograd derivatives of alpha and sigma against the closed
    forms of a and g^2, at knots and between them) and 4000 simulated SRK paths."""
    sde = SCHEDULES["linear"]
    assert check_marginals(sde, n_paths=2000, seed=1)
    for s in SCHEDULES.values():
        times = [0.5 / s.num_train_timesteps, 0.0123, 0.37, 0.5, 0.999, 1.0]
        result = check_moment_odes(s, times=times, rtol=1e-12)
        assert result, result


def test_short_table_marginals_by_simulation():
    """A 20-step table with large steps (beta up to 0.4): the spline's rate, simulated."""
    result = check_marginals(SCHEDULES["short"], n_paths=3000, steps=100, seed=2)
    assert result, result


def test_schedules_are_diffusers_tables_bit_for_bit():
    """from_beta_schedule / from_config compute in float32 as diffusers does, so the table equals
    the scheduler's alphas_cumprod exactly; dtype=float64 gives the schedule to float64 rounding."""
    diffusers = pytest.importorskip("diffusers")
    for name, kw in [
        ("linear", {}),
        ("scaled_linear", {"beta_start": 0.00085, "beta_end": 0.012}),
        ("squaredcos_cap_v2", {}),
    ]:
        scheduler = diffusers.DDPMScheduler(beta_schedule=name, num_train_timesteps=500, **kw)
        sde = DiscreteVPSDE.from_config(scheduler.config)
        assert torch.equal(sde.alphas_cumprod, scheduler.alphas_cumprod.double())
        exact = DiscreteVPSDE.from_beta_schedule(name, 500, **kw, dtype=F64)
        # float32's rounding of 1 - 0.999 (the cosine clip) is the largest difference: 1.3e-5 relative
        torch.testing.assert_close(exact.alphas_cumprod, sde.alphas_cumprod, rtol=2e-5, atol=0)
    betas = torch.linspace(1e-3, 0.05, 100).tolist()
    scheduler = diffusers.DDIMScheduler(trained_betas=betas, num_train_timesteps=100)
    assert torch.equal(
        DiscreteVPSDE.from_config(dict(scheduler.config)).alphas_cumprod, scheduler.alphas_cumprod.double()
    )


def test_betas_and_linear_schedule_in_float64():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    sde = DiscreteVPSDE.from_beta_schedule("linear", dtype=F64)
    torch.testing.assert_close(sde.alphas_cumprod, torch.cumprod(1 - betas, 0), rtol=1e-14, atol=0)
    torch.testing.assert_close(sde.betas, betas, rtol=1e-9, atol=0)
    scaled = DiscreteVPSDE.from_beta_schedule("scaled_linear", 10, 0.01, 0.04, dtype=F64)
    torch.testing.assert_close(scaled.betas, torch.linspace(0.1, 0.2, 10, dtype=F64) ** 2, rtol=1e-12, atol=0)


def test_discretize_is_the_table_and_its_exact_respacing():
    sde = SCHEDULES["linear"]
    own = sde.discretize(1000, dtype=F64)
    assert torch.equal(own.alphas_cumprod, sde.alphas_cumprod)
    torch.testing.assert_close(own.t, sde.timestep_to_t(torch.arange(1000)), rtol=0, atol=0)
    torch.testing.assert_close(torch.cumprod(own.alphas, 0), own.alphas_cumprod, rtol=1e-12, atol=0)
    coarse = sde.discretize(10, dtype=F64)  # every 100th step: t = 0.1, ..., 1
    torch.testing.assert_close(coarse.alphas_cumprod, sde.alphas_cumprod[99::100], rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: DiscreteVPSDE([0.9, 0.95]), ValueError, r"strictly decreasing .*alphas_cumprod\[0\]"),
        (lambda: DiscreteVPSDE([0.9, 0.0]), ValueError, r"alphas_cumprod must lie in \(0, 1\).*\[1\]=0"),
        (lambda: DiscreteVPSDE([1.0, 0.5]), ValueError, r"must lie in \(0, 1\)"),
        (lambda: DiscreteVPSDE([0.5]), ValueError, "at least 2 steps"),
        (lambda: DiscreteVPSDE([0.9, math.nan]), ValueError, "must be finite"),
        (lambda: DiscreteVPSDE("0.9"), TypeError, "1-D tensor or sequence"),
        (lambda: DiscreteVPSDE.from_betas([0.1, 1.0]), ValueError, r"betas must lie in \(0, 1\).*\[1\]"),
        (lambda: DiscreteVPSDE.from_beta_schedule("cosine"), ValueError, "unknown beta schedule 'cosine'"),
        (
            lambda: DiscreteVPSDE.from_beta_schedule("linear", 1.5),
            TypeError,
            "num_train_timesteps must be an int",
        ),
        (
            lambda: DiscreteVPSDE.from_beta_schedule("linear", 100, 0.02, 0.01),
            ValueError,
            "beta_end must be >",
        ),
        (lambda: DiscreteVPSDE.from_beta_schedule("linear", dtype=torch.float16), TypeError, "dtype must be"),
        (
            lambda: DiscreteVPSDE.from_config({"_class_name": "EDMEulerScheduler", "sigma_min": 0.002}),
            ValueError,
            "of EDMEulerScheduler has no beta schedule",
        ),
        (
            lambda: DiscreteVPSDE.from_config({"beta_schedule": "sigmoid"}),
            ValueError,
            "beta_schedule='sigmoid'",
        ),
        (
            lambda: DiscreteVPSDE.from_config({"beta_schedule": "linear", "rescale_betas_zero_snr": True}),
            ValueError,
            "rescale_betas_zero_snr=True",
        ),
        (
            lambda: DiscreteVPSDE.from_config({"beta_schedule": "linear", "use_flow_sigmas": True}),
            ValueError,
            "flow-matching",
        ),
        (lambda: DiscreteVPSDE.from_config("scheduler_config.json"), TypeError, "scheduler.config"),
    ],
)
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


# -- the rest of sdegen on it ---------------------------------------------------------------------

# 100 steps keep the oracle tests cheap; the kernel is the same construction at any N.
SDE = DiscreteVPSDE.from_beta_schedule("linear", 100, 0.001, 0.2, dtype=F64)
N_SAMPLES = 500


@functools.cache
def _null():
    return calibrate(MIXTURE.marginal(SDE, SDE.sampling_eps), N_SAMPLES, seed=54321, n_null=24)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DDPMSampler(100),
        lambda: DDIMSampler(25),
        lambda: DPMSolverMultistepSampler(15),
        lambda: UniPCSampler(grid=LogSNRGrid(12)),
    ],
    ids=["ddpm", "ddim", "dpm++2m", "unipc"],
)
def test_samplers_reproduce_the_oracle(make):
    """The exact score of a Gaussian mixture on DiscreteVPSDE: samples at t = 1/N have its law."""
    result = check_sampler(make(), SDE, MIXTURE, n=N_SAMPLES, seed=6, null=_null(), z_tolerance=4.5)
    assert result, result


def test_log_likelihood_is_the_closed_form():
    """The probability-flow likelihood at t = 1/N of the exact mixture score, with the exact
    trace and the exact p_T, is the mixture's log density at 1/N (the ODE crosses the 100 kinks
    of the piecewise-constant rate)."""
    eps = SDE.sampling_eps
    marginal = MIXTURE.marginal(SDE, eps)
    x = marginal.sample(16, generator=torch.Generator().manual_seed(4), dtype=F64)
    p_T = MIXTURE.marginal(SDE, SDE.T)
    result = log_likelihood(
        x,
        SDE,
        MIXTURE.score(SDE),
        divergence=ExactTrace(),
        eps=eps,
        rtol=1e-7,
        atol=1e-7,
        prior_logp=p_T.log_prob,
    )
    assert float((result.logp - marginal.log_prob(x)).abs().max()) <= 1e-3


class _Zero(torch.nn.Module):
    def forward(self, t, x):
        return torch.zeros_like(x)


def test_losses_run_on_the_table():
    """DDPMLoss trains on the model's own chain (discretize(N) is the table) and denoising score
    matching on the continuous interpolation: for a zero eps-network both are E||z||^2 = d."""
    model = ScoreModel(_Zero(), SDE, NoisePrediction())
    x0 = MIXTURE.sample(4000, generator=torch.Generator().manual_seed(5), dtype=F64)
    g = torch.Generator().manual_seed(6)
    assert float(DDPMLoss(100)(model, x0, generator=g)) == pytest.approx(2.0, rel=0.05)
    assert math.isfinite(float(DenoisingScoreMatching()(model, x0, generator=g)))
    assert sdegen.DiscreteVPSDE is DiscreteVPSDE is sdegen.sde.DiscreteVPSDE
