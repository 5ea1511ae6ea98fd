"""Score composition: objects that are themselves score functions ``score_fn(t, x)``.

Each wraps one or more score models (and a classifier or an observation) into a new score, so
every sampler, :func:`sdegen.log_likelihood`, torchsde and torchdiffeq take it unchanged:

* :class:`ClassifierGuidance` -- unconditional score + scale * grad_x log p_t(y | x);
* :class:`ClassifierFreeGuidance` -- (1 + w) s(t, x, y) - w s(t, x, null);
* :class:`ProductOfExperts` -- weighted sums of scores (products, negations of densities);
* :class:`ReconstructionGuidance` -- diffusion posterior sampling for an observation y = A x + noise.

:mod:`sdegen.composition.conditional` states what a conditional score model and a
noise-conditional classifier are (call signatures, ``n_classes``, ``null_label``).
"""

from sdegen.composition.classifier import ClassifierGuidance
from sdegen.composition.classifier_free import ClassifierFreeGuidance
from sdegen.composition.conditional import ConditionalScoreModel, NoiseConditionalClassifier
from sdegen.composition.product import ProductOfExperts
from sdegen.composition.reconstruction import ReconstructionGuidance

__all__ = [
    "ClassifierGuidance",
    "ClassifierFreeGuidance",
    "ProductOfExperts",
    "ReconstructionGuidance",
    "ConditionalScoreModel",
    "NoiseConditionalClassifier",
]
