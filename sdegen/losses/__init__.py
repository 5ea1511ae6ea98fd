"""Score-matching objectives for training a :class:`~sdegen.parameterization.ScoreModel`.

The family, on the noised data x_t = alpha(t) x0 + sigma(t) z of a linear SDE, each weighted in
time by lambda(t) (a :class:`TimeWeighting`):

=================================  ==========================================================
:class:`ExplicitScoreMatching`     E lambda ||s - s*||^2 against a known score s* (oracle, teacher)
:class:`ImplicitScoreMatching`     E lambda (||s||^2 + 2 div s) (Hyvarinen 2005), exact or Hutchinson
:class:`DenoisingScoreMatching`    E lambda ||s + z / sigma||^2 (Vincent 2011; Song et al. 2021)
:class:`SlicedScoreMatching`       E lambda (v^T J v + 1/2 (v^T s)^2) (Song et al. 2019), plain or VR
:class:`NCSNLoss`                  DSM on NCSN's L geometric VE levels, lambda = sigma_i^2
:class:`DDPMLoss`                  the discrete-time noise-prediction loss of DDPM
=================================  ==========================================================

ESM, ISM and DSM share one scale (no factor 1/2), so with s* = grad log p_t and at each t

    L_ESM - L_ISM = lambda E ||grad log p_t||^2,
    L_DSM - L_ESM = lambda (d / sigma^2 - E ||grad log p_t||^2),

constants that do not depend on the model: the three have the same minimiser and gradients in
expectation. Sliced score matching keeps its paper's 1/2 and is half of ISM in expectation.

Every loss is called as ``loss(model, x0, generator=g)``; losses seeded alike draw the same times
and noise (common random numbers).
"""

from sdegen.losses.base import Loss, NoisedBatch, Reduction, TimeWeightedLoss, perturb
from sdegen.losses.ddpm import DDPMLoss
from sdegen.losses.denoising_score_matching import DenoisingScoreMatching
from sdegen.losses.explicit_score_matching import ExplicitScoreMatching
from sdegen.losses.implicit_score_matching import ImplicitScoreMatching
from sdegen.losses.ncsn import NCSNLevels, NCSNLoss, NoiseLevels
from sdegen.losses.sliced_score_matching import SlicedScoreMatching
from sdegen.losses.weighting import LikelihoodWeighting, SigmaSquaredWeighting, TimeWeighting, WeightedTimes

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
    "TimeWeighting",
    "SigmaSquaredWeighting",
    "LikelihoodWeighting",
    "WeightedTimes",
]
