"""Samplers: from the prior p_T (or any x_T) to samples of p_eps, given a score function.

``sdegen.sample(sde, score_fn, shape, sampler)`` runs any of them. The reverse-time SDE and the
probability-flow ODE are also available as objects for torchsde and torchdiffeq
(``sde.reverse(score_fn)``, ``sde.probability_flow(score_fn)``).
"""

from sdegen.samplers.annealed_langevin import AnnealedLangevinSampler
from sdegen.samplers.base import Sampler, SampleResult
from sdegen.samplers.correctors import (
    AnnealedLangevinCorrector,
    Corrector,
    LangevinCorrector,
    NoneCorrector,
)
from sdegen.samplers.ddpm import DDPMSampler
from sdegen.samplers.denoise import tweedie_denoise
from sdegen.samplers.metropolis import HMCCorrector, MALACorrector
from sdegen.samplers.predictor_corrector import PredictorCorrectorSampler
from sdegen.samplers.predictors import (
    AncestralSampling,
    EulerMaruyama,
    NonePredictor,
    Predictor,
    ReverseDiffusion,
)
from sdegen.samplers.probability_flow import ProbabilityFlowSampler
from sdegen.samplers.reverse_sde import ReverseSDESampler
from sdegen.samplers.sampling import sample

__all__ = [
    "sample",
    "Sampler",
    "SampleResult",
    "ReverseSDESampler",
    "ProbabilityFlowSampler",
    "PredictorCorrectorSampler",
    "DDPMSampler",
    "AnnealedLangevinSampler",
    "Predictor",
    "EulerMaruyama",
    "ReverseDiffusion",
    "AncestralSampling",
    "NonePredictor",
    "Corrector",
    "LangevinCorrector",
    "AnnealedLangevinCorrector",
    "NoneCorrector",
    "MALACorrector",
    "HMCCorrector",
    "tweedie_denoise",
]
