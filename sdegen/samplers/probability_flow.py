"""Deprecated location of :class:`~sdegen.samplers.ProbabilityFlowSampler`, which moved to
:mod:`sdegen.samplers.pf_ode` (``sdegen.sde.probability_flow`` is the ODE itself). Importing it from
here works until sdegen 0.3, with a warning."""

from sdegen._deprecation import moved_names

__all__: list[str] = []

__getattr__ = moved_names(
    "sdegen.samplers.probability_flow", {"ProbabilityFlowSampler": "sdegen.samplers.pf_ode"}
)
