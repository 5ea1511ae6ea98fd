"""Time grids: their formulas on every kind of linear SDE, and every grid sampler taking them."""

import math

import pytest
import torch
from _oracle_data import F64, MIXTURE, SDES, null
from _samplers import registered
from _sdes import OrnsteinUhlenbeck
from test_reverse_sde import _NonLinearOU

import sdegen
from sdegen import (
    AnnealedLangevinSampler,
    CustomGrid,
    DDIMSampler,
    EDMStochasticSampler,
    KarrasGrid,
    LinearSDE,
    LogSNRGrid,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseSDESampler,
    UniformGrid,
)
from sdegen.samplers import EulerMaruyama, LangevinCorrector
from sdegen.sde import EDMVESDE, CosineVPSDE, DiscreteVPSDE
from sdegen.testing.oracle import check_samples

# Every kind of schedule: closed-form inverses (VP, sub-VP, VE, cosine VP, EDM), bisection (OU) and
# a discrete table (Newton per spline segment).
ALL_SDES = {
    **SDES,
    "cosineVP": CosineVPSDE(),
    "EDMVE": EDMVESDE(),
    "OU": OrnsteinUhlenbeck(),
    "discreteVP": DiscreteVPSDE.from_beta_schedule("linear"),
}


def _lam(sde, ts):
    return sde.log_snr(ts)


@pytest.mark.parametrize("name", list(ALL_SDES))
@pytest.mark.parametrize("steps", [1, 7, 40])
def test_grid_formulas(name, steps):
    """Each grid runs from T to eps in float64, strictly decreasing, and is uniform in its variable:
    t (UniformGrid), lambda = log(alpha/sigma) (LogSNRGrid), (sigma/alpha)^(1/rho) (KarrasGrid)."""
    sde = ALL_SDES[name]
    eps = sde.sampling_eps
    for grid in [UniformGrid(steps), LogSNRGrid(steps), KarrasGrid(steps), KarrasGrid(steps, rho=3.0)]:
        ts = grid.times(sde, eps)
        assert ts.dtype == F64 and ts.shape == (steps + 1,)
        assert float(ts[0]) == sde.T and float(ts[-1]) == eps
        assert bool((ts[1:] < ts[:-1]).all())
    lam = _lam(sde, LogSNRGrid(steps).times(sde, eps))
    torch.testing.assert_close(lam, torch.linspace(float(lam[0]), float(lam[-1]), steps + 1, dtype=F64))
    for rho in (7.0, 3.0):
        s_root = torch.exp(
            -_lam(sde, KarrasGrid(steps, rho=rho).times(sde, eps)) / rho
        )  # (sigma/alpha)^(1/rho)
        torch.testing.assert_close(
            s_root, torch.linspace(float(s_root[0]), float(s_root[-1]), steps + 1, dtype=F64)
        )
    torch.testing.assert_close(
        UniformGrid(steps).times(sde, eps), torch.linspace(sde.T, eps, steps + 1, dtype=F64)
    )


def test_karras_grid_is_eq5_of_karras_et_al_on_edm_ve():
    """On EDM's VE (sigma = t, alpha = 1) the Karras grid is EDM's own noise levels: sigma_i =
    (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho with N - 1 = steps."""
    sde, N, rho = EDMVESDE(80.0), 18, 7.0
    i = torch.arange(N, dtype=F64)
    edm = (80.0 ** (1 / rho) + i / (N - 1) * (0.002 ** (1 / rho) - 80.0 ** (1 / rho))) ** rho
    torch.testing.assert_close(KarrasGrid(N - 1).times(sde, 0.002), edm, rtol=1e-12, atol=0)


def test_karras_grid_tends_to_the_log_snr_grid_and_rho_1_is_uniform_in_sigma():
    sde, eps = SDES["VP"], 1e-3
    lam = _lam(sde, KarrasGrid(10, rho=1e6).times(sde, eps))
    torch.testing.assert_close(lam, _lam(sde, LogSNRGrid(10).times(sde, eps)), rtol=0, atol=1e-4)
    s = torch.exp(-_lam(sde, KarrasGrid(10, rho=1.0).times(sde, eps)))
    torch.testing.assert_close(s, torch.linspace(float(s[0]), float(s[-1]), 11, dtype=F64))


def test_custom_grid_and_tensors_of_times():
    ts = [1.0, 0.6, 0.2, 0.05]
    grid = CustomGrid(ts)
    assert grid.steps == 3 and "CustomGrid(<4 times from 1 to 0.05>)" == repr(grid)
    torch.testing.assert_close(grid.times(SDES["VP"], 1e-3), torch.tensor(ts, dtype=F64))
    a = sdegen.sample(
        SDES["VP"], MIXTURE.score(SDES["VP"]), (4, 2), DDIMSampler(grid=ts), generator=torch.Generator()
    )
    assert a.nfe == 3


# -- every grid sampler takes every grid ------------------------------------------------------

# Every registered sampler (dopri5 takes the grid as its output times), and variants beside them.
GRID_SAMPLERS = registered(
    extra={
        "pf-rk4": lambda **kw: ProbabilityFlowSampler("rk4", **kw),
        "sde-srk": lambda **kw: ReverseSDESampler("srk", **kw),
        "pc-em": lambda **kw: PredictorCorrectorSampler(EulerMaruyama(), LangevinCorrector(n_steps=1), **kw),
        "edm-churn-5": lambda **kw: EDMStochasticSampler(s_churn=5.0, **kw),
    }
)


@pytest.mark.parametrize("make", list(GRID_SAMPLERS.values()), ids=list(GRID_SAMPLERS))
@pytest.mark.parametrize(
    "grid",
    [UniformGrid(6), LogSNRGrid(6), KarrasGrid(6), CustomGrid([1.0, 0.7, 0.3, 0.1, 0.02, 0.01, 1e-3])],
    ids=repr,
)
def test_every_grid_sampler_steps_through_the_grid_it_is_given(make, grid):
    """The trajectory is at the grid's times, and the sampler evaluates the score as often as its
    steps say (adaptive dopri5 takes the grid as output times)."""
    sde = SDES["VP"]
    sampler = make(grid=grid)
    assert sampler.steps == 6 and sampler.grid is grid
    out = sdegen.sample(
        sde,
        MIXTURE.score(sde),
        (5, 2),
        sampler,
        generator=torch.Generator().manual_seed(0),
        return_trajectory=True,
    )
    torch.testing.assert_close(out.ts, grid.times(sde, sde.sampling_eps))
    assert out.trajectory.shape == (7, 5, 2)
    if sampler.nfe_per_step is not None:
        assert out.nfe == 6 * sampler.nfe_per_step


@pytest.mark.parametrize("make", list(GRID_SAMPLERS.values()), ids=list(GRID_SAMPLERS))
def test_steps_and_a_grid_together_are_an_error(make):
    with pytest.raises(
        ValueError, match=r"pass steps=10 or grid=\.\.\., not both: the grid sets the number of steps"
    ):
        make(steps=10, grid=LogSNRGrid(10))
    with pytest.raises(ValueError, match=r"pass steps=10 or grid=\.\.\., not both"):
        make(steps=10, grid=[1.0, 0.5, 0.1])


@pytest.mark.parametrize(
    "make",
    [GRID_SAMPLERS[k] for k in ("pf-rk4", "pc", "ddpm", "annealed-langevin")],
    ids=["pf", "pc", "ddpm", "ald"],
)
def test_the_older_ts_argument_is_a_custom_grid(make):
    ts = [1.0, 0.5, 0.1]
    assert isinstance(make(ts=ts).grid, CustomGrid) and make(ts=ts).steps == 2
    with pytest.raises(ValueError, match=r"pass steps=3 or ts=\.\.\., not both"):
        make(steps=3, ts=ts)
    with pytest.raises(ValueError, match=r"pass grid=\.\.\. or ts=\.\.\., not both"):
        make(grid=LogSNRGrid(3), ts=ts)


def test_reverse_sde_on_a_log_snr_grid_reproduces_the_oracle():
    """torchsde steps uniformly, so a non-uniform grid is solved one step per call: Euler-Maruyama
    on 150 steps geometric in sigma/alpha still samples the oracle."""
    sde = SDES["VP"]
    x_T = MIXTURE.marginal(sde, sde.T).sample(1000, generator=torch.Generator().manual_seed(0))
    out = sdegen.sample(
        sde,
        MIXTURE.score(sde),
        None,
        ReverseSDESampler("euler", grid=LogSNRGrid(150)),
        x_T=x_T,
        generator=torch.Generator().manual_seed(1),
    )
    assert out.nfe == 150
    report = check_samples(
        out.x, MIXTURE.marginal(sde, sde.sampling_eps), null=null("VP", 1000), z_tolerance=4.5
    )
    assert report, report


def test_annealed_langevin_levels_are_geometric_in_sigma_over_alpha_by_default():
    sde = SDES["VP"]
    sampler = AnnealedLangevinSampler(50)
    assert (
        isinstance(sampler.grid, LogSNRGrid)
        and repr(sampler) == "AnnealedLangevinSampler(steps=50, n_steps_each=10, snr=0.16)"
    )
    ratios = torch.exp(-torch.diff(_lam(sde, sampler.time_grid(sde, 1e-3))))
    torch.testing.assert_close(ratios, ratios[:1].expand(50))  # sigma/alpha falls by one factor per level
    assert repr(AnnealedLangevinSampler(grid=UniformGrid(100))).startswith(
        "AnnealedLangevinSampler(grid=UniformGrid(steps=100)"
    )


# -- errors -------------------------------------------------------------------------------------


class _Decaying(LinearSDE):
    """alpha = 1 - t reaches 0 at T = 1: lambda(T) = -inf."""

    def alpha(self, t):
        return 1 - t

    def sigma(self, t):
        return t


class _Bump(LinearSDE):
    """sigma rises and falls again, below sigma(eps) at T: lambda is not monotone, no grid in
    lambda from T to eps exists."""

    def __init__(self):
        super().__init__(T=0.999)

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        return torch.sin(math.pi * t)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: LogSNRGrid(0), ValueError, "steps must be >= 1; got steps=0"),
        (lambda: KarrasGrid(2.5), TypeError, "steps must be an int"),
        (lambda: KarrasGrid(10, rho=0.0), ValueError, "rho must be > 0; got rho=0"),
        (lambda: CustomGrid([1.0, 1.0]), ValueError, r"ts must be strictly decreasing"),
        (
            lambda: DDIMSampler(grid="karras"),
            TypeError,
            r"grid must be a 1-D tensor or a sequence of floats; got 'karras'.*LogSNRGrid",
        ),
        (lambda: DDIMSampler(grid=3), TypeError, r"grid must be a 1-D tensor or a sequence of floats; got 3"),
        (
            lambda: ReverseSDESampler("reversible_heun", grid=LogSNRGrid(10)),
            ValueError,
            "reversible_heun' carries its state .* needs uniform steps",
        ),
    ],
)
def test_invalid_grids(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_grids_in_the_noise_level_need_a_linear_sde_with_finite_log_snr():
    with pytest.raises(
        TypeError,
        match=r"LogSNRGrid\(steps=4\) needs the Gaussian transition kernel of a LinearSDE .*UniformGrid",
    ):
        LogSNRGrid(4).times(_NonLinearOU(), 0.01)
    with pytest.raises(
        ValueError, match=r"lambda\(t\) = log\(alpha/sigma\) of .* is -inf at t=1.*UniformGrid"
    ):
        KarrasGrid(4).times(_Decaying(), 0.01)
    with pytest.raises(
        ValueError,
        match=r"is not strictly decreasing.*lambda\(t\) = log\(alpha/sigma\) of _Bump strictly decreases",
    ):
        LogSNRGrid(20).times(_Bump(), 0.01)
    assert math.isfinite(float(UniformGrid(4).times(_Decaying(), 0.01)[0]))
