"""Analytic oracles: distributions whose density and score are known in closed form at every t.

:class:`GaussianMixture` also gives, in closed form, its class-conditionals and exact noisy classifier
(:class:`MixtureClassifier`) and class-conditional score (:class:`MixtureConditionalScore`) when its
components carry labels, its conditional given a linear Gaussian observation
(:meth:`GaussianMixture.condition`), and the product of two mixtures (:meth:`GaussianMixture.product`).
"""

from sdegen.analytic.gaussian_mixture import GaussianMixture, MixtureClassifier, MixtureConditionalScore

__all__ = ["GaussianMixture", "MixtureClassifier", "MixtureConditionalScore"]
