"""The score-matching family on the Gaussian-mixture oracle: equivalences, gradients, minimisers, NCSN.

With x_t = alpha(t) x0 + sigma(t) z and one time t (weight 1), sdegen's conventions give

    L_ESM - L_ISM = E ||grad log p_t(x_t)||^2                    (Hyvarinen 2005, theorem 1)
    L_DSM - L_ESM = d / sigma(t)^2 - E ||grad log p_t(x_t)||^2   (Vincent 2011, eq. 11-12)

for any model s. Each loss is called with an equally seeded generator, so all three see the same
x_t (common random numbers) and the per-sample differences have a small variance; the right-hand
sides come from the oracle, from an independent sample of p_t. Every comparison is a z-score
against the estimated standard error of both sides.
"""

import math

import pytest
import torch
from torch import nn

import sdegen
from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.likelihood import ExactTrace, Hutchinson
from sdegen.losses import (
    DenoisingScoreMatching,
    ExplicitScoreMatching,
    ImplicitScoreMatching,
    NCSNLevels,
    NCSNLoss,
    SlicedScoreMatching,
    TimeWeighting,
    WeightedTimes,
)
from sdegen.nn import ScoreMLP
from sdegen.parameterization import NoisePrediction, ScoreModel, ScorePrediction
from sdegen.samplers import AnnealedLangevinSampler
from sdegen.testing import check_samples

F64 = torch.float64
MIXTURE = GaussianMixture.ring(4, radius=2.0, std=0.4)
SDES = {"VP": VPSDE(), "subVP": SubVPSDE(), "VE": VESDE(0.01, 10.0)}
N = 1 << 14
Z_MAX = 4.0  # two-sided, for normal z-scores: a 6e-5 chance per comparison under the null


class AtTime(TimeWeighting):
    """Every sample at the time ``t``, with weight 1: the sigma-independent weighting of one level."""

    def __init__(self, t: float) -> None:
        self.t = t

    def sample(self, sde, n, *, eps, generator=None, device=None, dtype=None):
        t = torch.full((n,), self.t, device=device, dtype=dtype)
        return WeightedTimes(t, torch.ones_like(t))


def random_model(sde, seed, param=None):
    """An untrained score model in float64 (different seeds give different functions)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ScoreMLP((2,), hidden=32, depth=2, fourier_scale=1.0).double()
    return ScoreModel(net, sde, param or ScorePrediction())


def losses(sde, weighting, **kw):
    return {
        "ESM": ExplicitScoreMatching(MIXTURE.score(sde), weighting, reduction="none", **kw),
        "ISM": ImplicitScoreMatching(weighting, reduction="none", **kw),
        "DSM": DenoisingScoreMatching(weighting, reduction="none", **kw),
    }


def per_sample(loss, model, x0, seed):
    with torch.no_grad():
        return loss(model, x0, generator=torch.Generator().manual_seed(seed))


def mean_and_se(v):
    return float(v.mean()), float(v.std()) / math.sqrt(v.numel())


def fisher_information(sde, t, n=1 << 18, seed=99):
    """E ||grad log p_t||^2 and its standard error, from an independent sample of the oracle's p_t."""
    x = MIXTURE.marginal(sde, t).sample(n, generator=torch.Generator().manual_seed(seed))
    return mean_and_se((MIXTURE.score(sde)(t, x) ** 2).sum(1))


def z_score(estimate, se, expected, expected_se=0.0):
    return (estimate - expected) / math.sqrt(se**2 + expected_se**2)


# -- the constants ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SDES))
def test_esm_ism_dsm_differ_by_the_closed_form_constants(name):
    sde, d = SDES[name], 2
    x0 = MIXTURE.sample(N, generator=torch.Generator().manual_seed(0))
    models = [random_model(sde, 1), random_model(sde, 2)]
    for t in (0.05, 0.3, 0.8):
        fisher, fisher_se = fisher_information(sde, t)
        sigma = float(sde.sigma(torch.tensor(t, dtype=F64)))
        constants = {("ESM", "ISM"): fisher, ("DSM", "ESM"): d / sigma**2 - fisher}
        # Power: each comparison resolves a 20 % error in its constant's larger part (E||grad log
        # p_t||^2, resp. d / sigma^2) at 5 standard errors.
        scales = {("ESM", "ISM"): fisher, ("DSM", "ESM"): d / sigma**2}
        values = []
        for model in models:
            L = {k: per_sample(v, model, x0, seed=3) for k, v in losses(sde, AtTime(t)).items()}
            for (a, b), constant in constants.items():
                estimate, se = mean_and_se(L[a] - L[b])
                z = z_score(estimate, se, constant, fisher_se)
                assert abs(z) < Z_MAX, (
                    f"{name} t={t}: L_{a} - L_{b} = {estimate:.5g} +- {se:.3g}, theory {constant:.5g}"
                )
                assert 5 * se < 0.2 * scales[a, b], f"{name} t={t}: L_{a} - L_{b} has se {se:.3g}, no power"
            values.append(L)
        # The constants do not change with the model (paired: same x_t for both models).
        A, B = values
        for a, b in constants:
            change, se = mean_and_se((A[a] - A[b]) - (B[a] - B[b]))
            assert abs(change) < Z_MAX * se, f"{name} t={t}: L_{a} - L_{b} changed by {change} +- {se}"
            assert 5 * se < 0.2 * scales[a, b], f"{name} t={t}: the change has se {se:.3g}, no power"


def test_ism_with_hutchinson_is_unbiased_and_twice_ssm_vr():
    sde = SDES["VE"]
    x0 = MIXTURE.sample(N, generator=torch.Generator().manual_seed(4))
    model = random_model(sde, 5)
    weighting = AtTime(0.3)
    exact = per_sample(ImplicitScoreMatching(weighting, reduction="none"), model, x0, seed=6)
    for probe in ("rademacher", "gaussian"):
        hutch = ImplicitScoreMatching(weighting, divergence=Hutchinson(probe), reduction="none")
        estimate = per_sample(hutch, model, x0, seed=6)
        z = z_score(*mean_and_se(estimate - exact), 0.0)
        assert abs(z) < Z_MAX, f"{probe}: ISM-Hutchinson - ISM-exact has z = {z:.2f}"
        # Hutchinson(1) ISM = ||s||^2 + 2 v^T J v = 2 (1/2 ||s||^2 + v^T J v) = 2 SSM-VR, same draws.
        ssm_vr = SlicedScoreMatching(weighting, projection=probe, variance_reduced=True, reduction="none")
        torch.testing.assert_close(
            estimate, 2 * per_sample(ssm_vr, model, x0, seed=6), rtol=1e-10, atol=1e-10
        )


# -- the gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["VP", "VE"])
def test_parameter_gradients_of_esm_ism_dsm_agree_in_expectation(name):
    # Per-sample directional derivatives d/dh loss_i(theta + h u) along fixed random directions u,
    # by central differences with common random numbers; the autograd gradient must equal their
    # mean, and the differences between the three losses must have mean zero.
    sde, h = SDES[name], 1e-4
    x0 = MIXTURE.sample(N, generator=torch.Generator().manual_seed(7))
    model = random_model(sde, 8, NoisePrediction())
    objectives = losses(sde, None, eps=1e-3)  # sigma^2 weighting, t ~ U[1e-3, 1]
    params = [p for p in model.parameters() if p.requires_grad]
    theta = nn.utils.parameters_to_vector(params).detach()
    # The first direction is the DSM gradient on other draws, so that the power check below means
    # something; the others are random.
    g_dsm = torch.autograd.grad(
        objectives["DSM"](model, x0, generator=torch.Generator().manual_seed(0)).mean(), params
    )
    directions = torch.cat(
        [
            nn.utils.parameters_to_vector(g_dsm)[None],
            torch.randn(2, theta.numel(), generator=torch.Generator().manual_seed(9), dtype=F64),
        ]
    )
    directions /= directions.norm(dim=1, keepdim=True)

    def at(vector):
        nn.utils.vector_to_parameters(vector, params)
        return {k: per_sample(v, model, x0, seed=10) for k, v in objectives.items()}

    for j, u in enumerate(directions):
        plus, minus = at(theta + h * u), at(theta - h * u)
        slopes = {k: (plus[k] - minus[k]) / (2 * h) for k in objectives}
        nn.utils.vector_to_parameters(theta, params)
        for k, loss in objectives.items():
            value = loss(model, x0, generator=torch.Generator().manual_seed(10)).mean()
            grads = torch.autograd.grad(value, params, allow_unused=True)
            along = sum(
                float((g * ui).sum()) for g, ui in zip(grads, _split(u, params), strict=True) if g is not None
            )
            assert along == pytest.approx(float(slopes[k].mean()), rel=1e-5, abs=1e-8), k
        for a, b in (("ESM", "ISM"), ("DSM", "ESM"), ("DSM", "ISM")):
            difference, se = mean_and_se(slopes[a] - slopes[b])
            assert abs(difference) < Z_MAX * se, (
                f"{name}: gradients of {a}, {b} differ along u by {difference} +- {se}"
            )
            if j == 0:  # power: a gradient half as large would differ by more than 5 standard errors
                assert 0.5 * abs(float(slopes[a].mean())) > 5 * se, (
                    f"{name}: {a} vs {b}: no power, se {se:.3g}"
                )


def _split(vector, params):
    out, i = [], 0
    for p in params:
        out.append(vector[i : i + p.numel()].view_as(p))
        i += p.numel()
    return out


# -- the minimiser ------------------------------------------------------------------------------


class LinearScore(nn.Module):
    """s(x) = W x + b with theta = (W, b) in one parameter vector; ignores t."""

    def __init__(self, d):
        super().__init__()
        self.d = d
        self.theta = nn.Parameter(torch.zeros(d * d + d, dtype=F64))

    def forward(self, t, x):
        W, b = self.theta[: self.d**2].view(self.d, self.d), self.theta[self.d**2 :]
        return x @ W.T + b


def test_every_objective_reaches_the_true_linear_score_of_gaussian_data():
    # Data N(m, C); at time t, p_t = N(alpha m, Sigma_t = alpha^2 C + sigma^2 I), whose score is
    # linear: W* = -Sigma_t^{-1}, b* = Sigma_t^{-1} alpha m. Every objective is a quadratic in
    # theta, so one Newton step from 0 lands on its empirical minimiser; its standard error is the
    # sandwich H^{-1} Cov(per-sample gradients) H^{-1} / n.
    d, n, t = 2, 1 << 15, 0.2
    sde = VPSDE()
    m = torch.tensor([1.0, -0.5], dtype=F64)
    C = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64)
    gauss = GaussianMixture([1.0], m[None], C[None])
    x0 = gauss.sample(n, generator=torch.Generator().manual_seed(11))
    tt = torch.tensor(t, dtype=F64)
    alpha, sigma = float(sde.alpha(tt)), float(sde.sigma(tt))
    precision = torch.linalg.inv(alpha**2 * C + sigma**2 * torch.eye(d, dtype=F64))
    truth = torch.cat([-precision.reshape(-1), precision @ (alpha * m)])
    w = AtTime(t)
    objectives = {
        "ESM": ExplicitScoreMatching(gauss.score(sde), w, reduction="none"),
        "ISM": ImplicitScoreMatching(w, reduction="none"),
        "ISM-Hutchinson": ImplicitScoreMatching(w, divergence=Hutchinson(), reduction="none"),
        "DSM": DenoisingScoreMatching(w, reduction="none"),
        "SSM": SlicedScoreMatching(w, reduction="none"),
        "SSM-VR": SlicedScoreMatching(w, variance_reduced=True, reduction="none"),
    }
    for name, loss in objectives.items():
        model = ScoreModel(LinearScore(d), sde, ScorePrediction())
        theta = model.net.theta
        value = loss(model, x0, generator=torch.Generator().manual_seed(12)).mean()
        (g,) = torch.autograd.grad(value, theta, create_graph=True)
        H = torch.stack(
            [torch.autograd.grad(g[i], theta, retain_graph=True)[0] for i in range(theta.numel())]
        )
        with torch.no_grad():
            theta -= torch.linalg.solve(H, g.detach())
        # Per-sample gradients at the minimiser by central differences (exact for a quadratic).
        per = []
        for i in range(theta.numel()):
            e = torch.zeros_like(theta)
            e[i] = 1e-3
            with torch.no_grad():
                theta += e
                up = per_sample(loss, model, x0, seed=12)
                theta -= 2 * e
                down = per_sample(loss, model, x0, seed=12)
                theta += e
            per.append((up - down) / 2e-3)
        G = torch.stack(per, dim=1)
        H_inv = torch.linalg.inv(H.detach())
        se = (torch.diagonal(H_inv @ torch.cov(G.T) @ H_inv) / n).sqrt()
        if name == "ESM":
            # Regression onto the exact score: the empirical minimiser is exact, every residual is 0.
            torch.testing.assert_close(theta.detach(), truth, rtol=0, atol=1e-10)
            continue
        z = (theta.detach() - truth) / se
        assert float(z.abs().max()) < Z_MAX, (
            f"{name}: theta {theta.tolist()} vs {truth.tolist()}, z {z.tolist()}"
        )
        assert float((se / truth.abs()).max()) < 0.05, f"{name}: standard errors {se.tolist()} too large"


# -- NCSN -----------------------------------------------------------------------------------------


def test_ncsn_levels_are_the_ve_sdes_geometric_levels_at_their_times():
    sde = VESDE(0.01, 10.0)
    levels = NCSNLevels(10).of(sde, dtype=F64)
    geometric = sde.discretize(10, dtype=F64).sigmas.flip(0)
    torch.testing.assert_close(levels.sigma, sde.sigma(levels.t), rtol=0, atol=0)
    torch.testing.assert_close(levels.sigma[1:], geometric[1:], rtol=1e-12, atol=0)
    # The top level is sigma_max, the SMLD kernel's std at T, just beyond the SDE's sigma(T).
    assert float(levels.t[0]) == 1.0
    assert abs(float(levels.sigma[0]) / 10.0 - 1) < 0.5 * (0.01 / 10.0) ** 2 * 1.01
    ratios = levels.sigma[1:-1] / levels.sigma[2:]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 1000 ** (1 / 9)), rtol=1e-12, atol=0)


def test_ncsn_loss_is_sigma_squared_weighted_dsm_on_the_levels():
    # (1/L) sum_i sigma_i^2 ||s(tau_i, x0 + sigma_i z) + z / sigma_i||^2 = ||sigma_i s + z||^2 per sample.
    sde = VESDE(0.01, 10.0)
    model = random_model(sde, 13, ScorePrediction())
    x0 = MIXTURE.sample(512, generator=torch.Generator().manual_seed(14))
    loss = NCSNLoss(10, reduction="none")
    got = per_sample(loss, model, x0, seed=15)
    levels = loss.levels.of(sde, dtype=F64)
    g = torch.Generator().manual_seed(15)
    i = torch.randint(0, 10, (512,), generator=g)
    z = torch.randn(x0.shape, generator=g, dtype=F64)
    sigma = levels.sigma[i][:, None]
    with torch.no_grad():
        expected = ((sigma * model(levels.t[i], x0 + sigma * z) + z) ** 2).sum(1)
    torch.testing.assert_close(got, expected)
    assert set(i.tolist()) == set(range(10))


def _train_ncsn(sde, levels, steps, hidden, batch, lr, seed):
    torch.manual_seed(seed)
    model = ScoreModel(ScoreMLP((2,), hidden=hidden, depth=2, fourier_scale=1.0), sde, NoisePrediction())
    loss = NCSNLoss(levels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        x0 = MIXTURE.sample(batch, generator=g, dtype=torch.float32)
        opt.zero_grad()
        loss(model, x0, generator=g).backward()
        opt.step()
        schedule.step()
    return model.eval(), loss.levels.of(sde, dtype=F64)


def _check_ncsn_end_to_end(*, steps, hidden, batch, n_nll, n_samples, n_steps_each, margin):
    # The NCSN model is a ScoreModel of its VE SDE; it is evaluated at eps = tau_L, the smallest
    # level, where p_eps = data * N(0, sigma_L^2) is known exactly.
    sde = VESDE(0.01, 5.0)
    model, levels = _train_ncsn(sde, 10, steps, hidden, batch, 5e-3 if steps < 2000 else 3e-3, seed=20)
    eps = float(levels.t[-1])
    p_eps = MIXTURE.marginal(sde, eps)
    x = MIXTURE.sample(n_nll, generator=torch.Generator().manual_seed(21), dtype=torch.float32)
    result = sdegen.log_likelihood(x, sde, model, divergence=ExactTrace(), eps=eps, rtol=1e-4, atol=1e-4)
    gap = p_eps.log_prob(x.double()) - result.logp.double()  # per point; mean = KL estimate + prior mismatch
    mean, se = mean_and_se(gap)
    assert -3 * se < mean < margin, f"held-out NLL - true NLL = {mean:.4f} +- {se:.4f} nats, margin {margin}"
    # Annealed Langevin on exactly the training levels (NCSN Alg. 1), from the prior.
    sampler = AnnealedLangevinSampler(ts=levels.t, n_steps_each=n_steps_each, snr=0.22)
    out = sdegen.sample(sde, model, (n_samples, 2), sampler, generator=torch.Generator().manual_seed(22))
    report = check_samples(out.x.double(), p_eps, seed=23)
    assert report.passed, str(report)


def test_ncsn_end_to_end_quick():
    _check_ncsn_end_to_end(
        steps=1000, hidden=64, batch=256, n_nll=200, n_samples=500, n_steps_each=50, margin=0.2
    )


@pytest.mark.slow
def test_ncsn_end_to_end():
    _check_ncsn_end_to_end(
        steps=3000, hidden=128, batch=512, n_nll=1000, n_samples=2000, n_steps_each=100, margin=0.05
    )


# -- bad input ------------------------------------------------------------------------------------


class CountingNet(nn.Module):
    def __init__(self, d=2):
        super().__init__()
        self.calls = 0
        self.lin = nn.Linear(d, d).double()

    def forward(self, t, x):
        self.calls += 1
        return self.lin(x.reshape(x.shape[0], -1)).reshape(x.shape)


def test_bad_input_is_refused_before_any_work():
    sde = VPSDE()
    x0 = MIXTURE.sample(8, generator=torch.Generator().manual_seed(0))
    net = CountingNet()
    model = ScoreModel(net, sde, ScorePrediction())
    g = torch.Generator().manual_seed(0)
    state = g.get_state()

    # A target score of the wrong shape, before the model is evaluated.
    wrong = ExplicitScoreMatching(lambda t, x: x[:, :1])
    with pytest.raises(
        ValueError, match=r"target_score\(t, x\) must return a tensor shaped and typed like x"
    ):
        wrong(model, x0, generator=g)
    with pytest.raises(ValueError, match=r"target_score\(t, x\) must return .* dtype"):
        ExplicitScoreMatching(lambda t, x: x.float())(model, x0)
    assert net.calls == 0
    with pytest.raises(TypeError, match="target_score must be callable"):
        ExplicitScoreMatching("oracle")

    # The exact trace above its dimension limit: nothing drawn, nothing evaluated.
    big = torch.zeros(4, 200, dtype=F64)
    big_model = ScoreModel(CountingNet(200), sde, ScorePrediction())
    g.set_state(state)
    with pytest.raises(ValueError, match=r"got D = 200 > max_dim = 128.*Hutchinson\(\)"):
        ImplicitScoreMatching()(big_model, big, generator=g)
    assert big_model.net.calls == 0 and torch.equal(g.get_state(), state)
    with pytest.raises(TypeError, match="divergence must be a DivergenceEstimator"):
        ImplicitScoreMatching(divergence="exact")

    # A network whose output has the wrong shape.
    class Squash(nn.Module):
        def forward(self, t, x):
            return x.sum(1, keepdim=True)

    squash = ScoreModel(Squash(), sde, ScorePrediction())
    for loss in (DenoisingScoreMatching(), ImplicitScoreMatching(), SlicedScoreMatching()):
        with pytest.raises(
            ValueError, match=r"must return a tensor shaped and typed like x \(shape \(8, 2\)"
        ):
            loss(squash, x0)

    # NCSN needs a VE SDE; its levels must lie above eps.
    with pytest.raises(TypeError, match="NCSN's noise levels are those of a VESDE"):
        NCSNLoss(10)(model, x0)
    with pytest.raises(ValueError, match="levels must be >= 2"):
        NCSNLoss(1)
    ve_model = ScoreModel(CountingNet(), VESDE(0.01, 10.0), ScorePrediction())
    with pytest.raises(ValueError, match="the smallest NCSN level lies at t = 0.05017 < eps = 0.1"):
        DenoisingScoreMatching(NCSNLevels(10), eps=0.1)(ve_model, x0)
    assert ve_model.net.calls == 0
