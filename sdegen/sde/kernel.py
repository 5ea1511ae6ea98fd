"""The Gaussian transition kernel of a linear SDE, and the four views of one denoising prediction.

A :class:`~sdegen.sde.LinearSDE` noises data as x_t = alpha(t) x_0 + sigma(t) eps, eps ~ N(0, I):
its transition kernel is p_0t(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I). Given x_t, a network
may estimate any one of four quantities, and the kernel turns each into the others:

    score   s      = grad_x log p_t(x_t)
    noise   eps    = E[eps | x_t]
    data    x0     = E[x_0 | x_t]
    v              = alpha eps - sigma x0                    (Salimans and Ho 2022, sec. 4)

related, at every x_t, by

    x_t = alpha x0 + sigma eps,      s = -eps / sigma,      x0 = (x_t + sigma^2 s) / alpha

(the last is Tweedie's formula: Efron 2011, "Tweedie's formula and selection bias", eq. 2.8;
Kingma et al. 2021, "Variational diffusion models", app.; Karras et al. 2022, eq. 3). No relation
assumes alpha^2 + sigma^2 = 1: VE has alpha = 1, sub-VP has alpha^2 + sigma^2 < 1. Where v enters
the inversion, r^2 = alpha^2 + sigma^2 is kept.

This module is the one place these formulas are written: the parameterisations, the samplers'
denoiser, guidance and the losses call it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from sdegen._broadcast import expand_like
from sdegen.sde.base import LinearSDE

__all__ = ["GaussianKernel"]

#: A per-sample coefficient: a ``[B]`` tensor, a 0-d tensor, or a Python float (one time for the
#: whole batch, as on a sampler's grid, where a float costs no kernel launch).
Coefficient = Tensor | float


class GaussianKernel(NamedTuple):
    """p_0t(x_t | x_0) = N(alpha x_0, sigma^2 I) at one time per sample: ``alpha`` and ``sigma``.

    Each is a ``[B]`` tensor (one time per sample, as in training), a 0-d tensor, or a Python float
    (one time for the whole batch, as on a sampler's grid). The conversions take the state ``x``
    (``[B, ...]``) and one prediction at it, and return another, shaped like ``x``; each is exact,
    not an approximation, given the prediction it starts from.
    """

    alpha: Coefficient
    sigma: Coefficient

    @classmethod
    def of(cls, sde: LinearSDE, t: Tensor) -> GaussianKernel:
        """The kernel of ``sde`` at times ``t`` (shape ``[B]``)."""
        return cls(sde.alpha(t), sde.sigma(t))

    def to(self, dtype: torch.dtype) -> GaussianKernel:
        """The kernel with its tensor coefficients cast to ``dtype`` (floats are kept)."""
        return GaussianKernel(*(c.to(dtype) if isinstance(c, Tensor) else c for c in self))

    @property
    def log_snr(self) -> Coefficient:
        """lambda = log(alpha / sigma), half the log signal-to-noise ratio (Kingma et al. 2021)."""
        if isinstance(self.alpha, Tensor) or isinstance(self.sigma, Tensor):
            return torch.log(torch.as_tensor(self.alpha)) - torch.log(torch.as_tensor(self.sigma))
        return math.log(self.alpha) - math.log(self.sigma)

    # -- the forward process ----------------------------------------------------------------------
    def noised(self, x0: Tensor, noise: Tensor) -> Tensor:
        """x_t = alpha x0 + sigma eps: the draw of the kernel that the noise ``eps`` makes."""
        return _axpy(_scale(self.alpha, x0) * x0, self.sigma, noise)

    def velocity(self, x0: Tensor, noise: Tensor) -> Tensor:
        """v = alpha eps - sigma x0, the v of x_t = alpha x0 + sigma eps (Salimans and Ho 2022, eq. 9
        with alpha^2 + sigma^2 = 1; here the same definition for any alpha, sigma)."""
        return _scale(self.alpha, noise) * noise - _scale(self.sigma, x0) * x0

    # -- between data, noise and score --------------------------------------------------------------
    def data_from_score(self, x: Tensor, score: Tensor) -> Tensor:
        """x0_hat = (x + sigma^2 s) / alpha: Tweedie's formula E[x_0 | x_t = x] (Efron 2011, eq. 2.8)."""
        return _divide(_axpy(x, _square(self.sigma), score), self.alpha)

    def score_from_data(self, x: Tensor, x0: Tensor) -> Tensor:
        """s = (alpha x0_hat - x) / sigma^2, the inverse of :meth:`data_from_score`."""
        return (_scale(self.alpha, x) * x0 - x) / _scale(_square(self.sigma), x)

    def noise_from_score(self, score: Tensor) -> Tensor:
        """eps_hat = -sigma s, since grad log p_0t(x_t | x_0) = -eps / sigma (Vincent 2011)."""
        return -_scale(self.sigma, score) * score

    def score_from_noise(self, noise: Tensor) -> Tensor:
        """s = -eps_hat / sigma, the inverse of :meth:`noise_from_score` (Ho et al. 2020, eq. 11)."""
        return -noise / _scale(self.sigma, noise)

    def data_from_noise(self, x: Tensor, noise: Tensor) -> Tensor:
        """x0_hat = (x - sigma eps_hat) / alpha: x_t = alpha x0 + sigma eps solved for x0."""
        return _divide(_axpy(x, _negate(self.sigma), noise), self.alpha)

    def noise_from_data(self, x: Tensor, x0: Tensor) -> Tensor:
        """eps_hat = (x - alpha x0_hat) / sigma: x_t = alpha x0 + sigma eps solved for eps."""
        return (x - _scale(self.alpha, x) * x0) / _scale(self.sigma, x)

    # -- v --------------------------------------------------------------------------------------------
    def data_from_v(self, x: Tensor, v: Tensor) -> Tensor:
        """x0_hat = (alpha x - sigma v) / (alpha^2 + sigma^2).

        x = alpha x0 + sigma eps and v = -sigma x0 + alpha eps form a linear map of (x0, eps) with
        determinant alpha^2 + sigma^2 (1 for VP, where this is Salimans and Ho's x0 = alpha x - sigma v).
        """
        return (_scale(self.alpha, x) * x - _scale(self.sigma, v) * v) / _scale(self._r2(), x)

    def noise_from_v(self, x: Tensor, v: Tensor) -> Tensor:
        """eps_hat = (sigma x + alpha v) / (alpha^2 + sigma^2), the other row of that inverse."""
        return (_scale(self.sigma, x) * x + _scale(self.alpha, v) * v) / _scale(self._r2(), x)

    def score_from_v(self, x: Tensor, v: Tensor) -> Tensor:
        """s = -eps_hat / sigma with eps_hat from :meth:`noise_from_v`."""
        return self.score_from_noise(self.noise_from_v(x, v))

    def v_from_data(self, x: Tensor, x0: Tensor) -> Tensor:
        """v = alpha eps_hat - sigma x0_hat with eps_hat from :meth:`noise_from_data`."""
        return self.velocity(x0, self.noise_from_data(x, x0))

    def v_from_noise(self, x: Tensor, noise: Tensor) -> Tensor:
        """v = alpha eps_hat - sigma x0_hat with x0_hat from :meth:`data_from_noise`."""
        return self.velocity(self.data_from_noise(x, noise), noise)

    def v_from_score(self, x: Tensor, score: Tensor) -> Tensor:
        """v of the noise -sigma s (:meth:`noise_from_score`)."""
        return self.v_from_noise(x, self.noise_from_score(score))

    def _r2(self) -> Coefficient:
        return _square(self.alpha) + _square(self.sigma)


def _scale(c: Coefficient, x: Tensor) -> Coefficient:
    """``c`` broadcastable against ``x``: a ``[B]`` tensor viewed as ``[B, 1, ..., 1]``."""
    return expand_like(c, x) if isinstance(c, Tensor) else c


def _divide(x: Tensor, c: Coefficient) -> Tensor:
    """x / c, skipped for the float c = 1 (alpha of VE and EDM on a sampler's grid): no pass over x."""
    return x if isinstance(c, float) and c == 1.0 else x / _scale(c, x)


def _square(c: Coefficient) -> Coefficient:
    return c * c


def _negate(c: Coefficient) -> Coefficient:
    return -c


def _axpy(x: Tensor, c: Coefficient, y: Tensor) -> Tensor:
    """x + c y; for a float ``c`` in one fused ``torch.add`` (no temporary c y)."""
    if isinstance(c, Tensor):
        return x + expand_like(c, x) * y
    return torch.add(x, y, alpha=c)
