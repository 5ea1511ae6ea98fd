"""The cosine VP schedule of improved DDPM (Nichol and Dhariwal 2021, eq. 17) as a continuous-time SDE."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sdegen._checks import check_positive, check_real
from sdegen.sde.vp import VariancePreserving

__all__ = ["CosineVPSDE"]

# Improved DDPM clips its discrete betas at 0.999 for N = 1000 steps (Nichol and Dhariwal 2021,
# sec. 3.2); read in score_sde's convention beta_i = beta(t_i) T / N, that is beta(t) <= 999 / T.
_CLIPPED_DISCRETE_BETA = 0.999
_DISCRETE_STEPS = 1000


class CosineVPSDE(VariancePreserving):
    """Variance-preserving SDE with the cosine schedule of improved DDPM, its noise rate clipped.

    Nichol and Dhariwal 2021 ("Improved denoising diffusion probabilistic models", eq. 17) set
    abar(t) = alpha(t)^2 = f(t) / f(0) with f(t) = cos^2(((t/T + s) / (1 + s)) pi/2), s = 0.008.
    With u(t) = (pi/2) (t/T + s) / (1 + s), the mean coefficient is alpha(t) = cos u(t) / cos u(0)
    and the SDE is the VP SDE dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW (Song et al. 2021, eq. 11)
    with the noise rate

        beta(t) = -d/dt log abar(t) = pi tan u(t) / (T (1 + s)),

    which diverges at t = T, where alpha(T) = cos(pi/2) = 0 (-4e-8 in float32, 6e-17 in float64):
    the log-SNR, the prior and the reverse-time drift are undefined there. Improved DDPM clips its
    discrete betas at 0.999 (sec. 3.2). This class clips the rate the same way,

        beta(t) = min(pi tan u(t) / (T (1 + s)), beta_max),   beta_max = 999 / T by default,

    which is that clip in score_sde's convention beta_i = beta(t_i) T / N for N = 1000 (``beta_max``
    changes it). The schedule is the cosine one up to t_c, where the rate reaches beta_max (t_c = 0.998 T
    by default), and log alpha decreases linearly after it:

        log alpha(t) = log cos u(t) - log cos u(0)                          for t <= t_c,
                       log alpha(t_c) - beta_max (t - t_c) / 2              for t > t_c,
        sigma(t)^2 = 1 - alpha(t)^2,  a(t) = -beta(t) / 2,  g(t)^2 = beta(t),

    so alpha(T) = 1.15e-3 and lambda(T) = log(alpha(T) / sigma(T)) = -6.77 by default (the linear VP
    SDE ends at -5.0; DPM-Solver instead truncates the cosine schedule at T = 0.9946, lambda = -4.8).
    Everything is computed without cancellation: cos u = sin v with v = (pi/2) (1 - t/T) / (1 + s),
    and 1 - alpha^2 = sin w sin(w + 2 u(0)) / cos^2 u(0) with w = u - u(0) = (pi/2) (t/T) / (1 + s).
    The log-SNR and its inverse are closed forms. The prior is N(0, I), as for :class:`~sdegen.VPSDE`.

    Args:
        s: the offset that keeps beta(0) > 0 (0.008 in the paper).
        beta_max: the largest noise rate, > beta(0) (default 999 / T, improved DDPM's clip).
        T: the terminal time.
    """

    def __init__(self, s: float = 0.008, beta_max: float | None = None, T: float = 1.0) -> None:
        super().__init__(T)
        self.s = check_positive("s", s)
        T = self.T
        self._c = math.pi / (2.0 * (1.0 + self.s))  # du/d(t/T)
        self._u0 = self._c * self.s
        beta_0 = self._rate(self._u0)
        if beta_max is None:
            beta_max = _DISCRETE_STEPS * _CLIPPED_DISCRETE_BETA / T
        self.beta_max = check_real("beta_max", beta_max)
        if not self.beta_max > beta_0:
            raise ValueError(
                f"beta_max must exceed the schedule's rate at t = 0, beta(0) = {beta_0:.6g}; got "
                f"beta_max={self.beta_max:.6g}. Pass beta_max=None for improved DDPM's clip (999 / T)."
            )
        # Where the clip starts: pi tan u_c / (T (1 + s)) = beta_max.
        u_c = math.atan(self.beta_max * T / (2.0 * self._c))
        self.t_clip = min(T, T * (u_c - self._u0) / self._c)
        tc = torch.tensor(self.t_clip, dtype=torch.float64)
        self._log_alpha_clip = float(self._log_alpha_cosine(tc))
        self._log_snr_clip = float(self._log_snr_cosine(tc))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(s={self.s:g}, beta_max={self.beta_max:g}, T={self.T:g})"

    def _rate(self, u: float) -> float:
        """pi tan u / (T (1 + s)), the unclipped beta at phase u."""
        return 2.0 * self._c * math.tan(u) / self.T

    # -- the cosine part, on t <= t_c -----------------------------------------------------------
    def _v(self, t: Tensor) -> Tensor:
        """v = pi/2 - u(t) = (pi/2) (1 - t/T) / (1 + s), so that cos u = sin v without cancellation."""
        return self._c * (1.0 - t / self.T)

    def _w(self, t: Tensor) -> Tensor:
        """w = u(t) - u(0) = (pi/2) (t/T) / (1 + s)."""
        return (self._c / self.T) * t

    def _log_alpha_cosine(self, t: Tensor) -> Tensor:
        return torch.log(torch.sin(self._v(t))) - math.log(math.sin(self._c))

    def _log_snr_cosine(self, t: Tensor) -> Tensor:
        # log alpha - 1/2 log(sin w sin(w + 2 u0) / cos^2 u0); the factors cos u0 = sin v0 cancel.
        w = self._w(t)
        return (
            torch.log(torch.sin(self._v(t)))
            - 0.5 * torch.log(torch.sin(w))
            - 0.5 * torch.log(torch.sin(w + 2.0 * self._u0))
        )

    # Each piece is evaluated on its own side of t_c only (no inf or NaN in the branch torch.where
    # discards, which would poison its gradient); where, not clamp, so that d/dt passes at t = t_c.
    def _before_clip(self, t: Tensor) -> Tensor:
        return torch.where(t <= self.t_clip, t, self.t_clip)

    def _after_clip(self, t: Tensor) -> Tensor:
        return torch.where(t >= self.t_clip, t, self.t_clip)

    # -- the schedule -----------------------------------------------------------------------
    def beta(self, t: Tensor) -> Tensor:
        """beta(t) = min(pi tan u(t) / (T (1 + s)), beta_max) = -d/dt log alpha(t)^2."""
        return (2.0 * self._c / self.T) / torch.tan(self._v(self._before_clip(t)))

    def log_alpha(self, t: Tensor) -> Tensor:
        """log alpha(t): the cosine schedule up to t_c, then linear with slope -beta_max / 2."""
        # where, not clamp_min: at t = t_c the derivative then comes from the cosine part alone.
        linear = (0.5 * self.beta_max) * torch.where(t > self.t_clip, t - self.t_clip, 0.0)
        return self._log_alpha_cosine(self._before_clip(t)) - linear

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma_squared(self, t: Tensor) -> Tensor:
        """1 - alpha^2, as sin w sin(w + 2 u0) / cos^2 u0 before the clip and -expm1(2 log alpha) after."""
        tb = self._before_clip(t)
        w = self._w(tb)
        cosine = torch.sin(w) * torch.sin(w + 2.0 * self._u0) / math.sin(self._c) ** 2
        clipped = -torch.expm1(2.0 * self.log_alpha(self._after_clip(t)))
        return torch.where(t <= self.t_clip, cosine, clipped)

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = log alpha - 1/2 log(1 - alpha^2), in closed form on both pieces."""
        log_alpha = self.log_alpha(self._after_clip(t))
        clipped = log_alpha - 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))
        return torch.where(t <= self.t_clip, self._log_snr_cosine(self._before_clip(t)), clipped)

    def inverse_log_snr(self, lam: Tensor) -> Tensor:
        """t(lambda) in closed form, elementwise; lambda beyond lambda(T) maps to T, +inf to 0.

        alpha^2 = sigmoid(2 lambda) and sigma^2 = sigmoid(-2 lambda). Before the clip,
        tan u - tan u0 = sigma^2 / ((S + alpha sin u0) alpha cos u0) with S = sqrt(sin^2 u0 +
        sigma^2 cos^2 u0) = sin u, so w = u - u0 = atan2(sigma^2 / (S + alpha sin u0),
        alpha cos u0 + S tan u0) with no cancellation anywhere; after it, t = t_c + 2 (log alpha_c -
        log alpha) / beta_max with log alpha = -softplus(-2 lambda) / 2.
        """
        cos = lam.clamp_min(self._log_snr_clip)
        var = torch.sigmoid(-2.0 * cos)
        alpha = torch.sigmoid(2.0 * cos).sqrt()
        sin_u0, cos_u0 = math.sin(self._u0), math.cos(self._u0)
        S = torch.sqrt(sin_u0**2 + var * cos_u0**2)
        w = torch.atan2(var / (S + alpha * sin_u0), alpha * cos_u0 + S * (sin_u0 / cos_u0))
        t_cosine = (self.T / self._c) * w
        lin = lam.clamp_max(self._log_snr_clip)
        log_alpha = -0.5 * torch.nn.functional.softplus(-2.0 * lin)
        t_clipped = self.t_clip + (2.0 / self.beta_max) * (self._log_alpha_clip - log_alpha)
        t = torch.where(lam >= self._log_snr_clip, t_cosine, t_clipped)
        return t.clamp(0.0, self.T)
