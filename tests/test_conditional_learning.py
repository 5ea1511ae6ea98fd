"""Trained conditional models against the exact conditionals of a labelled Gaussian mixture.

A class-conditional score model trained briefly with label dropout samples each class close to the
exact p(x | y) and learns the exact conditional score; classifier-free guidance built on it is the
conditional model at w = 0 and the unconditional one at w = -1, exactly; a noise-conditional
classifier trained by cross-entropy approaches the exact noisy classifier p_t(y | x) at every t,
and guiding the exact unconditional score with it samples p(x | y). The tolerances are a few times
the values measured with these seeds (stated beside each), which are far from what a wrong model
gives (a label ignored: accuracy ~ the class prior; the wrong class: z-scores in the tens).
"""

from __future__ import annotations

import math

import pytest
import torch

import sdegen
from sdegen import VPSDE
from sdegen import data as D
from sdegen.analytic import GaussianMixture
from sdegen.classifier import ClassifierGuidance, MLPClassifier, NoisyClassifier, NoisyClassifierLoss
from sdegen.composition import ClassifierFreeGuidance
from sdegen.losses import DenoisingScoreMatching, LabelDropout
from sdegen.nn import ScoreMLP
from sdegen.parameterization import ScoreModel
from sdegen.testing import check_moments, check_samples
from sdegen.training import TrainConfig, Trainer

VP = VPSDE()
ANGLES = torch.arange(5, dtype=torch.float64) * 2 * math.pi / 5
# Three classes over five components; classes 0 and 2 are two-component mixtures, so p(x | y) has
# within-class weights to get right (2/3, 1/3 and 3/8, 5/8).
MIX = GaussianMixture(
    [0.2, 0.1, 0.3, 0.15, 0.25],
    2.5 * torch.stack([ANGLES.cos(), ANGLES.sin()], 1),
    0.35**2,
    labels=[0, 0, 1, 2, 2],
)
NULL = 3


def _fit(model, loss, steps):
    config = TrainConfig(
        steps=steps, lr=3e-3, warmup_steps=50, ema_decay=0.99, seed=0, log_every=steps, checkpoint_every=0,
        progress=False,
    )  # fmt: skip
    trainer = Trainer(
        model, loss, D.DistributionBatches(D.GaussianMixtureData(MIX), 256, labels=True), config
    )
    trainer.fit()
    return trainer.ema_model.eval()


@pytest.fixture(scope="module")
def conditional() -> ScoreModel:
    """1500 steps of DSM with label dropout 0.2 (about 8 s on one thread)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)  # parameter initialisation only
        model = ScoreModel(ScoreMLP(2, hidden=64, depth=3, time_dim=32, n_classes=3), VP)
    return _fit(model, LabelDropout(DenoisingScoreMatching(), 0.2), 1500)


@pytest.fixture(scope="module")
def classifier() -> NoisyClassifier:
    """800 steps of cross-entropy at t ~ U[1e-5, 1] (about 4 s on one thread)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = NoisyClassifier(MLPClassifier(2, 3, hidden=64, depth=2, time_dim=32), VP)
    return _fit(model, NoisyClassifierLoss(), 800)


def _draw(score_fn, n=600, seed=1):
    with torch.no_grad():
        return sdegen.sample(
            VP, score_fn, (n, 2), sdegen.DDIMSampler(50), generator=torch.Generator().manual_seed(seed)
        ).x.double()


@pytest.mark.parametrize("y", [0, 1, 2])
def test_each_class_samples_the_exact_class_conditional(conditional, y):
    x = _draw(conditional.given(y))
    target = MIX.class_conditional(y).marginal(VP, VP.sampling_eps)
    # Mean and covariance: largest |z| 0.2, 0.8, 0.6 measured for classes 0, 1, 2.
    assert check_moments(x, target).passed
    # Within-class component weights (exact 2/3 1/3, 1, 3/8 5/8): measured within 0.03.
    weights = target.responsibilities(x).mean(0)
    assert (weights - target.weights).abs().max() < 0.06, (weights, target.weights)
    # The exact classifier p(y | x) assigns the samples to their class: 99.7-99.8 % measured; a model
    # that ignored its label would score the class prior (0.30, 0.30, 0.40).
    agree = float((MIX.classifier(VP)(VP.sampling_eps, x).argmax(1) == y).double().mean())
    assert agree > 0.98, agree


def test_the_conditional_score_is_the_exact_one(conditional):
    # Relative mean squared error E ||s_theta(t, x, y) - s(t, x, y)||^2 / E ||s(t, x, y)||^2 on
    # x_t ~ p_t(x, y), with the exact conditional score of the oracle. Measured: 0.028, 0.0064 and
    # 0.0010 for the classes at t = 0.05, 0.2, 0.5, and 0.087, 0.046, 0.0024 for the unconditional
    # half (the null label, trained on 20 % of the examples).
    exact = MIX.conditional_score(VP)
    g = torch.Generator().manual_seed(5)
    for t, bound_y, bound_null in ((0.05, 0.07, 0.2), (0.2, 0.02, 0.12), (0.5, 0.005, 0.01)):
        x, y = MIX.marginal(VP, t).sample_labelled(4000, g)
        for labels, bound in ((y, bound_y), (torch.full_like(y, NULL), bound_null)):
            with torch.no_grad():
                s = conditional(t, x.float(), labels).double()
            s0 = exact(t, x, labels)
            err = float(((s - s0) ** 2).sum(1).mean() / (s0**2).sum(1).mean())
            assert err < bound, (t, "null" if labels is not y else "classes", err)


def test_classifier_free_guidance_is_the_conditional_at_0_and_the_unconditional_at_minus_1(conditional):
    t = torch.rand(64, generator=torch.Generator().manual_seed(0))
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 3
    null = torch.full_like(y, NULL)
    with torch.no_grad():
        cond, uncond = conditional(t, x, y), conditional(t, x, null)
        assert torch.equal(ClassifierFreeGuidance(conditional, y, 0.0)(t, x), cond)
        assert torch.equal(ClassifierFreeGuidance(conditional, y, -1.0)(t, x), uncond)
        for w in (0.5, 3.0):
            guided = ClassifierFreeGuidance(conditional, y, w)(t, x)  # one batch of 2B
            torch.testing.assert_close(guided, (1 + w) * cond - w * uncond, rtol=1e-5, atol=1e-5)
    # The guided score of the trained model against the exact guided score on x_t ~ p_t: the error
    # (1 + w) e(y) - w e(null) grows with w; at w = 1 measured 0.032 (t = 0.2) and 0.0032 (t = 0.5).
    g = torch.Generator().manual_seed(5)
    for t, bound in ((0.2, 0.1), (0.5, 0.01)):
        x, y = MIX.marginal(VP, t).sample_labelled(4000, g)
        exact = ClassifierFreeGuidance(MIX.conditional_score(VP), y, 1.0)(t, x)
        with torch.no_grad():
            ours = ClassifierFreeGuidance(conditional, y, 1.0)(t, x.float()).double()
        err = float(((ours - exact) ** 2).sum(1).mean() / (exact**2).sum(1).mean())
        assert err < bound, (t, err)


def test_the_trained_classifier_is_the_exact_noisy_classifier(classifier):
    # Cross-entropy gap E[-log q_t(y | x)] - E[-log p_t(y | x)] = E KL(p_t(. | x) || q_t(. | x)) >= 0
    # on 20000 draws of p_t(x, y); measured 0.001-0.003 nats at every t, accuracy within 0.4 %.
    exact = MIX.classifier(VP)
    g = torch.Generator().manual_seed(5)
    for t in (0.01, 0.1, 0.3, 0.5, 0.8):
        x, y = MIX.marginal(VP, t).sample_labelled(20000, g)
        with torch.no_grad():
            log_q = classifier(t, x.float()).double().log_softmax(1)
        log_p = exact(t, x)
        gap = float(-log_q.gather(1, y[:, None]).mean() + log_p.gather(1, y[:, None]).mean())
        kl = float((log_p.exp() * (log_p - log_q)).sum(1).mean())
        acc_q = float((log_q.argmax(1) == y).double().mean())
        acc_p = float((log_p.argmax(1) == y).double().mean())
        assert gap < 0.01 and kl < 0.01 and abs(acc_q - acc_p) < 0.01, (t, gap, kl, acc_q, acc_p)


def test_classifier_guidance_of_the_exact_score_with_the_trained_classifier_samples_the_class(classifier):
    # Bayes: grad log p_t(x) + grad log p_t(y | x) = grad log p_t(x | y); only the classifier is learned.
    for y in (0, 2):
        x = _draw(ClassifierGuidance(MIX.score(VP), classifier, y, scale=1.0), seed=2)
        target = MIX.class_conditional(y).marginal(VP, VP.sampling_eps)
        assert check_moments(x, target).passed
        weights = target.responsibilities(x).mean(0)
        assert (weights - target.weights).abs().max() < 0.06, (weights, target.weights)


@pytest.mark.slow
def test_a_longer_trained_conditional_model_passes_the_oracle_law_test_per_class():
    # 5000 steps of a wider network; the full law test of sdegen.testing (moments, energy distance,
    # local MMD, each against calibrated nulls) on 1000 samples per class.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ScoreModel(ScoreMLP(2, hidden=128, depth=3, time_dim=32, n_classes=3), VP)
    model = _fit(model, LabelDropout(DenoisingScoreMatching(), 0.2), 5000)
    for y in (0, 1, 2):
        x = _draw(model.given(y), n=1000)
        result = check_samples(x, MIX.class_conditional(y).marginal(VP, VP.sampling_eps), seed=y)
        assert result.passed, result
