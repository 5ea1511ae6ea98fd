"""Score-matching losses on the Gaussian-mixture oracle.

Each objective is minimised by the true score: with common random numbers (one seeded generator
per comparison), the loss at the exact score plus delta * p is a quadratic in delta whose linear
coefficient has mean zero, so the loss at delta = 0 is below the loss at delta = +-0.5, and the
gradient w.r.t. delta at 0 is zero within its Monte-Carlo standard error while at delta = 0.5 it
is many standard errors away from zero.
"""

import math

import pytest
import torch
from torch import nn

from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.likelihood import Hutchinson
from sdegen.losses import (
    DDPMLoss,
    DenoisingScoreMatching,
    ExplicitScoreMatching,
    ImplicitScoreMatching,
    LikelihoodWeighting,
    NCSNLoss,
    SigmaSquaredWeighting,
    SlicedScoreMatching,
)
from sdegen.parameterization import (
    DataPrediction,
    NoisePrediction,
    ScoreModel,
    ScorePrediction,
    TransitionKernel,
)

F64 = torch.float64
MIXTURE = GaussianMixture.ring(4, radius=2.0, std=0.4)
N = 4096


def perturbation(t, x):
    """A smooth, non-conservative vector field with non-zero divergence."""
    w = torch.tensor([[0.7, -0.4], [0.3, 0.9]], dtype=x.dtype)
    return torch.tanh(x @ w + t[:, None]) + 0.2 * x.flip(1)


class PerturbedOracle(nn.Module):
    """Outputs, in ``param``'s units, the score exact_score(t, x) + delta * perturbation(t, x)."""

    def __init__(self, sde, param, delta=0.0):
        super().__init__()
        self.score, self.sde, self.param = MIXTURE.score(sde), sde, param
        self.delta = nn.Parameter(torch.tensor(float(delta), dtype=F64))

    def forward(self, t, x):
        s = self.score(t, x) + self.delta * perturbation(t, x)
        return self.param.from_score(s, x, TransitionKernel.of(self.sde, t))


class DiscreteOracle(nn.Module):
    """The exact noise prediction of the discrete DDPM chain, for the step whose time is t."""

    def __init__(self, schedule, delta=0.0):
        super().__init__()
        self.schedule = schedule
        self.delta = nn.Parameter(torch.tensor(float(delta), dtype=F64))

    def forward(self, t, x):
        n = self.schedule.t.numel()
        index = torch.round(t * (n - 1) / self.schedule.t[-1]).long()
        out = torch.empty_like(x)
        for i in index.unique().tolist():
            rows = index == i
            abar = self.schedule.alphas_cumprod[i]
            a, s = abar.sqrt(), (1 - abar).sqrt()
            p_i = GaussianMixture(
                MIXTURE.weights,
                a * MIXTURE.means,
                a**2 * MIXTURE.covariances + s**2 * torch.eye(2, dtype=F64),
            )
            score = p_i.score_at_zero(x[rows]) + self.delta * perturbation(t[rows], x[rows])
            out[rows] = -s * score
        return out


def _data(seed=0):
    return MIXTURE.sample(N, generator=torch.Generator().manual_seed(seed))


def _per_sample(loss, model, x0, seed):
    return loss(model, x0, generator=torch.Generator().manual_seed(seed))


def _per_sample_nograd(loss, model, x0, seed):
    with torch.no_grad():
        return _per_sample(loss, model, x0, seed)


CONTINUOUS_LOSSES = [
    DenoisingScoreMatching(reduction="none"),
    DenoisingScoreMatching(LikelihoodWeighting(), reduction="none"),
    DenoisingScoreMatching(LikelihoodWeighting(importance_sampling=True), reduction="none"),
    SlicedScoreMatching(reduction="none"),
    SlicedScoreMatching(projection="gaussian", reduction="none"),
    SlicedScoreMatching(variance_reduced=True, reduction="none"),
    ExplicitScoreMatching(MIXTURE.score(VPSDE()), reduction="none"),
    ImplicitScoreMatching(reduction="none", eps=1e-3),
    ImplicitScoreMatching(divergence=Hutchinson(), reduction="none", eps=1e-3),
]


def _check_minimised_at_the_true_score(make_model, loss, x0, seed):
    model = make_model(0.0)
    base = _per_sample_nograd(loss, model, x0, seed)
    for delta in (-0.5, 0.5):
        moved = _per_sample_nograd(loss, make_model(delta), x0, seed)
        diff = moved - base  # common random numbers: only the delta terms remain
        se = diff.std() / math.sqrt(N)
        assert diff.mean() > 3 * se, f"delta={delta}: mean {float(diff.mean()):.3g}, se {float(se):.3g}"
    # d loss / d delta at the true score: zero in expectation. Per-sample derivatives come from the
    # symmetric difference, exact for these quadratics in delta.
    h = 1e-3
    plus, minus = (_per_sample_nograd(loss, make_model(d), x0, seed) for d in (h, -h))
    slopes = (plus - minus) / (2 * h)
    se = slopes.std() / math.sqrt(N)
    _per_sample(loss, model, x0, seed).mean().backward()
    grad = model.net.delta.grad
    torch.testing.assert_close(grad, slopes.mean(), rtol=1e-6, atol=1e-8)
    assert grad.abs() <= 3.5 * se, f"gradient at the true score {float(grad):.3g} vs se {float(se):.3g}"
    # ... while a wrong score has a gradient far from zero (the test has power).
    far = make_model(0.5)
    _per_sample(loss, far, x0, seed).mean().backward()
    assert far.net.delta.grad > 10 * se


@pytest.mark.parametrize("loss", CONTINUOUS_LOSSES, ids=repr)
def test_continuous_losses_are_minimised_by_the_true_score(loss):
    sde = VPSDE()
    make = lambda d: ScoreModel(PerturbedOracle(sde, NoisePrediction(), d), sde, NoisePrediction())
    _check_minimised_at_the_true_score(make, loss, _data(1), seed=2)


@pytest.mark.parametrize("sde", [SubVPSDE(), VESDE(sigma_min=0.01, sigma_max=10.0)], ids=repr)
def test_dsm_is_minimised_by_the_true_score_for_other_sdes(sde):
    loss = DenoisingScoreMatching(reduction="none", eps=1e-3)
    make = lambda d: ScoreModel(PerturbedOracle(sde, ScorePrediction(), d), sde, ScorePrediction())
    _check_minimised_at_the_true_score(make, loss, _data(3), seed=4)


def test_ncsn_loss_is_minimised_by_the_true_score_at_its_levels():
    sde = VESDE(sigma_min=0.01, sigma_max=10.0)
    loss = NCSNLoss(10, reduction="none")
    make = lambda d: ScoreModel(PerturbedOracle(sde, ScorePrediction(), d), sde, ScorePrediction())
    _check_minimised_at_the_true_score(make, loss, _data(3), seed=4)


def test_ddpm_loss_is_minimised_by_the_discrete_chains_noise_prediction():
    sde = VPSDE()
    loss = DDPMLoss(steps=20, reduction="none")
    schedule = sde.discretize(20, dtype=F64)
    make = lambda d: ScoreModel(DiscreteOracle(schedule, d), sde, NoisePrediction())
    _check_minimised_at_the_true_score(make, loss, _data(5), seed=6)


@pytest.mark.parametrize(
    "loss",
    [
        DenoisingScoreMatching(reduction="none"),
        DenoisingScoreMatching(LikelihoodWeighting(importance_sampling=True), reduction="none"),
        SlicedScoreMatching(reduction="none"),
    ],
    ids=repr,
)
def test_losses_do_not_depend_on_the_parameterization(loss):
    # lambda c^2 ||output - target||^2 = lambda ||score - conditional score||^2 for every c.
    sde = VPSDE()
    x0 = _data(7)[:256]
    values = [
        _per_sample(loss, ScoreModel(PerturbedOracle(sde, p, 0.2), sde, p), x0, seed=8)
        for p in (ScorePrediction(), NoisePrediction(), DataPrediction())
    ]
    for v in values[1:]:
        torch.testing.assert_close(v, values[0], rtol=1e-7, atol=1e-9)


def test_weightings_estimate_the_same_time_average():
    # E[w L(t)] = 1/(T - eps) int_eps^T lambda(t) L(t) dt for plain and importance-sampled t.
    sde, eps, n = VPSDE(), 1e-3, 200_000
    L = lambda t: 1.0 / (1.0 + 20 * t)  # any per-time loss
    grid = torch.linspace(eps, 1.0, 200_001, dtype=F64)
    f = sde.diffusion_squared(grid) * L(grid)
    exact = float(torch.trapezoid(f, grid)) / (1.0 - eps)
    for weighting in (LikelihoodWeighting(), LikelihoodWeighting(importance_sampling=True)):
        t, w = weighting.sample(sde, n, eps=eps, generator=torch.Generator().manual_seed(9), dtype=F64)
        assert float(t.min()) >= eps and float(t.max()) <= 1.0
        est = w * L(t)
        assert abs(float(est.mean()) - exact) < 4 * float(est.std()) / math.sqrt(n)
    t, w = SigmaSquaredWeighting().sample(
        sde, 8, eps=eps, generator=torch.Generator().manual_seed(0), dtype=F64
    )
    torch.testing.assert_close(w, sde.sigma(t) ** 2)


def test_importance_sampled_times_follow_the_closed_form_vp_law():
    # For VP, g^2/sigma^2 = d/dt log expm1(B(t)), so F(t) = log(expm1(B(t))/expm1(B(eps))) / Z.
    sde, eps, n = VPSDE(), 1e-5, 20_000
    weighting = LikelihoodWeighting(importance_sampling=True)
    log_em1 = lambda t: torch.log(torch.expm1(sde.integrated_beta(torch.as_tensor(t, dtype=F64))))
    Z = float(log_em1(1.0) - log_em1(eps))
    assert abs(weighting.normalizer(sde, eps) - Z) < 1e-7 * Z
    t, _ = weighting.sample(sde, n, eps=eps, generator=torch.Generator().manual_seed(10), dtype=F64)
    cdf = (log_em1(t.sort().values) - log_em1(eps)) / Z
    ks = float((cdf - torch.arange(1, n + 1, dtype=F64) / n).abs().max())
    assert ks < 1.63 / math.sqrt(n)  # the 1 % critical value of the Kolmogorov-Smirnov statistic


def test_reductions_and_noise_prediction_equals_l_simple():
    sde = VPSDE()
    model = ScoreModel(PerturbedOracle(sde, NoisePrediction(), 0.2), sde, NoisePrediction())
    x0 = _data(11)[:64]
    per = _per_sample(DenoisingScoreMatching(reduction="none"), model, x0, 12)
    assert per.shape == (64,)
    torch.testing.assert_close(_per_sample(DenoisingScoreMatching(), model, x0, 12), per.mean())
    torch.testing.assert_close(_per_sample(DenoisingScoreMatching(reduction="sum"), model, x0, 12), per.sum())
    # With lambda = sigma^2 a noise-predicting model's DSM is ||z_hat - z||^2 (Ho et al. eq. 14).
    g = torch.Generator().manual_seed(12)
    t = 1e-5 + (1 - 1e-5) * torch.rand(64, generator=g, dtype=F64)
    z = torch.randn(x0.shape, generator=g, dtype=F64)
    k = TransitionKernel.of(sde, t)
    z_hat = model.output(t, k.alpha[:, None] * x0 + k.sigma[:, None] * z)
    torch.testing.assert_close(per, ((z_hat - z) ** 2).sum(1))


def test_loss_argument_errors():
    sde = VPSDE()
    model = ScoreModel(PerturbedOracle(sde, NoisePrediction()), sde, NoisePrediction())
    x0 = _data()[:4]
    with pytest.raises(ValueError, match="reduction must be one of"):
        DenoisingScoreMatching(reduction="avg")
    with pytest.raises(TypeError, match="weighting must be a TimeWeighting"):
        DenoisingScoreMatching(weighting="likelihood")
    with pytest.raises(ValueError, match=r"eps must lie in \(0, T\)"):
        DenoisingScoreMatching(eps=0.0)(model, x0)
    with pytest.raises(ValueError, match="projection must be one of"):
        SlicedScoreMatching(projection="sphere")
    with pytest.raises(ValueError, match="n_projections must be >= 1"):
        SlicedScoreMatching(n_projections=0)
    with pytest.raises(TypeError, match="model must be a ScoreModel"):
        DenoisingScoreMatching()(model.net, x0)
    with pytest.raises(ValueError, match="x0 must have shape"):
        DenoisingScoreMatching()(model, torch.tensor(1.0, dtype=F64))
    with pytest.raises(TypeError, match="importance_sampling must be a bool"):
        LikelihoodWeighting(importance_sampling="yes")
    with pytest.raises(ValueError, match="steps must be >= 2"):
        DDPMLoss(steps=1)
    for other in (SubVPSDE(), VESDE()):
        m = ScoreModel(PerturbedOracle(other, ScorePrediction()), other, ScorePrediction())
        with pytest.raises(TypeError, match="DDPMLoss needs an SDE whose discretize"):
            DDPMLoss(steps=10)(m, x0)
