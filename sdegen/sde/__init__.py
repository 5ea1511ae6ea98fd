"""Forward SDEs: the protocol, the linear-drift base, the three SDEs of Song et al. (2021), the cosine
VP schedule of improved DDPM, the discrete table of DDPM and diffusers models, and EDM's sigma(t) = t VE."""

from sdegen.sde.base import SDE, LinearSDE
from sdegen.sde.cosine_vp import CosineVPSDE
from sdegen.sde.discrete_vp import DiscreteVPSDE
from sdegen.sde.edm_ve import EDMVESDE
from sdegen.sde.kernel import GaussianKernel
from sdegen.sde.probability_flow import ProbabilityFlowODE
from sdegen.sde.reverse import ReverseTimeSDE
from sdegen.sde.subvp import SubVPSDE
from sdegen.sde.ve import VESDE, SMLDSchedule
from sdegen.sde.vp import VPSDE, DDPMSchedule

__all__ = [
    "SDE",
    "LinearSDE",
    "GaussianKernel",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "CosineVPSDE",
    "EDMVESDE",
    "DiscreteVPSDE",
    "DDPMSchedule",
    "SMLDSchedule",
    "ReverseTimeSDE",
    "ProbabilityFlowODE",
]
