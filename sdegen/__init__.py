"""sdegen: continuous-time score-based generative modelling in PyTorch.

Forward SDEs with exact marginals, reverse-time SDE and probability-flow ODE objects solved by
torchsde and torchdiffeq, exact likelihoods, training, and an analytic oracle to test them against.
"""

from sdegen import (
    analytic,
    classifier,
    composition,
    likelihood,
    losses,
    metrics,
    models,
    observations,
    run,
    samplers,
    sde,
    training,
)
from sdegen._deprecation import moved_names
from sdegen._solve import SolverError
from sdegen._version import __version__ as __version__
from sdegen.brownian import SequentialBrownian
from sdegen.composition import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    ProductOfExperts,
    ReconstructionGuidance,
)
from sdegen.likelihood import (
    BoundResult,
    DataGrid,
    ExactTrace,
    Hutchinson,
    LikelihoodResult,
    Quantization,
    bits_per_dim,
    ddpm_bound,
    dequantize,
    elbo,
    log_likelihood,
)
from sdegen.losses import (
    DDPMLoss,
    DenoisingScoreMatching,
    ExplicitScoreMatching,
    ImplicitScoreMatching,
    NCSNLoss,
    SlicedScoreMatching,
)
from sdegen.observations import Colorization, Inpainting, LinearObservation, Observation
from sdegen.parameterization import (
    DataPrediction,
    EDMPreconditioning,
    NoisePrediction,
    ScoreModel,
    ScorePrediction,
    VPrediction,
)
from sdegen.run import load_run
from sdegen.samplers import (
    AnnealedLangevinSampler,
    CustomGrid,
    DDIMSampler,
    DDPMSampler,
    DiffusersGrid,
    DPMSolverMultistepSampler,
    DPMSolverSDESampler,
    DPMSolverSinglestepSampler,
    EDMHeunSampler,
    EDMStochasticSampler,
    KarrasGrid,
    LogSNRGrid,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseSDESampler,
    Sampler,
    SampleResult,
    StepInfo,
    StopSampling,
    TimeGrid,
    UniformGrid,
    UniPCSampler,
    sample,
)
from sdegen.sde import (
    EDMVESDE,
    SDE,
    VESDE,
    VPSDE,
    CosineVPSDE,
    DiscreteVPSDE,
    GaussianKernel,
    LinearSDE,
    ProbabilityFlowODE,
    ReverseTimeSDE,
    SubVPSDE,
)
from sdegen.training import TrainConfig, Trainer

__all__ = [
    # subpackages
    "sde",
    "samplers",
    "likelihood",
    "losses",
    "training",
    "run",
    "models",
    "analytic",
    "classifier",
    "composition",
    "observations",
    "metrics",
    # SDEs and their engine objects
    "SDE",
    "LinearSDE",
    "GaussianKernel",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "CosineVPSDE",
    "EDMVESDE",
    "DiscreteVPSDE",
    "ReverseTimeSDE",
    "ProbabilityFlowODE",
    "SequentialBrownian",
    "SolverError",
    # models
    "ScoreModel",
    "NoisePrediction",
    "DataPrediction",
    "ScorePrediction",
    "VPrediction",
    "EDMPreconditioning",
    "load_run",
    # sampling
    "sample",
    "Sampler",
    "SampleResult",
    "StepInfo",
    "StopSampling",
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
    "TimeGrid",
    "UniformGrid",
    "LogSNRGrid",
    "KarrasGrid",
    "CustomGrid",
    "DiffusersGrid",
    # likelihood
    "log_likelihood",
    "LikelihoodResult",
    "Hutchinson",
    "ExactTrace",
    "Quantization",
    "bits_per_dim",
    "dequantize",
    "elbo",
    "ddpm_bound",
    "BoundResult",
    "DataGrid",
    # training
    "DenoisingScoreMatching",
    "SlicedScoreMatching",
    "ExplicitScoreMatching",
    "ImplicitScoreMatching",
    "NCSNLoss",
    "DDPMLoss",
    "Trainer",
    "TrainConfig",
    # conditional and composed generation
    "ClassifierGuidance",
    "ClassifierFreeGuidance",
    "ProductOfExperts",
    "ReconstructionGuidance",
    "Observation",
    "Inpainting",
    "Colorization",
    "LinearObservation",
]

#: Names that ``import sdegen`` exported before 0.2, where they live now. They keep working, with a
#: DeprecationWarning, until 0.3.
_MOVED = {
    **{
        name: "sdegen.samplers"
        for name in (
            "EulerMaruyama",
            "ReverseDiffusion",
            "AncestralSampling",
            "NonePredictor",
            "LangevinCorrector",
            "AnnealedLangevinCorrector",
            "NoneCorrector",
            "MALACorrector",
            "HMCCorrector",
        )
    },
    "expand_like": "sdegen._broadcast",
}


__getattr__ = moved_names(
    "sdegen",
    _MOVED,
    advice={"expand_like": "it is an internal helper: broadcast with t.reshape(-1, *(1,) * (x.ndim - 1))"},
)
