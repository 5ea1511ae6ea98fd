"""ReverseTimeSDE with torchsde: every method, any data shape, exact bookkeeping, weak order 1 of Euler."""

import math

import pytest
import torch
import torchsde
from _oracle_data import (
    F64,
    MIXTURE,
    SDES,
    gaussian_marginal,
    gaussian_score,
    null,
)
from hypothesis import given
from hypothesis import strategies as st

import sdegen
from sdegen import SDE, VPSDE, LinearSDE, ReverseTimeSDE
from sdegen.analytic import GaussianMixture
from sdegen.brownian import SequentialBrownian
from sdegen.random import PerSampleGenerator
from sdegen.testing import strategies as sst
from sdegen.testing.convergence import check_order
from sdegen.testing.oracle import check_samples


def _solve(rsde, x_T, eps, steps, method, bm=None):
    s = rsde.reversed_times(torch.tensor([rsde.T, eps], dtype=F64))
    y = torchsde.sdeint(
        rsde, rsde.flatten(x_T), s, bm=bm, method=method, dt=float(s[-1]) / steps * (1 + 1e-9)
    )
    return rsde.unflatten(y[-1])


@pytest.mark.parametrize(
    "method, sde_type, steps",
    [("euler", "ito", 200), ("srk", "ito", 100), ("heun", "stratonovich", 100), ("milstein", "ito", 200)],
)
def test_the_object_samples_the_oracle_with_torchsdes_own_brownian_motion(method, sde_type, steps):
    """A user's call: sdeint(sde.reverse(score), ...) with bm=None, from exact samples of p_T."""
    sde = SDES["VP"]
    g = torch.Generator().manual_seed(0)
    x_T = MIXTURE.marginal(sde, sde.T).sample(1000, generator=g)
    rsde = sde.reverse(MIXTURE.score(sde), sde_type=sde_type)
    with torch.no_grad():
        x = _solve(rsde, x_T, 1e-3, steps, method)
    report = check_samples(x, MIXTURE.marginal(sde, 1e-3), null=null("VP", 1000), z_tolerance=4.5)
    assert report, report


def test_image_shaped_states_are_flattened_and_restored():
    """A [B, 1, 2, 2] state: torchsde sees [B, 4], the score sees [B, 1, 2, 2]."""
    sde = SDES["VE"]
    data = GaussianMixture(MIXTURE.weights, MIXTURE.means.repeat(1, 2), 0.5, event_shape=(1, 2, 2))
    shapes = []

    def score(t, x):
        shapes.append(tuple(x.shape))
        return data.score(sde)(t, x)

    g = torch.Generator().manual_seed(1)
    x_T = data.marginal(sde, sde.T).sample(1000, generator=g)
    rsde = sde.reverse(score, event_shape=(1, 2, 2))
    assert rsde.flatten(x_T).shape == (1000, 4)
    bm = SequentialBrownian(0.0, sde.T - 1e-5, (1000, 4), dtype=F64, generator=g)
    with torch.no_grad():
        x = _solve(rsde, x_T, 1e-5, 200, "euler", bm=bm)
    assert x.shape == (1000, 1, 2, 2) and set(shapes) == {(1000, 1, 2, 2)}
    report = check_samples(x, data.marginal(sde, 1e-5), seed=1, z_tolerance=4.5)
    assert report, report


def test_reverse_sde_sampler_is_euler_maruyama_step_for_step():
    """torchsde's euler on the reverse SDE and the EulerMaruyama predictor draw the same noise from
    the same generator; they agree to the 1e-9 relative step adjustment that pins the step count."""
    sde = SDES["subVP"]
    x_T = MIXTURE.marginal(sde, sde.T).sample(64, generator=torch.Generator().manual_seed(2))
    outs = [
        sdegen.sample(
            sde, MIXTURE.score(sde), None, sampler, x_T=x_T, generator=torch.Generator().manual_seed(3)
        )
        for sampler in [
            sdegen.ReverseSDESampler("euler", 50),
            sdegen.PredictorCorrectorSampler(
                sdegen.samplers.EulerMaruyama(), sdegen.samplers.NoneCorrector(), 50
            ),
        ]
    ]
    assert outs[0].nfe == outs[1].nfe == 50
    torch.testing.assert_close(outs[0].x, outs[1].x, rtol=1e-6, atol=1e-6)


class _CountingVP(VPSDE):
    scalar_calls = 0

    def diffusion_squared(self, t):
        if t.ndim == 0:
            type(self).scalar_calls += 1
        return super().diffusion_squared(t)


@pytest.mark.parametrize(
    "method, noise_type, per_step", [("srk", "additive", 2), ("srk", "diagonal", 4), ("euler", "diagonal", 1)]
)
def test_each_distinct_drift_evaluation_costs_one_score_evaluation(method, noise_type, per_step):
    """sdeint's contract check and srk's repeated stages hit the cache: NFE = steps x distinct stages."""
    sde = _CountingVP()
    calls = []

    def score(t, x):
        calls.append(float(t[0]))
        return MIXTURE.score(sde)(t, x)

    x_T = MIXTURE.sample(8, generator=torch.Generator().manual_seed(4))
    rsde = sde.reverse(score, noise_type=noise_type)
    bm = SequentialBrownian(0.0, 0.999, (8, 2), dtype=F64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _solve(rsde, x_T, 1e-3, 10, method, bm=bm)
    assert len(calls) == 10 * per_step


def test_tabulated_coefficients_are_used_and_change_nothing():
    sde = _CountingVP()
    x_T = MIXTURE.sample(8, generator=torch.Generator().manual_seed(6))
    results = []
    for tabulate in [False, True]:
        rsde = sde.reverse(MIXTURE.score(sde))
        if tabulate:  # the times torchsde's fixed-step loop visits: s_k = min(s_{k-1} + dt, s_N)
            span = float(rsde.reversed_times([1.0, 1e-3])[-1])
            s, times = 0.0, [0.0]
            for _ in range(20):
                s = min(s + span / 20 * (1 + 1e-9), span)
                times.append(s)
            rsde.tabulate(times)
        _CountingVP.scalar_calls = 0
        bm = SequentialBrownian(0.0, 0.999, (8, 2), dtype=F64, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            results.append(_solve(rsde, x_T, 1e-3, 20, "euler", bm=bm))
        assert (_CountingVP.scalar_calls == 0) == tabulate
    torch.testing.assert_close(results[0], results[1], rtol=1e-14, atol=1e-14)


class _NonLinearOU(SDE):
    """dx = -x dt + sqrt(2) dW declared as a plain SDE: the reverse SDE takes the generic drift path."""

    def __init__(self):
        super().__init__(T=1.0)

    def drift(self, t, x):
        return -x

    def diffusion(self, t):
        return torch.full_like(torch.as_tensor(t, dtype=F64), math.sqrt(2.0))

    def prior_sampling(self, shape, generator=None, device=None, dtype=None):
        return torch.randn(shape, generator=generator, dtype=dtype)

    def prior_logp(self, z):
        return torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)


class _LinearOU(LinearSDE):
    def alpha(self, t):
        return torch.exp(-t)

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(-2 * t))


def test_a_non_linear_sde_takes_the_generic_drift_and_agrees_with_the_linear_one():
    x_T = torch.randn(16, 3, generator=torch.Generator().manual_seed(8), dtype=F64)
    score = lambda t, x: -x  # noqa: E731 - the stationary N(0, I) score
    outs = []
    for sde in [_NonLinearOU(), _LinearOU()]:
        rsde = sde.reverse(score)
        bm = SequentialBrownian(0.0, 0.9, (16, 3), dtype=F64, generator=torch.Generator().manual_seed(9))
        with torch.no_grad():
            outs.append(_solve(rsde, x_T, 0.1, 10, "euler", bm=bm))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "n, mean_band, var_band",
    [(20000, 0.15, 0.3), pytest.param(200000, 0.1, 0.1, marks=pytest.mark.slow)],
)
def test_euler_maruyama_has_weak_order_one_on_mean_and_variance(n, mean_band, var_band):
    """Data N(m, s^2): the reverse SDE ends at p_eps = N(alpha m, alpha^2 s^2 + sigma^2) exactly.

    Common random numbers: every step count N uses the same Brownian path (BrownianInterval with
    one entropy), so the differences D_N = E_N - E_2N of the mean and the variance carry little
    noise (Euler's strong error is O(h) for additive noise) while their size is C h / 2 for weak
    order 1. The least-squares order of D_N over N = 16..128 is 1 within ``mean_band`` and
    ``var_band`` (EM's exact moment recursion gives 0.98 and 1.06 there; the sampling noise of the
    variance's order is about 0.1 at n = 20000, 0.03 at n = 200000), and the Richardson
    extrapolation 2 E_256 - E_128 matches the exact moments within 5 standard errors.
    """
    sde, m, s, eps = SDES["VP"], 1.5, 1.0, 1e-3
    mean_T, var_T = gaussian_marginal(sde, sde.T, m, s)
    mean_eps, var_eps = gaussian_marginal(sde, eps, m, s)
    x_T = mean_T + math.sqrt(var_T) * torch.randn(
        n, 1, generator=torch.Generator().manual_seed(10), dtype=F64
    )
    rsde = sde.reverse(gaussian_score(sde, m, s))
    Ns = [16, 32, 64, 128, 256]
    means, variances = [], []
    for N in Ns:
        bm = torchsde.BrownianInterval(0.0, 1 - eps, (n, 1), dtype=F64, entropy=11, dt=(1 - eps) / 256)
        with torch.no_grad():
            x = _solve(rsde, x_T, eps, N, "euler", bm=bm)
        means.append(float(x.mean()))
        variances.append(float(x.var()))
    hs = [1 / N for N in Ns[:-1]]
    d_mean = [a - b for a, b in zip(means[:-1], means[1:], strict=True)]
    d_var = [a - b for a, b in zip(variances[:-1], variances[1:], strict=True)]
    check_order(hs, [abs(v) for v in d_mean], expected=1.0, tolerance=mean_band).raise_if_failed()
    check_order(hs, [abs(v) for v in d_var], expected=1.0, tolerance=var_band).raise_if_failed()
    assert abs(2 * means[-1] - means[-2] - mean_eps) < 5 * math.sqrt(var_eps / n)
    assert abs(2 * variances[-1] - variances[-2] - var_eps) < 5 * var_eps * math.sqrt(2 / n)


def test_reversed_times_maps_and_validates():
    rsde = SDES["VP"].reverse(MIXTURE.score(SDES["VP"]))
    torch.testing.assert_close(
        rsde.reversed_times([1.0, 0.5, 1e-3]), torch.tensor([0.0, 0.5, 0.999], dtype=F64)
    )
    with pytest.raises(ValueError, match=r"ts must be strictly decreasing .*got ts\[1\]=0.3 <= ts\[2\]=0.5"):
        rsde.reversed_times([1.0, 0.3, 0.5])
    with pytest.raises(ValueError, match=r"ts must lie in \[0, 1\]; got a time 1.5"):
        rsde.reversed_times([1.5, 0.5])
    with pytest.raises(ValueError, match=r"ts must lie in \[0, 1\]; got a time -0.1"):
        rsde.reversed_times([1.0, -0.1])
    with pytest.raises(ValueError, match="at least 2 times"):
        rsde.reversed_times([1.0])


def test_invalid_use_raises():
    sde = SDES["VP"]
    rsde = sde.reverse(MIXTURE.score(sde), event_shape=(2,))
    y = torch.zeros(3, 2, dtype=F64)
    s = torch.tensor(0.5, dtype=F64)
    with pytest.raises(ValueError, match=r"s must lie in \[0, T\] = \[0, 1\] .*got s=1.5"):
        rsde.f(torch.tensor(1.5, dtype=F64), y)
    with pytest.raises(ValueError, match=r"torchsde state must have shape \[B, 2\]"):
        rsde.f(s, torch.zeros(3, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2\]"):
        rsde.flatten(torch.zeros(3, 1, 2))
    with pytest.raises(ValueError, match=r"x must have shape \[B, D\] for event_shape=None"):
        sde.reverse(MIXTURE.score(sde)).flatten(torch.zeros(3, 1, 2))
    bad = sde.reverse(lambda t, x: x[:, :1])
    with pytest.raises(
        ValueError,
        match=r"score_fn must return a tensor shaped and typed like x \(shape \(3, 2\).*got shape \(3, 1\)",
    ):
        bad.f(s, y)
    with pytest.raises(ValueError, match="sde_type must be 'ito' or 'stratonovich'"):
        sde.reverse(MIXTURE.score(sde), sde_type="ita")
    with pytest.raises(ValueError, match="noise_type must be 'diagonal' or 'additive'"):
        sde.reverse(MIXTURE.score(sde), noise_type="general")
    with pytest.raises(TypeError, match="score_fn must be callable"):
        ReverseTimeSDE(sde, None)


def test_additive_noise_exposes_only_products():
    """With noise_type="additive" there is no dense g, so torchsde needs bm to know the noise size."""
    sde = SDES["VP"]
    rsde = sde.reverse(MIXTURE.score(sde), noise_type="additive")
    assert not hasattr(rsde, "g") and not hasattr(rsde, "f_and_g")
    assert hasattr(sde.reverse(MIXTURE.score(sde)), "g")
    with pytest.raises(ValueError, match="Cannot infer noise size"):
        torchsde.sdeint(
            rsde, torch.zeros(2, 2, dtype=F64), torch.tensor([0.0, 0.5], dtype=F64), method="euler"
        )


@given(sde=sst.linear_sdes(), shape=sst.data_shapes(), data=st.data())
def test_the_drift_is_the_negated_reverse_drift_for_any_sde_and_shape(sde, shape, data):
    """dy/ds(s, y) = -(f - g^2 score)(T - s, x) with y = x.reshape(B, -1), for every data shape."""
    t = data.draw(sst.times(sde, eps=1e-3))
    x = data.draw(sst.batches(shape))
    score = lambda t, x: torch.sin(x) + t.reshape((-1,) + (1,) * (x.ndim - 1))  # noqa: E731
    rsde = sde.reverse(score, event_shape=shape[1:])
    s = torch.tensor(sde.T - t, dtype=F64)
    y = rsde.flatten(x)
    expected = -sde.reverse_drift(
        torch.full((shape[0],), t, dtype=F64), x, score(torch.full((shape[0],), t, dtype=F64), x)
    )
    torch.testing.assert_close(rsde.unflatten(rsde.f(s, y)), expected)
    v = torch.ones_like(y)
    torch.testing.assert_close(rsde.g_prod(s, y, v), sde.diffusion(torch.tensor(t, dtype=F64)) * v)


def _torchsde_euler(sde, score, x_T, ts, generator):
    """torchsde's Euler-Maruyama on the grid ``ts``, one sdeint call per interval with a
    SequentialBrownian drawing from ``generator``: what ReverseSDESampler('euler') ran before it had
    a loop of its own."""
    rsde = sde.reverse(score, event_shape=x_T.shape[1:], noise_type="additive")
    s = rsde.reversed_times(ts)
    y = rsde.flatten(x_T)
    with torch.no_grad():
        for k in range(len(s) - 1):
            bm = SequentialBrownian(float(s[k]), float(s[k + 1]), y.shape, dtype=y.dtype, generator=generator)
            dt = float(s[k + 1] - s[k]) * (1 + 1e-9)
            y = torchsde.sdeint(rsde, y, s[k : k + 2], bm=bm, method="euler", dt=dt)[-1]
    return rsde.unflatten(y)


@pytest.mark.parametrize("name", ["VP", "VE", "general"])
@pytest.mark.parametrize("grid", [sdegen.UniformGrid(16), sdegen.KarrasGrid(16)], ids=["uniform", "karras"])
@pytest.mark.parametrize("per_sample", [False, True], ids=["generator", "per-sample-seeds"])
def test_sdegens_euler_maruyama_loop_is_torchsdes_euler(name, grid, per_sample):
    """'euler' and 'milstein' on fixed steps run sdegen's own loop; with the same generator it draws
    the same noise in the same order as torchsde's euler with SequentialBrownian and gives the same
    samples to float64 rounding, on uniform and non-uniform grids, with per-sample seeds too, for a
    LinearSDE and for a general SDE (its drift evaluated as given)."""
    from _sdes import OpaqueVP

    sde = OpaqueVP() if name == "general" else SDES[name]
    linear = SDES["VP"] if name == "general" else sde
    x_T = MIXTURE.marginal(linear, linear.T).sample(24, generator=torch.Generator().manual_seed(14))
    x_T = x_T.reshape(24, 1, 2)  # an event shape, flattened for torchsde and restored
    score = lambda t, x: MIXTURE.score(linear)(t, x.reshape(-1, 2)).reshape(x.shape)  # noqa: E731

    def generator():
        return PerSampleGenerator(range(24)) if per_sample else torch.Generator().manual_seed(15)

    ts = grid.times(linear, linear.sampling_eps)
    if name == "general":  # a grid in the noise level needs the kernel: the same times, given
        grid = sdegen.CustomGrid(ts)
    ref = _torchsde_euler(sde, score, x_T, ts, generator())
    for method in ("euler", "milstein"):
        out = sdegen.sample(
            sde, score, None, sdegen.ReverseSDESampler(method, grid=grid), x_T=x_T, generator=generator()
        )
        assert out.nfe == 16
        torch.testing.assert_close(out.x, ref, rtol=1e-12, atol=1e-12)
