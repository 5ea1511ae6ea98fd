"""One home for an SDE's scalar coefficients: a(t), g(t)^2, alpha(t), sigma(t) and lambda(t).

Every solver in sdegen -- the samplers, the reverse-time SDE and probability-flow objects, the
likelihood -- reads the time-dependent coefficients of its SDE through this module, and nowhere else:

* :class:`CoefficientGrid`: the coefficients on a time grid known in advance (a sampler's steps),
  evaluated once in float64, validated, and kept as Python floats, so that a step multiplies data
  by numbers instead of evaluating schedule functions on 0-d tensors (microseconds each on a CPU,
  a kernel launch each on a GPU).
* :class:`Coefficients`: (a(t), g(t)^2) at whatever time an external solver (torchsde,
  torchdiffeq) asks for: a table lookup for tabulated times, an evaluation on the time tensor's
  device otherwise.
* :func:`check_schedule`: the validation of a schedule where it enters a solver.

For a :class:`~sdegen.sde.base.LinearSDE` the drift is f(t, x) = a(t) x with a and g^2 from
``drift_coefficient`` and ``diffusion_squared``; for any other :class:`~sdegen.sde.base.SDE` it is
``sde.drift(t, x)`` with g^2 from ``sde.diffusion_squared``. That is the one rule: a LinearSDE is
its kernel (alpha, sigma) and its derived drift cannot be overridden (the class refuses it), a
general SDE is its drift and diffusion, and solvers honour both.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import Tensor

from sdegen.sde.base import SDE, LinearSDE

__all__ = ["CoefficientGrid", "Coefficients", "check_schedule"]

# A computed g^2 below -_G2_ROUNDING * max|g^2| is a wrong schedule, above it rounding (autograd
# of a kernel whose g^2 vanishes gives -1e-17); the rounding is clamped to 0.
_G2_ROUNDING = 1e-8


class CoefficientGrid:
    """The coefficients of ``sde`` at the times ``ts``, evaluated once in float64 and validated.

    For a :class:`LinearSDE` (kernel N(alpha(t) x0, sigma(t)^2 I)) the grid also holds the exact
    one-step transition of the forward SDE from t_{i+1} to t_i (for a decreasing grid),

        x_{t_i} | x_{t_{i+1}} ~ N(A_i x_{t_{i+1}}, v_i I),   A_i = alpha(t_i) / alpha(t_{i+1}),
                                                            v_i = sigma(t_i)^2 - A_i^2 sigma(t_{i+1})^2,

    which the discrete predictors (reverse diffusion, ancestral sampling) invert.

    Attributes:
        t: the times as floats, in the order given (samplers pass T = t_0 > ... > t_N = eps).
        g2: g(t_i)^2, clamped at 0.
        a: a(t_i) with f(t, x) = a(t) x, or ``None`` for a general SDE.
        alpha, sigma, log_snr: alpha(t_i), sigma(t_i), lambda(t_i) of a LinearSDE, else ``None``.

    Raises:
        ValueError: the schedule is invalid on these times (see :func:`check_schedule`).
    """

    def __init__(self, sde: SDE, ts: Tensor | Sequence[float]) -> None:
        t = torch.as_tensor(ts, dtype=torch.float64).detach().to("cpu", torch.float64).reshape(-1)
        self.sde = sde
        #: the times as a float64 CPU tensor (for solvers that take a tensor of times)
        self.ts = t
        self.t: list[float] = t.tolist()
        self.steps = len(self.t) - 1
        self.linear = isinstance(sde, LinearSDE)
        g2 = sde.diffusion_squared(t)
        if self.linear:
            alpha, sigma, a = sde.alpha(t), sde.sigma(t), sde.drift_coefficient(t)
            _validate_linear(sde, t, alpha, sigma, a, g2)
            self.a: list[float] | None = a.tolist()
            self.alpha: list[float] | None = alpha.tolist()
            self.sigma: list[float] | None = sigma.tolist()
            self.log_snr: list[float] | None = sde.log_snr(t).tolist()
        else:
            _require_finite(sde, t, "g(t)^2", g2)
            self.a = self.alpha = self.sigma = self.log_snr = None
        self.g2: list[float] = g2.clamp_min(0.0).tolist()
        #: whether the last step is a denoising step from a noise floor (set by the sampler from its
        #: time grid; see :class:`~sdegen.samplers.grid.LogSNRGrid`), which multistep samplers take
        #: at first order
        self.denoising_final_step = False

    def __len__(self) -> int:
        return self.steps

    def step_size(self, i: int) -> float:
        """h_i = t_i - t_{i+1}."""
        return self.t[i] - self.t[i + 1]

    def batch_time(self, i: int, x: Tensor) -> Tensor:
        """t_i as a [B] tensor on ``x``'s device and dtype, the time argument of ``score_fn``."""
        return torch.full((x.shape[0],), self.t[i], dtype=x.dtype, device=x.device)

    def drift(self, i: int, x: Tensor) -> Tensor:
        """f(t_i, x): a(t_i) x for a LinearSDE, else the SDE's drift."""
        if self.a is not None:
            return self.a[i] * x
        return self.sde.drift(self.batch_time(i, x), x)

    def transition(self, i: int) -> tuple[float, float]:
        """(A_i, v_i) of the forward transition from t_{i+1} to t_i (see the class docstring)."""
        A = self.alpha[i] / self.alpha[i + 1]
        v = self.sigma[i] ** 2 - (A * self.sigma[i + 1]) ** 2
        return A, max(v, 0.0)

    def langevin_alpha(self, i: int) -> float:
        """The factor alpha_i of score_sde's Langevin step size at t_i: 1 - beta_i of the DDPM step into t_i.

        For a linear SDE this is A^2 of the transition from t_i up to t_{i-1} (1 - beta_i for VP,
        1 for VE); 1 when undefined (i = 0, or a general SDE).
        """
        if i == 0 or self.alpha is None:
            return 1.0
        return (self.alpha[i - 1] / self.alpha[i]) ** 2


class Coefficients:
    """(a(t), g(t)^2) of an SDE at the times an external solver asks for, and its drift.

    ``at(t)`` returns Python floats for times registered with :meth:`tabulate` (keys compared
    exactly, as the solver will pass them), and otherwise tensors evaluated on ``t``'s device
    without a host synchronisation. ``a`` is ``None`` for a general SDE, whose drift is
    ``sde.drift(t, x)``.
    """

    def __init__(self, sde: SDE) -> None:
        self.sde = sde
        self.linear = isinstance(sde, LinearSDE)
        self._table: dict[float, tuple[float | None, float]] = {}

    def tabulate(self, keys: Sequence[float], ts: Tensor | Sequence[float] | None = None) -> None:
        """Precompute the coefficients at ``ts`` (default: the keys themselves) under ``keys``.

        Solvers whose times are known in advance (fixed-grid torchdiffeq and torchsde methods)
        then skip the schedule functions at those times.
        """
        grid = CoefficientGrid(self.sde, keys if ts is None else ts)
        a = grid.a if grid.a is not None else [None] * len(grid.g2)
        self._table = dict(zip([float(k) for k in keys], zip(a, grid.g2, strict=True), strict=True))

    def lookup(self, t: float) -> tuple[float | None, float] | None:
        """The tabulated (a, g^2) at ``t``, or None."""
        return self._table.get(t)

    def at(self, t: Tensor) -> tuple[Tensor | float | None, Tensor | float]:
        """(a(t), g(t)^2) at the 0-d time tensor ``t``: floats when tabulated, else tensors."""
        if self._table and t.device.type == "cpu":
            cached = self._table.get(float(t))
            if cached is not None:
                return cached
        g2 = self.sde.diffusion_squared(t).clamp_min(0)
        return (self.sde.drift_coefficient(t) if self.linear else None), g2

    def at_float(self, t: float) -> tuple[float | None, float]:
        """(a(t), g(t)^2) at the time ``t`` as Python floats (evaluated in float64 unless tabulated)."""
        cached = self._table.get(t)
        if cached is not None:
            return cached
        tt = torch.tensor(t, dtype=torch.float64)
        g2 = max(float(self.sde.diffusion_squared(tt)), 0.0)
        return (float(self.sde.drift_coefficient(tt)) if self.linear else None), g2

    def field(
        self,
        t: Tensor,
        x: Tensor,
        score: Tensor,
        a: Tensor | float | None,
        g2: Tensor | float,
        *,
        weight: float,
        scale: float = 1.0,
    ) -> Tensor:
        """scale (f(t, x) - weight g(t)^2 score), with (a, g2) from :meth:`at`; ``t`` is x's [B] time.

        ``weight`` 1 gives the reverse-time SDE's drift (Song et al. 2021, eq. 6), 1/2 the
        probability-flow ODE (eq. 13); ``scale`` -1 the drift in reversed time s = T - t.
        """
        if isinstance(a, float) and isinstance(g2, float):  # one fused kernel for f = a x
            return torch.add(x * (scale * a), score, alpha=-scale * weight * g2)
        drift = a * x if a is not None else self.sde.drift(t, x)
        out = drift - (weight * g2) * score
        return out if scale == 1.0 else scale * out


# -- validation ----------------------------------------------------------------------------------

_CHECKED: weakref.WeakKeyDictionary[SDE, set[tuple[float, float]]] = weakref.WeakKeyDictionary()


def check_schedule(sde: SDE, t_min: float, t_max: float, points: int = 129) -> None:
    """Validate the schedule of ``sde`` on ``points`` times from ``t_max`` down to ``t_min``.

    For a :class:`LinearSDE`: alpha finite and > 0, sigma finite and >= 0 with sigma(0) = 0 and
    alpha(0) = 1, a(t) finite, g(t)^2 finite and >= 0 (up to rounding); for a general SDE, g^2
    finite and >= 0. Raises ``ValueError`` naming the coefficient, its value and the time. An
    interval already checked for the same SDE object is not checked again (losses call this on
    every training step).
    """
    done = _CHECKED.get(sde)
    if done is not None and (t_min, t_max) in done:
        return
    CoefficientGrid(sde, torch.linspace(t_max, t_min, points, dtype=torch.float64))
    _CHECKED.setdefault(sde, set()).add((t_min, t_max))


def _validate_linear(sde: LinearSDE, t: Tensor, alpha: Tensor, sigma: Tensor, a: Tensor, g2: Tensor) -> None:
    _require(sde, t, "alpha(t)", alpha, torch.isfinite(alpha) & (alpha > 0), "finite and > 0")
    _require(sde, t, "sigma(t)", sigma, torch.isfinite(sigma) & (sigma >= 0), "finite and >= 0")
    _require_finite(sde, t, "a(t) = d log alpha/dt", a)
    _require_finite(sde, t, "g(t)^2", g2)
    zero = torch.zeros(1, dtype=torch.float64)
    alpha0, sigma0 = float(sde.alpha(zero)), float(sde.sigma(zero))
    scale = max(1.0, float(sigma.abs().max()))
    if not (abs(alpha0 - 1.0) <= 1e-6 and abs(sigma0) <= 1e-6 * scale):
        raise ValueError(
            f"sde={sde!r} has an invalid kernel at t = 0: alpha(0) = {alpha0:.6g} and sigma(0) = "
            f"{sigma0:.6g}, but p_0t(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I) must start at the data "
            f"(alpha(0) = 1, sigma(0) = 0). Fix alpha(t) and sigma(t) of {type(sde).__name__}."
        )


def _require_finite(sde: SDE, t: Tensor, name: str, values: Tensor) -> None:
    ok = torch.isfinite(values)
    if name == "g(t)^2":
        scale = float(torch.where(ok, values.abs(), 0.0).max())
        _require(sde, t, name, values, ok & (values >= -_G2_ROUNDING * scale), "finite and >= 0")
    else:
        _require(sde, t, name, values, ok, "finite")


def _require(sde: SDE, t: Tensor, name: str, values: Tensor, ok: Tensor, what: str) -> None:
    if bool(ok.all()):
        return
    bad = (~ok).nonzero().reshape(-1)
    i = int(bad[0])
    span = f"the {len(t)} times from {float(t[0]):.6g} to {float(t[-1]):.6g}"
    raise ValueError(
        f"sde={sde!r} has an invalid schedule: {name} must be {what} on {span} where it is used, but "
        f"{name} = {float(values[i]):.6g} at t = {float(t[i]):.6g} ({len(bad)} of the {len(t)} times "
        f"fail). Fix the schedule of {type(sde).__name__} there (e.g. keep alpha(T) > 0 by a smaller T "
        f"or a clipped schedule), or sample on times where it is valid."
    )
