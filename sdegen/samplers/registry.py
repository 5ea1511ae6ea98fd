"""Every sampler by name: one registration line each, read by the command line, the error messages,
the documentation and the tests.

:data:`SAMPLERS` maps a name (``"dpmpp-2m"``, what ``sdegen sample --sampler`` takes) to a
:class:`SamplerEntry`: how to build the sampler, its titles for reports and figure panels, and the
numeric options a user may set (``snr`` of the Langevin corrector, ...). A sampler's own class says
the rest -- ``default_steps``, ``order``, ``nfe_per_step``, ``stochastic``, whether it steps through
a grid of its own -- so nothing here repeats it. Adding a sampler is its file and one line::

    SAMPLERS.add("deis-2", DEISSampler, "DEIS (tAB, order 2)", "DEIS 2", order=2)

after which ``sdegen sample RUN --sampler deis-2`` works, ``--help`` lists it, the documentation's
table of samplers shows it and the tests that run every registered sampler run it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from sdegen.samplers.annealed_langevin import AnnealedLangevinSampler
from sdegen.samplers.base import Sampler
from sdegen.samplers.correctors import LangevinCorrector
from sdegen.samplers.ddim import DDIMSampler
from sdegen.samplers.ddpm import DDPMSampler
from sdegen.samplers.dpm_solver_multistep import DPMSolverMultistepSampler
from sdegen.samplers.dpm_solver_sde import DPMSolverSDESampler
from sdegen.samplers.dpm_solver_singlestep import DPMSolverSinglestepSampler
from sdegen.samplers.edm import EDMHeunSampler, EDMStochasticSampler
from sdegen.samplers.pf_ode import ProbabilityFlowSampler
from sdegen.samplers.predictor_corrector import PredictorCorrectorSampler
from sdegen.samplers.predictors import ReverseDiffusion
from sdegen.samplers.reverse_sde import ReverseSDESampler
from sdegen.samplers.unipc import UniPCSampler

__all__ = ["SamplerEntry", "SamplerRegistry", "SAMPLERS"]

_GRID_ARGUMENTS = ("steps", "grid", "ts")


@dataclass(frozen=True)
class SamplerEntry:
    """One registered sampler: ``build(steps=..., **options)`` makes it.

    Attributes:
        name: the name on the command line and in ``config.json``.
        factory: the sampler class (or a function) called with ``kwargs``, the options and the
            grid arguments (``steps=``, ``grid=``, ``ts=``).
        title: for reports and ``--help``.
        short_title: for figure panels.
        kwargs: fixed keyword arguments of ``factory`` (``order=2``).
        options: the numeric options a user may set, with their defaults (``snr``); the command
            line passes its values of them.
    """

    name: str
    factory: Callable[..., Sampler]
    title: str
    short_title: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, float] = field(default_factory=dict)

    def build(
        self, *, steps: int | None = None, grid: Any = None, ts: Any = None, **options: float
    ) -> Sampler:
        """The sampler on ``steps`` steps of its default grid, on ``grid``, or on the times ``ts``
        (none of them: its ``default_steps``), with ``options`` overriding the entry's defaults."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"sampler {self.name!r} takes the options {sorted(self.options)}; got {unknown}")
        given = {"steps": steps, "grid": grid, "ts": ts}
        grid_arguments = {k: v for k, v in given.items() if v is not None}
        return self.factory(**self.kwargs, **{**self.options, **options}, **grid_arguments)

    @cached_property
    def _default(self) -> Sampler:
        return self.factory(**self.kwargs, **self.options)

    @property
    def sampler_class(self) -> type[Sampler]:
        """The class of the sampler :meth:`build` makes."""
        return type(self._default)

    @property
    def takes_steps(self) -> bool:
        """Whether the sampler steps through a grid (``steps=``, ``grid=``); an adaptive solver does not."""
        return self._default.grid is not None

    @property
    def default_steps(self) -> int | None:
        """N when no ``steps`` is given: the sampler class's ``default_steps`` (None: adaptive)."""
        return self._default.steps


class SamplerRegistry(Mapping[str, SamplerEntry]):
    """Names to :class:`SamplerEntry`, in registration order; :meth:`add` registers one."""

    def __init__(self) -> None:
        self._entries: dict[str, SamplerEntry] = {}

    def add(
        self,
        name: str,
        factory: Callable[..., Sampler],
        title: str,
        short_title: str,
        *,
        options: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> SamplerEntry:
        """Register ``factory(**kwargs)`` as ``name``; ``options``: user-settable numeric options."""
        if name in self._entries:
            raise ValueError(f"a sampler named {name!r} is already registered")
        clash = sorted(set(kwargs) & set(_GRID_ARGUMENTS))
        if clash:
            raise ValueError(f"{clash} are given when the sampler is built, not registered")
        entry = SamplerEntry(
            name,
            factory,
            title,
            short_title,
            MappingProxyType(dict(kwargs)),
            MappingProxyType(dict(options or {})),
        )
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> SamplerEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown sampler {name!r}; choose from {sorted(self._entries)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def grid_sampler_titles(self, *, stochastic: bool = False) -> list[str]:
        """The classes of the samplers that step through a grid of their own (observations,
        callbacks), each once, in registration order; with ``stochastic``, only those registered
        as drawing noise (a noisy observation needs one)."""
        names: list[str] = []
        for entry in self._entries.values():
            name, default = entry.sampler_class.__name__, entry._default
            if default.supports_observation and (default.stochastic or not stochastic) and name not in names:
                names.append(name)
        return names


def _pc(snr: float, **grid: Any) -> PredictorCorrectorSampler:
    """Song et al. 2021's PC sampler: reverse diffusion with one Langevin step per level."""
    return PredictorCorrectorSampler(ReverseDiffusion(), LangevinCorrector(snr=snr), **grid)


#: Every sampler the command line offers, by name.
SAMPLERS = SamplerRegistry()
# The SDE and Langevin samplers, in t (1000 steps by default).
SAMPLERS.add("reverse-sde", ReverseSDESampler, "reverse SDE (Euler-Maruyama)", "reverse SDE", method="euler")
SAMPLERS.add("ode", ProbabilityFlowSampler, "probability-flow ODE (dopri5)", "probability-flow ODE")
SAMPLERS.add("pc", _pc, "predictor-corrector (RD + Langevin)", "predictor-corrector", options={"snr": 0.16})
SAMPLERS.add("ddpm", DDPMSampler, "DDPM ancestral", "DDPM")
# Few-step samplers, in lambda against x0_hat (default grid: log-SNR; Karras for the EDM two).
SAMPLERS.add("ddim", DDIMSampler, "DDIM (eta = 0)", "DDIM")
SAMPLERS.add("dpmpp-2m", DPMSolverMultistepSampler, "DPM-Solver++(2M)", "DPM++ 2M", order=2)
SAMPLERS.add("dpmpp-3m", DPMSolverMultistepSampler, "DPM-Solver++(3M)", "DPM++ 3M", order=3)
SAMPLERS.add("dpmpp-2s", DPMSolverSinglestepSampler, "DPM-Solver++(2S)", "DPM++ 2S")
SAMPLERS.add("dpmpp-2m-sde", DPMSolverSDESampler, "DPM-Solver++(2M) SDE", "DPM++ 2M SDE")
SAMPLERS.add("unipc", UniPCSampler, "UniPC (bh2, order 2)", "UniPC")
SAMPLERS.add("edm-heun", EDMHeunSampler, "EDM Heun (Karras et al. Alg. 1)", "EDM Heun")
SAMPLERS.add(
    "edm-churn",
    EDMStochasticSampler,
    "EDM stochastic (Alg. 2, ImageNet-64 churn)",
    "EDM churn",
    s_churn=40.0,
    s_tmin=0.05,
    s_tmax=50.0,
    s_noise=1.003,
)
# NCSN's Alg. 1 (Song and Ermon 2019); snr 0.22 is the paper's epsilon = 2e-5 at sigma_L = 0.01.
SAMPLERS.add(
    "annealed-langevin",
    AnnealedLangevinSampler,
    "annealed Langevin dynamics (NCSN)",
    "annealed Langevin",
    options={"snr": 0.22, "n_steps_each": 100},
)
