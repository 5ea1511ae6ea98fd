"""Score composition objects are score functions with the stated mathematics, checked against the oracle.

Exact identities (float64): classifier guidance at scale 1 with the exact classifier is the exact
class-conditional score; classifier-free guidance is the conditional model at w = 0 and the
unconditional one at w = -1; reconstruction guidance on Gaussian data is the closed form of
Chung et al.'s approximation; a product of experts is the weighted sum. The objects also go
through the exact likelihood (torchdiffeq, double backward) and torchsde unchanged.
"""

import pytest
import torch
import torchsde

import sdegen
from sdegen import (
    VESDE,
    VPSDE,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    Inpainting,
    LinearObservation,
    ProductOfExperts,
    ReconstructionGuidance,
    SubVPSDE,
)
from sdegen.analytic import GaussianMixture
from sdegen.likelihood import ExactTrace, log_likelihood

F64 = torch.float64
SDES = [VPSDE(0.1, 20.0), SubVPSDE(0.1, 20.0), VESDE(0.01, 10.0)]
SDE_IDS = ["VP", "subVP", "VE"]

LABELLED = GaussianMixture(
    [0.3, 0.2, 0.3, 0.2],
    [[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5], [0.0, -1.5]],
    [0.5, 0.5, 0.3, 0.3],
    labels=[0, 1, 0, 1],
)


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, generator=g, dtype=F64) * 0.99 + 0.01, 2 * torch.randn(n, 2, generator=g, dtype=F64)


@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_classifier_guidance_at_scale_one_is_the_exact_conditional_score(sde):
    t, x = _batch()
    for y in (0, 1, torch.tensor([0, 1, 1, 0, 1, 0])):
        guided = ClassifierGuidance(LABELLED.score(sde), LABELLED.classifier(sde), y)
        torch.testing.assert_close(guided(t, x), LABELLED.conditional_score(sde)(t, x, y), rtol=0, atol=1e-12)
    sharp = ClassifierGuidance(LABELLED.score(sde), LABELLED.classifier(sde), 1, scale=3.0)
    s, c = LABELLED.score(sde)(t, x), LABELLED.conditional_score(sde)(t, x, 1)
    torch.testing.assert_close(sharp(t, x), s + 3 * (c - s), rtol=0, atol=1e-11)


@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_classifier_free_guidance_limits_are_exact(sde):
    """w = 0 is the conditional model and w = -1 the unconditional one, bit for bit; any w is
    (1 + w) s(t, x, y) - w s(t, x, null), in one concatenated call or two."""
    t, x = _batch(seed=1)
    model = LABELLED.conditional_score(sde)
    assert torch.equal(
        ClassifierFreeGuidance(model, 1, 0.0)(t, x), model(t, x, torch.ones(6, dtype=torch.int64))
    )
    assert torch.equal(ClassifierFreeGuidance(model, 1, -1.0)(t, x), model(t, x, 2))
    for w in (-0.5, 1e-9, 2.5):
        expected = (1 + w) * model(t, x, 1) - w * model(t, x, 2)
        for concatenate in (True, False):
            cfg = ClassifierFreeGuidance(model, 1, w, concatenate=concatenate)
            torch.testing.assert_close(cfg(t, x), expected, rtol=0, atol=1e-12)


def test_classifier_free_guidance_is_classifier_guidance_at_scale_one_plus_w():
    """Exact scores: (1 + w) grad log p_t(x | y) - w grad log p_t(x) = grad log p_t(x) + (1 + w) grad log p_t(y | x)."""
    sde = VPSDE(0.1, 20.0)
    t, x = _batch(seed=2)
    cfg = ClassifierFreeGuidance(LABELLED.conditional_score(sde), 0, 2.0)
    cg = ClassifierGuidance(LABELLED.score(sde), LABELLED.classifier(sde), 0, scale=3.0)
    torch.testing.assert_close(cfg(t, x), cg(t, x), rtol=0, atol=1e-11)


def test_product_of_experts_is_the_weighted_sum_and_exact_at_t_zero_only():
    """sum_i w_i s_i; its energy is sum_i w_i log p_i,t. At t -> 0 it is the score of the normalised
    product; at t > 0 it differs from the score of the diffused product (Du et al. 2023, sec. 3.1)."""
    sde = VPSDE(0.1, 20.0)
    p1 = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[1.0, 0.25], [1.0, 0.25]])
    p2 = GaussianMixture([0.7, 0.3], [[0.0, -2.0], [0.0, 2.0]], [[0.25, 1.0], [0.25, 1.0]])
    poe = ProductOfExperts(
        [p1.score(sde), p2.score(sde)],
        [1.0, -0.5],
        log_densities=[p1.marginal_log_prob(sde), p2.marginal_log_prob(sde)],
    )
    t, x = _batch(seed=3)
    torch.testing.assert_close(poe(t, x), p1.score(sde)(t, x) - 0.5 * p2.score(sde)(t, x))
    torch.testing.assert_close(
        poe.log_density(t, x), p1.marginal_log_prob(sde)(t, x) - 0.5 * p2.marginal_log_prob(sde)(t, x)
    )
    product = ProductOfExperts([p1.score(sde), p2.score(sde)])
    exact = p1.product(p2).score(sde)
    torch.testing.assert_close(product(0.0, x), exact(0.0, x), rtol=0, atol=1e-12)
    gap = (product(0.5, x) - exact(0.5, x)).norm(dim=1)
    assert (gap > 0.1 * exact(0.5, x).norm(dim=1)).all(), gap


@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_reconstruction_guidance_is_the_dps_closed_form_on_gaussian_data(sde):
    """For data N(mu, Sigma): score s = -P (x - alpha mu) with P = (alpha^2 Sigma + sigma^2 I)^{-1},
    x0_hat = (x + sigma^2 s) / alpha with Jacobian J = (I - sigma^2 P) / alpha, and the DPS score is
    s + J A^T (y - A x0_hat) / s_y^2 (Chung et al. 2023, eq. 11 with a Gaussian likelihood)."""
    mu, Sigma = torch.tensor([0.5, -0.5], dtype=F64), torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=F64)
    data = GaussianMixture([1.0], mu[None], Sigma[None])
    A, y, s_y = torch.tensor([[1.0, 0.5]], dtype=F64), torch.tensor([0.7], dtype=F64), 0.3
    dps = ReconstructionGuidance(data.score(sde), sde, LinearObservation(A, y, s_y), scale=1.0)
    t, x = _batch(n=4, seed=4)
    out = dps(t, x)
    for i in range(4):
        tt = t[i]
        alpha, sigma = sde.alpha(tt), sde.sigma(tt)
        P = torch.linalg.inv(alpha**2 * Sigma + sigma**2 * torch.eye(2, dtype=F64))
        s = -P @ (x[i] - alpha * mu)
        x0 = (x[i] + sigma**2 * s) / alpha
        J = (torch.eye(2, dtype=F64) - sigma**2 * P) / alpha
        expected = s + J @ A.T @ (y - A @ x0) / s_y**2
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-10)


def test_guided_scores_go_through_the_exact_likelihood():
    """log_likelihood differentiates the score again (exact trace): with classifier guidance at scale 1
    it returns log p_eps(x | y) of the class-conditional mixture, and the DPS score is differentiable."""
    sde = VPSDE(0.1, 20.0)
    eps = 1e-3
    cond = LABELLED.class_conditional(1)
    x = cond.marginal(sde, eps).sample(4, generator=torch.Generator().manual_seed(5))
    guided = ClassifierGuidance(LABELLED.score(sde), LABELLED.classifier(sde), 1)
    p_T = cond.marginal(sde, sde.T)
    res = log_likelihood(
        x, sde, guided, divergence=ExactTrace(), eps=eps, rtol=1e-7, atol=1e-7, prior_logp=p_T.log_prob
    )
    torch.testing.assert_close(res.logp, cond.marginal(sde, eps).log_prob(x), rtol=0, atol=1e-4)
    dps = ReconstructionGuidance(
        LABELLED.score(sde), sde, Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0]), 0.5)
    )
    assert torch.isfinite(log_likelihood(x, sde, dps, divergence=ExactTrace()).logp).all()


def test_guided_scores_go_through_torchsde():
    sde = VPSDE(0.1, 20.0)
    guided = ClassifierFreeGuidance(LABELLED.conditional_score(sde), 0, 1.0)
    rsde = sde.reverse(guided)
    x_T = sde.prior_sampling((8, 2), generator=torch.Generator().manual_seed(6), dtype=F64)
    ts = rsde.reversed_times(torch.linspace(1.0, 1e-3, 11, dtype=F64))
    ys = torchsde.sdeint(rsde, x_T, ts, method="euler", dt=0.1)
    assert ys.shape == (11, 8, 2) and torch.isfinite(ys).all()


class _Unconditional:
    n_classes = 2
    null_label = 2

    def __call__(self, t, x):
        return -x


def test_bad_guidance_input_is_refused_before_any_evaluation():
    sde = VPSDE()
    clf, model = LABELLED.classifier(sde), LABELLED.conditional_score(sde)
    with pytest.raises(ValueError, match=r"y must be a class label in 0..1; got y=2"):
        ClassifierGuidance(LABELLED.score(sde), clf, 2)
    with pytest.raises(ValueError, match=r"y must hold class labels in 0..1; got y\[1\]=-1"):
        ClassifierFreeGuidance(model, torch.tensor([0, -1]), 1.0)
    with pytest.raises(TypeError, match="y must be an int class label"):
        ClassifierGuidance(LABELLED.score(sde), clf, 0.5)
    with pytest.raises(
        TypeError, match="needs a conditional model called as model\\(t, x, y\\).*taking 2 positional"
    ):
        ClassifierFreeGuidance(_Unconditional(), 0, 1.0)
    with pytest.raises(TypeError, match="needs a conditional model .*taking 2 positional"):
        ClassifierFreeGuidance(LABELLED.score(sde), 0, 1.0, n_classes=2, null_label=2)
    with pytest.raises(TypeError, match="needs the number of classes of the classifier"):
        ClassifierGuidance(LABELLED.score(sde), lambda t, x: x, 0)
    with pytest.raises(TypeError, match="needs the model's null label"):
        ClassifierFreeGuidance(lambda t, x, y: x, 0, 1.0, n_classes=2)
    with pytest.raises(ValueError, match="null_label must be an int outside the class labels 0..1"):
        ClassifierFreeGuidance(model, 0, 1.0, null_label=1)
    with pytest.raises(ValueError, match="needs a noisy observation"):
        ReconstructionGuidance(
            LABELLED.score(sde), sde, Inpainting(torch.tensor([True, False]), torch.zeros(2))
        )
    with pytest.raises(ValueError, match="weights must have one entry per expert"):
        ProductOfExperts([LABELLED.score(sde)], [1.0, 2.0])
    with pytest.raises(ValueError, match="has no energies"):
        ProductOfExperts([LABELLED.score(sde)]).log_density(0.5, torch.zeros(1, 2))
    guided = ClassifierGuidance(LABELLED.score(sde), clf, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="y holds 3 labels but x has 4 samples"):
        sdegen.sample(sde, guided, (4, 2), sdegen.DDPMSampler(10))


def test_reprs_name_the_configuration():
    sde = VPSDE()
    assert repr(ClassifierFreeGuidance(LABELLED.conditional_score(sde), 1, 2.0)) == (
        "ClassifierFreeGuidance(y=1, guidance=2, null_label=2)"
    )
    assert "scale=0.5" in repr(ClassifierGuidance(LABELLED.score(sde), LABELLED.classifier(sde), 0, 0.5))
