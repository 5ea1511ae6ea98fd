"""Score-matching objectives for training a :class:`~sdegen.parameterization.ScoreModel`.

The family, on the noised data x_t = alpha(t) x0 + sigma(t) z of a linear SDE, each weighted in
time by lambda(t) (a :class:`TimeWeighting`):

| loss | objective |
|---|---|
| :class:`ExplicitScoreMatching` | ``E lambda ||s - s*||^2`` against a known score s* (oracle, teacher) |
| :class:`ImplicitScoreMatching` | ``E lambda (||s||^2 + 2 div s)`` (Hyvarinen 2005), exact or Hutchinson |
| :class:`DenoisingScoreMatching` | ``E lambda ||s + z / sigma||^2`` (Vincent 2011; Song et al. 2021) |
| :class:`SlicedScoreMatching` | ``E lambda (v^T J v + 1/2 (v^T s)^2)`` (Song et al. 2019), plain or VR |
| :class:`NCSNLoss` | DSM on NCSN's L geometric VE levels, lambda = sigma_i^2 |
| :class:`DDPMLoss` | the discrete-time noise-prediction loss of DDPM |

Each trains a class-conditional model too, ``loss(model, x0, y)``, through one path
(:meth:`Loss.labelled_per_sample`: the loss of the model with its labels bound);
:class:`LabelDropout` wraps any of them for classifier-free guidance.
:class:`~sdegen.classifier.NoisyClassifierLoss`, with the rest of :mod:`sdegen.classifier`, trains
the noise-conditional classifier p_t(y | x) of classifier guidance on the same noised data.

ESM, ISM and DSM share one scale (no factor 1/2), so with s* = grad log p_t and at each t

    L_ESM - L_ISM = lambda E ||grad log p_t||^2,
    L_DSM - L_ESM = lambda (d / sigma^2 - E ||grad log p_t||^2),

constants that do not depend on the model: the three have the same minimiser and gradients in
expectation. Sliced score matching keeps its paper's 1/2 and is half of ISM in expectation.

Every loss is called as ``loss(model, x0, generator=g)``; losses seeded alike draw the same times
and noise (common random numbers).
"""

from sdegen._deprecation import moved_names
from sdegen.losses.base import Loss, NoisedBatch, Reduction, TimeWeightedLoss, perturb
from sdegen.losses.ddpm import DDPMLoss
from sdegen.losses.denoising_score_matching import DenoisingScoreMatching
from sdegen.losses.explicit_score_matching import ExplicitScoreMatching
from sdegen.losses.implicit_score_matching import ImplicitScoreMatching
from sdegen.losses.label_dropout import LabelDropout
from sdegen.losses.ncsn import NCSNLevels, NCSNLoss, NoiseLevels
from sdegen.losses.sliced_score_matching import SlicedScoreMatching
from sdegen.losses.weighting import (
    LikelihoodWeighting,
    SigmaSquaredWeighting,
    TimeWeighting,
    UniformWeighting,
    WeightedTimes,
)

__all__ = [
    "Loss",
    "Reduction",
    "TimeWeightedLoss",
    "NoisedBatch",
    "perturb",
    "DenoisingScoreMatching",
    "ExplicitScoreMatching",
    "ImplicitScoreMatching",
    "SlicedScoreMatching",
    "NCSNLoss",
    "NCSNLevels",
    "NoiseLevels",
    "DDPMLoss",
    "LabelDropout",
    "TimeWeighting",
    "SigmaSquaredWeighting",
    "LikelihoodWeighting",
    "UniformWeighting",
    "WeightedTimes",
]

#: Names this package exported before 0.2, where they live now (they work, with a warning, until 0.3).
_MOVED = {"NoisyClassifierLoss": "sdegen.classifier"}

__getattr__ = moved_names("sdegen.losses", _MOVED)
