"""The timesteps of diffusers' schedulers as a time grid on a :class:`~sdegen.DiscreteVPSDE`.

diffusers' ``scheduler.set_timesteps(n)`` places n integer timesteps by the config's
``timestep_spacing`` (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
flawed", Table 2) and ``steps_offset``, and ends the loop either at noise level 0 or at timestep 0.
:class:`DiffusersGrid` places the same timesteps k on the SDE's time axis, t = (k + 1) / N, so that
sdegen's samplers evaluate the network at exactly the timesteps, and step between exactly the
noise levels, a diffusers scheduler would use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from sdegen._checks import check_bool, check_steps
from sdegen.samplers.grid import TimeGrid
from sdegen.sde.base import SDE
from sdegen.sde.discrete_vp import DiscreteVPSDE

__all__ = ["DiffusersGrid"]

Spacing = Literal["leading", "trailing", "linspace"]
_SPACINGS = ("leading", "trailing", "linspace")

# diffusers' schedulers whose set_timesteps places steps + 1 timesteps and drops the last (their
# final step goes to the appended sigma), and those that place steps timesteps.
_MULTISTEP = ("DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler")
_SINGLE = ("DDIMScheduler", "DDPMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler")
# Config options that replace the spacing by a noise-level grid (sdegen's KarrasGrid, LogSNRGrid).
_NOISE_LEVEL_OPTIONS = {
    "use_karras_sigmas": "KarrasGrid(steps)",
    "use_exponential_sigmas": "LogSNRGrid(steps)",
    "use_lu_lambdas": "LogSNRGrid(steps)",
    "use_beta_sigmas": "CustomGrid(ts)",
    "use_flow_sigmas": "CustomGrid(ts)",
}


class DiffusersGrid(TimeGrid):
    """The timesteps of a diffusers scheduler's ``set_timesteps(steps)`` on a :class:`~sdegen.DiscreteVPSDE`.

    With N training timesteps and n = ``steps`` (numpy's round, half to even, as diffusers):

    * ``"leading"``: k_i = r (n - 1 - i) + steps_offset, r = N // n (DDIM's paper; Stable
      Diffusion's configs set steps_offset = 1);
    * ``"trailing"``: k_i = round(N - i N / n) - 1, i = 0..n-1: starts at k = N - 1, t = T;
    * ``"linspace"``: k_i = round((N - 1)(n - 1 - i) / (n - 1)): from N - 1 down to 0.

    ``multistep=True`` is the rule of DPMSolverMultistepScheduler, UniPCMultistepScheduler and
    DEISMultistepScheduler for ``leading`` and ``linspace``: n + 1 timesteps placed as above (with
    r = N // (n + 1)) and the last, smallest one dropped. ``rounded=False`` keeps
    EulerDiscreteScheduler's fractional ``linspace`` timesteps (the network is then evaluated at
    fractional timesteps, where sdegen's noise levels are the spline's and diffusers' are linear in
    sigma: the two agree at integer timesteps only).

    The grid's times are t_i = (k_i + 1) / N, and the end of the loop is ``final_sigmas_type``:

    * ``"zero"`` (diffusers' default): the grid ends at the last timestep and the scheduler's last
      step goes to noise level 0, that is x0_hat there: pass ``denoise=True`` to the sampler (it
      takes exactly that step). DDIMScheduler's ``set_alpha_to_one=True``, DDPMScheduler and
      EulerDiscreteScheduler end this way.
    * ``"sigma_min"``: one more step, to t = 1/N (timestep 0, the smallest trained noise level),
      omitted where the last timestep is 0 already (diffusers then takes a step of length 0).
      DDIMScheduler's ``set_alpha_to_one=False`` is this end.

    The grid starts at t_0 <= T (below T for ``leading`` and ``linspace`` with multistep): give
    the sampler the state at t_0 as ``x_T``, as diffusers starts from noise at its first timestep.
    Where a diffusers scheduler steps to a time that is not the next grid time -- DDIM and DDPM
    step from k to k - N // n whatever the spacing, which is the next timestep only for
    ``leading`` and for ``trailing`` with n dividing N -- sdegen's samplers step between
    consecutive grid times instead (diffusers then evaluates the network at k_{i+1} on a state
    it placed at k_i - N // n).

    Args:
        steps: n, the number of timesteps (network evaluations of a one-evaluation-per-step
            scheduler).
        spacing: ``"leading"``, ``"trailing"`` or ``"linspace"`` (the config's ``timestep_spacing``).
        steps_offset: added to the ``leading`` timesteps (the config's ``steps_offset``).
        multistep: the placement of diffusers' multistep schedulers (see above).
        rounded: round ``linspace`` timesteps to integers (all schedulers but Euler's).
        final_sigmas_type: ``"zero"`` or ``"sigma_min"`` (see above).
    """

    def __init__(
        self,
        steps: int,
        spacing: Spacing = "leading",
        *,
        steps_offset: int = 0,
        multistep: bool = False,
        rounded: bool = True,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
    ) -> None:
        self._n = check_steps("steps", steps)
        if spacing not in _SPACINGS:
            raise ValueError(
                f"spacing must be one of {', '.join(map(repr, _SPACINGS))}; got spacing={spacing!r}"
            )
        if isinstance(steps_offset, bool) or not isinstance(steps_offset, int) or steps_offset < 0:
            raise ValueError(f"steps_offset must be an int >= 0; got steps_offset={steps_offset!r}")
        for name, value in (("multistep", multistep), ("rounded", rounded)):
            check_bool(name, value)
        if final_sigmas_type not in ("zero", "sigma_min"):
            raise ValueError(f"final_sigmas_type must be 'zero' or 'sigma_min'; got {final_sigmas_type!r}")
        self.spacing, self.steps_offset, self.multistep = spacing, steps_offset, multistep
        self.rounded, self.final_sigmas_type = rounded, final_sigmas_type
        # The number of intervals: n - 1 timesteps apart, and the step to t = 1/N for "sigma_min"
        # (known only with N; TimeGrid.times checks the result, and `steps` is set for N-free use).
        self.steps = self._n - 1 if final_sigmas_type == "zero" else self._n

    def __repr__(self) -> str:
        extra = "".join(
            [
                f", steps_offset={self.steps_offset}" if self.steps_offset else "",
                ", multistep=True" if self.multistep else "",
                ", rounded=False" if not self.rounded else "",
                f", final_sigmas_type={self.final_sigmas_type!r}" if self.final_sigmas_type != "zero" else "",
            ]
        )
        return f"DiffusersGrid({self._n}, {self.spacing!r}{extra})"

    @classmethod
    def from_config(cls, config: Mapping[str, object] | object, steps: int) -> DiffusersGrid:
        """The grid of a diffusers scheduler for ``steps`` timesteps: ``config`` is the scheduler
        itself, or its config as a dict with ``_class_name`` (a saved ``scheduler_config.json``;
        ``scheduler.config`` in memory lacks the class name, so pass the scheduler there).

        Reads ``_class_name`` (the placement rule: multistep for DPMSolverMultistepScheduler,
        UniPCMultistepScheduler and DEISMultistepScheduler), ``timestep_spacing``,
        ``steps_offset``, ``final_sigmas_type`` or DDIM's ``set_alpha_to_one``. Refuses configs
        whose timesteps are not a spacing (``use_karras_sigmas`` and the like: use sdegen's
        :class:`~sdegen.KarrasGrid` or :class:`~sdegen.LogSNRGrid`), a finite ``lambda_min_clipped``,
        and unknown scheduler classes.
        """
        if not isinstance(config, Mapping):
            scheduler_config = getattr(config, "config", None)
            if not isinstance(scheduler_config, Mapping):
                raise TypeError(
                    f"config must be a diffusers scheduler or its config (a dict); got {type(config).__name__}"
                )
            config = {**scheduler_config, "_class_name": type(config).__name__}
        name = config.get("_class_name")
        if name not in _MULTISTEP + _SINGLE:
            raise ValueError(
                f"DiffusersGrid.from_config knows the timesteps of {', '.join(_SINGLE + _MULTISTEP)}; got "
                f"_class_name={name!r}. Build DiffusersGrid(steps, spacing, ...) with the scheduler's rule."
            )
        for key, instead in _NOISE_LEVEL_OPTIONS.items():
            if config.get(key):
                raise ValueError(
                    f"the scheduler config of {name} sets {key}=True: its timesteps are placed by noise level, "
                    f"not by a spacing. Use sdegen's {instead} on the DiscreteVPSDE instead."
                )
        clip = config.get("lambda_min_clipped")
        if clip is not None and math.isfinite(float(clip)):  # type: ignore[arg-type]
            raise ValueError(
                f"the scheduler config of {name} sets lambda_min_clipped={clip}: DiffusersGrid does not clip the "
                f"first timesteps; pass a CustomGrid of the times you want."
            )
        if name == "DDIMScheduler":
            final = "zero" if config.get("set_alpha_to_one", True) else "sigma_min"
        else:
            final = config.get("final_sigmas_type") or "zero"
        spacing = config.get("timestep_spacing") or "leading"
        return cls(
            steps,
            spacing,  # type: ignore[arg-type]
            steps_offset=int(config.get("steps_offset") or 0),  # type: ignore[call-overload]
            multistep=name in _MULTISTEP,
            rounded=not (name.startswith("Euler") and spacing == "linspace"),
            final_sigmas_type=final,  # type: ignore[arg-type]
        )

    def timesteps(self, num_train_timesteps: int) -> Tensor:
        """The n timesteps k_0 > ... > k_{n-1} of ``set_timesteps(n)``, float64 (integer-valued when
        rounded), computed with numpy in diffusers' own arithmetic."""
        N = check_steps("num_train_timesteps", num_train_timesteps)
        n = self._n
        places = n + 1 if self.multistep and self.spacing != "trailing" else n
        if places > N:
            raise ValueError(
                f"steps={n} needs {places} distinct timesteps of the {N} trained ones; use steps <= "
                f"{N - (places - n)}"
            )
        if self.spacing == "leading":
            k = (np.arange(0, places) * (N // places)).round()[::-1] + self.steps_offset
        elif self.spacing == "trailing":
            k = np.round(np.arange(N, 0, -N / n)) - 1
        else:
            k = np.linspace(0, N - 1, places)[::-1]
            if self.rounded:
                k = k.round()
        if places > n:
            k = k[:n]
        return torch.tensor(k.copy(), dtype=torch.float64)

    def _times(self, sde: SDE, t_end: float) -> Tensor:
        if not isinstance(sde, DiscreteVPSDE):
            raise TypeError(
                f"{self!r} places diffusers' timesteps, which need a DiscreteVPSDE (its step k at t = (k + 1) / N); "
                f"got {type(sde).__name__}. Use LogSNRGrid, KarrasGrid or UniformGrid on other SDEs."
            )
        N = sde.num_train_timesteps
        k = self.timesteps(N)
        if float(k[0]) > N - 1:
            raise ValueError(
                f"{self!r} starts at timestep {float(k[0]):g}, beyond the trained range 0..{N - 1} of {sde!r}: "
                f"lower steps_offset={self.steps_offset}."
            )
        if self.final_sigmas_type == "sigma_min" and float(k[-1]) > 0:
            k = torch.cat([k, torch.zeros(1, dtype=torch.float64)])
        ts = sde.timestep_to_t(k)
        if float(ts[-1]) < t_end - 1e-12:
            raise ValueError(
                f"{self!r} ends at t = {float(ts[-1]):.6g} (timestep {float(k[-1]):g}), below the sampler's eps = "
                f"{t_end:.6g}; pass eps <= {float(ts[-1]):.6g} (the default is 1/N)."
            )
        self.steps = len(ts) - 1
        return ts
