"""Noise-conditional classifiers p_t(y | x) and classifier guidance, in one place.

For labelled data p(x_0, y) and the forward kernel x_t = alpha(t) x_0 + sigma(t) z, the class
posterior of the noised data is p_t(y | x) = p_t(x | y) p(y) / p_t(x), and Bayes' rule turns it into
a class-conditional score, grad_x log p_t(x | y) = grad_x log p_t(x) + grad_x log p_t(y | x)
(Song et al. 2021, eq. 14 and appendix I.1; Dhariwal and Nichol 2021). Everything that concept
needs, from the network to the guided score:

| name | what it is |
|---|---|
| :class:`MLPClassifier`, :class:`UNetClassifier` | the networks ``net(t, x) -> logits [B, C]`` (from :mod:`sdegen.nn`, where they share their layers with the score networks) |
| :class:`NoisyClassifier` | a network and the SDE whose noised data it classifies |
| :class:`NoisyClassifierLoss` | its cross-entropy on x_t at random t, trained by the ``Trainer`` |
| :class:`HeldOutAccuracy` | its accuracy on held-out data noised to a time t (a training callback) |
| :class:`NoiseConditionalClassifier` | what guidance takes: ``(t, x) -> logits`` with ``n_classes`` |
| :class:`ClassifierGuidance` | the guided score: ``score_fn(t, x)`` plus ``scale`` times the classifier's gradient in x |

The guidance and its protocol are defined with the other compositions of scores
(:mod:`sdegen.composition`), which the exact oracle (:meth:`sdegen.analytic.GaussianMixture.classifier`)
satisfies as well as a trained classifier; they are the same objects here.
"""

from sdegen.classifier.accuracy import HeldOutAccuracy
from sdegen.classifier.loss import NoisyClassifierLoss
from sdegen.classifier.model import NoisyClassifier
from sdegen.composition.classifier import ClassifierGuidance
from sdegen.composition.conditional import NoiseConditionalClassifier
from sdegen.nn import MLPClassifier, UNetClassifier

__all__ = [
    "NoisyClassifier",
    "NoisyClassifierLoss",
    "HeldOutAccuracy",
    "MLPClassifier",
    "UNetClassifier",
    "NoiseConditionalClassifier",
    "ClassifierGuidance",
]
