"""Energy distance: zero in expectation for equal distributions, detects shifts and scale changes."""

import pytest
import torch

from sdegen.metrics import energy_distance, mmd


def test_energy_distance_of_gaussians_matches_closed_form():
    """For N(0, 1) vs N(mu, 1) in 1-D: D^2 = 2 E|Z + mu| - 2 E|Z'| with Z ~ N(0, 2)."""
    g = torch.Generator().manual_seed(0)
    n, mu = 4000, 1.0
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    y = mu + torch.randn(n, 1, generator=g, dtype=torch.float64)
    s = 2**0.5  # |X - Y| ~ |N(mu, 2)|, |X - X'| ~ |N(0, 2)|
    normal = torch.distributions.Normal(0.0, 1.0)
    a = torch.tensor(mu / s, dtype=torch.float64)
    folded_mean = s * (2 / torch.pi) ** 0.5 * torch.exp(-(a**2) / 2) + mu * (1 - 2 * normal.cdf(-a))
    expected = 2 * folded_mean - 2 * s * (2 / torch.pi) ** 0.5
    assert abs(float(energy_distance(x, y)) - float(expected)) < 0.03


def test_energy_distance_is_unbiased_under_the_null():
    g = torch.Generator().manual_seed(1)
    values = torch.stack(
        [
            energy_distance(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g))
            for _ in range(50)
        ]
    )
    assert abs(float(values.mean())) < 3 * float(values.std()) / 50**0.5


def test_energy_distance_detects_scale():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(1000, 3, generator=g), 1.3 * torch.randn(1000, 3, generator=g)
    null = energy_distance(x, torch.randn(1000, 3, generator=g))
    assert float(energy_distance(x, y)) > 5 * abs(float(null))


def test_energy_distance_errors():
    with pytest.raises(ValueError, match="same sample shape"):
        energy_distance(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="need >= 2 samples"):
        energy_distance(torch.zeros(1, 2), torch.zeros(3, 2))


def test_mmd_of_gaussians_matches_closed_form():
    """N(0, 1) vs N(mu, 1) with kernel exp(-r^2 / 2h^2): MMD^2 = 2 c (1 - exp(-mu^2 / (2 (h^2 + 2)))),
    c = sqrt(h^2 / (h^2 + 2)), since X - X' ~ N(0, 2) and X - Y ~ N(-mu, 2)."""
    g = torch.Generator().manual_seed(4)
    n, mu, h = 3000, 0.7, 1.0
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    y = mu + torch.randn(n, 1, generator=g, dtype=torch.float64)
    c = (h**2 / (h**2 + 2)) ** 0.5
    expected = 2 * c * (1 - torch.exp(torch.tensor(-(mu**2) / (2 * (h**2 + 2)))))
    assert abs(float(mmd(x, y, bandwidth=h)) - float(expected)) < 0.01


def test_mmd_is_unbiased_under_the_null():
    g = torch.Generator().manual_seed(5)
    values = torch.stack(
        [mmd(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g)) for _ in range(50)]
    )
    assert abs(float(values.mean())) < 3 * float(values.std()) / 50**0.5
