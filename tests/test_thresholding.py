"""Clipping and dynamic thresholding of x0_hat (Saharia et al. 2022): the rule, its use by the
samplers, and the likelihood's refusal of a model that is no longer the score of a density."""

import pytest
import torch

import sdegen
from sdegen import VPSDE
from sdegen.analytic import GaussianMixture
from sdegen.samplers import Thresholded

F64 = torch.float64


def test_dynamic_thresholding_is_imagens_rule_with_diffusers_upper_bound():
    sde = VPSDE()
    small = torch.tensor([0.5, -0.25, 0.1, -0.4], dtype=F64)  # quantile <= 1: s = 1, unchanged
    ramp = torch.tensor([1.0, -2.0, 3.0, -4.0], dtype=F64)  # median of |x| = 2.5 (linear interpolation)
    x0 = torch.stack([small, ramp])
    th = Thresholded(lambda t, x: x, sde, percentile=0.5, max_value=10.0)
    expected = torch.stack([small, ramp.clamp(-2.5, 2.5) / 2.5])
    torch.testing.assert_close(th.threshold(x0), expected, rtol=0, atol=1e-15)
    # s is clamped to max_value: with p = 1 the quantile is 4, s = 2.
    capped = Thresholded(lambda t, x: x, sde, percentile=1.0, max_value=2.0).threshold(x0)
    torch.testing.assert_close(capped[1], ramp.clamp(-2.0, 2.0) / 2.0, rtol=0, atol=1e-15)
    clipped = Thresholded(lambda t, x: x, sde, clip=1.5).threshold(x0)
    torch.testing.assert_close(clipped, x0.clamp(-1.5, 1.5), rtol=0, atol=0)


def test_thresholded_score_noise_and_denoiser_agree():
    """score = (alpha x0_c - x) / sigma^2 and eps = (x - alpha x0_c) / sigma: one model, three views;
    where the clamp does not engage it is the model itself."""
    sde = VPSDE()
    gm = GaussianMixture.ring(4, radius=2.0, std=0.3)
    score = gm.score(sde)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t = torch.full((32,), 0.4, dtype=F64)
    a, s = sde.alpha(t)[:, None], sde.sigma(t)[:, None]
    th = Thresholded(score, sde, clip=1.0)
    x0c = th.data_prediction(t, x)
    assert float(x0c.abs().max()) <= 1.0
    torch.testing.assert_close(th(t, x), (a * x0c - x) / s**2)
    torch.testing.assert_close(th.noise_prediction(t, x), (x - a * x0c) / s)
    loose = Thresholded(score, sde, clip=100.0)
    torch.testing.assert_close(loose(t, x), score(t, x), rtol=1e-10, atol=1e-10)


def test_samplers_use_the_thresholded_denoiser_and_the_likelihood_refuses_it():
    sde = VPSDE()
    gm = GaussianMixture.ring(4, radius=2.0, std=0.3)  # modes at radius 2: x0_hat leaves [-1, 1]
    th = Thresholded(gm.score(sde), sde, clip=1.0)
    g = torch.Generator().manual_seed(1)
    # The final denoising step returns x0_c itself.
    x = sdegen.sample(sde, th, (256, 2), sdegen.DDIMSampler(steps=10), generator=g, dtype=F64, denoise=True).x
    assert float(x.abs().max()) <= 1.0
    free = sdegen.sample(sde, gm.score(sde), (256, 2), sdegen.DDIMSampler(steps=10), generator=g, dtype=F64).x
    assert float(free.abs().max()) > 1.5
    with pytest.raises(ValueError, match="not the score of any density"):
        sdegen.log_likelihood(x[:4], sde, th)


def test_thresholding_argument_errors():
    sde = VPSDE()
    f = lambda t, x: x
    with pytest.raises(ValueError, match="exactly one of clip"):
        Thresholded(f, sde)
    with pytest.raises(ValueError, match="exactly one of clip"):
        Thresholded(f, sde, clip=1.0, percentile=0.9)
    with pytest.raises(ValueError, match=r"percentile must lie in \(0, 1\]"):
        Thresholded(f, sde, percentile=1.5)
    with pytest.raises(ValueError, match="max_value must be >= 1"):
        Thresholded(f, sde, percentile=0.9, max_value=0.5)
    with pytest.raises(ValueError, match="clip"):
        Thresholded(f, sde, clip=-1.0)
    with pytest.raises(TypeError, match="LinearSDE"):
        Thresholded(f, object(), clip=1.0)
