"""Conditional sampling against exact conditionals: what is exact passes the law test, what is biased is
biased by the amount and in the direction the theory predicts.

* Classifier guidance at scale 1 with the exact classifier reproduces p(x | y).
* Replacement (inpainting, a general linear observation, noisy or not) is exact when the observed
  coordinates are independent of the free ones, and biased towards the prior otherwise: on a
  correlated Gaussian the sampler is a linear Gaussian chain whose law is computed exactly here,
  and the samples follow that law, not the conditional.
* Reconstruction guidance (DPS) is biased the other way: over-confident, with too little variance
  and too much weight on the component the observation favours -- again the exact law of its
  chain on Gaussian data.
* Classifier-free guidance at w > 0 overshoots the tilted target p(x) p(y | x)^(1 + w).
* A product of experts is not sampled by the naive sum of scores at any step count; Metropolis-
  adjusted correctors close the gap.

The default cases use n = 1000-4000 samples and short grids; the slow ones every SDE and sampler.
"""

import math

import pytest
import torch
from _conditional_data import (
    CORRELATED,
    CORRELATED_X1,
    EXPERT_1,
    EXPERT_2,
    GAUSS_COV,
    GAUSS_MEAN,
    GAUSSIAN,
    GRAY,
    INPAINT_X1,
    LABELLED,
    ROTATED_NOISY,
    ROTATION,
    SDES,
    independent_mixture,
    null,
    rgb_mixture,
    target,
)
from _samplers import registered

import sdegen
from sdegen import (
    SDE,
    AnnealedLangevinSampler,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    DDIMSampler,
    DDPMSampler,
    DPMSolverMultistepSampler,
    DPMSolverSDESampler,
    DPMSolverSinglestepSampler,
    EDMHeunSampler,
    EDMStochasticSampler,
    Inpainting,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ProductOfExperts,
    ReconstructionGuidance,
    ReverseSDESampler,
    UniPCSampler,
)
from sdegen.samplers import (
    AnnealedLangevinCorrector,
    EulerMaruyama,
    HMCCorrector,
    LangevinCorrector,
    MALACorrector,
    NoneCorrector,
    ReverseDiffusion,
)
from sdegen.samplers.grid import uniform_times
from sdegen.sde.coefficients import CoefficientGrid
from sdegen.testing import check_samples

F64 = torch.float64
Z = 5.0


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _exact_start(data, sde, n, seed):
    """n exact samples of the data's p_T (not the prior: only the sampler's error is measured)."""
    return data.marginal(sde, sde.T).sample(n, generator=_generator(seed))


# -- classifier guidance ------------------------------------------------------------------------


def _check_classifier_guidance(sde_name, sampler, n=1000, seed=0):
    sde = SDES[sde_name]
    guided = ClassifierGuidance(LABELLED.score(sde), LABELLED.classifier(sde), 0)
    x_T = _exact_start(LABELLED.class_conditional(0), sde, n, seed)
    x = sdegen.sample(sde, guided, None, sampler, x_T=x_T, generator=_generator(seed + 1)).x
    report = check_samples(
        x, target("class 0", sde_name), null=null("class 0", sde_name, n), seed=seed, z_tolerance=Z
    )
    assert report, f"{sampler!r} on {sde_name}:\n{report}"


def test_classifier_guidance_samples_the_class_conditional():
    _check_classifier_guidance("VP", DDPMSampler(200))


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize(
    "make",
    [lambda: DDPMSampler(500), lambda: ReverseSDESampler("srk", 200), lambda: ProbabilityFlowSampler()],
    ids=["ddpm", "sde-srk", "ode-dopri5"],
)
def test_classifier_guidance_samples_the_class_conditional_thoroughly(sde_name, make):
    _check_classifier_guidance(sde_name, make(), n=2000, seed=1)


# -- replacement: exact on independent coordinates -----------------------------------------------


def _check_replacement(key, data, observation, sde_name, sampler, n=1000, seed=0):
    sde = SDES[sde_name]
    x_T = _exact_start(data, sde, n, seed)
    out = sdegen.sample(
        sde, data.score(sde), None, sampler, x_T=x_T, generator=_generator(seed + 1), observation=observation
    )
    free = observation.free_coordinates(out.x)
    report = check_samples(free, target(key, sde_name), null=null(key, sde_name, n), seed=seed, z_tolerance=Z)
    assert report, f"{sampler!r} on {sde_name}:\n{report}"
    return out


def test_inpainting_by_replacement_is_exact_for_independent_coordinates():
    out = _check_replacement("independent | x1", independent_mixture(), INPAINT_X1, "VP", DDPMSampler(100))
    assert out.nfe == 100
    # A few-step sampler takes the same observation, at 20 evaluations.
    _check_replacement(
        "independent | x1", independent_mixture(), INPAINT_X1, "VP", DPMSolverMultistepSampler(20)
    )


def test_noisy_linear_observation_by_projection_is_exact_for_independent_coordinates():
    """y = 2 z_1 + 0.3 n with z_1 a rotated coordinate: replacement in the orthonormal coordinates of A,
    stopped at the observation's noise level, samples the exact conditional of all of x."""
    _check_replacement(
        "rotated | noisy z1",
        independent_mixture(ROTATION),
        ROTATED_NOISY,
        "VE",
        ReverseSDESampler("euler", 200),
    )


REPLACEMENT_SAMPLERS = [
    ("ddpm", lambda: DDPMSampler(300)),
    ("pc-em", lambda: PredictorCorrectorSampler(EulerMaruyama(), NoneCorrector(), 300)),
    ("pc-rd-langevin", lambda: PredictorCorrectorSampler(ReverseDiffusion(), LangevinCorrector(), 200)),
    ("ald", lambda: AnnealedLangevinSampler(100, n_steps_each=5, snr=0.3)),
    ("sde-euler", lambda: ReverseSDESampler("euler", 300)),
    ("sde-srk", lambda: ReverseSDESampler("srk", 100)),
    ("ode-heun2", lambda: ProbabilityFlowSampler("heun2", steps=100)),
    ("ddim", lambda: DDIMSampler(100)),
    ("ddim-eta1", lambda: DDIMSampler(100, eta=1.0)),
    ("dpm-2m", lambda: DPMSolverMultistepSampler(50)),
    ("dpm-3m", lambda: DPMSolverMultistepSampler(50, order=3)),
    ("dpm-2s", lambda: DPMSolverSinglestepSampler(50)),
    ("dpm-2m-sde", lambda: DPMSolverSDESampler(100)),
    ("edm-heun", lambda: EDMHeunSampler(50)),
    ("edm-churn", lambda: EDMStochasticSampler(50, s_churn=1.0)),
    ("unipc", lambda: UniPCSampler(50)),
]


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize(
    "make", [m for _, m in REPLACEMENT_SAMPLERS], ids=[i for i, _ in REPLACEMENT_SAMPLERS]
)
def test_replacement_is_exact_for_independent_coordinates_thoroughly(sde_name, make):
    _check_replacement(
        "independent | x1", independent_mixture(), INPAINT_X1, sde_name, make(), n=2000, seed=2
    )


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize(
    "make",
    [
        lambda: DDPMSampler(300),
        lambda: ReverseSDESampler("srk", 100),
        lambda: DDIMSampler(100, eta=1.0),
        lambda: DPMSolverSDESampler(100),
    ],
    ids=["ddpm", "sde-srk", "ddim-eta1", "dpm-2m-sde"],
)
def test_noisy_projection_is_exact_for_independent_coordinates_thoroughly(sde_name, make):
    _check_replacement(
        "rotated | noisy z1", independent_mixture(ROTATION), ROTATED_NOISY, sde_name, make(), n=2000, seed=3
    )


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", list(SDES))
def test_colorization_by_replacement_is_exact_when_gray_and_colour_are_independent(sde_name):
    _check_replacement("rgb | gray", rgb_mixture(), GRAY, sde_name, DDPMSampler(300), n=2000, seed=4)


# -- the law of a linear Gaussian chain ---------------------------------------------------------


def _affine(score_fn, t, d):
    """(M, b) with score_fn(t, x) = -M x + b, read off at x = 0 and the unit vectors."""
    X = torch.cat([torch.zeros(1, d, dtype=F64), torch.eye(d, dtype=F64)])
    out = score_fn(torch.full((d + 1,), t, dtype=F64), X)
    return -(out[1:] - out[0]).T, out[0]


def _ddpm_law(sde, score_fn, steps, observation=None):
    """Mean and covariance of DDPMSampler(steps) from the exact p_T of GAUSSIAN, for an affine score_fn,
    with the replacement of an exact Inpainting ``observation`` after every step: each step is
    x <- L x + c + sqrt(v) z, L = (I - v M) / A, c = v b / A (AncestralSampling without the last noise),
    and the replacement sets the observed block to N(alpha u, sigma^2 I) independent of the rest."""
    eps = sde.sampling_eps
    grid = CoefficientGrid(sde, uniform_times(sde.T, eps, steps))
    T = torch.tensor(sde.T, dtype=F64)
    m = sde.alpha(T) * GAUSS_MEAN
    C = sde.alpha(T) ** 2 * GAUSS_COV + sde.sigma(T) ** 2 * torch.eye(2, dtype=F64)

    def project(i, m, C):
        if observation is None:
            return m, C
        obs = observation.mask
        m, C = m.clone(), C.clone()
        m[obs] = grid.alpha[i] * observation.observed_values()
        C[obs, :] = 0.0
        C[:, obs] = 0.0
        C[obs, obs] = grid.sigma[i] ** 2
        return m, C

    m, C = project(0, m, C)
    for i in range(steps):
        A, v = grid.transition(i)
        M, b = _affine(score_fn, grid.t[i], 2)
        L = (torch.eye(2, dtype=F64) - v * M) / A
        m = L @ m + v * b / A
        C = L @ C @ L.T + (v * torch.eye(2, dtype=F64) if i < steps - 1 else 0.0)
        m, C = project(i + 1, m, C)
    return m, C


def _z_moments(x, m, C):
    """Largest |z| of the sample mean and variances against N(m, C) (Gaussian standard errors)."""
    n = x.shape[0]
    var = C.diagonal()
    z_mean = ((x.mean(0) - m).abs() / (var / n).sqrt()).max()
    z_var = ((x.var(0) - var).abs() / (var * math.sqrt(2 / (n - 1)))).max()
    return float(max(z_mean, z_var))


@pytest.mark.parametrize("sde_name", ["VP", pytest.param("VE", marks=pytest.mark.slow)])
def test_replacement_bias_on_correlated_gaussian_data_is_the_predicted_one(sde_name):
    """Observing x_1 = 1.5 of a Gaussian with correlation 0.8: the replacement chain is linear, and its
    exact law at eps (computed by propagating its moments) has for x_2 a mean of about 0.0 and a
    variance of about 0.50, against 0.30 and 0.36 for the exact conditional and -0.5 and 1 for the
    prior (the same limits for VP and VE as the steps grow) -- the observation reaches x_2 only
    through the noised x_1. The samples follow that law."""
    sde, steps, n = SDES[sde_name], 200, 4000
    obs = Inpainting(torch.tensor([True, False]), torch.tensor([1.5, 0.0], dtype=F64))
    m, C = _ddpm_law(sde, GAUSSIAN.score(sde), steps, obs)
    exact = GAUSSIAN.condition(obs).marginal(sde, sde.sampling_eps)
    x_T = _exact_start(GAUSSIAN, sde, n, 4)
    x = sdegen.sample(
        sde, GAUSSIAN.score(sde), None, DDPMSampler(steps), x_T=x_T, generator=_generator(5), observation=obs
    ).x
    assert _z_moments(x[:, 1:], m[1:], C[1:, 1:]) < Z
    exact_var, exact_mean = float(exact.covariance()[0, 0]), float(exact.mean()[0])
    assert 1.2 < float(C[1, 1]) / exact_var < 1.6, (float(C[1, 1]), exact_var)
    # The mean of x_2 is pulled from the conditional's towards the prior's (alpha * -0.5).
    assert float(m[1]) < exact_mean - 0.1
    assert _z_moments(x[:, 1:], exact.mean()[None], exact.covariance()) > 10


@pytest.mark.parametrize("sde_name", ["VP", pytest.param("VE", marks=pytest.mark.slow)])
def test_reconstruction_guidance_bias_on_gaussian_data_is_the_predicted_one(sde_name):
    """DPS on a Gaussian (noisy observation of x_1 = 1.5, s = 0.3) is a linear chain too: its exact
    law has both variances well below the exact conditional's -- in the limit of many steps the mean
    of x_1 is the observation itself (1.5; exact 1.42) with variance s^2 / 2 (exact 0.083), and x_2
    has mean 0.47 and variance 0.32 (exact 0.23 and 0.41): the likelihood at x0_hat ignores the
    spread of p(x_0 | x_t), so the guidance is over-confident. The samples follow that law."""
    sde, steps, n = SDES[sde_name], 200, 4000
    obs = Inpainting(torch.tensor([True, False]), torch.tensor([1.5, 0.0], dtype=F64), noise_std=0.3)
    dps = ReconstructionGuidance(GAUSSIAN.score(sde), sde, obs)
    m, C = _ddpm_law(sde, dps, steps)
    exact = GAUSSIAN.condition(obs).marginal(sde, sde.sampling_eps)
    x_T = _exact_start(GAUSSIAN, sde, n, 6)
    x = sdegen.sample(sde, dps, None, DDPMSampler(steps), x_T=x_T, generator=_generator(7)).x
    assert _z_moments(x, m, C) < Z
    ratio = C.diagonal() / exact.covariance().diagonal()
    assert (ratio < 0.85).all(), ratio
    assert _z_moments(x, exact.mean(), exact.covariance()) > 10


# -- the same biases on mixtures: component weights ---------------------------------------------


def _weights(conditional, free, n):
    """The component weights of the samples (mean responsibilities) and a 4-standard-error band."""
    w = conditional.responsibilities(free).mean(0)
    return w, 4 * (w * (1 - w) / n).sqrt()


def test_replacement_under_weights_the_component_the_observation_favours():
    """x_1 = 0.5 favours the second component (exact weight 0.88, prior 0.5): replacement lands in
    between (about 0.77), at 100 steps as at 1000 -- a bias of the method, not of the discretisation."""
    sde, n = SDES["VP"], 1000
    exact = CORRELATED.condition(CORRELATED_X1)
    for steps in (100, 1000):
        out = sdegen.sample(
            sde, CORRELATED.score(sde), (n, 2), DDPMSampler(steps), generator=_generator(8), dtype=F64,
            observation=CORRELATED_X1,
        )  # fmt: skip
        w, band = _weights(exact, CORRELATED_X1.free_coordinates(out.x), n)
        assert exact.weights[1] - w[1] > band[1] + 0.05, (steps, w, exact.weights)
        assert w[1] - 0.5 > band[1] + 0.1, (steps, w)


def test_reconstruction_guidance_over_weights_the_component_the_observation_favours():
    """DPS with a sharp observation (x_1 = 0.5 + 0.1 n) over-weights the favoured component (exact
    0.88). How much depends on the grid: the guidance is stiff (about 1 / s^2 = 100 times the residual
    near t = 0), so DDPM puts 0.98 on it at 200 steps and 0.90 at 1000."""
    sde, n = SDES["VP"], 1000
    obs = Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0], dtype=F64), noise_std=0.1)
    exact = CORRELATED.condition(obs)
    dps = ReconstructionGuidance(CORRELATED.score(sde), sde, obs)
    out = sdegen.sample(sde, dps, (n, 2), DDPMSampler(200), generator=_generator(9), dtype=F64)
    w, band = _weights(exact, out.x, n)
    assert w[1] - exact.weights[1] > band[1] + 0.03, (w, exact.weights)


# -- classifier-free guidance beyond w = 0 ------------------------------------------------------


def _tilted(y, w, n, seed):
    """Exact samples of p(x) p(y | x)^(1 + w) / Z by rejection from p(x | y) with acceptance p(y | x)^w."""
    g, kept = _generator(seed), []
    cond, clf = LABELLED.class_conditional(y), LABELLED.classifier(SDES["VP"])
    while sum(k.shape[0] for k in kept) < n:
        x = cond.sample(4 * n, generator=g)
        u = torch.rand(4 * n, generator=g, dtype=F64)
        kept.append(x[u.log() < w * clf(0.0, x)[:, y]])
    return torch.cat(kept)[:n]


def test_classifier_free_guidance_overshoots_the_tilted_target():
    """At w = 3 the guided samples are more confidently of class 0 than exact samples of the tilted
    target p(x) p(y | x)^4 / Z, which are more so than p(x | y): the score of p_t(x) p_t(y | x)^(1+w)
    at every t is not the score of the diffused tilted target."""
    sde, n, w = SDES["VP"], 2000, 3.0
    cfg = ClassifierFreeGuidance(LABELLED.conditional_score(sde), 0, w)
    guided = sdegen.sample(sde, cfg, (n, 2), DDPMSampler(200), generator=_generator(10), dtype=F64).x
    clf = LABELLED.classifier(sde)

    def confidence(x):
        p = clf(0.0, x)[:, 0].exp()
        return float(p.mean()), float(p.std() / math.sqrt(n))

    (g, se_g), (t, se_t) = confidence(guided), confidence(_tilted(0, w, n, 11))
    (c, se_c) = confidence(LABELLED.class_conditional(0).sample(n, generator=_generator(12)))
    assert g - t > 4 * math.hypot(se_g, se_t), (g, t)
    assert t - c > 4 * math.hypot(se_t, se_c), (t, c)


# -- products of experts ------------------------------------------------------------------------


def _product_of_experts(sde):
    return ProductOfExperts(
        [EXPERT_1.score(sde), EXPERT_2.score(sde)],
        log_densities=[EXPERT_1.marginal_log_prob(sde), EXPERT_2.marginal_log_prob(sde)],
    )


def _product_samples(sampler, n, seed):
    sde = SDES["VP"]
    x_T = _exact_start(EXPERT_1.product(EXPERT_2), sde, n, seed)
    return sdegen.sample(
        sde, _product_of_experts(sde), None, sampler, x_T=x_T, generator=_generator(seed + 1)
    ).x


def test_summed_scores_miss_the_product_and_metropolis_correction_recovers_it():
    n = 1000
    naive = _product_samples(DDPMSampler(100), n, 12)
    report = check_samples(naive, target("product", "VP"), null=null("product", "VP", n), seed=12)
    assert not report, report
    poe = _product_of_experts(SDES["VP"])
    corrected = _product_samples(
        PredictorCorrectorSampler(ReverseDiffusion(), MALACorrector(poe.log_density, 0.5, 3), 50), n, 12
    )
    report = check_samples(
        corrected, target("product", "VP"), null=null("product", "VP", n), seed=12, z_tolerance=Z
    )
    assert report, report


# -- Metropolis-adjusted correctors at one noise level ------------------------------------------


def _corrector_chain(corrector, steps, n, seed, t=0.3):
    """``steps`` corrector updates at time t from a wrong start N(0, 9 I), with the exact score of p_t."""
    sde = SDES["VP"]
    grid = CoefficientGrid(sde, torch.tensor([t, t / 2], dtype=F64))
    g = _generator(seed)
    x = 3 * torch.randn(n, 2, generator=g, dtype=F64)
    noise = lambda: torch.randn(n, 2, generator=g, dtype=F64)  # noqa: E731
    for _ in range(steps):
        x = corrector.update(grid, 0, x, LABELLED.score(sde), noise)
    return check_samples(
        x, target("labelled", "VP", t), null=null("labelled", "VP", n, t), seed=seed, z_tolerance=Z
    )


def test_metropolis_adjustment_removes_the_langevin_step_bias():
    """With a large step (snr = 1) unadjusted Langevin targets a visibly wrong density; MALA and HMC
    with the same step leave p_t exactly invariant and reach it."""
    log_p, n = LABELLED.marginal_log_prob(SDES["VP"]), 1000
    assert _corrector_chain(MALACorrector(log_p, snr=1.0), 100, n, 13)
    assert _corrector_chain(HMCCorrector(log_p, snr=0.5, leapfrog_steps=3), 40, n, 14)
    assert not _corrector_chain(AnnealedLangevinCorrector(snr=1.0), 100, n, 13)


@pytest.mark.slow
def test_product_of_experts_gap_and_its_correction_thoroughly():
    """The naive sampler's energy distance to the product stays at the same level from 100 to 1000
    steps; MALA and HMC correctors remove at least 80 % of it."""
    n = 3000
    ref = target("product", "VP").sample(n, generator=_generator(99))
    poe = _product_of_experts(SDES["VP"])

    def distance(sampler):
        return float(sdegen.metrics.energy_distance(_product_samples(sampler, n, 14), ref))

    naive = [distance(DDPMSampler(steps)) for steps in (100, 1000)]
    nulls = null("product", "VP", n).energy
    assert min(naive) > nulls.mean + 8 * nulls.std, (naive, nulls)
    assert naive[1] > 0.5 * naive[0], naive
    for corrector in (MALACorrector(poe.log_density, 0.5, 5), HMCCorrector(poe.log_density, 0.3, 2, 5)):
        corrected = distance(PredictorCorrectorSampler(ReverseDiffusion(), corrector, 100))
        assert corrected - nulls.mean < 0.2 * (min(naive) - nulls.mean), (corrector, corrected, naive)


# -- which sampler takes an observation, and the errors before any work -------------------------


class _Counting:
    def __init__(self, score):
        self.score, self.calls = score, 0

    def __call__(self, t, x):
        self.calls += 1
        return self.score(t, x)


# Every registered sampler that takes an observation, and variants beside them.
OBSERVING_SAMPLERS = registered(
    lambda sampler: sampler.supports_observation,
    extra={
        "pc-langevin-2": lambda: PredictorCorrectorSampler(
            ReverseDiffusion(), LangevinCorrector(n_steps=2), 10
        ),
        "sde-srk": lambda: ReverseSDESampler("srk", 10),
        "sde-log_ode": lambda: ReverseSDESampler("log_ode", 10),
        "ode-rk4": lambda: ProbabilityFlowSampler("rk4", steps=10),
        "edm-churn-10": lambda: EDMStochasticSampler(10, s_churn=10.0),
    },
    steps=10,
)


@pytest.mark.parametrize("make", list(OBSERVING_SAMPLERS.values()), ids=list(OBSERVING_SAMPLERS))
def test_grid_samplers_take_an_observation_at_their_own_cost(make):
    """Conditioning by projection costs no score evaluation: the NFE is that of the same sampler
    without the observation; after the final denoising step the observed coordinate is exact."""
    sde, sampler = SDES["VP"], make()
    plain = sdegen.sample(sde, CORRELATED.score(sde), (6, 2), sampler, generator=_generator(15), dtype=F64)
    score = _Counting(CORRELATED.score(sde))
    out = sdegen.sample(
        sde, score, (6, 2), sampler, generator=_generator(15), dtype=F64, observation=CORRELATED_X1,
        return_trajectory=True, denoise=True,
    )  # fmt: skip
    assert out.nfe == score.calls == plain.nfe + 1
    assert out.trajectory.shape == (11, 6, 2)
    assert torch.equal(out.x[:, 0], torch.full((6,), 0.5, dtype=F64))


def test_samplers_that_cannot_take_an_observation_refuse_it_before_any_work():
    sde = SDES["VP"]
    score = _Counting(CORRELATED.score(sde))
    for sampler, match in [
        (ProbabilityFlowSampler(), "method='dopri5' chooses its own steps"),
        (ProbabilityFlowSampler("explicit_adams", steps=10), "is a multistep method"),
        (ReverseSDESampler(adaptive=True), "adaptive=True chooses its own steps"),
    ]:
        with pytest.raises(TypeError, match=match):
            sdegen.sample(sde, score, (4, 2), sampler, observation=CORRELATED_X1)
    assert score.calls == 0


def test_bad_observations_are_refused_before_any_work():
    sde = SDES["VP"]
    score = _Counting(CORRELATED.score(sde))
    wrong_mask = Inpainting(torch.tensor([True, False, False]), torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"x_T has shape \(4, 2\) but this Inpainting observes data of shape \(3,\)"
    ):
        sdegen.sample(sde, score, (4, 2), DDPMSampler(10), observation=wrong_mask)
    noisy = Inpainting(torch.tensor([True, False]), torch.zeros(2), noise_std=0.1)
    with pytest.raises(
        TypeError, match=r"DDIMSampler\(steps=10, eta=0\) is deterministic, but a noisy observation"
    ):
        sdegen.sample(sde, score, (4, 2), DDIMSampler(10), observation=noisy)
    with pytest.raises(TypeError, match="observation must be an sdegen.observations.Observation"):
        DDPMSampler(10)(sde, score, torch.zeros(4, 2), observation=torch.tensor([True, False]))

    class Opaque(SDE):
        def drift(self, t, x):
            return -x

        def diffusion(self, t):
            return torch.ones_like(torch.as_tensor(t))

        def prior_sampling(self, shape, generator=None, device=None, dtype=None):
            return torch.randn(shape, generator=generator, dtype=dtype)

        def prior_logp(self, z):
            return -0.5 * z.pow(2).sum(1)

    with pytest.raises(
        TypeError, match=r"conditioning on an observation \(observation=...\) needs the Gaussian"
    ):
        PredictorCorrectorSampler(EulerMaruyama(), NoneCorrector(), 10)(
            Opaque(), score, torch.zeros(4, 2), observation=CORRELATED_X1
        )
    assert score.calls == 0
