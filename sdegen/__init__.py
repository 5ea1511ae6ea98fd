"""sdegen: continuous-time score-based generative modelling in PyTorch.

Forward SDEs with exact marginals, reverse-time SDE and probability-flow ODE objects solved by
torchsde and torchdiffeq, exact likelihoods, training, and an analytic oracle to test them against.
"""

from sdegen import analytic, composition, metrics, models, observations
from sdegen._broadcast import expand_like
from sdegen._solve import SolverError
from sdegen.brownian import SequentialBrownian
from sdegen.composition import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    ProductOfExperts,
    ReconstructionGuidance,
)
from sdegen.likelihood import (
    ExactTrace,
    Hutchinson,
    LikelihoodResult,
    Quantization,
    bits_per_dim,
    dequantize,
    log_likelihood,
)
from sdegen.observations import Colorization, Inpainting, LinearObservation, Observation
from sdegen.samplers import (
    AncestralSampling,
    AnnealedLangevinCorrector,
    AnnealedLangevinSampler,
    CustomGrid,
    DDIMSampler,
    DDPMSampler,
    DPMSolverMultistepSampler,
    DPMSolverSDESampler,
    DPMSolverSinglestepSampler,
    EDMHeunSampler,
    EDMStochasticSampler,
    EulerMaruyama,
    HMCCorrector,
    KarrasGrid,
    LangevinCorrector,
    LogSNRGrid,
    MALACorrector,
    NoneCorrector,
    NonePredictor,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseDiffusion,
    ReverseSDESampler,
    Sampler,
    SampleResult,
    Thresholded,
    TimeGrid,
    UniformGrid,
    UniPCSampler,
    sample,
)
from sdegen.sde import EDMVESDE, SDE, VESDE, VPSDE, CosineVPSDE, LinearSDE, SubVPSDE
from sdegen.sde.probability_flow import ProbabilityFlowODE
from sdegen.sde.reverse import ReverseTimeSDE

__version__ = "0.1.0"

__all__ = [
    "SDE",
    "LinearSDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "CosineVPSDE",
    "EDMVESDE",
    "analytic",
    "composition",
    "observations",
    "metrics",
    "models",
    "expand_like",
    "SolverError",
    # likelihood
    "log_likelihood",
    "LikelihoodResult",
    "Hutchinson",
    "ExactTrace",
    "Quantization",
    "bits_per_dim",
    "dequantize",
    # sampling
    "sample",
    "Sampler",
    "SampleResult",
    "ReverseSDESampler",
    "ProbabilityFlowSampler",
    "PredictorCorrectorSampler",
    "DDPMSampler",
    "AnnealedLangevinSampler",
    "DDIMSampler",
    "DPMSolverMultistepSampler",
    "DPMSolverSinglestepSampler",
    "DPMSolverSDESampler",
    "EDMHeunSampler",
    "EDMStochasticSampler",
    "UniPCSampler",
    "Thresholded",
    "TimeGrid",
    "UniformGrid",
    "LogSNRGrid",
    "KarrasGrid",
    "CustomGrid",
    "EulerMaruyama",
    "ReverseDiffusion",
    "AncestralSampling",
    "NonePredictor",
    "LangevinCorrector",
    "AnnealedLangevinCorrector",
    "NoneCorrector",
    "MALACorrector",
    "HMCCorrector",
    "ReverseTimeSDE",
    "ProbabilityFlowODE",
    # conditional and composed generation
    "ClassifierGuidance",
    "ClassifierFreeGuidance",
    "ProductOfExperts",
    "ReconstructionGuidance",
    "Observation",
    "Inpainting",
    "Colorization",
    "LinearObservation",
    "SequentialBrownian",
]
