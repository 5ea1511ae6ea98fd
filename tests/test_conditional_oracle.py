"""The conditional oracles of GaussianMixture against brute force: Bayes' rule, quadrature, finite differences.

Every closed form -- the noisy classifier p_t(y | x), the class-conditional score, the conditional
given an observation (Schur complement) and the product of two mixtures -- is compared in float64
with a computation that does not use it: densities normalised by quadrature on a 1-D or 2-D grid,
Bayes' rule on the class-conditional marginals, and central differences.
"""

import math

import pytest
import torch

from sdegen import VESDE, VPSDE, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.observations import Colorization, Inpainting, LinearObservation

F64 = torch.float64
SDES = [VPSDE(0.1, 20.0), SubVPSDE(0.1, 20.0), VESDE(0.01, 10.0)]
SDE_IDS = ["VP", "subVP", "VE"]

LABELLED = GaussianMixture(
    [0.2, 0.3, 0.5],
    [[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]],
    [[[1.0, 0.3], [0.3, 0.5]], [[0.4, 0.0], [0.0, 0.8]], [[0.3, -0.1], [-0.1, 0.3]]],
    labels=[0, 1, 0],
)

# A 2-D quadrature grid wide enough for every density below (cells of 0.05: Riemann sums of these smooth densities are exact to ~1e-12).
AXIS = torch.linspace(-10.0, 10.0, 401, dtype=F64)
GRID = torch.cartesian_prod(AXIS, AXIS)
CELL = float(AXIS[1] - AXIS[0])


def _normalised_on_grid(log_q: torch.Tensor) -> torch.Tensor:
    return log_q - (torch.logsumexp(log_q, 0) + 2 * math.log(CELL))


def _points(n=6, seed=0, scale=2.0):
    return scale * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_classifier_is_bayes_rule_on_the_class_conditional_marginals(sde):
    """log p_t(y | x) = log p(y) + log p_t(x | y) - log p_t(x), with p_t(x | y) the marginal of p(x | y)."""
    x = _points()
    prior = LABELLED.class_prior()
    torch.testing.assert_close(prior, torch.tensor([0.7, 0.3], dtype=F64))
    for t in (0.0, 0.05, 0.4, 1.0):
        logits = LABELLED.classifier(sde)(t, x)
        bayes = torch.stack(
            [prior[c].log() + LABELLED.class_conditional(c).marginal(sde, t).log_prob(x) for c in range(2)], 1
        )
        torch.testing.assert_close(
            logits, bayes - LABELLED.marginal(sde, t).log_prob(x)[:, None], rtol=0, atol=1e-12
        )


@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_conditional_score_is_the_class_conditional_score_and_the_null_label_the_unconditional(sde):
    x, t = _points(seed=1), torch.tensor([0.01, 0.1, 0.3, 0.5, 0.8, 1.0], dtype=F64)
    model = LABELLED.conditional_score(sde)
    assert (model.n_classes, model.null_label) == (2, 2)
    for c in range(2):
        torch.testing.assert_close(
            model(t, x, c), LABELLED.class_conditional(c).score(sde)(t, x), rtol=0, atol=1e-12
        )
    torch.testing.assert_close(model(t, x, 2), LABELLED.score(sde)(t, x), rtol=0, atol=1e-12)
    mixed = model(t, x, torch.tensor([0, 1, 2, 0, 1, 2]))
    for i, c in enumerate([0, 1, 2, 0, 1, 2]):
        torch.testing.assert_close(mixed[i], model(t, x, c)[i])


@pytest.mark.parametrize("sde", SDES, ids=SDE_IDS)
def test_classifier_gradient_matches_central_differences(sde):
    """The closed form of grad_x log p_t(y | x), autograd through the logits, and central differences."""
    x, t, h = _points(n=3, seed=2), 0.3, 1e-5
    clf = LABELLED.classifier(sde)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(clf(t, xg)[:, 1].sum(), xg)
    torch.testing.assert_close(clf.log_prob_gradient(t, x, 1), grad, rtol=0, atol=1e-12)
    for j in range(2):
        e = torch.zeros(2, dtype=F64)
        e[j] = h
        fd = (clf(t, x + e)[:, 1] - clf(t, x - e)[:, 1]) / (2 * h)
        torch.testing.assert_close(grad[:, j], fd, rtol=1e-6, atol=1e-8)


def test_inpainting_conditional_is_the_normalised_slice():
    """p(x_2 | x_1 = v) = p(v, x_2) / int p(v, x_2') dx_2', by quadrature along the line x_1 = v."""
    obs = Inpainting(torch.tensor([True, False]), torch.tensor([0.7, float("nan")], dtype=F64))
    cond = LABELLED.condition(obs)
    assert cond.dim == 1 and cond.labels.tolist() == LABELLED.labels.tolist()
    z = torch.linspace(-12, 12, 24001, dtype=F64)
    log_joint = LABELLED.log_prob(torch.stack([torch.full_like(z, 0.7), z], 1))
    exact = log_joint - (torch.logsumexp(log_joint, 0) + math.log(float(z[1] - z[0])))
    torch.testing.assert_close(cond.log_prob(z[:, None]), exact, rtol=0, atol=1e-9)
    torch.testing.assert_close(
        obs.free_coordinates(torch.tensor([[0.7, 1.5]], dtype=F64)), torch.tensor([[1.5]], dtype=F64)
    )


@pytest.mark.parametrize("noise_std", [0.3, 1.0])
def test_noisy_linear_conditional_is_bayes_rule_by_quadrature(noise_std):
    """p(x | y) propto p(x) N(y; A x, s^2 I), normalised on a 2-D grid, for a 2 x 2 non-orthogonal A."""
    A = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=F64)
    y = torch.tensor([2.5, -0.5], dtype=F64)
    cond = LABELLED.condition(LinearObservation(A, y, noise_std))
    log_q = LABELLED.log_prob(GRID) - 0.5 * ((GRID @ A.T - y) ** 2).sum(1) / noise_std**2
    exact = _normalised_on_grid(log_q)
    where = exact > -12
    torch.testing.assert_close(cond.log_prob(GRID)[where], exact[where], rtol=0, atol=1e-8)


def test_exact_linear_conditional_lives_on_the_line_ax_equals_y():
    """For y = a^T x exactly, the conditional is the density along {a^T x = y}, parametrised by the
    free coordinate (the unit normal of a): quadrature along the line."""
    A, y = torch.tensor([[1.0, 2.0]], dtype=F64), torch.tensor([2.5], dtype=F64)
    obs = LinearObservation(A, y)
    cond = LABELLED.condition(obs)
    F = obs.free_basis()
    torch.testing.assert_close(F @ A.T, torch.zeros(1, 1, dtype=F64), rtol=0, atol=1e-14)
    z = torch.linspace(-12, 12, 24001, dtype=F64)
    x = (torch.linalg.pinv(A) @ y)[None] + z[:, None] * F[0][None]
    log_joint = LABELLED.log_prob(x)
    exact = log_joint - (torch.logsumexp(log_joint, 0) + math.log(float(z[1] - z[0])))
    torch.testing.assert_close(cond.log_prob(obs.free_coordinates(x)), exact, rtol=0, atol=1e-9)


def test_redundant_rows_and_a_rescaled_matrix_give_the_same_conditional():
    """Only what y says about x matters: A and 3 A (with y scaled alike), or A with a repeated row."""
    A = torch.tensor([[1.0, 2.0]], dtype=F64)
    base = LABELLED.condition(LinearObservation(A, [2.5], 0.5))
    scaled = LABELLED.condition(LinearObservation(3 * A, [7.5], 1.5))
    repeated = LABELLED.condition(LinearObservation(torch.cat([A, A]), [2.5, 2.5], 0.5 * math.sqrt(2)))
    for other in (scaled, repeated):
        torch.testing.assert_close(other.weights, base.weights)
        torch.testing.assert_close(other.means, base.means)
        torch.testing.assert_close(other.covariances, base.covariances)


def test_colorization_is_the_linear_observation_of_the_channel_mean():
    """On a 3-channel 1 x 1 image, Colorization(gray) is LinearObservation(A = (1, 1, 1) / 3, gray)."""
    g = torch.Generator().manual_seed(3)
    rgb = GaussianMixture(
        [0.4, 0.6],
        torch.randn(2, 3, generator=g, dtype=F64),
        [[0.5, 1.0, 0.3], [1.0, 0.2, 0.6]],
        event_shape=(3, 1, 1),
    )
    for s in (0.0, 0.2):
        color = rgb.condition(Colorization(torch.tensor([[[0.4]]]), noise_std=s))
        dense_obs = LinearObservation(torch.full((1, 3), 1 / 3, dtype=F64), [0.4], s, event_shape=(3, 1, 1))
        dense = rgb.condition(dense_obs)
        torch.testing.assert_close(color.weights, dense.weights)
        x = torch.randn(5, 3, 1, 1, generator=g, dtype=F64)
        obs = Colorization(torch.tensor([[[0.4]]]), noise_std=s)
        # The two free bases may differ by a rotation; the densities of the same points agree.
        torch.testing.assert_close(
            color.log_prob(obs.free_coordinates(x)), dense.log_prob(dense_obs.free_coordinates(x))
        )


def test_product_is_the_normalised_pointwise_product():
    other = GaussianMixture(
        [0.6, 0.4], [[0.0, 0.0], [2.0, 2.0]], [[[1.0, -0.4], [-0.4, 1.0]], [[0.5, 0.0], [0.0, 2.0]]]
    )
    prod = LABELLED.product(other)
    assert prod.n_components == 6
    exact = _normalised_on_grid(LABELLED.log_prob(GRID) + other.log_prob(GRID))
    where = exact > -15
    torch.testing.assert_close(prod.log_prob(GRID)[where], exact[where], rtol=0, atol=1e-8)


def test_responsibilities_recover_component_weights():
    x = LABELLED.sample(20000, generator=torch.Generator().manual_seed(4))
    w = LABELLED.responsibilities(x).mean(0)
    assert (w - LABELLED.weights).abs().max() < 5 * math.sqrt(0.25 / 20000)


def test_bad_labels_and_classes_are_refused():
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have no component"):
        GaussianMixture([0.5, 0.5], [[0.0], [1.0]], 1.0, labels=[0, 2])
    with pytest.raises(ValueError, match=r"labels must have shape \[K\] = \[2\]"):
        GaussianMixture([0.5, 0.5], [[0.0], [1.0]], 1.0, labels=[0])
    with pytest.raises(TypeError, match="labels must be integers"):
        GaussianMixture([0.5, 0.5], [[0.0], [1.0]], 1.0, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"y must be a class label in 0..1; got y=2"):
        LABELLED.class_conditional(2)
    with pytest.raises(ValueError, match="needs a labelled mixture"):
        GaussianMixture.ring().classifier(VPSDE())
    model = LABELLED.conditional_score(VPSDE())
    with pytest.raises(ValueError, match=r"y must hold class labels in 0..2; got y\[1\]=3"):
        model(0.5, torch.zeros(2, 2, dtype=F64), torch.tensor([0, 3]))


def test_conditioning_on_a_batch_or_a_mismatched_observation_is_refused():
    batch = Inpainting(torch.tensor([True, False]), torch.tensor([[0.1, 0.0], [0.2, 0.0]]))
    with pytest.raises(ValueError, match="defined for one observation"):
        LABELLED.condition(batch)
    with pytest.raises(ValueError, match=r"observes data of shape \(3,\)"):
        LABELLED.condition(Inpainting(torch.tensor([True, False, False]), torch.zeros(3)))
    with pytest.raises(TypeError, match="observation must be an sdegen.observations.Observation"):
        LABELLED.condition(torch.tensor([True, False]))
    with pytest.raises(ValueError, match="must live on the same space"):
        LABELLED.product(GaussianMixture([1.0], [[0.0]], 1.0))
