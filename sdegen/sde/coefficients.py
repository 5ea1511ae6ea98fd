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
        if self.linear:
            # alpha and sigma first: the derived coefficients are computed from them.
            alpha = _evaluate(sde, "alpha", t)
            sigma = _evaluate(sde, "sigma", t)
            _evaluate(sde, "sigma_squared", t)
            a = _evaluate(sde, "drift_coefficient", t)
            g2 = _evaluate(sde, "diffusion_squared", t)
            _validate_linear(sde, t, alpha, sigma, a, g2)
            self.a: list[float] | None = a.tolist()
            self.alpha: list[float] | None = alpha.tolist()
            self.sigma: list[float] | None = sigma.tolist()
            self.log_snr: list[float] | None = sde.log_snr(t).tolist()
        else:
            g2 = _evaluate(sde, "diffusion_squared", t)
            _require_finite(sde, t, "g(t)^2", g2)
            self.a = self.alpha = self.sigma = self.log_snr = None
        self.g2: list[float] = g2.clamp_min(0.0).tolist()
        #: whether the last step is a denoising step from a noise floor (set by the sampler from its
        #: time grid; see :class:`~sdegen.samplers.grid.LogSNRGrid`), which multistep samplers take
        #: at first order
        self.denoising_final_step = False

    def __len__(self) -> int:
        return self.steps

    def check_range(self, dtype: torch.dtype, name: str = "x") -> None:
        """Raise ``ValueError`` if the coefficients on this grid overflow ``dtype``, the samples' dtype.

        A sample at time t has scale sigma(t) (and its squared norm sigma(t)^2 d); the score's scale
        is 1 / sigma(t). Coefficients within float64 but beyond float32's 3.4e38 (``EDMVESDE(1e30)``)
        would otherwise turn into inf in the middle of sampling.
        """
        if not dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor; got dtype {dtype}")
        limit = torch.finfo(dtype).max * 1e-6  # headroom for norms and products of a few terms
        values = {"g(t)^2": self.g2}
        if self.sigma is not None:
            values["sigma(t)^2"] = [s * s for s in self.sigma]
            values["1 / alpha(t)"] = [1.0 / a for a in self.alpha]
            values["a(t)"] = [abs(a) for a in self.a]
        for what, vals in values.items():
            i = max(range(len(vals)), key=vals.__getitem__)
            if not vals[i] < limit:
                raise ValueError(
                    f"sde={self.sde!r} has {what} = {vals[i]:.4g} at t = {self.t[i]:.6g}, beyond the range of "
                    f"{name}'s dtype {dtype} (largest {torch.finfo(dtype).max:.3g}): sampling would overflow "
                    f"to inf. Sample in torch.float64, or use a schedule of smaller scale."
                )

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
        self._scale: float | None = None  # max |g^2| on [0, T], the scale of its rounding

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
        g2 = self.sde.diffusion_squared(t)
        a = self.sde.drift_coefficient(t) if self.linear else None
        self._check(t, a, g2)
        return a, g2.clamp_min(0)

    def at_float(self, t: float) -> tuple[float | None, float]:
        """(a(t), g(t)^2) at the time ``t`` as Python floats (evaluated in float64 unless tabulated)."""
        cached = self._table.get(t)
        if cached is not None:
            return cached
        tt = torch.tensor(t, dtype=torch.float64)
        g2 = self.sde.diffusion_squared(tt)
        a = self.sde.drift_coefficient(tt) if self.linear else None
        self._check(tt, a, g2)
        return (float(a) if a is not None else None), max(float(g2), 0.0)

    def _check(self, t: Tensor, a: Tensor | None, g2: Tensor) -> None:
        """Validate (a, g^2) at a time the solver chose, between the points :func:`check_schedule` saw.

        Adaptive solvers (torchdiffeq's, torchsde's, the likelihood's) evaluate the vector field at
        times known only as they go, and read their error estimate back to the host at every step
        anyway, so one more read here costs little; it makes the schedule check see every time a
        solver evaluates, so that a narrow dip of g^2 below 0 between checked points is refused.
        """
        if self._scale is None:
            probe = torch.linspace(0.0, self.sde.T, 33, dtype=torch.float64)
            g2_probe = self.sde.diffusion_squared(probe)  # may be NaN at t = 0 (autograd of a square root)
            self._scale = float(torch.where(torch.isfinite(g2_probe), g2_probe.abs(), 0.0).max())
        ok = torch.isfinite(g2) & (g2 >= -_G2_ROUNDING * self._scale)
        if a is not None:
            ok = ok & torch.isfinite(a)
        if not bool(ok.all()):
            k = int((~ok).reshape(-1).nonzero()[0])

            def at(v: Tensor) -> float:
                return float(v.reshape(-1)[k if v.numel() > 1 else 0])

            drift = "" if a is None else f", a(t) = {at(a):.6g}"
            raise ValueError(
                f"sde={self.sde!r} has an invalid schedule at t = {at(t):.6g}, a time the solver evaluated "
                f"between the checked points: g(t)^2 = {at(g2):.6g}{drift}; both must be finite and g(t)^2 "
                f">= 0. Fix the schedule of {type(self.sde).__name__} there."
            )

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

    For a :class:`LinearSDE`: alpha(t), sigma(t), a(t), g(t)^2 real floating-point tensors shaped
    like t; alpha finite and > 0, sigma finite and >= 0 with sigma(0) = 0 and alpha(0) = 1, a(t)
    finite, g(t)^2 finite and >= 0 (up to rounding), and neither a(t) nor g(t)^2 / alpha(t)^2
    singular on a step (``_require_resolved``); for a general SDE, g^2 finite and >= 0. Raises
    ``ValueError`` naming the coefficient, its value and the time. An interval already checked for
    the same SDE object is not checked again (losses call this on every training step).

    What this guarantees, and where: these conditions hold at the checked times. Between them a
    schedule may still misbehave, so every solver is checked where it evaluates: a grid sampler's
    :class:`CoefficientGrid` applies the same conditions to its own grid (every time it steps
    to), and the adaptive solvers' :class:`Coefficients` check g^2 and a at every time they
    evaluate that was not tabulated. A loss draws its times at random and is covered by this
    check on ``points`` times only.
    """
    done = _CHECKED.get(sde)
    if done is not None and (t_min, t_max) in done:
        return
    CoefficientGrid(sde, torch.linspace(t_max, t_min, points, dtype=torch.float64))
    _CHECKED.setdefault(sde, set()).add((t_min, t_max))


def _evaluate(sde: SDE, method: str, t: Tensor) -> Tensor:
    """``sde.<method>(t)`` checked to be a real floating-point tensor shaped like ``t``, in float64.

    A user's schedule that returns a Python float, an integer tensor (which would round alpha(t) to
    0 or 1 and sample silently wrong) or a complex one is refused here with its name.
    """
    value = getattr(sde, method)(t)
    where = f"{type(sde).__name__}.{method}(t)"
    if not torch.is_tensor(value):
        raise TypeError(
            f"{where} must return a tensor shaped like t (float64 [{t.numel()}] here); got a "
            f"{type(value).__name__}. Compute it from t with torch operations (a constant c: "
            f"torch.full_like(t, c))."
        )
    if value.is_complex() or not value.is_floating_point():
        raise TypeError(
            f"{where} must return a real floating-point tensor; got dtype {value.dtype}. Compute it in "
            f"t's dtype, with real operations (e.g. torch.ones_like(t), not torch.ones_like(t, "
            f"dtype=torch.long))."
        )
    if value.shape != t.shape:
        raise ValueError(
            f"{where} must be elementwise in t: a tensor of t's shape {tuple(t.shape)}; got shape "
            f"{tuple(value.shape)}"
        )
    return value.detach().to(torch.float64)


#: A coefficient whose value times a step exceeds this multiple of its own integral over the step
#: (and 1) is singular there: no step of the grid resolves it (see ``_require_resolved``).
_SINGULAR = 1e6


def _validate_linear(sde: LinearSDE, t: Tensor, alpha: Tensor, sigma: Tensor, a: Tensor, g2: Tensor) -> None:
    _require(sde, t, "alpha(t)", alpha, torch.isfinite(alpha) & (alpha > 0), "finite and > 0")
    _require(sde, t, "sigma(t)", sigma, torch.isfinite(sigma) & (sigma >= 0), "finite and >= 0")
    _require_finite(sde, t, "a(t) = d log alpha/dt", a)
    _require_finite(sde, t, "g(t)^2", g2)
    _require_resolved(sde, t, alpha, sigma, a, g2)
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


def _require_resolved(sde: LinearSDE, t: Tensor, alpha: Tensor, sigma: Tensor, a: Tensor, g2: Tensor) -> None:
    """Refuse coefficients that blow up at a time of the grid (a singular end of the schedule).

    Over a step [t_{i+1}, t_i] of length h, a(t) integrates to log alpha(t_i) - log alpha(t_{i+1})
    and g(t)^2 / alpha(t)^2 to v(t_i) - v(t_{i+1}), v = sigma^2 / alpha^2 (the variance in scaled
    coordinates, dv/dt = g^2 / alpha^2). A coefficient that is smooth on the step has
    |c(t_i)| h within a small factor of |integral| (the factor is the variation of c over the step:
    2 for the linear VP schedule in one step, 350 for diffusers' clipped cosine table in one step).
    Where it exceeds it by _SINGULAR (10^6), the coefficient is not a rate the step can use but a
    singularity: the unclipped cosine schedule at T, where alpha(T) = 6e-17 and a(T) = -8e15, for
    which the reverse-SDE Euler sampler returns |x| ~ 1e7 without any error.
    """
    if len(t) < 2:
        return
    h = (t[:-1] - t[1:]).abs()
    v = sigma**2 / alpha**2
    for name, c, integral in (
        ("a(t) = d log alpha/dt", a.abs(), (alpha[:-1].log() - alpha[1:].log()).abs()),
        ("g(t)^2", g2.abs() / alpha**2, (v[:-1] - v[1:]).abs()),
    ):
        step = torch.maximum(c[:-1], c[1:]) * h
        bad = (step > _SINGULAR * integral) & (step > 1.0)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            j = i if c[i] >= c[i + 1] else i + 1
            raise ValueError(
                f"sde={sde!r} has a singular schedule: {name} = {float((a if name[0] == 'a' else g2)[j]):.4g} "
                f"at t = {float(t[j]):.6g} (alpha = {float(alpha[j]):.4g}, sigma = {float(sigma[j]):.4g}) "
                f"blows up: over the step from t = {float(t[i]):.6g} to {float(t[i + 1]):.6g} it is "
                f"{float(step[i] / max(float(integral[i]), 1e-300)):.3g} times its own integral, so no "
                f"solver step resolves it. Clip the rate near the end (as improved DDPM clips its cosine "
                f"betas at 0.999: sdegen.CosineVPSDE does), or use a smaller T."
            )
