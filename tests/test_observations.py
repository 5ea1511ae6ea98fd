"""Observations y = A x + s n: orthonormal coordinates, the projection rule, the likelihood, validation."""

import math

import pytest
import torch

from sdegen.observations import Colorization, Inpainting, LinearObservation

F64 = torch.float64


def _observations():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(2, 6, generator=g, dtype=F64)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    return {
        "inpainting": Inpainting(mask, torch.randn(2, 3, generator=g, dtype=F64)),
        "colorization": Colorization(torch.randn(1, 1, 2, generator=g, dtype=F64), channels=3),
        "linear": LinearObservation(A, A @ torch.randn(6, generator=g, dtype=F64), event_shape=(2, 3)),
    }


@pytest.mark.parametrize("name", ["inpainting", "colorization", "linear"])
def test_coordinates_are_orthonormal_and_embed_is_their_adjoint(name):
    obs = _observations()[name]
    V = obs.basis()
    r, d = V.shape
    torch.testing.assert_close(V @ V.T, torch.eye(r, dtype=F64))
    x = torch.randn((4,) + obs.event_shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(obs.coordinates(x), x.reshape(4, -1) @ V.T)
    c = torch.randn(4, r, generator=torch.Generator().manual_seed(2), dtype=F64)
    torch.testing.assert_close(obs.embed(c).reshape(4, -1), c @ V)
    F = obs.free_basis()
    assert F.shape == (d - r, d)
    torch.testing.assert_close(F @ V.T, torch.zeros(d - r, r, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(F @ F.T, torch.eye(d - r, dtype=F64))


@pytest.mark.parametrize("name", ["inpainting", "colorization", "linear"])
def test_exact_projection_imposes_the_noised_observation_and_keeps_the_free_part(name):
    obs = _observations()[name]
    g = torch.Generator().manual_seed(3)
    x = torch.randn((5,) + obs.event_shape, generator=g, dtype=F64)
    z = torch.randn((5,) + obs.event_shape, generator=g, dtype=F64)
    out = obs.project(x, 0.8, 0.6, z)
    torch.testing.assert_close(obs.coordinates(out), 0.8 * obs.observed_values() + 0.6 * obs.coordinates(z))
    torch.testing.assert_close(obs.free_coordinates(out), obs.free_coordinates(x))
    # At t = 0 the observation itself: A x = y for the linear observation.
    exact = obs.project(x, 1.0, 0.0, None)
    torch.testing.assert_close(obs.coordinates(exact), obs.observed_values().expand(5, -1))
    if name == "linear":
        torch.testing.assert_close(
            exact.reshape(5, -1) @ obs.A.T, (obs.A @ obs.basis().T @ obs.observed_values()).expand(5, -1)
        )


def test_noisy_projection_stops_at_the_observations_noise_level():
    """u = c(x_0) + s_j n is an exact observation of x_{t*} / alpha(t*) where sigma / alpha = s_j: the
    coordinate is drawn as alpha u + sqrt(sigma^2 - alpha^2 s_j^2) z above that level, untouched below."""
    A = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=F64)  # S = (2, 0.5): s_j = s / S_j = (0.1, 0.4)
    obs = LinearObservation(A, [1.0, 1.0], noise_std=0.2)
    torch.testing.assert_close(obs.coordinate_std, torch.tensor([0.1, 0.4], dtype=F64))
    x = torch.tensor([[3.0, 4.0]], dtype=F64)
    z = torch.tensor([[1.0, -1.0]], dtype=F64)
    u = obs.observed_values()  # (0.5, 2.0) in the coordinates e_1, e_2
    mid = obs.project(x, 1.0, 0.2, z)  # sigma / alpha = 0.2: above s_1 = 0.1, below s_2 = 0.4
    torch.testing.assert_close(mid, torch.tensor([[u[0] + math.sqrt(0.04 - 0.01), 4.0]], dtype=F64))
    torch.testing.assert_close(obs.project(x, 1.0, 0.05, z), x)
    high = obs.project(x, 0.5, 1.0, z)
    torch.testing.assert_close(
        high,
        torch.tensor([[0.5 * u[0] + math.sqrt(1 - 0.0025), 0.5 * u[1] - math.sqrt(1 - 0.04)]], dtype=F64),
    )


def test_log_likelihood_is_the_gaussian_likelihood_up_to_a_constant():
    g = torch.Generator().manual_seed(4)
    A = torch.randn(3, 4, generator=g, dtype=F64)
    y = torch.randn(3, generator=g, dtype=F64)
    obs = LinearObservation(A, y, noise_std=0.7)
    x = torch.randn(6, 4, generator=g, dtype=F64)
    exact = -0.5 * ((y - x @ A.T) ** 2).sum(1) / 0.49
    diff = obs.log_likelihood(x) - exact
    torch.testing.assert_close(diff, diff[:1].expand(6), rtol=0, atol=1e-12)
    inpaint = Inpainting(torch.tensor([True, False, True, False]), torch.tensor([1.0, 0.0, -1.0, 0.0]), 0.5)
    expected = -0.5 * ((x[:, 0] - 1) ** 2 + (x[:, 2] + 1) ** 2) / 0.25
    torch.testing.assert_close(inpaint.log_likelihood(x), expected)


def test_bad_observations_are_refused():
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        Inpainting(torch.tensor([1, 0]), torch.zeros(2))
    with pytest.raises(ValueError, match=r"values must have mask's shape \(2,\) or \[B, 2\]"):
        Inpainting(torch.tensor([True, False]), torch.zeros(3))
    with pytest.raises(ValueError, match="mask observes nothing"):
        Inpainting(torch.tensor([False, False]), torch.zeros(2))
    with pytest.raises(ValueError, match="values must be finite where mask is True"):
        Inpainting(torch.tensor([True, False]), torch.tensor([float("nan"), 0.0]))
    with pytest.raises(ValueError, match="noise_std must be >= 0"):
        Inpainting(torch.tensor([True, False]), torch.zeros(2), noise_std=-1.0)
    with pytest.raises(ValueError, match="y is not in the range of A"):
        LinearObservation([[1.0, 0.0], [2.0, 0.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"y must have shape \[m\] = \[1\] or \[B, 1\]"):
        LinearObservation([[1.0, 0.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"gray must have shape \[1, H, W\] or \[B, 1, H, W\]"):
        Colorization(torch.zeros(3, 4, 4))
    obs = Inpainting(torch.tensor([True, False]), torch.zeros(3, 2))
    with pytest.raises(
        ValueError, match=r"x_T has shape \(4, 3\) but this Inpainting observes data of shape \(2,\)"
    ):
        obs.check(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="holds 3 observations .* but x_T has 4 samples"):
        obs.check(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="is exact \\(noise_std=0\\): its likelihood is a point mass"):
        obs.log_likelihood(torch.zeros(3, 2))
