"""ProbabilityFlowODE with torchdiffeq: odeint and odeint_adjoint, invertibility, orders of convergence."""

import math

import pytest
import torch
import torchdiffeq
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
from sdegen import ProbabilityFlowODE, ProbabilityFlowSampler
from sdegen.testing import strategies as sst
from sdegen.testing.convergence import check_order
from sdegen.testing.oracle import check_samples

IDS = list(SDES)


def _gaussian_case(sde, m=1.5, s=0.5, n=16):
    """States at T spread over p_T and their exact images at eps under the probability-flow ODE.

    For data N(m, s^2 I), (x - alpha(t) m) / sqrt(alpha(t)^2 s^2 + sigma(t)^2) is constant along
    the ODE (both sides move the standardised coordinate of p_t), which gives the endpoint.
    """
    eps = sde.sampling_eps
    mean_T, var_T = gaussian_marginal(sde, sde.T, m, s)
    mean_eps, var_eps = gaussian_marginal(sde, eps, m, s)
    x_T = mean_T + math.sqrt(var_T) * torch.linspace(-2.5, 2.5, 2 * n, dtype=F64).reshape(n, 2)
    return x_T, mean_eps + math.sqrt(var_eps / var_T) * (x_T - mean_T)


@pytest.mark.parametrize("name", IDS)
def test_odeint_with_the_object_samples_the_oracle(name):
    """A user's call: odeint(sde.probability_flow(score), x_T, [T, eps]) from exact samples of p_T."""
    sde = SDES[name]
    eps = sde.sampling_eps
    g = torch.Generator().manual_seed(0)
    x_T = MIXTURE.marginal(sde, sde.T).sample(1000, generator=g)
    ode = sde.probability_flow(MIXTURE.score(sde))
    ts = torch.tensor([sde.T, eps], dtype=F64)
    with torch.no_grad():
        x = torchdiffeq.odeint(ode, x_T, ts, method="dopri5", rtol=1e-5, atol=1e-5)[-1]
    report = check_samples(x, MIXTURE.marginal(sde, eps), null=null(name, 1000), z_tolerance=4.5)
    assert report, report


@pytest.mark.parametrize(
    "method, steps, order, band",
    [
        ("euler", [32, 64, 128, 256], 1.0, 0.1),
        ("midpoint", [16, 32, 64, 128], 2.0, 0.2),
        ("rk4", [16, 32, 64, 128], 4.0, 0.25),
    ],
)
@pytest.mark.parametrize("name", IDS)
def test_fixed_grid_methods_converge_at_their_order(name, method, steps, order, band):
    """Global RMS error at eps against the closed-form endpoint, least-squares order over 4 step sizes.

    Measured orders: euler 0.97-1.00, midpoint 1.97-2.14, rk4 3.81-4.12 across VP, sub-VP and VE;
    the bands (0.1, 0.2, 0.25) are a quarter or less of diffrax's +-0.9.
    """
    sde = SDES[name]
    x_T, exact = _gaussian_case(sde)
    score = gaussian_score(sde, 1.5, 0.5)
    errors = []
    for N in steps:
        x = sdegen.sample(sde, score, None, ProbabilityFlowSampler(method, steps=N), x_T=x_T).x
        errors.append(float((x - exact).pow(2).mean().sqrt()))
    result = check_order([1 / N for N in steps], errors, expected=order, tolerance=band)
    assert result, result


@pytest.mark.filterwarnings("ignore:Functional iteration did not converge")
@pytest.mark.parametrize("method", list(ProbabilityFlowSampler.METHODS))
def test_every_torchdiffeq_method_follows_the_exact_flow(method):
    """Every method in the sampler's table lands on the closed-form endpoint: fixed-grid ones with
    the declared order between 32 and 64 steps (within 0.35; measured 0.93-4.04 on VP), adaptive
    ones within 1e-4 at tolerance 1e-7 (measured 2e-8 to 9e-6)."""
    sde = SDES["VP"]
    x_T, exact = _gaussian_case(sde)
    spec = ProbabilityFlowSampler.METHODS[method]
    score = gaussian_score(sde, 1.5, 0.5)
    if spec.adaptive:
        out = sdegen.sample(sde, score, None, ProbabilityFlowSampler(method, rtol=1e-7, atol=1e-7), x_T=x_T)
        assert float((out.x - exact).abs().max()) < 1e-4
        return
    errors = [
        float(
            (sdegen.sample(sde, score, None, ProbabilityFlowSampler(method, steps=N), x_T=x_T).x - exact)
            .abs()
            .max()
        )
        for N in (32, 64)
    ]
    assert abs(math.log2(errors[0] / errors[1]) - spec.order) < 0.35, errors


@pytest.mark.parametrize("name", IDS)
def test_the_flow_is_invertible(name):
    """x -> z (eps to T) -> x (T to eps) with dopri5 at tolerance 1e-10 in float64: error < 1e-4."""
    sde = SDES[name]
    eps = sde.sampling_eps
    x = MIXTURE.marginal(sde, eps).sample(64, generator=torch.Generator().manual_seed(1))
    ode = sde.probability_flow(MIXTURE.score(sde))
    ts = torch.tensor([eps, sde.T], dtype=F64)
    with torch.no_grad():
        z = torchdiffeq.odeint(ode, x, ts, method="dopri5", rtol=1e-10, atol=1e-10)[-1]
    back = sdegen.sample(
        sde, MIXTURE.score(sde), None, ProbabilityFlowSampler(rtol=1e-10, atol=1e-10), x_T=z
    ).x
    assert float((back - x).abs().max()) < 1e-4
    assert float((z - x).abs().max()) > 1.0  # the round trip went somewhere


class _LearnableGaussianScore(torch.nn.Module):
    """The exact score of data N(m, s^2 I) with a learnable mean m."""

    def __init__(self, sde, s):
        super().__init__()
        self.m = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))
        self.sde, self.s = sde, s

    def forward(self, t, x):
        alpha = self.sde.alpha(t)[:, None]
        sigma = self.sde.sigma(t)[:, None]
        return -(x - alpha * self.m) / (alpha**2 * self.s**2 + sigma**2)


def test_odeint_adjoint_gives_the_exact_parameter_gradient():
    """x_eps = alpha_eps m + r (x_T - alpha_T m), r = sqrt(v_eps / v_T): d sum(x_eps) / dm is known.

    The network is a submodule of the ODE, so odeint_adjoint finds its parameter.
    """
    sde, s = SDES["VP"], 0.5
    eps = sde.sampling_eps
    score = _LearnableGaussianScore(sde, s)
    ode = sde.probability_flow(score)
    assert [p is score.m for p in ode.parameters()] == [True]
    x_T = torch.linspace(-1, 1, 8, dtype=F64).reshape(4, 2)
    ts = torch.tensor([sde.T, eps], dtype=F64)
    tt = ts.clone()
    alpha_T, alpha_eps = sde.alpha(tt).tolist()
    v_T, v_eps = (sde.alpha(tt) ** 2 * s**2 + sde.sigma(tt) ** 2).tolist()
    exact = x_T.numel() * (alpha_eps - math.sqrt(v_eps / v_T) * alpha_T)
    grads = []
    for solve in [torchdiffeq.odeint, torchdiffeq.odeint_adjoint]:
        x = solve(ode, x_T, ts, method="dopri5", rtol=1e-9, atol=1e-9)[-1]
        (grad,) = torch.autograd.grad(x.sum(), score.m)
        grads.append(float(grad))
    assert grads == pytest.approx([exact, exact], rel=1e-5)


def test_the_field_is_continued_as_constant_outside_0_T():
    """Solver probes beyond [0, T] (torchdiffeq's first-step guess, steps past the end) see the field
    at the clamped time instead of NaN or an error; inside, it is f - g^2/2 score."""
    sde = SDES["VP"]
    ode = sde.probability_flow(MIXTURE.score(sde))
    x = torch.ones(3, 2, dtype=F64)
    torch.testing.assert_close(ode(torch.tensor(-0.5, dtype=F64), x), ode(torch.tensor(0.0, dtype=F64), x))
    torch.testing.assert_close(ode(10.0, x), ode(torch.tensor(1.0, dtype=F64), x))
    t = torch.tensor(0.5, dtype=F64)
    g2 = float(sde.diffusion(t)) ** 2
    torch.testing.assert_close(ode(0.5, x), sde.drift(t, x) - 0.5 * g2 * MIXTURE.score(sde)(t, x))


def test_shape_and_type_errors():
    sde = SDES["VP"]
    bad = ProbabilityFlowODE(sde, lambda t, x: x.sum(1))
    with pytest.raises(
        ValueError,
        match=r"score_fn must return a tensor shaped and typed like x \(shape \(3, 2\).*got shape \(3,\)",
    ):
        bad(torch.tensor(0.5), torch.zeros(3, 2))
    with pytest.raises(TypeError, match="score_fn must be callable"):
        sde.probability_flow("score")


@given(
    sde=sst.linear_sdes(),
    shape=sst.data_shapes(),
    m=st.floats(-2.0, 2.0),
    s=st.floats(0.2, 2.0),
    frac=st.floats(0.0, 0.9),
)
def test_the_sampler_follows_the_exact_flow_for_any_linear_sde(sde, shape, m, s, frac):
    """For data N(m, s^2 I) the standardised coordinate (x - alpha m) / sqrt(alpha^2 s^2 + sigma^2)
    is invariant along the flow, for any linear SDE, any data shape and any end time."""
    t_end = max(frac * sde.T, 1e-3 * sde.T)
    mean_T, var_T = gaussian_marginal(sde, sde.T, m, s)
    mean_end, var_end = gaussian_marginal(sde, t_end, m, s)
    u = torch.linspace(-2, 2, math.prod(shape), dtype=F64).reshape(shape)
    sampler = ProbabilityFlowSampler(rtol=1e-9, atol=1e-9)
    out = sdegen.sample(
        sde, gaussian_score(sde, m, s), None, sampler, x_T=mean_T + math.sqrt(var_T) * u, eps=t_end
    )
    torch.testing.assert_close(
        out.x, mean_end + math.sqrt(var_end) * u, rtol=1e-5, atol=1e-5 * math.sqrt(var_end)
    )


@given(sde=sst.linear_sdes(), shape=sst.data_shapes(), data=st.data())
def test_the_field_is_the_probability_flow_drift_for_any_sde_and_shape(sde, shape, data):
    t = data.draw(sst.times(sde))
    x = data.draw(sst.batches(shape))
    score = lambda t, x: torch.cos(x) * t.reshape((-1,) + (1,) * (x.ndim - 1))  # noqa: E731
    tb = torch.full((shape[0],), t, dtype=F64)
    expected = sde.probability_flow_drift(tb, x, score(tb, x))
    torch.testing.assert_close(sde.probability_flow(score)(torch.tensor(t, dtype=F64), x), expected)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_tabulated_coefficients_change_nothing(dtype):
    """The fixed-grid sampler tabulates a(t), g(t)^2 on its grid; plain odeint on the object does not."""
    sde = SDES["subVP"]
    x_T = MIXTURE.marginal(sde, sde.T).sample(16, generator=torch.Generator().manual_seed(4)).to(dtype)
    ts = torch.linspace(sde.T, 1e-3, 21, dtype=F64)
    sampled = sdegen.sample(sde, MIXTURE.score(sde), None, ProbabilityFlowSampler("rk4", ts=ts), x_T=x_T).x
    with torch.no_grad():
        plain = torchdiffeq.odeint(sde.probability_flow(MIXTURE.score(sde)), x_T, ts, method="rk4")[-1]
    torch.testing.assert_close(sampled, plain)
    ode = sde.probability_flow(MIXTURE.score(sde))
    ode.tabulate(ts, dtype)
    assert len(ode.coefficients._table) == 21


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun2", "heun3", "rk4"])
@pytest.mark.parametrize("name", ["VP", "VE"])
def test_sdegens_runge_kutta_loop_is_torchdiffeqs_method(name, method):
    """The fixed-grid methods run sdegen's own loop (stage states as weighted sums of x and the
    scores); on the same grid it gives torchdiffeq's samples to float64 rounding, on a uniform and a
    non-uniform grid, with the same number of score evaluations."""
    sde = SDES[name]
    x_T = MIXTURE.marginal(sde, sde.T).sample(32, generator=torch.Generator().manual_seed(12))
    score = MIXTURE.score(sde)
    for grid in (sdegen.UniformGrid(12), sdegen.LogSNRGrid(12)):
        sampler = ProbabilityFlowSampler(method, grid=grid)
        out = sdegen.sample(sde, score, None, sampler, x_T=x_T, return_trajectory=True)
        with torch.no_grad():
            ref = torchdiffeq.odeint(sde.probability_flow(score), x_T, out.ts, method=method)
        assert out.nfe == 12 * sampler.nfe_per_step
        torch.testing.assert_close(out.trajectory, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_a_general_sde_is_solved_by_torchdiffeq_and_agrees(method):
    """An SDE given only by its drift and diffusion (no linear drift to fold into weighted sums) is
    integrated by torchdiffeq with the same tableau: the same samples as the linear loop on the
    same process."""
    from _sdes import OpaqueVP

    opaque = OpaqueVP()
    x_T = MIXTURE.marginal(opaque.inner, 1.0).sample(16, generator=torch.Generator().manual_seed(13))
    outs = [
        sdegen.sample(
            sde, MIXTURE.score(opaque.inner), None, ProbabilityFlowSampler(method, steps=10), x_T=x_T
        )
        for sde in (opaque, opaque.inner)
    ]
    assert outs[0].nfe == outs[1].nfe
    torch.testing.assert_close(outs[0].x, outs[1].x, rtol=1e-10, atol=1e-10)


def test_a_non_finite_score_at_a_stage_is_named_by_its_time_step_and_evaluation():
    """sdegen's loop checks on the device and reads once at the end; the first bad evaluation is still
    named exactly: rk4 on 10 steps from 1 to 0.1 evaluates t = 0.55, 0.52, 0.49 in step 5, so the
    first time below 0.5 is its third stage, evaluation 5 * 4 + 3."""
    sde = SDES["VP"]
    score = MIXTURE.score(sde)

    def nan_below_half(t, x):
        return score(t, x) * (float("nan") if float(t[0]) < 0.5 else 1.0)

    x_T = MIXTURE.marginal(sde, sde.T).sample(8, generator=torch.Generator().manual_seed(16))
    with pytest.raises(
        FloatingPointError, match=r"at t=0\.49 \(step 5, score evaluation 23\); sampling stopped"
    ):
        sdegen.sample(sde, nan_below_half, None, ProbabilityFlowSampler("rk4", steps=10), x_T=x_T, eps=0.1)
