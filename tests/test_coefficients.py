"""The one home of SDE coefficients: the override rule, schedule validation at the entry points, and
the coefficient tables against direct evaluation."""

import math

import pytest
import torch
from _oracle_data import F64

import sdegen
from sdegen import SDE, VESDE, VPSDE, LinearSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.likelihood import ExactTrace
from sdegen.losses import DenoisingScoreMatching
from sdegen.parameterization import ScoreModel, ScorePrediction
from sdegen.sde.coefficients import CoefficientGrid, Coefficients, check_schedule

# -- the override trap ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["drift", "diffusion", "marginal_prob", "reverse_drift"])
def test_a_linear_sde_refuses_overrides_of_its_derived_methods(method):
    with pytest.raises(
        TypeError, match=rf"Inflated overrides {method}\(\) of LinearSDE.*subclass sdegen.SDE"
    ):
        type("Inflated", (VPSDE,), {method: lambda self, *args: None})


C = 2.25  # the noise variance rate of the composed process: g^2 = C beta (a VP diffusion x 1.5)
S0 = 0.7  # data N(0, S0^2)


class ScaledVPByKernel(LinearSDE):
    """Way 1, through the kernel: dx = -beta/2 x dt + sqrt(C beta) dW has alpha = exp(-B/2) and
    sigma^2 = C (1 - exp(-B)) (the variance ODE v' = -beta v + C beta from v(0) = 0)."""

    def __init__(self):
        super().__init__(T=1.0)
        self.vp = VPSDE()

    def alpha(self, t):
        return self.vp.alpha(t)

    def sigma(self, t):
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t):
        return C * self.vp.sigma_squared(t)

    @property
    def prior_std(self):
        return math.sqrt(C)


class ScaledVPByField(SDE):
    """Way 2, through the vector field: the same process as a general SDE."""

    def __init__(self):
        super().__init__(T=1.0)
        self.vp = VPSDE()

    def drift(self, t, x):
        return -0.5 * self.vp.beta(t).reshape(-1, *([1] * (x.ndim - 1))) * x

    def diffusion(self, t):
        return torch.sqrt(C * self.vp.beta(torch.as_tensor(t)))

    def prior_sampling(self, shape, generator=None, device=None, dtype=None):
        return math.sqrt(C) * torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_logp(self, z):
        return torch.distributions.Normal(0.0, math.sqrt(C)).log_prob(z).flatten(1).sum(1)


def _scaled_score(t, x):
    """Exact score of p_t = N(0, alpha^2 S0^2 + C sigma_VP^2) for the composed process."""
    vp = VPSDE()
    tt = t.to(F64)
    var = vp.alpha(tt) ** 2 * S0**2 + C * vp.sigma_squared(tt)
    return -x / var.to(x).unsqueeze(-1)


def test_both_ways_of_composing_an_sde_give_the_same_process_and_not_the_base_one():
    """The composed process, given by its kernel or by its drift and diffusion, samples N(0, S0^2) from the
    same noise; plain VP coefficients (what the trap silently used) would not."""
    n, eps = 4000, 1e-3
    x_T = math.sqrt(C) * torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    predictor = sdegen.PredictorCorrectorSampler(
        sdegen.samplers.EulerMaruyama(), sdegen.samplers.NoneCorrector(), 200
    )
    outs = {
        type(sde).__name__: sdegen.sample(
            sde, _scaled_score, None, predictor, x_T=x_T, eps=eps, generator=torch.Generator().manual_seed(1)
        ).x
        for sde in [ScaledVPByKernel(), ScaledVPByField(), VPSDE()]
    }
    torch.testing.assert_close(outs["ScaledVPByKernel"], outs["ScaledVPByField"], rtol=1e-9, atol=1e-9)
    vp = VPSDE()
    t = torch.tensor(eps, dtype=F64)
    target = float(vp.alpha(t) ** 2 * S0**2 + C * vp.sigma_squared(t))
    se = target * math.sqrt(2 / n)  # standard error of a sample variance
    assert abs(float(outs["ScaledVPByKernel"].var()) - target) < 4 * se + 0.02 * target
    assert abs(float(outs["VPSDE"].var()) - target) > 10 * se


def test_general_sde_coefficients_come_from_its_own_drift_and_diffusion():
    sde, lin = ScaledVPByField(), ScaledVPByKernel()
    ts = torch.linspace(1.0, 1e-3, 7, dtype=F64)
    grid, ref = CoefficientGrid(sde, ts), CoefficientGrid(lin, ts)
    assert grid.a is None and grid.alpha is None
    torch.testing.assert_close(torch.tensor(grid.g2), torch.tensor(ref.g2), rtol=1e-10, atol=1e-12)
    x = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    score = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    t = torch.tensor(0.4, dtype=F64)
    for weight in (1.0, 0.5):
        got = Coefficients(sde).field(t.expand(5), x, score, *Coefficients(sde).at(t), weight=weight)
        want = Coefficients(lin).field(t.expand(5), x, score, *Coefficients(lin).at(t), weight=weight)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE()], ids=lambda s: type(s).__name__)
def test_tabulated_coefficients_equal_direct_evaluation(sde):
    ts = torch.linspace(sde.T, 1e-3, 9, dtype=F64)
    coefficients = Coefficients(sde)
    direct = [coefficients.at_float(t) for t in ts.tolist()]
    coefficients.tabulate(ts.tolist())
    for t, (a, g2) in zip(ts.tolist(), direct, strict=True):
        assert coefficients.lookup(t) == pytest.approx((a, g2), rel=1e-14)
        assert coefficients.at(torch.tensor(t, dtype=F64)) == coefficients.lookup(t)


# -- schedule validation at the entry points --------------------------------------------------

HALF_PI_F32 = float(torch.tensor(math.pi / 2, dtype=torch.float32))  # 1.5707963705..., above pi/2


class Float32Cosine(LinearSDE):
    """alpha(t) = cos(t pi/2) with pi/2 rounded to float32: alpha(1) = -4.4e-8, an invalid kernel at T."""

    def alpha(self, t):
        return torch.cos(t * HALF_PI_F32)

    def sigma(self, t):
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t):
        return 1 - torch.cos(t * HALF_PI_F32) ** 2

    @property
    def prior_std(self):
        return 1.0


class ShrinkingNoise(LinearSDE):
    """sigma^2 = t (1 - t) with alpha = 1: g^2 = 1 - 2t < 0 for t > 1/2, no diffusion has this kernel."""

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t):
        return t * (1 - t)


class NoisyStart(LinearSDE):
    """sigma^2 = 0.01 + t: the kernel does not start at the data."""

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        return torch.sqrt(0.01 + t)


class _CountingNet(torch.nn.Module):
    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def forward(self, t, x):
        self.calls.append(1)
        return -x


@pytest.mark.parametrize(
    "sde, match",
    [
        (Float32Cosine(), r"alpha\(t\) must be finite and > 0 .* alpha\(t\) = -4.37\d*e-08 at t = 1 "),
        (ShrinkingNoise(), r"g\(t\)\^2 must be finite and >= 0 .* at t = 1 "),
        (NoisyStart(), r"invalid kernel at t = 0: alpha\(0\) = 1 and sigma\(0\) = 0.1"),
    ],
    ids=["alpha<0", "g2<0", "sigma(0)>0"],
)
def test_an_invalid_schedule_is_refused_at_every_entry_point_before_any_work(sde, match):
    calls = []

    def score(t, x):
        calls.append(1)
        return -x

    x = torch.zeros(4, 2, dtype=F64)
    entry_points = [
        lambda: sdegen.sample(sde, score, (4, 2), sdegen.ReverseSDESampler("euler", 10)),
        lambda: sdegen.sample(sde, score, (4, 2), sdegen.ProbabilityFlowSampler("dopri5")),
        lambda: sdegen.sample(sde, score, (4, 2), sdegen.DDPMSampler(10)),
        lambda: sdegen.log_likelihood(x, sde, score, divergence=ExactTrace()),
        lambda: sde.reverse(score),
        lambda: sde.probability_flow(score),
        lambda: DenoisingScoreMatching(eps=1e-3)(ScoreModel(_CountingNet(calls), sde, ScorePrediction()), x),
    ]
    for call in entry_points:
        with pytest.raises(ValueError, match=match):
            call()
    assert calls == []


def test_a_valid_schedule_is_checked_once_per_interval():
    class Counting(VPSDE):
        calls = 0

        def diffusion_squared(self, t):
            type(self).calls += 1
            return super().diffusion_squared(t)

    sde = Counting()
    check_schedule(sde, 1e-3, 1.0)
    check_schedule(sde, 1e-3, 1.0)
    assert Counting.calls == 1
    check_schedule(sde, 1e-5, 1.0)
    assert Counting.calls == 2


def test_the_oracle_still_samples_on_a_user_schedule_valid_where_it_is_used():
    """A cosine schedule bounded away from alpha = 0 (t <= 0.95) is valid and samples the oracle."""

    class BoundedCosine(Float32Cosine):
        def __init__(self):
            super().__init__(T=0.95)

        @property
        def prior_std(self):
            return float(self.sigma(torch.tensor(self.T, dtype=F64)))

    sde = BoundedCosine()
    data = GaussianMixture.ring(4, 2.0, 0.3)
    out = sdegen.sample(
        sde,
        data.score(sde),
        None,
        sdegen.ProbabilityFlowSampler("dopri5", rtol=1e-6, atol=1e-6),
        x_T=data.marginal(sde, sde.T).sample(2000, generator=torch.Generator().manual_seed(0)),
    )
    target = data.marginal(sde, 1e-3)
    assert abs(float(out.x.pow(2).sum(1).mean()) - float(target.sample(20000).pow(2).sum(1).mean())) < 0.2
