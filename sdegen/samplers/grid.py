"""Time grids T = t_0 > t_1 > ... > t_N = eps that samplers step through.

A grid is a small object that knows its number of steps N and places the N + 1 times on an SDE's
time axis when a sampler runs (it needs the SDE: lambda(t) and its inverse):

* :class:`UniformGrid`: uniform in t, the grid of Song et al. 2021;
* :class:`LogSNRGrid`: uniform in the log-SNR lambda(t) = log(alpha(t) / sigma(t)), i.e. geometric
  in the noise level sigma/alpha (DPM-Solver's "logSNR" grid, Lu et al. 2022, sec. 3.3;
  k-diffusion's ``get_sigmas_exponential``);
* :class:`KarrasGrid`: uniform in (sigma/alpha)^(1/rho) (Karras et al. 2022, eq. 5, rho = 7);
* :class:`CustomGrid`: the user's own decreasing times.

The grids in the noise level can stop at a noise floor (``floor=True``: the SDE's
``noise_floor``, sigma_min for VE) and take one last step from there to the end time, a denoising
step: the shape of EDM's and k-diffusion's grids, which end at sigma_min and then step to 0. The
few-step samplers use such grids by default and take that step at first order (a DDIM step, which
from s_floor to s(eps) << s_floor is Tweedie's denoiser up to a fraction s(eps)/s_floor of the noise):
without a floor, VE's default end time eps = 1e-5 (sigma = 1.3e-4) puts a third of the steps of a
log-SNR grid below sigma_min = 0.01, where the data is already resolved.

Every grid sampler takes one as ``grid=`` (a tensor or sequence of times is a :class:`CustomGrid`);
``steps=N`` stands for the sampler's default kind of grid with N steps, so passing both is an
error. Grids are computed in float64, as EDM keeps them. Placing a grid by lambda works for any
:class:`~sdegen.sde.LinearSDE` through its ``log_snr`` and ``inverse_log_snr``; nothing assumes
alpha^2 + sigma^2 = 1.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdegen._checks import check_bool, check_decreasing_times, check_linear_sde, check_positive, check_steps
from sdegen.sde.base import SDE, LinearSDE

__all__ = [
    "TimeGrid",
    "UniformGrid",
    "LogSNRGrid",
    "KarrasGrid",
    "CustomGrid",
    "resolve_grid",
    "uniform_times",
]

F64 = torch.float64


class TimeGrid(abc.ABC):
    """N + 1 strictly decreasing times from T (or a custom start) down to the sampler's end time.

    Subclasses implement ``_times``; :meth:`times` validates the result.

    Attributes:
        steps: N, the number of intervals.
    """

    steps: int

    def times(self, sde: SDE, t_end: float) -> Tensor:
        """The grid on ``sde``'s time axis down to ``t_end``: a float64 CPU tensor of ``steps + 1``
        strictly decreasing times."""
        ts = self._times(sde, float(t_end))
        values = ts.tolist()
        for i, (a, b) in enumerate(zip(values[:-1], values[1:], strict=True)):
            if (
                not a > b
            ):  # a grid placed by an inverse collapses when its steps drop below float64 resolution
                raise ValueError(
                    f"{self!r} on {sde!r} down to t={t_end:.6g} is not strictly decreasing: t[{i}]={a!r}, "
                    f"t[{i + 1}]={b!r}. Use fewer steps, or check that lambda(t) = log(alpha/sigma) of "
                    f"{type(sde).__name__} strictly decreases there."
                )
        return ts

    @abc.abstractmethod
    def _times(self, sde: SDE, t_end: float) -> Tensor:
        """The times as a float64 CPU tensor (validated by :meth:`times`)."""

    def denoising_final_step(self, sde: SDE, t_end: float) -> bool:
        """Whether the last step of :meth:`times` is a denoising step from a noise floor to ``t_end``
        (the few-step samplers take it at first order); False unless the grid says so."""
        return False


class UniformGrid(TimeGrid):
    """Times uniform in t: t_i = T - i (T - eps) / N (Song et al. 2021)."""

    def __init__(self, steps: int) -> None:
        self.steps = check_steps("steps", steps)

    def __repr__(self) -> str:
        return f"UniformGrid(steps={self.steps})"

    def _times(self, sde: SDE, t_end: float) -> Tensor:
        return uniform_times(sde.T, t_end, self.steps)


class _NoiseLevelGrid(TimeGrid):
    """A grid placed in lambda = log(alpha/sigma) and mapped to times by the SDE's inverse_log_snr.

    With a floor s_f (``floor=True``: the SDE's ``noise_floor``; a float: that noise level
    sigma/alpha), the first N - 1 steps are placed from T down to lambda_f = -log s_f and the last
    goes from there to the end time -- where the plain grid would spend more than one of those steps
    below the floor (VE's and sub-VP's default end times; not VP's, whose end is at the floor).
    """

    floor: bool | float = False

    def _set(self, steps: int, floor: bool | float) -> None:
        self.steps = check_steps("steps", steps)
        if not isinstance(floor, bool):
            floor = check_positive("floor", floor)
        self.floor = floor

    def _floor_repr(self) -> str:
        return "" if self.floor is False else f", floor={self.floor!r}"

    def _times(self, sde: SDE, t_end: float) -> Tensor:
        check_linear_sde(sde, f"{self!r}", "Use UniformGrid(steps) or CustomGrid(ts) instead.")
        lam_T, lam_end = _log_snr(sde, [sde.T, t_end])
        lam_floor = self._floor_log_snr(sde, lam_T, lam_end)
        if lam_floor is None:
            lam = self._log_snrs(lam_T, lam_end, self.steps)
        else:
            end = torch.tensor([lam_end], dtype=F64)
            lam = torch.cat([self._log_snrs(lam_T, lam_floor, self.steps - 1), end])
        ts = sde.inverse_log_snr(lam)
        ts[0], ts[-1] = sde.T, t_end  # exact ends, whatever the inverse's rounding
        return ts

    def denoising_final_step(self, sde: SDE, t_end: float) -> bool:
        if self.floor is False or self.steps < 2 or not isinstance(sde, LinearSDE):
            return False
        lam_T, lam_end = _log_snr(sde, [sde.T, float(t_end)])
        return self._floor_log_snr(sde, lam_T, lam_end) is not None

    def _floor_log_snr(self, sde: LinearSDE, lam_T: float, lam_end: float) -> float | None:
        """lambda at the floor where the grid stops before its denoising step, or None (no floor)."""
        if self.floor is False or self.steps < 2:
            return None
        lam_floor = -math.log(sde.noise_floor if self.floor is True else self.floor)
        regular = (lam_floor - lam_T) / (self.steps - 1)  # one of the N - 1 steps above the floor
        return lam_floor if regular > 0 and lam_end - lam_floor > regular else None

    @abc.abstractmethod
    def _log_snrs(self, lam_T: float, lam_end: float, steps: int) -> Tensor:
        """steps + 1 increasing float64 values of lambda from lam_T to lam_end."""


class LogSNRGrid(_NoiseLevelGrid):
    """Times uniform in the log-SNR lambda(t) = log(alpha(t) / sigma(t)).

    lambda_i = lambda(T) + i (lambda(eps) - lambda(T)) / N and t_i = t(lambda_i): the noise levels
    sigma/alpha = exp(-lambda) are geometric, as in NCSN's annealing (Song and Ermon 2019) and
    DPM-Solver's "logSNR" grid (Lu et al. 2022, sec. 3.3). Exponential integrators, which are exact
    in lambda for the linear part, take equal steps h = lambda_{i+1} - lambda_i on it. Needs a
    :class:`~sdegen.sde.LinearSDE`.

    Args:
        steps: N.
        floor: ``True``: stop at the SDE's ``noise_floor`` and take the last step from there to
            the end time (see the module docstring); a float: that noise level sigma/alpha
            instead; ``False`` (default): uniform down to the end time.
    """

    def __init__(self, steps: int, *, floor: bool | float = False) -> None:
        self._set(steps, floor)

    def __repr__(self) -> str:
        return f"LogSNRGrid(steps={self.steps}{self._floor_repr()})"

    def _log_snrs(self, lam_T: float, lam_end: float, steps: int) -> Tensor:
        return torch.linspace(lam_T, lam_end, steps + 1, dtype=F64)


class KarrasGrid(_NoiseLevelGrid):
    """Noise levels sigma/alpha uniform in their 1/rho-th power (Karras et al. 2022, eq. 5).

    With s = sigma/alpha = exp(-lambda) the noise level of EDM's scaled ODE,

        s_i = (s_max^(1/rho) + i / N (s_min^(1/rho) - s_max^(1/rho)))^rho,

    s_max = s(T), s_min = s(eps), and t_i = t(lambda = -log s_i). rho = 7 is the paper's choice;
    rho = 1 is uniform in s, and rho -> infinity tends to :class:`LogSNRGrid`. Needs a
    :class:`~sdegen.sde.LinearSDE`. ``floor`` as for :class:`LogSNRGrid` (EDM's grid is this one with
    s_min = sigma_min, then a step to 0).
    """

    def __init__(self, steps: int, rho: float = 7.0, *, floor: bool | float = False) -> None:
        self._set(steps, floor)
        self.rho = check_positive("rho", rho)

    def __repr__(self) -> str:
        return f"KarrasGrid(steps={self.steps}, rho={self.rho:g}{self._floor_repr()})"

    def _log_snrs(self, lam_T: float, lam_end: float, steps: int) -> Tensor:
        # s^(1/rho) = exp(-lambda / rho) is interpolated in log space,
        # log((1 - r) exp(A) + r exp(B)) = logaddexp(log(1 - r) + A, log(r) + B), so that no power of s
        # overflows however small rho is (rho = 1e-3 puts exp(+-5000) in the linear form).
        a, b = -lam_T / self.rho, -lam_end / self.rho
        ramp = torch.linspace(0.0, 1.0, steps + 1, dtype=F64)
        return -self.rho * torch.logaddexp(torch.log1p(-ramp) + a, torch.log(ramp) + b)


class CustomGrid(TimeGrid):
    """The user's own strictly decreasing times ts[0] > ... > ts[N], within [eps, T].

    The samples are taken at ``ts[-1]`` (the sampler's ``eps`` only bounds the grid), and a grid
    that starts below T needs the state at ``ts[0]`` as ``x_T``. ``denoising_final_step=True`` marks
    the last step as a denoising step from a noise floor (as a floored :class:`LogSNRGrid`'s), which
    the few-step samplers take at first order.
    """

    def __init__(
        self, ts: Tensor | Sequence[float], *, name: str = "ts", denoising_final_step: bool = False
    ) -> None:
        self._name = name
        self.ts = check_decreasing_times(name, ts, math.inf, lower=-math.inf).detach().to("cpu", F64)
        self.steps = len(self.ts) - 1
        check_bool("denoising_final_step", denoising_final_step)
        self._denoising = denoising_final_step

    def __repr__(self) -> str:
        flag = ", denoising final step" if self._denoising else ""
        return f"CustomGrid(<{len(self.ts)} times from {float(self.ts[0]):.4g} to {float(self.ts[-1]):.4g}{flag}>)"

    def _times(self, sde: SDE, t_end: float) -> Tensor:
        return check_decreasing_times(self._name, self.ts, sde.T, lower=t_end).clone()

    def denoising_final_step(self, sde: SDE, t_end: float) -> bool:
        return self._denoising


def resolve_grid(
    steps: int | None,
    grid: TimeGrid | Tensor | Sequence[float] | None,
    *,
    default: Callable[[int], TimeGrid],
    default_steps: int | None,
    grid_name: str = "grid",
) -> TimeGrid | None:
    """The grid a sampler was given: ``grid`` itself, or ``default(steps)``.

    ``grid`` may be a :class:`TimeGrid` or a tensor or sequence of times (a :class:`CustomGrid`).
    ``steps`` and ``grid`` together are a ``ValueError`` (the grid sets the number of steps); with
    neither, ``default(default_steps)``, or None when ``default_steps`` is None.
    """
    if grid is not None:
        if steps is not None:
            raise ValueError(
                f"pass steps={steps!r} or {grid_name}=..., not both: the grid sets the number of steps. "
                f"For {steps!r} steps of a kind of grid, pass e.g. grid=LogSNRGrid({steps!r})."
            )
        if isinstance(grid, TimeGrid):
            return grid
        if isinstance(grid, (str, bytes)) or not (torch.is_tensor(grid) or isinstance(grid, Sequence)):
            raise TypeError(
                f"{grid_name} must be a 1-D tensor or a sequence of floats; got {grid!r}. Pass decreasing "
                f"times, or a TimeGrid: UniformGrid(steps), LogSNRGrid(steps), KarrasGrid(steps)."
            )
        return CustomGrid(grid, name=grid_name)
    if steps is None:
        steps = default_steps
    return None if steps is None else default(check_steps("steps", steps))


def uniform_times(T: float, t_end: float, steps: int) -> Tensor:
    """``steps + 1`` equally spaced times from T down to ``t_end``, in float64 (as EDM keeps grids)."""
    return torch.linspace(T, t_end, steps + 1, dtype=F64)


def _log_snr(sde: LinearSDE, times: list[float]) -> list[float]:
    lam = sde.log_snr(torch.tensor(times, dtype=F64)).tolist()
    for t, value in zip(times, lam, strict=True):
        if not math.isfinite(value):
            raise ValueError(
                f"lambda(t) = log(alpha/sigma) of {sde!r} is {value} at t={t:.6g}, so a grid in the noise "
                f"level cannot reach it. Keep alpha(t) > 0 and sigma(t) > 0 on [eps, T] (a smaller T, or "
                f"eps > 0), or use UniformGrid(steps)."
            )
    return lam
