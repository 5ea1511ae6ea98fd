"""sdegen.testing: each check passes on a correct object and fails on a deliberately broken one."""

import functools
import math
import subprocess
import sys

import pytest
import torch
import torchdiffeq
from _sdes import OrnsteinUhlenbeck
from hypothesis import find, given

import sdegen
from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.metrics import mmd
from sdegen.testing import strategies as sst
from sdegen.testing.convergence import check_order, empirical_order
from sdegen.testing.likelihood_check import check_likelihood
from sdegen.testing.marginals import check_forward_simulation, check_marginals, check_moment_odes
from sdegen.testing.oracle import check_samples
from sdegen.testing.result import CheckResult
from sdegen.testing.sampler_check import check_sampler
from sdegen.testing.two_sample import two_sample_test

# -- deliberately broken SDEs ----------------------------------------------------------------


class WrongSignDrift(VPSDE):
    """The VP drift with the wrong sign: +beta/2 x."""

    def drift_coefficient(self, t):
        return 0.5 * self.beta(t)


class InflatedDiffusion(VESDE):
    """The VE diffusion off by a factor 1.05 (variance by 1.1025)."""

    def diffusion_squared(self, t):
        return 1.05**2 * super().diffusion_squared(t)


# -- check_marginals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sde", [VPSDE(), SubVPSDE(), VESDE(), OrnsteinUhlenbeck(theta=1.0, T=3.0)], ids=lambda s: type(s).__name__
)
def test_check_marginals_passes_on_correct_sdes(sde):
    result = check_marginals(sde, n_paths=10000)
    assert result, str(result)
    assert len(result.parts) == 2 and all(result.parts)


@given(sde=sst.linear_sdes())
def test_moment_odes_hold_for_drawn_sdes(sde):
    check_moment_odes(sde).raise_if_failed()


def test_check_marginals_catches_a_drift_with_the_wrong_sign():
    result = check_marginals(WrongSignDrift(), n_paths=10000)
    assert not result
    moments, simulation = result.parts
    assert not moments and not simulation
    assert "dm/dt = f(t, m)" in str(result) and "FAIL" in str(result)


def test_check_marginals_catches_a_diffusion_off_by_five_percent():
    sde = InflatedDiffusion()
    assert not check_moment_odes(sde)
    # Simulation alone also sees it: the std is 5 % too large, z ~ 0.05 sqrt(2n) = 10.
    sim = check_forward_simulation(sde, n_paths=20000)
    assert not sim and sim.parts[1].statistic > 7


def test_check_marginals_rejects_sdes_without_marginals():
    class Nonlinear(sdegen.SDE):
        def drift(self, t, x):
            return -(x**3)

        def diffusion(self, t):
            return torch.ones_like(torch.as_tensor(t))

        def prior_sampling(self, shape, generator=None, device=None, dtype=None):
            return torch.randn(shape, generator=generator)

        def prior_logp(self, z):
            return -0.5 * z.pow(2).flatten(1).sum(1)

    with pytest.raises(TypeError, match="defines no marginal_prob"):
        check_marginals(Nonlinear())
    with pytest.raises(TypeError, match="sde must be an sdegen.SDE"):
        check_marginals("VP")
    with pytest.raises(ValueError, match=r"x0 must have shape \[1, ...\]"):
        check_marginals(VPSDE(), x0=torch.zeros(2, 2))


# -- empirical_order -------------------------------------------------------------------------


def test_empirical_order_recovers_a_power_law():
    h = [0.1, 0.05, 0.025, 0.0125]
    fit = empirical_order(h, [3.0 * v**2.5 for v in h])
    assert fit.order == pytest.approx(2.5, abs=1e-12)
    assert fit.constant == pytest.approx(3.0, rel=1e-10)
    assert fit.order_stderr == pytest.approx(0.0, abs=1e-10)


def _ode_error(method: str, h: float) -> float:
    """Global error at t = 1 of dx/dt = -x cos(t), x(0) = 1, whose solution is exp(-sin t)."""
    n = round(1 / h)
    ts = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    x = torchdiffeq.odeint(
        lambda t, x: -x * torch.cos(t), torch.ones(1, dtype=torch.float64), ts, method=method
    )
    return abs(float(x[-1, 0]) - math.exp(-math.sin(1.0)))


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_check_order_confirms_torchdiffeq_solvers(method, order):
    h = [1 / 8, 1 / 16, 1 / 32, 1 / 64]
    result = check_order(h, lambda v: _ode_error(method, v), expected=order, tolerance=0.15)
    assert result, str(result)


def test_check_order_catches_a_broken_solver():
    """A 'midpoint' method that evaluates the slope at the start twice is only Euler: order 1, not 2."""

    def broken_midpoint(h):
        n, x, t = round(1 / h), 1.0, 0.0
        for _ in range(n):
            k1 = -x * math.cos(t)
            x_mid = x + 0.5 * h * k1
            k2 = -x_mid * math.cos(t)  # bug: should be cos(t + h / 2) ... and x_mid is right
            x, t = x + h * (0.5 * k1 + 0.5 * k2), t + h
        return abs(x - math.exp(-math.sin(1.0)))

    h = [1 / 16, 1 / 32, 1 / 64, 1 / 128]
    result = check_order(h, broken_midpoint, expected=2.0, tolerance=0.25)
    assert not result
    assert empirical_order(h, [broken_midpoint(v) for v in h]).order == pytest.approx(1.0, abs=0.1)


def test_empirical_order_errors():
    with pytest.raises(ValueError, match="same length"):
        empirical_order([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="two distinct step sizes"):
        empirical_order([0.1, 0.1], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"errors\[1\] must be > 0"):
        empirical_order([0.1, 0.2], [1.0, 0.0])


# -- the calibrated energy test ----------------------------------------------------------------


def test_two_sample_tests_pass_exact_samples_and_fail_distorted_ones():
    gm = GaussianMixture.ring()
    ref = lambda n, g: gm.sample(n, generator=g)  # noqa: E731
    local_mmd = functools.partial(mmd, bandwidth=0.5)
    exact = gm.sample(1000, generator=torch.Generator().manual_seed(11))
    assert two_sample_test(exact, ref)
    assert two_sample_test(exact, ref, statistic=local_mmd)
    # Modes of std 0.1 instead of 0.5 (a sampler that lost noise): the energy distance, dominated by
    # the ring's radius 4, barely sees it; an MMD at the modes' scale does.
    g = torch.Generator().manual_seed(0)
    collapsed = gm.means[torch.randint(0, 8, (1000,), generator=g)] + 0.1 * torch.randn(1000, 2, generator=g)
    result = two_sample_test(collapsed, ref, statistic=local_mmd)
    assert not result and result.statistic > 20, str(result)
    # A 20 % scale error is caught by the default energy distance.
    assert not two_sample_test(1.2 * exact, ref)
    assert not two_sample_test(exact * float("nan"), ref)


def test_two_sample_test_errors():
    gm = GaussianMixture.ring()
    with pytest.raises(ValueError, match="must return shape"):
        two_sample_test(torch.zeros(10, 3), lambda n, g: gm.sample(n, generator=g))
    with pytest.raises(ValueError, match="n_null must be >= 3"):
        two_sample_test(torch.zeros(10, 2), lambda n, g: gm.sample(n, generator=g), n_null=1)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        mmd(torch.zeros(10, 2), torch.zeros(10, 2), bandwidth=0.0)


# -- results and strategies --------------------------------------------------------------------


def test_check_result_reports_and_raises():
    ok = CheckResult.from_statistic("a", 0.5, 1.0, "x vs y")
    bad = CheckResult.from_statistic("b", 2.0, 1.0, "u vs v")
    both = CheckResult.all_of("both", [ok, bad])
    assert ok and not bad and not both
    assert both.statistic == pytest.approx(2.0)
    assert "[FAIL] b: statistic 2" in str(both) and "[PASS] a" in str(both)
    with pytest.raises(AssertionError, match="u vs v"):
        both.raise_if_failed()
    assert not CheckResult.from_statistic("nan", float("nan"), 1.0, "")


def test_strategies_shrink_to_readable_defaults():
    assert repr(find(sst.linear_sdes(), lambda s: True)) == "VPSDE(beta_min=0.1, beta_max=20, T=1)"
    assert repr(find(sst.ve_sdes(), lambda s: True)) == "VESDE(sigma_min=0.01, sigma_max=50, T=1)"
    gm = find(sst.gaussian_mixtures(), lambda g: g.dim >= 2)
    assert gm.dim == 2 and gm.n_components == 1


@given(gm=sst.gaussian_mixtures(dim=3, event_shape=(1, 3)), shape=sst.data_shapes())
def test_strategies_draw_valid_objects(gm, shape):
    assert gm.event_shape == (1, 3)
    assert float(gm.weights.sum()) == pytest.approx(1.0)
    assert bool((torch.linalg.eigvalsh(gm.covariances) > 0.04).all())
    assert all(s >= 1 for s in shape) and 1 <= len(shape) <= 4


# -- check_likelihood --------------------------------------------------------------------------


def _exact_likelihood(x, sde, score_fn, *, eps, prior_logp):
    return sdegen.log_likelihood(
        x, sde, score_fn, divergence=sdegen.ExactTrace(), rtol=1e-7, atol=1e-7, eps=eps, prior_logp=prior_logp
    )


def _likelihood_without_divergence(x, sde, score_fn, *, eps, prior_logp):
    """A broken routine: transports x to z along the ODE but forgets the divergence term."""
    return prior_logp(_exact_likelihood(x, sde, score_fn, eps=eps, prior_logp=prior_logp).z)


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.05, 10.0)], ids=lambda s: type(s).__name__)
def test_check_likelihood_passes_sdegens_likelihood_and_catches_a_missing_divergence(sde):
    gm = GaussianMixture([0.4, 0.6], [[-1.0, 0.5], [1.5, -0.5]], [0.3, 0.5])
    good = check_likelihood(_exact_likelihood, sde, gm, n=16, tolerance=1e-3)
    assert good, str(good)
    bad = check_likelihood(_likelihood_without_divergence, sde, gm, n=16, tolerance=1e-3)
    assert not bad and bad.statistic > 0.1


def test_check_likelihood_errors():
    gm = GaussianMixture.ring()
    with pytest.raises(TypeError, match="likelihood must be callable"):
        check_likelihood("nll", VPSDE(), gm)
    with pytest.raises(ValueError, match=r"likelihood returned logp of shape \(3,\)"):
        check_likelihood(lambda x, sde, s, eps, prior_logp: torch.zeros(3), VPSDE(), gm, n=8)


# -- check_sampler -------------------------------------------------------------------------------


def _euler_maruyama(noise: bool):
    """A user's hand-written reverse-SDE sampler; ``noise=False`` is the bug of skipping the noise."""

    def sampler(sde, score_fn, x_T, *, eps, generator, steps=200):
        ts = torch.linspace(sde.T, eps, steps + 1, dtype=torch.float64)
        x = x_T
        for t0, t1 in zip(ts[:-1], ts[1:], strict=True):
            h, t = float(t0 - t1), t0.expand(x.shape[0])
            x = x - sde.reverse_drift(t, x, score_fn(t, x)) * h
            if noise:
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
                x = x + sdegen._broadcast.expand_like(sde.diffusion(t), x) * math.sqrt(h) * z
        return x

    sampler.__name__ = f"euler_maruyama(noise={noise})"
    return sampler


MIXTURE_2D = GaussianMixture([0.5, 0.3, 0.2], [[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]], [0.6, 0.4, 0.3])


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.01, 10.0)], ids=lambda s: type(s).__name__)
def test_check_sampler_passes_correct_samplers_and_catches_a_sampler_without_noise(sde):
    for sampler in [_euler_maruyama(noise=True), sdegen.ProbabilityFlowSampler()]:
        result = check_sampler(sampler, sde, MIXTURE_2D, n=1000)
        assert result, str(result)
    bad = check_sampler(_euler_maruyama(noise=False), sde, MIXTURE_2D, n=1000)
    assert not bad and "FAIL" in str(bad)


def test_check_sampler_catches_a_wrong_score_scale():
    """Half the score in the reverse SDE: samples too wide; caught by the moments and both statistics."""
    em = _euler_maruyama(noise=True)
    bad = check_sampler(
        lambda sde, s, x, **kw: em(sde, lambda t, y: 0.5 * s(t, y), x, **kw), VPSDE(), MIXTURE_2D, n=1000
    )
    assert not bad
    assert sum(not part for part in bad.parts) >= 2, str(bad)


def test_check_samples_local_mmd_sees_mode_widths_the_energy_distance_misses():
    gm = GaussianMixture.ring()
    g = torch.Generator().manual_seed(0)
    narrow = gm.means[torch.randint(0, 8, (1000,), generator=g)] + 0.35 * torch.randn(1000, 2, generator=g)
    result = check_samples(narrow.double(), gm)
    moments, energy, local = result.parts
    assert not result and not local, str(result)


def test_check_sampler_errors():
    with pytest.raises(TypeError, match="sampler must be callable"):
        check_sampler("euler", VPSDE(), MIXTURE_2D)
    with pytest.raises(ValueError, match=r"sampler returned shape \(3, 2\)"):
        check_sampler(lambda sde, s, x, **kw: x[:3], VPSDE(), MIXTURE_2D, n=10)


def test_importing_sdegen_and_its_checks_never_needs_hypothesis():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import sdegen, sdegen.testing\n"
        "try:\n    import sdegen.testing.strategies\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "needs hypothesis; install it with `pip install sdegen[test]`" in out.stdout
