"""Forward SDEs: the protocol, the linear-drift base, and the three SDEs of Song et al. (2021)."""

from sdegen.sde.base import SDE, LinearSDE
from sdegen.sde.probability_flow import ProbabilityFlowODE
from sdegen.sde.reverse import ReverseTimeSDE
from sdegen.sde.subvp import SubVPSDE
from sdegen.sde.ve import VESDE, SMLDSchedule
from sdegen.sde.vp import VPSDE, DDPMSchedule

__all__ = [
    "SDE",
    "LinearSDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "DDPMSchedule",
    "SMLDSchedule",
    "ReverseTimeSDE",
    "ProbabilityFlowODE",
]
