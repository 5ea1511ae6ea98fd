"""The loss protocol, and what every score-matching loss shares.

* :class:`Loss`: ``loss(model, x0, generator=...)`` -> a scalar (or ``[B]`` per-sample losses).
* :class:`TimeWeightedLoss`: a loss on the noised data x_t = alpha(t) x0 + sigma(t) z of a
  :class:`~sdegen.sde.LinearSDE` at times drawn by a :class:`~sdegen.losses.TimeWeighting`.
* :func:`perturb`: that forward perturbation, the one place it is written.
"""

from __future__ import annotations

import abc
from typing import Literal, NamedTuple

from torch import Tensor

from sdegen import random
from sdegen._broadcast import expand_like
from sdegen._checks import (
    check_batch_shape,
    check_fits_model,
    check_generator,
    check_linear_sde,
    check_nonempty,
)
from sdegen.losses.weighting import TimeWeighting, check_eps, resolve_weighting
from sdegen.parameterization import ScoreModel, TransitionKernel
from sdegen.random import RandomSource
from sdegen.sde.coefficients import check_schedule

__all__ = ["Loss", "Reduction", "TimeWeightedLoss", "NoisedBatch", "perturb"]

Reduction = Literal["mean", "sum", "none"]
"""How a loss reduces its per-sample values over the batch."""
_REDUCTIONS = ("mean", "sum", "none")


class Loss(abc.ABC):
    """A training objective for a :class:`~sdegen.parameterization.ScoreModel`.

    Each sample's loss is summed over the data dimensions (as in score_sde's default
    ``reduce_mean=False``), so that it scales with the dimension like a log-likelihood. The
    ``reduction`` then acts over the batch: ``"mean"`` (default) averages the per-sample losses,
    ``"sum"`` adds them, ``"none"`` returns them, shape ``[B]``. All randomness (times, noise,
    projections) comes from ``generator``.

    Subclasses implement :meth:`per_sample` and may extend :meth:`check`, which runs before any
    random number is drawn or any network is evaluated.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got reduction={reduction!r}")
        self.reduction = reduction

    def __call__(self, model: ScoreModel, x0: Tensor, *, generator: RandomSource = None) -> Tensor:
        """The reduced loss of ``model`` on the data batch ``x0`` of shape ``[B, ...]``."""
        if not isinstance(model, ScoreModel):
            raise TypeError(
                f"model must be a ScoreModel(net, sde, parameterization); got {type(model).__name__}"
            )
        check_batch_shape("x0", x0)
        check_nonempty("x0", x0)
        check_fits_model("x0", x0, model)
        check_generator(generator, x0, "x0")
        self.check(model, x0)
        per_sample = self.per_sample(model, x0, generator)
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample

    def check(self, model: ScoreModel, x0: Tensor) -> None:
        """Raise before any work if this loss cannot be computed for ``model`` on ``x0``."""
        return None  # the checks of __call__ suffice unless a subclass adds its own

    @abc.abstractmethod
    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        """The unreduced loss, shape ``[B]``."""


def sum_over_data_dims(v: Tensor) -> Tensor:
    """Sum ``[B, ...]`` over all but the batch dimension: shape ``[B]``."""
    return v.reshape(v.shape[0], -1).sum(dim=1)


def perturb(kernel: TransitionKernel, x0: Tensor, generator: RandomSource) -> tuple[Tensor, Tensor]:
    """A draw of p_0t(x_t | x0) = N(alpha x0, sigma^2 I): ``(x_t, z)`` with x_t = alpha x0 + sigma z.

    z ~ N(0, I) is drawn from ``generator``, shaped like ``x0``.
    """
    noise = random.randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
    return expand_like(kernel.alpha, x0) * x0 + expand_like(kernel.sigma, x0) * noise, noise


class NoisedBatch(NamedTuple):
    """One draw of the noised data: times ``t`` and weights ``weight`` (``[B]``), the kernel at
    ``t``, the noise ``z`` and x_t = alpha(t) x0 + sigma(t) z (shaped like x0)."""

    t: Tensor
    weight: Tensor
    kernel: TransitionKernel
    noise: Tensor
    x_t: Tensor


class TimeWeightedLoss(Loss):
    """A score-matching loss at the noised data x_t = alpha(t) x0 + sigma(t) z, weighted in time.

    E_t [ lambda(t) E_{x0, z} l(t, x_t) ] with t and lambda from ``weighting`` (default
    :class:`~sdegen.losses.SigmaSquaredWeighting`; see :class:`~sdegen.losses.TimeWeighting`). Every
    subclass draws its randomness in the same order -- times, then z, then its own (probes) -- so
    that losses called with equally seeded generators see the same t and x_t (common random
    numbers), which is what makes their differences measurable.

    Args:
        weighting: the time weighting and the distribution of t.
        eps: the smallest time; these losses are not defined at t = 0, where sigma(0) = 0.
        reduction: see :class:`Loss`.
    """

    def __init__(
        self,
        weighting: TimeWeighting | None = None,
        *,
        eps: float = 1e-5,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        self.weighting, self.eps = resolve_weighting(weighting), eps

    def check(self, model: ScoreModel, x0: Tensor) -> None:
        check_linear_sde(model.sde, type(self).__name__)
        check_schedule(model.sde, check_eps(self.eps, model.sde.T), model.sde.T)

    def noised(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> NoisedBatch:
        """Draw t (and its weight) from the weighting, then x_t ~ p_0t(. | x0)."""
        sde = model.sde
        t, weight = self.weighting.sample(
            sde, x0.shape[0], eps=self.eps, generator=generator, device=x0.device, dtype=x0.dtype
        )
        kernel = TransitionKernel.of(sde, t)
        x_t, noise = perturb(kernel, x0, generator)
        return NoisedBatch(t, weight, kernel, noise, x_t)
