"""Analytic oracles: distributions whose density and score are known in closed form at every t."""

from sdegen.analytic.gaussian_mixture import GaussianMixture

__all__ = ["GaussianMixture"]
