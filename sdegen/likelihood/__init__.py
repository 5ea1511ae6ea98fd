"""Exact log-likelihoods through the probability-flow ODE, variational bounds, divergence estimators, bits per
dimension, and the mean NLL of a data set with its standard error."""

from sdegen.divergence import DivergenceEstimator, ExactTrace, Hutchinson
from sdegen.likelihood.bits_per_dim import Quantization, bits_per_dim, dequantize
from sdegen.likelihood.bounds import (
    BoundResult,
    DataGrid,
    ddpm_bound,
    discretized_gaussian_log_likelihood,
    elbo,
)
from sdegen.likelihood.log_likelihood import ADAPTIVE_METHODS, LikelihoodResult, log_likelihood
from sdegen.likelihood.summary import NLLSummary, summarize_nll

__all__ = [
    "log_likelihood",
    "LikelihoodResult",
    "ADAPTIVE_METHODS",
    "elbo",
    "ddpm_bound",
    "BoundResult",
    "DataGrid",
    "discretized_gaussian_log_likelihood",
    "DivergenceEstimator",
    "Hutchinson",
    "ExactTrace",
    "Quantization",
    "bits_per_dim",
    "dequantize",
    "summarize_nll",
    "NLLSummary",
]
