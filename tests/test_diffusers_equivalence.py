"""diffusers' own schedulers as the reference: on the same randomly initialised tiny UNet2DModel and
the same x_T, sdegen's samplers on a DiscreteVPSDE and a DiffusersGrid reproduce diffusers'
sampling loops to round-off, and DDPMScheduler's ancestral sampling in law.

Where the algorithms deliberately differ, the diffusers option that makes them equal is named:
``clip_sample=False`` (DDIM's and DDPM's default clips x0_hat to [-1, 1], which is not the
probability-flow ODE of any density), ``lower_order_final`` (diffusers lowers the last orders of
runs under 15 steps, or for UniPC always; sdegen of runs under 10), and the final step
(``final_sigmas_type="zero"`` / ``set_alpha_to_one=True`` is sdegen's ``denoise=True``).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
from _oracle_data import MIXTURE

import sdegen
from sdegen import (
    DDIMSampler,
    DiffusersGrid,
    DiscreteVPSDE,
    DPMSolverMultistepSampler,
    PredictorCorrectorSampler,
    UniPCSampler,
)
from sdegen.samplers import AncestralSampling, NoneCorrector
from sdegen.testing import calibrate_null, two_sample_test

diffusers = pytest.importorskip("diffusers")

F64 = torch.float64

# (beta schedule, spacing, steps_offset): a scheduler config of each kind users have.
CONFIGS = {
    "linear-trailing": dict(beta_schedule="linear", timestep_spacing="trailing"),
    "scaled_linear-leading": dict(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        timestep_spacing="leading",
        steps_offset=1,
    ),
    "squaredcos-linspace": dict(beta_schedule="squaredcos_cap_v2", timestep_spacing="linspace"),
}
STEPS = 10


def _scheduler(name: str, config: str, prediction_type: str):
    """The diffusers scheduler and the sdegen sampler that reproduces it."""
    kw = dict(CONFIGS[config], prediction_type=prediction_type)
    if name == "ddim":
        return diffusers.DDIMScheduler(clip_sample=False, **kw), DDIMSampler
    if (
        name == "euler"
    ):  # Euler in sigma = sqrt(1 - abar)/sqrt(abar) is DDIM's update (Karras et al. 2022, eq. 4)
        return diffusers.EulerDiscreteScheduler(**kw), DDIMSampler
    if name.startswith("dpm++"):
        # diffusers' solver_type="heun" is sdegen's second_order="taylor" (the phi_2 form).
        order, heun = int(name[5]), name.endswith("heun")
        scheduler = diffusers.DPMSolverMultistepScheduler(
            solver_order=order, lower_order_final=False, solver_type="heun" if heun else "midpoint", **kw
        )
        return scheduler, functools.partial(
            DPMSolverMultistepSampler,
            order=order,
            lower_order_final=False,
            third_order="reference",
            second_order="taylor" if heun else "midpoint",
        )
    if name == "unipc":
        # UniPC always lowers the last orders (min(p, n - i)); at order 2 that touches only the
        # final step to sigma = 0, which is first order anyway, so sdegen runs without lowering.
        scheduler = diffusers.UniPCMultistepScheduler(solver_order=2, **kw)
        return scheduler, functools.partial(UniPCSampler, order=2, variant="bh2", lower_order_final=False)
    raise ValueError(name)


@functools.cache
def _unet(dtype: torch.dtype):
    with torch.random.fork_rng():  # diffusers initialises from the global generator
        torch.manual_seed(0)
        net = diffusers.UNet2DModel(
            sample_size=8,
            in_channels=2,
            out_channels=2,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
        )
    return net.to(dtype).eval().requires_grad_(False)


def expand_like(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *(1,) * (x.ndim - 1))


class _UNetDenoiser:
    """A diffusers model as sdegen's denoiser on its DiscreteVPSDE: the network at the timestep
    k = N t - 1, its eps or v output converted to x0_hat with the kernel (alpha, sigma) at t."""

    def __init__(self, net, sde: DiscreteVPSDE, prediction_type: str) -> None:
        self.net, self.sde, self.prediction_type = net, sde, prediction_type

    def data_prediction(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t64 = t.to(F64)
        out = self.net(x, self.sde.t_to_timestep(t64).to(x.dtype)).sample
        alpha = expand_like(self.sde.alpha(t64).to(x.dtype), x)
        sigma = expand_like(self.sde.sigma(t64).to(x.dtype), x)
        if self.prediction_type == "epsilon":
            return (x - sigma * out) / alpha
        return alpha * x - sigma * out  # v = alpha eps - sigma x0

    def __call__(self, t, x):  # the score, for samplers that ask for it
        alpha = expand_like(self.sde.alpha(t.to(F64)).to(x.dtype), x)
        sigma2 = expand_like(self.sde.sigma_squared(t.to(F64)).to(x.dtype), x)
        return (alpha * self.data_prediction(t, x) - x) / sigma2


def _in_float64(scheduler) -> None:
    """Promote the scheduler's tables to float64 after set_timesteps (diffusers builds them in
    float32): the same numbers, the loop's own arithmetic in float64."""
    abar = scheduler.alphas_cumprod.double()
    scheduler.alphas_cumprod = abar
    if hasattr(scheduler, "final_alpha_cumprod"):
        scheduler.final_alpha_cumprod = scheduler.final_alpha_cumprod.double()
    if getattr(scheduler, "sigmas", None) is not None:
        s = ((1 - abar) / abar).sqrt()[scheduler.timesteps.long()]
        last = (
            torch.zeros(1, dtype=F64)
            if float(scheduler.sigmas[-1]) == 0
            else ((1 - abar[:1]) / abar[:1]).sqrt()
        )
        scheduler.sigmas = torch.cat([s, last])


@torch.no_grad()
def _diffusers_loop(scheduler, net, x_T: torch.Tensor) -> torch.Tensor:
    """diffusers' sampling loop, as its pipelines run it."""
    scheduler.set_timesteps(STEPS)
    if x_T.dtype == F64:
        _in_float64(scheduler)
    x = x_T * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        out = net(scheduler.scale_model_input(x, t), t).sample
        x = scheduler.step(out, t, x).prev_sample
    return x


SCHEDULERS = ["ddim", "euler", "dpm++2m", "dpm++3m", "unipc"]
# DDIM steps from k to k - N // n whatever the spacing, which for linspace is not the next
# timestep; Euler's linspace timesteps are fractional (see DiffusersGrid): both are left out there.
# DPM-Solver's other second-order form (solver_type="heun") changes only the update: one config.
CASES = [
    (s, c) for s in SCHEDULERS for c in CONFIGS if not (c == "squaredcos-linspace" and s in ("ddim", "euler"))
] + [("dpm++2m-heun", "squaredcos-linspace"), ("dpm++3m-heun", "squaredcos-linspace")]
# max |x_sdegen - x_diffusers| / max |x_diffusers|, measured worst over the cases: float32 3.0e-7
# (DDIM) to 4.9e-7 (3M); float64 8.9e-16 (DDIM), 1.3e-15 (UniPC). diffusers' DPM-Solver and Euler
# steps cast the sample to float32 even in a float64 loop: 1.8e-7 to 2.2e-7 there.
TOLERANCE = {
    torch.float32: 2e-6,
    torch.float64: {"ddim": 1e-13, "unipc": 1e-13, "dpm++2m": 1e-6, "dpm++3m": 1e-6, "euler": 1e-6},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("scheduler_name, config", CASES)
def test_sampling_loop_is_diffusers_to_round_off(scheduler_name, config, prediction_type, dtype):
    scheduler, make_sampler = _scheduler(scheduler_name, config, prediction_type)
    net = _unet(dtype)
    x_T = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=F64).to(dtype)
    reference = _diffusers_loop(scheduler, net, x_T)

    sde = DiscreteVPSDE.from_config(scheduler.config)
    assert torch.equal(sde.alphas_cumprod, scheduler.alphas_cumprod.double())
    grid = DiffusersGrid.from_config(scheduler, STEPS)
    assert torch.equal(grid.timesteps(sde.num_train_timesteps), scheduler.timesteps.double())
    # Euler's x lives in the scale of sigma: x_VP = x / sqrt(1 + sigma^2), and at sigma = 0 they agree.
    start = (
        x_T * scheduler.init_noise_sigma / (1 + float(scheduler.sigmas[0]) ** 2) ** 0.5
        if scheduler_name == "euler"
        else x_T
    )
    result = make_sampler(grid=grid)(sde, _UNetDenoiser(net, sde, prediction_type), start, denoise=True)

    assert result.nfe == STEPS
    error = float((result.x - reference).abs().max() / reference.abs().max())
    tol = (
        TOLERANCE[dtype] if dtype == torch.float32 else TOLERANCE[dtype][scheduler_name.removesuffix("-heun")]
    )
    assert error <= tol, f"relative error {error:.3g} > {tol:.1g}"


# -- DDPM ancestral sampling, in law ----------------------------------------------------------------


class _MixtureNoise(torch.nn.Module):
    """A cheap exact model called as diffusers calls one: ``model(sample, timestep).sample`` is the
    2-D mixture's noise prediction -sigma(t) score(t, x) at t = (timestep + 1) / N."""

    def __init__(self, sde: DiscreteVPSDE) -> None:
        super().__init__()
        self.sde, self.score = sde, MIXTURE.score(sde)

    def forward(self, sample: torch.Tensor, timestep) -> SimpleNamespace:
        k = torch.as_tensor(timestep, dtype=F64).expand(sample.shape[0])
        t = self.sde.timestep_to_t(k)
        sigma = self.sde.sigma(t).to(sample.dtype)[:, None]
        return SimpleNamespace(sample=-sigma * self.score(t.to(sample.dtype), sample))


DDPM_STEPS, N_DRAWS = 10, 800


@functools.cache
def _ddpm_reference():
    """diffusers' DDPM loop (fixed_small = the posterior variance, leading spacing) as a sampler of
    its law, and the null of the energy distance between two of its draws."""
    scheduler = diffusers.DDPMScheduler(clip_sample=False)
    sde = DiscreteVPSDE.from_config(scheduler.config)
    net = _MixtureNoise(sde)

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        x = torch.randn(n, 2, generator=generator, dtype=F64)
        scheduler.set_timesteps(DDPM_STEPS)
        for t in scheduler.timesteps:
            x = scheduler.step(net(x, t).sample, t, x, generator=generator).prev_sample
        return x

    return sde, net, draw, calibrate_null(draw, N_DRAWS, n_null=16, seed=11)


def test_ddpm_ancestral_sampling_is_diffusers_in_law():
    """DDPMScheduler (clip_sample=False) is ancestral sampling with the posterior variance on its
    timesteps, ending at x0_hat: sdegen's AncestralSampling(posterior_variance=True) on
    DiffusersGrid(n, "leading") with denoise=True. A two-sample energy-distance test against fresh
    diffusers draws (calibrated on diffusers-vs-diffusers pairs) passes at z <= 5."""
    sde, net, draw, null = _ddpm_reference()
    model = _UNetDenoiser(net, sde, "epsilon")
    grid = DiffusersGrid(DDPM_STEPS, "leading")
    x_T = torch.randn(N_DRAWS, 2, generator=torch.Generator().manual_seed(12), dtype=F64)
    posterior = PredictorCorrectorSampler(
        AncestralSampling(posterior_variance=True), NoneCorrector(), grid=grid
    )
    samples = posterior(sde, model, x_T, generator=torch.Generator().manual_seed(13), denoise=True).x
    result = two_sample_test(samples, draw, null=null, seed=14, z_tolerance=5.0)
    assert result, result


# -- DiffusersGrid: diffusers' timesteps --------------------------------------------------------------

SCHEDULER_CLASSES = [
    "DDIMScheduler",
    "DDPMScheduler",
    "EulerDiscreteScheduler",
    "DPMSolverMultistepScheduler",
    "UniPCMultistepScheduler",
]


@pytest.mark.parametrize("cls", SCHEDULER_CLASSES)
def test_grid_timesteps_are_set_timesteps(cls):
    """For every spacing, steps_offset, N and n: DiffusersGrid.from_config(scheduler, n).timesteps(N)
    is scheduler.set_timesteps(n)'s timesteps, and the grid's times are (k + 1) / N."""
    for spacing in ("leading", "trailing", "linspace"):
        for offset, N, n in [(0, 1000, 1), (1, 1000, 7), (0, 1000, 50), (1, 37, 10), (0, 37, 36)]:
            scheduler = getattr(diffusers, cls)(
                num_train_timesteps=N, timestep_spacing=spacing, steps_offset=offset
            )
            scheduler.set_timesteps(n)
            grid = DiffusersGrid.from_config(scheduler, n)
            k = grid.timesteps(N)
            torch.testing.assert_close(
                k, scheduler.timesteps.double(), rtol=0, atol=1e-4 if "Euler" in cls else 0
            )
            if n > 1 and float(k[0]) <= N - 1:
                sde = DiscreteVPSDE.from_beta_schedule("linear", N)
                ts = grid.times(sde, 1 / N)
                torch.testing.assert_close(ts, (k + 1) / N, rtol=0, atol=0)


def test_grid_final_step_and_errors():
    sde = DiscreteVPSDE.from_beta_schedule("linear", 1000)
    ddim = diffusers.DDIMScheduler(set_alpha_to_one=False, timestep_spacing="trailing")
    grid = DiffusersGrid.from_config(ddim, 10)  # set_alpha_to_one=False: one more step to t = 1/N
    assert grid.final_sigmas_type == "sigma_min"
    ts = grid.times(sde, 1e-3)
    assert len(ts) == 11 and float(ts[-1]) == 1e-3 and float(ts[0]) == 1.0
    # linspace already ends at timestep 0: no step of length 0
    assert len(DiffusersGrid(10, "linspace", final_sigmas_type="sigma_min").times(sde, 1e-3)) == 10
    with pytest.raises(TypeError, match="need a DiscreteVPSDE"):
        DiffusersGrid(10).times(sdegen.VPSDE(), 1e-3)
    with pytest.raises(ValueError, match=r"ends at t = 0.001 \(timestep 0\), below the sampler.s eps = 0.2"):
        DiffusersGrid(10, "leading").times(sde, 0.2)
    with pytest.raises(ValueError, match="steps=1000 needs 1001 distinct timesteps"):
        DiffusersGrid(1000, multistep=True).timesteps(1000)
    with pytest.raises(ValueError, match="starts at timestep 1000"):
        DiffusersGrid(10, "leading", steps_offset=100).times(sde, 1e-3)
    with pytest.raises(ValueError, match="spacing must be one of"):
        DiffusersGrid(10, "karras")
    with pytest.raises(ValueError, match="use_karras_sigmas=True.*KarrasGrid"):
        DiffusersGrid.from_config(diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=True), 10)
    with pytest.raises(ValueError, match="knows the timesteps of"):
        DiffusersGrid.from_config({"_class_name": "LMSDiscreteScheduler"}, 10)
    with pytest.raises(TypeError, match="scheduler or its config"):
        DiffusersGrid.from_config("scheduler_config.json", 10)
