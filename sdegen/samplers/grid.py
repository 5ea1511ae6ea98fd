"""Time grids T = t_0 > t_1 > ... > t_N = eps and the SDE's coefficients on them."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sdegen.sde.base import SDE, LinearSDE

__all__ = ["TimeGrid", "uniform_times"]


def uniform_times(T: float, t_end: float, steps: int) -> Tensor:
    """``steps + 1`` equally spaced times from T down to ``t_end``, in float64 (as EDM keeps grids)."""
    return torch.linspace(T, t_end, steps + 1, dtype=torch.float64)


class TimeGrid:
    """A validated, decreasing time grid with the SDE's coefficients precomputed as Python floats.

    Computed once per sampling run in float64, so the inner loop of a sampler multiplies tensors
    by floats and never validates or evaluates coefficients on a device. For a :class:`LinearSDE`
    (kernel N(alpha(t) x0, sigma(t)^2 I)) the grid also holds the exact one-step transition of the
    forward SDE from t_{i+1} up to t_i,

        x_{t_i} | x_{t_{i+1}} ~ N(A_i x_{t_{i+1}}, v_i I),   A_i = alpha(t_i) / alpha(t_{i+1}),
                                                            v_i = sigma(t_i)^2 - A_i^2 sigma(t_{i+1})^2,

    which the discrete predictors (reverse diffusion, ancestral sampling) invert.

    Attributes:
        t: the N + 1 times, ``t[0] > ... > t[N]``.
        g2: g(t_i)^2.
        drift_coefficient: a(t_i) with f(t, x) = a(t) x, or ``None`` for a non-linear drift.
        alpha, sigma: alpha(t_i) and sigma(t_i) of a :class:`LinearSDE`, else ``None``.
    """

    def __init__(self, sde: SDE, ts: Tensor) -> None:
        ts = ts.detach().to(device="cpu", dtype=torch.float64)
        self.sde = sde
        self.t: list[float] = ts.tolist()
        self.steps = len(self.t) - 1
        self.g2: list[float] = _finite("g(t)^2", sde._diffusion_squared_unchecked(ts))
        self.linear = isinstance(sde, LinearSDE)
        if self.linear:
            self.drift_coefficient: list[float] | None = _finite("a(t)", sde.drift_coefficient(ts))
            self.alpha: list[float] | None = _finite("alpha(t)", sde.alpha(ts))
            self.sigma: list[float] | None = _finite("sigma(t)", sde.sigma(ts))
        else:
            self.drift_coefficient = self.alpha = self.sigma = None

    def __len__(self) -> int:
        return self.steps

    def step_size(self, i: int) -> float:
        """h_i = t_i - t_{i+1} > 0."""
        return self.t[i] - self.t[i + 1]

    def batch_time(self, i: int, x: Tensor) -> Tensor:
        """t_i as a [B] tensor on ``x``'s device and dtype, the time argument of ``score_fn``."""
        return torch.full((x.shape[0],), self.t[i], dtype=x.dtype, device=x.device)

    def drift(self, i: int, x: Tensor) -> Tensor:
        """f(t_i, x): a(t_i) x for a linear drift, else the SDE's drift."""
        if self.drift_coefficient is not None:
            return self.drift_coefficient[i] * x
        return self.sde._drift_unchecked(self.batch_time(i, x), x)

    def require_linear(self, who: str) -> None:
        if not self.linear:
            raise TypeError(
                f"{who} needs the Gaussian transition kernel of a LinearSDE (alpha(t), sigma(t)); got "
                f"{type(self.sde).__name__}. Use the EulerMaruyama predictor or ReverseSDESampler instead."
            )

    def transition(self, i: int) -> tuple[float, float]:
        """(A_i, v_i) of the forward transition from t_{i+1} up to t_i (see the class docstring)."""
        A = self.alpha[i] / self.alpha[i + 1]
        v = self.sigma[i] ** 2 - (A * self.sigma[i + 1]) ** 2
        return A, max(v, 0.0)

    def langevin_alpha(self, i: int) -> float:
        """The factor alpha_i of score_sde's Langevin step size at t_i: 1 - beta_i of the DDPM step into t_i.

        For a linear SDE this is A^2 of the transition from t_i up to t_{i-1} (1 - beta_i for VP,
        1 for VE); 1 when undefined (i = 0, or a non-linear drift).
        """
        if i == 0 or self.alpha is None:
            return 1.0
        return (self.alpha[i - 1] / self.alpha[i]) ** 2

    def std(self, i: int) -> float:
        """sigma(t_i), the std of the transition kernel p_0t."""
        return self.sigma[i]


def _finite(name: str, values: Tensor) -> list[float]:
    out = values.tolist()
    if not all(math.isfinite(v) for v in out):
        raise FloatingPointError(f"the SDE's {name} is not finite on the time grid: {out}")
    return out
