"""sdegen: continuous-time score-based generative modelling in PyTorch.

Forward SDEs with exact marginals, reverse-time SDE and probability-flow ODE objects solved by
torchsde and torchdiffeq, exact likelihoods, training, and an analytic oracle to test them against.
"""

from sdegen import analytic
from sdegen._broadcast import expand_like
from sdegen.likelihood import (
    ExactTrace,
    Hutchinson,
    LikelihoodResult,
    Quantization,
    bits_per_dim,
    dequantize,
    log_likelihood,
)
from sdegen.sde import SDE, VESDE, VPSDE, LinearSDE, SubVPSDE

__version__ = "0.1.0"

__all__ = [
    "SDE",
    "LinearSDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "analytic",
    "expand_like",
    "log_likelihood",
    "LikelihoodResult",
    "Hutchinson",
    "ExactTrace",
    "Quantization",
    "bits_per_dim",
    "dequantize",
]
