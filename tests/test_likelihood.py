"""Probability-flow log-likelihoods against the Gaussian-mixture oracle's exact log p_eps.

With the exact score of a mixture, the probability-flow ODE transports p_eps to p_T exactly, so
log_likelihood must return log p_eps(x) up to the solver error when given the exact log p_T, and
differ from it by exactly the prior mismatch log pi(z) - log p_T(z) when given the SDE's prior pi.
"""

import math

import pytest
import torch
from _sdes import OpaqueVP
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import sdegen
from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.likelihood import ExactTrace, Hutchinson, LikelihoodResult, Quantization, log_likelihood
from sdegen.nn import ScoreMLP
from sdegen.testing import strategies as sst

F64 = torch.float64


EPS = 1e-5
SDES = [VPSDE(), SubVPSDE(), VESDE(0.01, 50.0)]
SDE_IDS = ["VP", "subVP", "VE"]


def _mixture(d: int, seed: int = 0, event_shape=None) -> GaussianMixture:
    """Three components with random means and full, anisotropic covariances."""
    g = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(3, d, generator=g, dtype=F64)
    A = torch.randn(3, d, d, generator=g, dtype=F64)
    cov = 0.5 * A @ A.transpose(-1, -2) / d + 0.1 * torch.eye(d, dtype=F64)
    return GaussianMixture([0.2, 0.3, 0.5], means, cov, event_shape=event_shape)


def _data(gm: GaussianMixture, sde, n: int, seed: int = 1, dtype=F64) -> torch.Tensor:
    """Samples of p_eps, where the likelihood is evaluated."""
    return gm.marginal(sde, EPS).sample(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _exact(gm, sde, x, **kwargs) -> LikelihoodResult:
    """The reference configuration: exact trace, float64, rtol = atol = 1e-7, exact log p_T, from
    t = EPS (where the data were drawn; an SDE's own ``likelihood_eps`` may differ, e.g. a
    DiscreteVPSDE's first step 1/N)."""
    p_T = gm.marginal(sde, sde.T)
    opts = dict(divergence=ExactTrace(), rtol=1e-7, atol=1e-7, prior_logp=p_T.log_prob, eps=EPS) | kwargs
    return log_likelihood(x, sde, gm.score(sde), **opts)


class _FixedProbes(Hutchinson):
    """Hutchinson with given probes, so that a batch and its single samples see the same ones."""

    def __init__(self, vectors: torch.Tensor) -> None:
        super().__init__(n_probes=vectors.shape[0])
        self.vectors = vectors

    def draw(self, x, generator=None):
        return self.vectors


# -- exactness against the oracle ------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 16])
@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_exact_trace_recovers_the_oracle_log_density(sde, d, device):
    """|logp - log p_eps(x)| <= 1e-3 nats with the exact score, exact trace and exact log p_T."""
    gm = _mixture(d)
    x = _data(gm, sde, 8).to(device)
    res = _exact(gm, sde, x)
    assert res.logp.device.type == device.type
    expected = gm.marginal(sde, EPS).log_prob(x)
    assert res.logp.shape == (8,) and res.logp.dtype == F64 and res.z.shape == x.shape
    assert (res.logp - expected).abs().max() <= 1e-3
    assert res.nfe > 0 and res.bpd is None


def test_float32_data_reaches_the_oracle_at_tight_tolerance():
    """float32 VE, d = 16, rtol = atol = 1e-7: worst error <= 1.5e-5 nats (measured 5.8e-6; float64
    3.3e-6; k-diffusion's float32 solve 2.6e-5). A float32 ODE state stalled at 3e-4 nats here: the
    endpoint read from torchdiffeq's dense output lost tens of float32 ulps of delta ~ 70."""
    sde, gm = SDES[2], _mixture(16)
    x = _data(gm, sde, 8, dtype=torch.float32)
    res = _exact(gm, sde, x)
    assert res.logp.dtype == res.z.dtype == torch.float32
    assert (res.logp.double() - gm.marginal(sde, EPS).log_prob(x.double())).abs().max() <= 1.5e-5


@given(gm=sst.gaussian_mixtures(max_components=3), sde=sst.linear_sdes(), seed=st.integers(0, 100))
def test_exact_trace_recovers_the_oracle_for_any_mixture_and_sde(gm, sde, seed):
    """The same 1e-3 nats bound for random mixtures (d = 1..4) and SDEs (T, beta and sigma ranges)."""
    x = _data(gm, sde, 4, seed=seed)
    res = _exact(gm, sde, x)
    assert (res.logp - gm.marginal(sde, EPS).log_prob(x)).abs().max() <= 1e-3


def test_any_data_shape_gives_the_same_likelihood():
    """The same 4-d mixture seen as vectors [B, 4] and as images [B, 1, 2, 2]."""
    sde = VPSDE()
    flat, image = _mixture(4, seed=3), _mixture(4, seed=3, event_shape=(1, 2, 2))
    x = _data(flat, sde, 5)
    res_flat = _exact(flat, sde, x)
    res_image = _exact(image, sde, x.reshape(5, 1, 2, 2))
    assert res_image.z.shape == (5, 1, 2, 2)
    torch.testing.assert_close(res_image.logp, res_flat.logp, rtol=0, atol=1e-6)
    assert (res_image.logp - flat.marginal(sde, EPS).log_prob(x)).abs().max() <= 1e-3


@pytest.mark.parametrize("d", [1, 2, 16])
@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_error_with_the_sde_prior_is_the_prior_mismatch(sde, d):
    """float32, default tolerances, the SDE's own prior pi: logp - log p_eps(x) = log pi(z) - log p_T(z)
    up to the solver error, and |log pi(z) - log p_T(z)| <= max_k |log pi(z) - log N_k(z)| for the
    components N_k of p_T (p_T / pi is a convex combination of the N_k / pi)."""
    gm = _mixture(d)
    x = _data(gm, sde, 8, dtype=torch.float32)
    res = log_likelihood(x, sde, gm.score(sde), divergence=ExactTrace())
    assert res.logp.dtype == torch.float32
    z = res.z.double()
    p_T = gm.marginal(sde, sde.T)
    error = res.logp.double() - gm.marginal(sde, EPS).log_prob(x.double())
    mismatch = sde.prior_logp(z) - p_T.log_prob(z)
    components = torch.stack(
        [
            GaussianMixture([1.0], p_T.means[k : k + 1], p_T.covariances[k : k + 1]).log_prob(z)
            for k in range(3)
        ]
    )
    bound = (sde.prior_logp(z) - components).abs().max(0).values
    solver = 2e-3  # measured <= 5e-4 at rtol = atol = 1e-5 in float32
    assert (error - mismatch).abs().max() <= solver
    assert (error.abs() <= bound + solver).all()
    assert (mismatch.abs() <= bound + 1e-9).all()


def test_nonlinear_sde_path_matches_the_linear_one():
    """An SDE known only through drift(t, x) and diffusion(t) (not a LinearSDE) gives the same logp:
    the divergence of the whole drift is then estimated instead of adding a(t) D exactly."""
    gm, vp = _mixture(2), VPSDE()
    x = _data(gm, vp, 4)
    p_T = gm.marginal(vp, 1.0).log_prob
    opaque = log_likelihood(
        x, OpaqueVP(), gm.score(vp), divergence=ExactTrace(), rtol=1e-7, atol=1e-7, prior_logp=p_T
    )
    linear = _exact(gm, vp, x)
    torch.testing.assert_close(opaque.logp, linear.logp, rtol=0, atol=1e-5)


# -- Hutchinson: unbiased, standard error ~ 1/sqrt(probes) ----------------------------------------
def _replicated_estimates(gm, sde, x1, divergence, copies, seed):
    """`copies` independent estimates of log p(x1) in one solve: each batch row draws its own probes."""
    x = x1.expand(copies, *x1.shape[1:]).contiguous()
    p_T = gm.marginal(sde, sde.T).log_prob
    res = log_likelihood(
        x,
        sde,
        gm.score(sde),
        divergence=divergence,
        prior_logp=p_T,
        generator=torch.Generator().manual_seed(seed),
    )
    return res.logp


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
@pytest.mark.parametrize("d", [2, 16])
@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_hutchinson_is_unbiased_and_its_error_shrinks_like_one_over_sqrt_probes(sde, d, probe):
    """256 one-probe estimates average to the exact-trace value within 3 standard errors, and
    averaging 4 probes halves their standard deviation."""
    gm = _mixture(d)
    x1 = _data(gm, sde, 1, seed=4)
    exact = _exact(gm, sde, x1, rtol=1e-5, atol=1e-5).logp
    est = _replicated_estimates(gm, sde, x1, Hutchinson(probe), copies=256, seed=5)
    assert est.std() > 1e-3  # the estimator is random for d > 1 ...
    assert (est.mean() - exact).abs() < 3 * est.std() / math.sqrt(est.numel())  # ... and unbiased
    sd4 = _replicated_estimates(gm, sde, x1, Hutchinson(probe, 4), copies=256, seed=6).std()
    # Each sample std has relative error ~ 1/sqrt(2 * 256) = 4.4 %: 0.5 +- 0.1 is a > 3 sigma band.
    assert abs(float(sd4 / est.std()) - 0.5) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_unbiasedness_with_many_probes(probe):
    """4096 estimates: the mean within 3 standard errors (0.05 sd) of the exact value, sd ratio 0.5 +- 0.03."""
    sde, gm = VPSDE(), _mixture(16)
    x1 = _data(gm, sde, 1, seed=7)
    exact = _exact(gm, sde, x1, rtol=1e-5, atol=1e-5).logp
    est = _replicated_estimates(gm, sde, x1, Hutchinson(probe), copies=4096, seed=8)
    assert (est.mean() - exact).abs() < 3 * est.std() / math.sqrt(est.numel())
    sd4 = _replicated_estimates(gm, sde, x1, Hutchinson(probe, 4), copies=4096, seed=9).std()
    assert abs(float(sd4 / est.std()) - 0.5) < 0.03


def test_rademacher_probe_is_exact_in_one_dimension():
    sde, gm = SubVPSDE(), _mixture(1)
    x1 = _data(gm, sde, 1, seed=12)
    est = _replicated_estimates(gm, sde, x1, Hutchinson("rademacher"), 16, seed=13)
    exact = _exact(gm, sde, x1, rtol=1e-5, atol=1e-5).logp
    torch.testing.assert_close(est, exact.expand(16), rtol=0, atol=1e-4)


# -- batching -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "hutchinson"])
def test_per_sample_results_do_not_depend_on_the_batch(exact):
    """Batched equals one-by-one with the same probes, and an outlier added to the batch changes nothing."""
    sde, gm = VPSDE(), _mixture(2)
    x = _data(gm, sde, 5, seed=14)
    probes = Hutchinson("gaussian", 2).draw(x, torch.Generator().manual_seed(15))
    div = (lambda v: ExactTrace()) if exact else (lambda v: _FixedProbes(v))
    opts = dict(rtol=1e-7, atol=1e-7)
    batched = _exact(gm, sde, x, divergence=div(probes), **opts).logp
    single = torch.cat(
        [_exact(gm, sde, x[i : i + 1], divergence=div(probes[:, i : i + 1])).logp for i in range(5)]
    )
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5)
    outlier = torch.cat([x, torch.full((1, 2), 6.0, dtype=F64)])
    probes_out = torch.cat([probes, torch.ones(2, 1, 2, dtype=F64)], dim=1)
    with_outlier = _exact(gm, sde, outlier, divergence=div(probes_out), **opts).logp
    torch.testing.assert_close(with_outlier[:5], batched, rtol=0, atol=1e-5)


def test_same_generator_seed_gives_the_same_result():
    sde, gm = VPSDE(), _mixture(2)
    x = _data(gm, sde, 4, dtype=torch.float32)
    runs = [
        log_likelihood(x, sde, gm.score(sde), generator=torch.Generator().manual_seed(16)).logp
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


# -- gradients --------------------------------------------------------------------------------------
class _ScoreModule(nn.Module):
    """The oracle score as an nn.Module (odeint_adjoint looks for parameters on modules)."""

    def __init__(self, score_fn):
        super().__init__()
        self.score_fn = score_fn

    def forward(self, t, x):
        return self.score_fn(t, x)


@pytest.mark.parametrize("adjoint", [False, True], ids=["backprop", "adjoint"])
def test_gradient_of_the_log_likelihood_is_the_score(adjoint):
    """grad_x log p_eps(x) = score(eps, x): differentiating through the solve recovers the exact score."""
    sde, gm = VPSDE(), _mixture(2)
    x = _data(gm, sde, 3, seed=17).requires_grad_(True)
    res = log_likelihood(
        x,
        sde,
        _ScoreModule(gm.score(sde)),
        divergence=ExactTrace(),
        rtol=1e-7,
        atol=1e-7,
        prior_logp=gm.marginal(sde, 1.0).log_prob,
        create_graph=True,
        adjoint=adjoint,
    )
    (grad,) = torch.autograd.grad(res.logp.sum(), x)
    torch.testing.assert_close(grad, gm.score(sde)(EPS, x.detach()), rtol=0, atol=1e-5)


def test_adjoint_and_backprop_give_the_same_parameter_gradients():
    sde = VPSDE()
    torch.manual_seed(0)  # parameter init only; the library never seeds global state
    net = ScoreMLP(2, hidden=16, depth=2).double()
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(18), dtype=F64)
    grads = []
    for adjoint in (False, True):
        net.zero_grad()
        res = log_likelihood(
            x,
            sde,
            net,
            divergence=Hutchinson(n_probes=2),
            rtol=1e-7,
            atol=1e-7,
            generator=torch.Generator().manual_seed(19),
            create_graph=True,
            adjoint=adjoint,
        )
        res.logp.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)


def test_no_graph_is_kept_unless_asked():
    sde = VPSDE()
    net = ScoreMLP(2, hidden=8, depth=1)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(20), requires_grad=True)
    res = log_likelihood(x, sde, net, generator=torch.Generator().manual_seed(21))
    assert not res.logp.requires_grad and not res.z.requires_grad
    assert all(p.grad is None for p in net.parameters())


# -- bits per dimension -----------------------------------------------------------------------------
def test_bits_per_dim_option_matches_the_helper():
    sde, gm = VPSDE(), _mixture(4, event_shape=(1, 2, 2))
    x = _data(gm, sde, 3, seed=22).clamp(-1, 1)
    q = Quantization(data_range=(-1.0, 1.0))
    res = _exact(gm, sde, x, bits_per_dim=q)
    expected = -res.logp / (4 * math.log(2)) + 7.0
    torch.testing.assert_close(res.bpd, expected)
    torch.testing.assert_close(res.bpd, sdegen.bits_per_dim(res.logp, x.shape, data_range=(-1.0, 1.0)))


# -- failures and bad input -------------------------------------------------------------------------
def test_non_finite_score_is_reported_as_a_floating_point_error():
    def score(t, x):
        return torch.where(t[:, None] > 0.5, torch.nan, -x)

    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(23))
    with pytest.raises(FloatingPointError, match=r"NaN or infinity at t = .* in the step from t = "):
        log_likelihood(x, VPSDE(), score)


def test_solver_failures_are_reported_with_the_time():
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(24))
    with pytest.raises(RuntimeError, match=r"solve failed at t = .*max_num_steps exceeded.*raise max_steps"):
        log_likelihood(x, VPSDE(), lambda t, x: -x, max_steps=3)

    def exploding(t, x):  # probability-flow drift ~ +25 beta x^3: finite-time blow-up
        return -50 * x**3

    with pytest.raises(RuntimeError, match=r"solve failed at t = .*underflow in dt.*too stiff"):
        log_likelihood(x, VPSDE(), exploding)


def _call(x=None, sde=None, score_fn=None, **kwargs):
    x = torch.zeros(2, 3) if x is None else x
    return log_likelihood(x, sde or VPSDE(), score_fn or (lambda t, x: -x), **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(x=[[0.0]]), TypeError, "x must be a torch.Tensor"),
        (dict(x=torch.zeros(2, 3, dtype=torch.long)), TypeError, "floating-point"),
        (dict(x=torch.tensor(1.0)), ValueError, r"shape \[B, \.\.\.\]"),
        (dict(x=torch.zeros(0, 3)), ValueError, "at least one sample"),
        (dict(x=torch.tensor([[0.0, float("nan"), 1.0]])), ValueError, "1 NaN or infinite"),
        (dict(sde="vp"), TypeError, "sde must be an sdegen.SDE"),
        (dict(score_fn=3), TypeError, "score_fn must be callable"),
        (
            dict(score_fn=lambda t, x: -x[:, :2]),
            ValueError,
            r"shaped and typed like x \(shape \(2, 3\).*got shape \(2, 2\)",
        ),
        (dict(score_fn=lambda t, x: -x.detach()), ValueError, "does not depend differentiably on x"),
        (dict(eps=0.0), ValueError, r"eps must lie in \(0, T\) = \(0, 1\)"),
        (dict(eps=1.0), ValueError, r"eps must lie in \(0, T\)"),
        (dict(eps=-1e-3), ValueError, r"eps must lie in \(0, T\)"),
        (dict(eps=float("nan")), ValueError, "eps must be finite"),
        (dict(rtol=0.0), ValueError, "rtol must be > 0"),
        (dict(atol="1e-5"), TypeError, "atol must be a real number"),
        (dict(method="euler"), ValueError, "method must be an adaptive torchdiffeq solver"),
        (dict(divergence="exact"), TypeError, r"divergence must be a DivergenceEstimator"),
        (dict(prior_logp=1.0), TypeError, "prior_logp must be a callable"),
        (dict(prior_logp=lambda z: z), ValueError, r"prior_logp\(z\) must return a tensor of shape \[B\]"),
        (dict(generator=0), TypeError, "generator must be a torch.Generator"),
        (dict(bits_per_dim=True), TypeError, r"bits_per_dim must be a Quantization"),
        (dict(max_steps=0), ValueError, "max_steps must be >= 1"),
        (dict(create_graph="yes"), TypeError, "create_graph must be a bool"),
        (dict(adjoint=True), ValueError, "adjoint=True only saves memory"),
        (dict(adjoint=True, create_graph=True), TypeError, "score_fn must be a torch.nn.Module"),
        (dict(x=torch.zeros(2, 200), divergence=ExactTrace()), ValueError, "max_dim = 128"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        _call(**kwargs)


def test_inference_mode_is_refused_and_no_grad_is_fine():
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(25))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="needs autograd for the divergence"):
        _call(x=x)
    with torch.no_grad():
        assert _call(x=x).logp.shape == (3,)


def test_public_api_is_exported_from_sdegen():
    for name in (
        "log_likelihood",
        "LikelihoodResult",
        "Hutchinson",
        "ExactTrace",
        "bits_per_dim",
        "dequantize",
    ):
        assert getattr(sdegen, name) is getattr(sdegen.likelihood, name)
