"""Score-matching objectives for training a :class:`~sdegen.parameterization.ScoreModel`.

* :class:`DenoisingScoreMatching`: continuous-time DSM with a time weighting
  (:class:`SigmaSquaredWeighting`, :class:`LikelihoodWeighting`, importance-sampled or not).
* :class:`SlicedScoreMatching`: sliced score matching, plain or variance-reduced.
* :class:`DDPMLoss`: the discrete-time noise-prediction loss of DDPM.

Every loss is called as ``loss(model, x0, generator=g)``.
"""

from sdegen.losses.base import Loss, Reduction
from sdegen.losses.ddpm import DDPMLoss
from sdegen.losses.denoising_score_matching import DenoisingScoreMatching
from sdegen.losses.sliced_score_matching import SlicedScoreMatching
from sdegen.losses.weighting import LikelihoodWeighting, SigmaSquaredWeighting, TimeWeighting, WeightedTimes

__all__ = [
    "Loss",
    "Reduction",
    "DenoisingScoreMatching",
    "SlicedScoreMatching",
    "DDPMLoss",
    "TimeWeighting",
    "SigmaSquaredWeighting",
    "LikelihoodWeighting",
    "WeightedTimes",
]
