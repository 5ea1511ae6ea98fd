"""Time weightings lambda(t) of score-matching losses, with the distribution t is drawn from.

A weighting is a measure mu on [eps, T]: it returns times and per-sample weights ``w`` whose
product with a per-time loss L(t) is an unbiased estimate of int L dmu. The continuous weightings
here estimate the same kind of quantity, the time average

    J = 1 / (T - eps) int_eps^T lambda(t) L(t) dt,

so that importance sampling changes only the variance of the estimate, never its value.
:class:`~sdegen.losses.NCSNLevels` puts mass sigma_i^2 / L on each of NCSN's L noise levels.
"""

from __future__ import annotations

import abc
import math
from typing import NamedTuple

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_end_time, check_steps
from sdegen.random import RandomSource
from sdegen.sde.base import LinearSDE

__all__ = [
    "WeightedTimes",
    "TimeWeighting",
    "SigmaSquaredWeighting",
    "LikelihoodWeighting",
    "UniformWeighting",
]


class WeightedTimes(NamedTuple):
    """Times ``t`` in [eps, T] and weights ``weight`` (both ``[B]``): E[weight L(t)] = J."""

    t: Tensor
    weight: Tensor


def resolve_weighting(weighting: object) -> TimeWeighting:
    """``weighting``, or :class:`SigmaSquaredWeighting` when None; raise unless a TimeWeighting."""
    if weighting is None:
        return SigmaSquaredWeighting()
    if not isinstance(weighting, TimeWeighting):
        raise TypeError(f"weighting must be a TimeWeighting; got {type(weighting).__name__}")
    return weighting


def check_eps(eps: object, T: float) -> float:
    """Return ``eps`` as a float in (0, T), or raise naming it."""
    why = "the loss diverges at t = 0, where sigma(0) = 0 (1e-5 for VP or 1e-3 for sub-VP are usual)"
    return check_end_time("eps", eps, T, why)


def draw_uniform_times(sde: LinearSDE, n: int, eps: float, generator: RandomSource, device, dtype) -> Tensor:
    """t ~ U[eps, T], shape ``[n]``."""
    u = random.rand((n,), generator, device=device, dtype=dtype)
    return eps + (sde.T - eps) * u


class TimeWeighting(abc.ABC):
    """A weighting lambda(t) of a score-matching loss and the sampling distribution of t."""

    @abc.abstractmethod
    def sample(
        self,
        sde: LinearSDE,
        n: int,
        *,
        eps: float,
        generator: RandomSource = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> WeightedTimes:
        """Draw ``n`` times and their weights (see the module docstring)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SigmaSquaredWeighting(TimeWeighting):
    """lambda(t) = sigma(t)^2, t ~ U[eps, T]: the default of Song et al. 2021 (sec. 3.3).

    It makes lambda(t) ||grad log p_0t||^2 = ||z||^2 of order one at every t, and turns the DSM loss
    of a noise-predicting network into ||z_hat - z||^2 (Ho et al. 2020, eq. 14).
    """

    def sample(self, sde, n, *, eps, generator=None, device=None, dtype=None) -> WeightedTimes:
        t = draw_uniform_times(sde, n, eps, generator, device, dtype)
        return WeightedTimes(t, sde.sigma(t) ** 2)


class UniformWeighting(TimeWeighting):
    """lambda(t) = 1, t ~ U[eps, T]: the plain time average.

    The weighting of objectives whose per-time value is already of order one, such as the
    cross-entropy of a noise-conditional classifier (:class:`~sdegen.classifier.NoisyClassifierLoss`).
    For denoising score matching it is the unweighted loss, dominated by the small-t terms of
    size d / sigma(t)^2.
    """

    def sample(self, sde, n, *, eps, generator=None, device=None, dtype=None) -> WeightedTimes:
        t = draw_uniform_times(sde, n, eps, generator, device, dtype)
        return WeightedTimes(t, torch.ones_like(t))


class LikelihoodWeighting(TimeWeighting):
    """lambda(t) = g(t)^2, which makes DSM a bound on the negative log-likelihood.

    Song, Durkan, Murray and Ermon 2021, "Maximum likelihood training of score-based diffusion
    models", Theorem 1. With ``importance_sampling=True``, t is drawn from

        q(t) = g(t)^2 / (Z sigma(t)^2),   Z = int_eps^T g(t)^2 / sigma(t)^2 dt

    (their sec. 5), with weight Z sigma(t)^2 / (T - eps), which keeps the estimate's mean and makes
    the weighted DSM integrand of a noise-predicting network the plain ||z_hat - z||^2, removing
    the 1/t spike of g^2 / sigma^2 at small t. q is inverted numerically for any
    :class:`~sdegen.sde.LinearSDE`: the CDF is tabulated on ``table_size`` points uniform in log t
    (in float64, where t g^2 / sigma^2 is smooth) and interpolated; for the VP SDE it matches
    the closed form Z = log(expm1(B(T)) / expm1(B(eps))) to 1e-7.
    """

    def __init__(self, importance_sampling: bool = False, *, table_size: int = 16385) -> None:
        if not isinstance(importance_sampling, bool):
            raise TypeError(f"importance_sampling must be a bool; got {importance_sampling!r}")
        self.importance_sampling = importance_sampling
        self.table_size = check_steps("table_size", table_size, minimum=16)
        self._table: tuple[LinearSDE, float, Tensor, Tensor] | None = None

    def __repr__(self) -> str:
        return f"LikelihoodWeighting(importance_sampling={self.importance_sampling})"

    def sample(self, sde, n, *, eps, generator=None, device=None, dtype=None) -> WeightedTimes:
        if not self.importance_sampling:
            t = draw_uniform_times(sde, n, eps, generator, device, dtype)
            return WeightedTimes(t, sde.diffusion_squared(t))
        log_t, cdf = self.cdf_table(sde, eps)
        Z = float(cdf[-1])
        u = random.rand((n,), generator, device=device, dtype=torch.float64) * Z
        log_t, cdf = log_t.to(u.device), cdf.to(u.device)
        # Inverse-CDF sampling, linear in log t between table points.
        i = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.numel() - 1)
        frac = (u - cdf[i - 1]) / (cdf[i] - cdf[i - 1])
        t64 = torch.exp(log_t[i - 1] + frac * (log_t[i] - log_t[i - 1])).clamp(eps, sde.T)
        t = t64.to(dtype or torch.get_default_dtype())
        weight = (Z / (sde.T - eps)) * sde.sigma(t) ** 2
        return WeightedTimes(t, weight)

    def normalizer(self, sde: LinearSDE, eps: float) -> float:
        """Z = int_eps^T g(t)^2 / sigma(t)^2 dt, the normalising constant of q(t)."""
        return float(self.cdf_table(sde, eps)[1][-1])

    def cdf_table(self, sde: LinearSDE, eps: float) -> tuple[Tensor, Tensor]:
        """log t on a grid from log eps to log T and the unnormalised CDF int_eps^t g^2/sigma^2 there."""
        cached = self._table
        if cached is not None and cached[0] is sde and cached[1] == eps:
            return cached[2], cached[3]
        log_t = torch.linspace(math.log(eps), math.log(sde.T), self.table_size, dtype=torch.float64)
        t = log_t.exp()
        # The density in u = log t is t g^2 / sigma^2, which tends to a constant as t -> 0.
        h = t * sde.diffusion_squared(t) / sde.sigma_squared(t)
        du = log_t[1:] - log_t[:-1]
        cdf = torch.cat([h.new_zeros(1), torch.cumsum(0.5 * (h[1:] + h[:-1]) * du, dim=0)])
        self._table = (sde, eps, log_t, cdf)
        return log_t, cdf
