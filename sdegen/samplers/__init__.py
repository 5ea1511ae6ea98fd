"""Samplers: from the prior p_T (or any x_T) to samples of p_eps, given a score function.

Few-step samplers (10-50 evaluations) work on any linear SDE through the denoiser x0_hat and the
log-SNR lambda: :class:`DDIMSampler`, :class:`DPMSolverMultistepSampler` (2M, 3M),
:class:`DPMSolverSinglestepSampler` (2S), :class:`DPMSolverSDESampler`, :class:`EDMHeunSampler`,
:class:`EDMStochasticSampler` and :class:`UniPCSampler`. Every grid sampler takes a time grid
(:class:`UniformGrid`, :class:`LogSNRGrid`, :class:`KarrasGrid`, :class:`CustomGrid`, and
:class:`DiffusersGrid`, the timesteps of diffusers' schedulers on a :class:`~sdegen.DiscreteVPSDE`).
:func:`fit_grid` fits a grid's times to a model, and :func:`fit_solver` a multistep sampler's step
coefficients (a :class:`FittedSolver`).

``sdegen.sample(sde, score_fn, shape, sampler)`` runs any of them; ``callback=`` sees every step
(:mod:`sdegen.samplers.callback`). :mod:`sdegen.samplers.registry` names every sampler once, for
the command line, the documentation and the tests. The reverse-time SDE and the
probability-flow ODE are also available as objects for torchsde and torchdiffeq
(``sde.reverse(score_fn)``, ``sde.probability_flow(score_fn)``).
"""

from sdegen.samplers.annealed_langevin import AnnealedLangevinSampler
from sdegen.samplers.base import Sampler, SampleResult
from sdegen.samplers.callback import StepInfo, StopSampling
from sdegen.samplers.correctors import (
    AnnealedLangevinCorrector,
    Corrector,
    LangevinCorrector,
    NoneCorrector,
)
from sdegen.samplers.ddim import DDIMSampler
from sdegen.samplers.ddpm import DDPMSampler
from sdegen.samplers.diffusers_grid import DiffusersGrid
from sdegen.samplers.dpm_solver_multistep import DPMSolverMultistepSampler
from sdegen.samplers.dpm_solver_sde import DPMSolverSDESampler
from sdegen.samplers.dpm_solver_singlestep import DPMSolverSinglestepSampler
from sdegen.samplers.edm import EDMHeunSampler, EDMStochasticSampler
from sdegen.samplers.fitted_grid import FittedGrid, fit_grid
from sdegen.samplers.fitted_solver import FittedSolver, SolverFit, fit_solver
from sdegen.samplers.grid import CustomGrid, KarrasGrid, LogSNRGrid, TimeGrid, UniformGrid
from sdegen.samplers.metropolis import HMCCorrector, MALACorrector
from sdegen.samplers.pf_ode import ProbabilityFlowSampler
from sdegen.samplers.predictor_corrector import PredictorCorrectorSampler
from sdegen.samplers.predictors import (
    AncestralSampling,
    EulerMaruyama,
    NonePredictor,
    Predictor,
    ReverseDiffusion,
)
from sdegen.samplers.reverse_sde import ReverseSDESampler
from sdegen.samplers.sampling import sample
from sdegen.samplers.thresholding import Thresholded
from sdegen.samplers.tweedie import tweedie_denoise
from sdegen.samplers.unipc import UniPCSampler

__all__ = [
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
    "Thresholded",
    "TimeGrid",
    "UniformGrid",
    "LogSNRGrid",
    "KarrasGrid",
    "CustomGrid",
    "DiffusersGrid",
    "FittedGrid",
    "fit_grid",
    "FittedSolver",
    "SolverFit",
    "fit_solver",
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
