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
    EDMPreconditioning,
    NoisePrediction,
    ScoreModel,
    ScorePrediction,
    TransitionKernel,
    VPrediction,
)
from sdegen.testing import strategies as sst

F64 = torch.float64
PARAMETERIZATIONS = [
    ScorePrediction(),
    NoisePrediction(),
    DataPrediction(),
    VPrediction(),
    EDMPreconditioning(sigma_data=0.7),
]


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


def undo_network_input(param, sde, t_in, x_in):
    """(t, x) from what a parameterisation calls its network with (EDM: c_noise = -lambda / 4, c_in x / alpha)."""
    if not isinstance(param, EDMPreconditioning):
        return t_in, x_in
    t = sde.inverse_log_snr(-4.0 * t_in)
    kernel = TransitionKernel.of(sde, t)
    _, _, c_in, _ = param.coefficients(kernel)
    return t, x_in * (kernel.alpha / c_in)[:, None]


class OracleNet(nn.Module):
    """Outputs, in the parameterisation's units, the exact score of a Gaussian mixture."""

    def __init__(self, mixture, sde, param):
        super().__init__()
        self.score, self.sde, self.param = mixture.score(sde), sde, param

    def forward(self, t, x):
        t, x = undo_network_input(self.param, self.sde, t, x)
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


# -- v-prediction and EDM's preconditioning ------------------------------------------------------------
@given(sde=sst.linear_sdes(), seed=st.integers(0, 2**16))
def test_v_target_and_its_direct_maps(sde, seed):
    """v = alpha z - sigma x0 (Salimans and Ho 2022), and x0, z are recovered from (x_t, v) exactly
    for any alpha, sigma: x0 = (alpha x - sigma v) / r^2, z = (sigma x + alpha v) / r^2."""
    _, x0, z, kernel, x_t = _draw(sde, seed)
    a, s = kernel.alpha[:, None], kernel.sigma[:, None]
    v = VPrediction().target(x0, z, kernel)
    torch.testing.assert_close(v, a * z - s * x0, rtol=0, atol=0)
    atol = 1e-9 + 1e-14 / float(kernel.alpha.min())
    torch.testing.assert_close(VPrediction().to_data(v, x_t, kernel), x0, rtol=1e-9, atol=atol)
    torch.testing.assert_close(VPrediction().to_noise(v, x_t, kernel), z, rtol=1e-9, atol=1e-9)


def test_v_prediction_on_vp_is_salimans_and_ho():
    """On a VP SDE (alpha^2 + sigma^2 = 1): x0_hat = alpha x - sigma v and eps_hat = sigma x + alpha v."""
    sde = VPSDE()
    t, _, _, kernel, x_t = _draw(sde, 3)
    v = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    a, s = kernel.alpha[:, None], kernel.sigma[:, None]
    torch.testing.assert_close(VPrediction().to_data(v, x_t, kernel), a * x_t - s * v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        VPrediction().to_noise(v, x_t, kernel), s * x_t + a * v, rtol=1e-12, atol=1e-12
    )


def test_edm_coefficients_are_table_1_on_edm_ve_and_at_sigma_over_alpha_elsewhere():
    from sdegen import EDMVESDE

    sd = 0.5
    param = EDMPreconditioning(sigma_data=sd)
    sigma = torch.tensor([0.002, 0.5, 1.0, 80.0], dtype=F64)
    c_skip, c_out, c_in, c_noise = param.coefficients(TransitionKernel.of(EDMVESDE(), sigma))
    # Karras et al. 2022, Table 1, "Ours": at sigma = 1 with sigma_data = 0.5, c_skip = 0.25 / 1.25.
    torch.testing.assert_close(c_skip[2], torch.tensor(0.2, dtype=F64))
    torch.testing.assert_close(c_out[2], torch.tensor(0.5 / 1.25**0.5, dtype=F64))
    torch.testing.assert_close(c_skip, sd**2 / (sigma**2 + sd**2), rtol=1e-14, atol=0)
    torch.testing.assert_close(c_out, sigma * sd / (sigma**2 + sd**2).sqrt(), rtol=1e-14, atol=0)
    torch.testing.assert_close(c_in, 1 / (sigma**2 + sd**2).sqrt(), rtol=1e-14, atol=0)
    torch.testing.assert_close(c_noise, sigma.log() / 4, rtol=1e-14, atol=0)
    # On VP the same coefficients, at the scaled noise level sigma / alpha, and the network sees x / alpha.
    vp, t = VPSDE(), torch.tensor([0.01, 0.3, 0.9], dtype=F64)
    k = TransitionKernel.of(vp, t)
    ve_k = TransitionKernel(torch.ones_like(t), k.sigma / k.alpha)
    for ours, ve in zip(param.coefficients(k), param.coefficients(ve_k), strict=True):
        torch.testing.assert_close(ours, ve, rtol=1e-14, atol=0)
    x = torch.randn(3, 2, dtype=F64)
    t_in, x_in = param.network_input(t, x, k)
    torch.testing.assert_close(t_in, -vp.log_snr(t) / 4)
    torch.testing.assert_close(x_in, x / k.alpha[:, None] * param.coefficients(k)[2][:, None])


class PointMassNet(nn.Module):
    """The exact network of data concentrated at one point x*: its score -(x - alpha x*) / sigma^2 is
    the conditional score, so every DSM target is met exactly, and the loss vanishes."""

    def __init__(self, point, sde, param):
        super().__init__()
        self.point, self.sde, self.param = point, sde, param

    def forward(self, t, x):
        t, x = undo_network_input(self.param, self.sde, t, x)
        k = TransitionKernel.of(self.sde, t)
        score = -(x - k.alpha[:, None] * self.point) / k.sigma[:, None] ** 2
        return self.param.from_score(score, x, k)


@pytest.mark.parametrize("param", PARAMETERIZATIONS, ids=repr)
def test_a_perfect_network_has_zero_loss_on_its_target(param):
    """A loss is lambda c^2 ||F - target||^2: the exact network of point-mass data has loss 0 (to
    rounding) under every parameterisation and weighting."""
    from sdegen.losses import DenoisingScoreMatching, LikelihoodWeighting

    sde = VPSDE()
    point = torch.tensor([[0.7, -1.2]], dtype=F64)
    model = ScoreModel(PointMassNet(point, sde, param), sde, param)
    x0 = point.expand(64, 2)
    g = torch.Generator().manual_seed(0)
    for loss in (DenoisingScoreMatching(eps=1e-3), DenoisingScoreMatching(LikelihoodWeighting(), eps=1e-3)):
        assert float(loss(model, x0, generator=g)) < 1e-16
    # ... and a wrong network does not.
    wrong = ScoreModel(PointMassNet(point + 0.1, sde, param), sde, param)
    assert float(DenoisingScoreMatching(eps=1e-3)(wrong, x0, generator=g)) > 1e-3


@pytest.mark.parametrize(
    "param", [NoisePrediction(), DataPrediction(), VPrediction(), EDMPreconditioning()], ids=repr
)
def test_the_exact_model_samples_the_same_through_every_parameterization(param):
    """The one exact model written in four parameterisations: DPM-Solver++(2M) (via data_prediction)
    and the probability-flow Euler steps of DDIM give the same samples as the score itself."""
    import sdegen

    sde = VPSDE()
    mixture = GaussianMixture.ring(4, radius=2.0, std=0.3)
    model = ScoreModel(OracleNet(mixture, sde, param), sde, param)
    reference = ScoreModel(OracleNet(mixture, sde, ScorePrediction()), sde, ScorePrediction())
    for sampler in (sdegen.DPMSolverMultistepSampler(steps=12), sdegen.DDIMSampler(steps=12)):
        x, ref = (
            sdegen.sample(sde, m, (64, 2), sampler, generator=torch.Generator().manual_seed(5), dtype=F64).x
            for m in (model, reference)
        )
        torch.testing.assert_close(x, ref, rtol=1e-9, atol=1e-9)


def test_edm_preconditioning_parameter_errors():
    with pytest.raises(ValueError, match="sigma_data"):
        EDMPreconditioning(sigma_data=0.0)
    assert EDMPreconditioning(0.5) == EDMPreconditioning(0.5) != EDMPreconditioning(1.0)
    assert "sigma_data=0.5" in repr(EDMPreconditioning())
