"""Parameterisations: each target maps to the conditional score, to_score and from_score are inverse,
the score is affine in the output with the declared slope, and ScoreModel is the exact score for an
oracle network under every parameterisation."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from sdegen import SDE, VPSDE
from sdegen.analytic import GaussianMixture
from sdegen.parameterization import (
    DataPrediction,
    NoisePrediction,
    ScoreModel,
    ScorePrediction,
    TransitionKernel,
)
from sdegen.testing import strategies as sst

F64 = torch.float64
PARAMETERIZATIONS = [ScorePrediction(), NoisePrediction(), DataPrediction()]


def _draw(sde, seed, shape=(16, 3)):
    g = torch.Generator().manual_seed(seed)
    t = sde.T * (0.01 + 0.99 * torch.rand(shape[0], generator=g, dtype=F64))
    x0 = torch.randn(shape, generator=g, dtype=F64)
    z = torch.randn(shape, generator=g, dtype=F64)
    kernel = TransitionKernel.of(sde, t)
    x_t = kernel.alpha[:, None] * x0 + kernel.sigma[:, None] * z
    return t, x0, z, kernel, x_t


@pytest.mark.parametrize("param", PARAMETERIZATIONS, ids=repr)
@given(sde=sst.linear_sdes(), seed=st.integers(0, 2**16))
def test_target_is_the_conditional_score(param, sde, seed):
    # to_score(target) = grad log p_0t(x_t | x0) = -z / sigma: what DSM regresses onto (Song et al. eq. 7).
    _, x0, z, kernel, x_t = _draw(sde, seed)
    score = param.to_score(param.target(x0, z, kernel), x_t, kernel)
    torch.testing.assert_close(score, -z / kernel.sigma[:, None], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("param", PARAMETERIZATIONS, ids=repr)
@given(sde=sst.linear_sdes(), seed=st.integers(0, 2**16))
def test_to_score_is_affine_with_slope_score_scale_and_inverted_by_from_score(param, sde, seed):
    _, x0, z, kernel, x_t = _draw(sde, seed)
    out = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    v = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed + 2), dtype=F64)
    s = param.to_score(out, x_t, kernel)
    # from_score divides by alpha (data prediction): rounding grows like 1 / alpha, which reaches
    # 5e8 for VP with T = 4 (alpha(4) = 2e-9).
    atol = 1e-8 + 1e-14 / float(kernel.alpha.min())
    torch.testing.assert_close(param.from_score(s, x_t, kernel), out, rtol=1e-8, atol=atol)
    ds = param.to_score(out + v, x_t, kernel) - s
    torch.testing.assert_close(ds, param.score_scale(kernel)[:, None] * v, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("param", PARAMETERIZATIONS, ids=repr)
@given(sde=sst.linear_sdes(), seed=st.integers(0, 2**16))
def test_data_and_noise_predictions_are_tweedies_formula_of_the_score(param, sde, seed):
    """to_data = (x + sigma^2 score) / alpha and to_noise = -sigma score, computed without the score
    where the output already is one of them (then exactly the output)."""
    _, _, _, kernel, x_t = _draw(sde, seed)
    out = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    a, s = kernel.alpha[:, None], kernel.sigma[:, None]
    score = param.to_score(out, x_t, kernel)
    atol = 1e-8 + 1e-14 / float(kernel.alpha.min())
    torch.testing.assert_close(
        param.to_data(out, x_t, kernel), (x_t + s * s * score) / a, rtol=1e-8, atol=atol
    )
    torch.testing.assert_close(param.to_noise(out, x_t, kernel), -s * score, rtol=1e-8, atol=1e-8)
    if isinstance(param, DataPrediction):
        assert param.to_data(out, x_t, kernel) is out
    if isinstance(param, NoisePrediction):
        assert param.to_noise(out, x_t, kernel) is out


class OracleNet(nn.Module):
    """Outputs, in the parameterisation's units, the exact score of a Gaussian mixture."""

    def __init__(self, mixture, sde, param):
        super().__init__()
        self.score, self.sde, self.param = mixture.score(sde), sde, param

    def forward(self, t, x):
        return self.param.from_score(self.score(t, x), x, TransitionKernel.of(self.sde, t))


@pytest.mark.parametrize("param", PARAMETERIZATIONS, ids=repr)
def test_score_model_recovers_the_exact_score(param):
    sde = VPSDE()
    mixture = GaussianMixture.ring(4, radius=2.0, std=0.3)
    t, _, _, _, x = _draw(sde, 0, shape=(32, 2))
    model = ScoreModel(OracleNet(mixture, sde, param), sde, param)
    torch.testing.assert_close(model(t, x), mixture.score(sde)(t, x), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(model(0.5, x), mixture.score(sde)(0.5, x), rtol=1e-8, atol=1e-8)


class _NonLinearSDE(SDE):
    def drift(self, t, x):
        return -(x**3)

    def diffusion(self, t):
        return torch.as_tensor(t) * 0 + 1.0

    def prior_sampling(self, shape, generator=None, device=None, dtype=None):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_logp(self, z):
        return -0.5 * z.reshape(z.shape[0], -1).pow(2).sum(1)


def test_score_prediction_serves_any_sde_and_others_need_a_linear_one():
    net = nn.Linear(2, 2)
    wrapped = nn.Module()
    wrapped.forward = lambda t, x: net(x)
    model = ScoreModel(wrapped, _NonLinearSDE(), ScorePrediction())
    x = torch.randn(3, 2)
    torch.testing.assert_close(model(0.3, x), net(x))
    with pytest.raises(TypeError, match="NoisePrediction needs the Gaussian transition kernel"):
        ScoreModel(wrapped, _NonLinearSDE(), NoisePrediction())


def test_score_model_argument_errors():
    with pytest.raises(TypeError, match="net must be a torch.nn.Module"):
        ScoreModel(lambda t, x: x, VPSDE())
    with pytest.raises(TypeError, match="sde must be an sdegen.SDE"):
        ScoreModel(nn.Identity(), "vp")
    with pytest.raises(TypeError, match="parameterization must be a Parameterization"):
        ScoreModel(nn.Identity(), VPSDE(), "noise")
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor"):
        ScoreModel(nn.Identity(), VPSDE())(0.5, [1.0, 2.0])


def test_parameterizations_compare_by_type():
    assert NoisePrediction() == NoisePrediction() and NoisePrediction() != DataPrediction()
    assert ScoreModel(nn.Identity(), VPSDE()).parameterization == NoisePrediction()
