"""Brought models (sdegen.models): diffusers, k-diffusion/EDM denoisers and DDPM eps-networks as
score models on their SDEs, checked against the Gaussian-mixture oracle, with their bad inputs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import sdegen
from sdegen import models
from sdegen._broadcast import expand_like
from sdegen.analytic import GaussianMixture
from sdegen.likelihood import ExactTrace
from sdegen.sde.discrete_vp import DiscreteVPSDE

F64 = torch.float64
SHAPE = (1, 1, 2)  # images of 1 channel, 1 x 2 pixels: a diffusers-shaped input, d = 2
CONFIG = {
    "_class_name": "DDPMScheduler",
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
    "clip_sample": True,
}


def _mixture() -> GaussianMixture:
    g = torch.Generator().manual_seed(0)
    means = 0.5 * torch.randn(3, 2, generator=g, dtype=F64)
    A = torch.randn(3, 2, 2, generator=g, dtype=F64)
    cov = 0.05 * A @ A.transpose(-1, -2) / 2 + 0.01 * torch.eye(2, dtype=F64)
    return GaussianMixture([0.2, 0.3, 0.5], means, cov, event_shape=SHAPE)


GM = _mixture()


class OracleUNet(nn.Module):
    """The mixture's exact score on a DiscreteVPSDE as a diffusers model: called as
    ``model(sample, timestep)`` with the 0-based timestep, returning ``.sample`` in ``kind`` units."""

    def __init__(self, sde: DiscreteVPSDE, kind: str, n_classes: int | None = None) -> None:
        super().__init__()
        self.sde, self.kind, self.score = sde, kind, GM.score(sde)

    def forward(self, sample, timestep, class_labels=None):
        t = (timestep + 1) / self.sde.num_train_timesteps
        s = self.score(t, sample)
        a, sig = (expand_like(f(t), sample) for f in (self.sde.alpha, self.sde.sigma))
        eps, x0 = -sig * s, (sample + sig**2 * s) / a
        out = {"epsilon": eps, "v_prediction": a * eps - sig * x0, "sample": x0}[self.kind]
        return SimpleNamespace(sample=out)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_a_diffusers_style_oracle_has_the_closed_form_likelihood(kind):
    """The exact score as an eps-, v- or x0-network on diffusers' timesteps, through the adapter:
    log p at step 0 matches the mixture's closed form within 1e-3 nats (tests/test_likelihood.py)."""
    sde = DiscreteVPSDE.from_config(CONFIG)
    model = models.from_diffusers(OracleUNet(sde, kind), {**CONFIG, "prediction_type": kind})
    eps = model.sde.sampling_eps  # step 0: t = 1/N
    x = GM.marginal(sde, eps).sample(4, generator=torch.Generator().manual_seed(1), dtype=F64)
    res = sdegen.log_likelihood(
        x,
        model.sde,
        model,
        divergence=ExactTrace(),
        rtol=1e-5,
        atol=1e-5,
        prior_logp=GM.marginal(sde, 1.0).log_prob,
    )  # eps defaults to the SDE's likelihood_eps, step 0
    assert (res.logp - GM.marginal(sde, eps).log_prob(x)).abs().max() <= 1e-3
    # The model is the exact score, and its denoiser the exact posterior mean, at fractional timesteps too.
    t = torch.tensor([0.0105, 0.5, 1.0], dtype=F64)
    xs = x[:3]
    torch.testing.assert_close(model(t, xs), GM.score(sde)(t, xs), rtol=1e-9, atol=1e-9)


def test_the_adapter_refuses_times_outside_the_trained_steps_before_any_step():
    sde = DiscreteVPSDE.from_config(CONFIG)
    model = models.from_diffusers(OracleUNet(sde, "epsilon"), CONFIG)
    x = torch.zeros(2, *SHAPE, dtype=F64)
    with pytest.raises(ValueError, match=r"trained on the timesteps 0..999 .* eps >= 0.001"):
        sdegen.log_likelihood(x, model.sde, model, eps=1e-5)
    # A sampler may step to an end time below step 0 (as diffusers' final step to sigma = 0 does),
    # but not evaluate the network there.
    sampler = sdegen.DPMSolverMultistepSampler(steps=5)
    assert sdegen.sample(model.sde, model, (2, *SHAPE), sampler, eps=1e-5, dtype=F64).x.shape == (2, *SHAPE)
    with pytest.raises(ValueError, match="timesteps -0.99"):
        sdegen.sample(model.sde, model, (2, *SHAPE), sampler, eps=1e-5, dtype=F64, denoise=True)


def test_bad_configs_and_models_are_refused_before_any_work():
    sde = DiscreteVPSDE.from_config(CONFIG)
    with pytest.raises(ValueError, match="unknown prediction_type 'x0'"):
        models.from_diffusers(OracleUNet(sde, "epsilon"), {**CONFIG, "prediction_type": "x0"})
    no_schedule = {k: v for k, v in CONFIG.items() if k != "beta_schedule"} | {
        "_class_name": "EDMEulerScheduler"
    }
    with pytest.raises(ValueError, match="no beta schedule"):
        models.from_diffusers(OracleUNet(sde, "epsilon"), no_schedule)
    with pytest.raises(TypeError, match="scheduler must be a diffusers scheduler"):
        models.from_diffusers(OracleUNet(sde, "epsilon"), "ddpm")
    wide = OracleUNet(sde, "epsilon")
    wide.config = {"in_channels": 1, "out_channels": 3}
    with pytest.raises(ValueError, match="maps 1 input channels to 3 output channels"):
        models.from_diffusers(wide, CONFIG)
    # A module without a config shows its wrong shape at the first call.
    flat = models.from_eps_model(lambda x, k: x.flatten(1), alphas_cumprod=sde.alphas_cumprod)
    with pytest.raises(ValueError, match=r"returned shape \(2, 2\) for an input of shape \(2, 1, 1, 2\)"):
        flat(0.5, torch.zeros(2, *SHAPE, dtype=F64))
    with pytest.raises(ValueError, match="exactly one of betas= and alphas_cumprod="):
        models.from_eps_model(lambda x, k: x)


def test_scheduler_thresholding_is_opt_in_and_refused_by_the_likelihood():
    sde = DiscreteVPSDE.from_config(CONFIG)
    model = models.from_diffusers(OracleUNet(sde, "epsilon"), CONFIG)  # clip_sample=True in the config
    clipped = models.scheduler_thresholding(model)
    assert clipped.clip == 1.0
    x = torch.full((2, *SHAPE), 3.0, dtype=F64)
    assert float(clipped.data_prediction(torch.full((2,), 0.01, dtype=F64), x).abs().max()) <= 1.0
    with pytest.raises(ValueError, match="not the score of any density"):
        sdegen.log_likelihood(x.clamp(-1, 1), model.sde, clipped)
    dynamic = models.scheduler_thresholding(
        models.from_diffusers(OracleUNet(sde, "epsilon"), {**CONFIG, "thresholding": True})
    )
    assert dynamic.percentile == 0.995 and dynamic.max_value == 1.0
    with pytest.raises(ValueError, match="neither thresholding nor clip_sample"):
        models.scheduler_thresholding(
            models.from_diffusers(OracleUNet(sde, "epsilon"), {**CONFIG, "clip_sample": False})
        )


def test_denoisers_on_edm_ve_and_on_a_discrete_vp_sde():
    """D(x, sigma) = E[x_0 | x_0 + sigma z = x]: on EDMVESDE the model is D(x, t); on a DiscreteVPSDE
    (k-diffusion's discrete wrappers) D(x / alpha, sigma / alpha). Both are the exact score."""
    ve, wide = sdegen.EDMVESDE(80.0), sdegen.EDMVESDE(200.0)

    def denoiser(x, sigma):  # the VE-kernel posterior mean, from the mixture's score on EDMVESDE
        return x + expand_like(sigma**2, x) * GM.score(wide)(sigma, x)

    model = models.from_denoiser(denoiser, sigma_min=0.002, sigma_max=80.0)
    x = GM.sample(5, generator=torch.Generator().manual_seed(2), dtype=F64)
    t = torch.tensor([0.002, 0.1, 1.0, 10.0, 80.0], dtype=F64)
    torch.testing.assert_close(model(t, x), GM.score(ve)(t, x), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(model.data_prediction(t, x), denoiser(x, t), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"noise levels sigma in \[0.002, 80\]"):
        model(torch.full((5,), 1e-4, dtype=F64), x)
    vp = DiscreteVPSDE.from_config(CONFIG)
    on_vp = models.from_denoiser(denoiser, sigma_min=0.01, sigma_max=160.0, sde=vp)
    t = torch.tensor([0.01, 0.2, 0.5, 0.9, 1.0], dtype=F64)
    torch.testing.assert_close(on_vp(t, x), GM.score(vp)(t, x), rtol=1e-8, atol=1e-8)


def test_a_ddpm_eps_network_on_integer_timesteps():
    sde = DiscreteVPSDE.from_config(CONFIG)
    seen = []

    def eps(x, k):  # Ho et al. 2020's eps(x_k, k): the exact noise prediction at timestep k
        seen.append(k)
        t = (k.to(F64) + 1) / 1000
        return -expand_like(sde.sigma(t), x) * GM.score(sde)(t, x)

    model = models.from_eps_model(eps, betas=sde.betas)
    x = GM.sample(3, generator=torch.Generator().manual_seed(3), dtype=F64)
    t = torch.tensor([0.001, 0.25, 1.0], dtype=F64)
    torch.testing.assert_close(model(t, x), GM.score(sde)(t, x), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(seen[-1], torch.tensor([0.0, 249.0, 999.0], dtype=F64))
    quantized = models.from_eps_model(eps, betas=sde.betas, quantize=True)
    quantized(torch.tensor([0.0013, 0.2504, 0.9996], dtype=F64), x)
    assert seen[-1].dtype == torch.int64 and seen[-1].tolist() == [0, 249, 999]


def test_class_labels_pass_through_and_classifier_free_guidance_works():
    calls = []

    class Conditional(nn.Module):  # label 2 is its null label: shift the output by the label
        config = {"in_channels": 1, "out_channels": 1, "num_class_embeds": 3}

        def forward(self, sample, timestep, class_labels=None):
            calls.append(class_labels)
            return (sample * 0.5 + expand_like(class_labels.to(sample.dtype), sample),)

    model = models.from_diffusers(Conditional(), CONFIG, n_classes=2)
    assert model.is_conditional and model.n_classes == 2 and model.null_label == 2
    x = torch.ones(2, *SHAPE, dtype=F64)
    t = torch.full((2,), 0.5, dtype=F64)
    w = 1.5
    guided = sdegen.ClassifierFreeGuidance(model, 1, w)(t, x)
    expected = (1 + w) * model(t, x, 1) - w * model(t, x, 2)
    torch.testing.assert_close(guided, expected)
    assert [1, 1, 2, 2] in [c.tolist() for c in calls]  # one call on the concatenated batch
    # Without a null label (n_classes = all 3 labels) guidance is refused at its first use.
    no_null = models.from_diffusers(Conditional(), CONFIG)
    with pytest.raises(ValueError, match="needs a model trained with label dropout"):
        sdegen.ClassifierFreeGuidance(no_null, 1, w)(t, x)


def test_a_saved_diffusers_pipeline_is_sampled_and_evaluated_offline(tmp_path):
    """save_pretrained -> from_pretrained, offline: DPM-Solver++ samples and exact bits/dim."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=4,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=100, prediction_type="v_prediction")
    diffusers.DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "pipe")
    unet.save_pretrained(tmp_path / "unet")
    scheduler.save_pretrained(tmp_path / "scheduler")

    model = models.from_pretrained(tmp_path / "pipe")
    assert isinstance(model.parameterization, sdegen.parameterization.VPrediction)
    assert model.sde.num_train_timesteps == 100 and not model.training
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    k = torch.tensor([0, 57])
    with torch.no_grad():
        v = unet(x, k).sample
        torch.testing.assert_close(
            model.output(model.sde.timestep_to_t(k).float(), x), v, rtol=1e-5, atol=1e-6
        )
    same = models.from_pretrained(tmp_path / "unet", scheduler=tmp_path / "scheduler")
    with torch.no_grad():
        torch.testing.assert_close(same.output(0.5, x), model.output(0.5, x))

    samples = sdegen.sample(model.sde, model, (2, 1, 4, 4), sdegen.DPMSolverMultistepSampler(steps=5))
    assert samples.x.shape == (2, 1, 4, 4) and bool(torch.isfinite(samples.x).all())
    pixels = torch.randint(0, 256, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    y = sdegen.dequantize(pixels, data_range=(-1.0, 1.0), generator=torch.Generator().manual_seed(2))
    res = sdegen.log_likelihood(
        y, model.sde, model, bits_per_dim=sdegen.Quantization((-1.0, 1.0)), rtol=1e-3, atol=1e-3
    )
    assert res.bpd.shape == (2,) and bool(torch.isfinite(res.bpd).all())
    torch.testing.assert_close(res.bpd, sdegen.bits_per_dim(res.logp, y.shape, data_range=(-1.0, 1.0)))

    with pytest.raises(ValueError, match="model directory without its scheduler"):
        models.from_pretrained(tmp_path / "unet")
    with pytest.raises(FileNotFoundError, match="neither model_index.json"):
        models.from_pretrained(tmp_path)
