"""NCSN's discrete noise levels as times of the VE SDE, and its training objective (Song and Ermon 2019)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_steps
from sdegen.losses.base import Reduction
from sdegen.losses.denoising_score_matching import DenoisingScoreMatching
from sdegen.losses.weighting import TimeWeighting, WeightedTimes
from sdegen.sde.base import SDE
from sdegen.sde.ve import VESDE

__all__ = ["NoiseLevels", "NCSNLevels", "NCSNLoss"]


class NoiseLevels(NamedTuple):
    """NCSN's noise levels sigma_1 > ... > sigma_L (``sigma``) and their VE SDE times tau_i (``t``).

    Both ``[L]``, decreasing, with sigma = sde.sigma(t): ``t`` is a grid for
    :class:`~sdegen.samplers.AnnealedLangevinSampler` and ``t[-1]`` the ``eps`` to sample and
    evaluate likelihoods at.
    """

    t: Tensor
    sigma: Tensor


class NCSNLevels(TimeWeighting):
    """t uniform on the L NCSN levels of a VE SDE, with lambda = sigma_i^2 (Song and Ermon 2019, eq. 6).

    The levels are the geometric sigma_i of ``sde.discretize(levels)`` (sigma_min ... sigma_max),
    each at the time tau_i with sigma(tau_i) = sigma_i (see :class:`NCSNLoss`). The top
    level sigma_max is the std of the SMLD kernel at T, slightly beyond the SDE's
    sigma(T) = sqrt(sigma_max^2 - sigma_min^2); it is taken at tau = T, a relative change of
    (sigma_min / sigma_max)^2 / 2 (5e-7 for 0.01 and 10). :meth:`of` returns sigma(tau_i), so that
    the weights and kernels are exactly the SDE's.

    As a :class:`TimeWeighting` it replaces the time integral of the continuous weightings by the
    level average: E[weight L(t)] = (1 / L) sum_i sigma_i^2 L(tau_i). Every
    :class:`~sdegen.losses.base.TimeWeightedLoss` takes it; :class:`NCSNLoss` is DSM with it.

    Args:
        levels: the number of noise levels L.
    """

    def __init__(self, levels: int = 10) -> None:
        self.levels = check_steps("levels", levels, minimum=2)
        self._cache: tuple[SDE, torch.device, torch.dtype, NoiseLevels] | None = None

    def __repr__(self) -> str:
        return f"NCSNLevels(levels={self.levels})"

    def of(
        self, sde: SDE, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> NoiseLevels:
        """The levels of ``sde`` (a :class:`~sdegen.sde.VESDE`), largest first, on ``device`` in ``dtype``."""
        if not isinstance(sde, VESDE):
            raise TypeError(
                f"NCSN's noise levels are those of a VESDE (sigma_min ... sigma_max); got {type(sde).__name__}. "
                f"Use VESDE(sigma_min, sigma_max) for NCSN, or a continuous weighting for other SDEs."
            )
        device = torch.device(device) if device is not None else torch.device("cpu")
        dtype = dtype or torch.get_default_dtype()
        cached = self._cache
        if cached is not None and cached[0] is sde and cached[1] == device and cached[2] == dtype:
            return cached[3]
        # In float64, largest first: sigma_1 = sigma_max > ... > sigma_L = sigma_min.
        sigmas = sde.discretize(self.levels, dtype=torch.float64).sigmas.flip(0)
        # The time of each level: lambda = log(alpha / sigma) = -log sigma for VE; the top level,
        # beyond T, is clamped to T by the inverse.
        t = sde.inverse_log_snr(-sigmas.log())
        out = NoiseLevels(t.to(device, dtype), sde.sigma(t).to(device, dtype))
        self._cache = (sde, device, dtype, out)
        return out

    def sample(self, sde, n, *, eps, generator=None, device=None, dtype=None) -> WeightedTimes:
        levels = self.of(sde, device=device, dtype=dtype)
        # tau_L, where sigma(tau_L) = sigma_min, in closed form (no device synchronisation).
        t_min = sde.T * math.log(2.0) / (2.0 * math.log(sde.sigma_max / sde.sigma_min))
        if t_min < eps:
            raise ValueError(
                f"the smallest NCSN level lies at t = {t_min:.4g} < eps = {eps:.4g}; lower eps below it"
            )
        i = random.randint(0, self.levels, (n,), generator, device=levels.t.device)
        return WeightedTimes(levels.t[i], levels.sigma[i] ** 2)


class NCSNLoss(DenoisingScoreMatching):
    """(1 / L) sum_i sigma_i^2 E_{x0, z} || s_theta(x0 + sigma_i z, sigma_i) + z / sigma_i ||^2.

    The noise-conditional score network objective of Song and Ermon 2019, "Generative modeling by
    estimating gradients of the data distribution", eq. 5-6 with lambda(sigma) = sigma^2, on the L
    geometric levels of the model's :class:`~sdegen.sde.VESDE` (:class:`NCSNLevels`), i.e.
    :class:`DenoisingScoreMatching` with ``NCSNLevels(levels)`` as its weighting. Like every loss
    here it has no factor 1/2 (twice the paper's eq. 6). A level is drawn uniformly per sample
    (the paper draws one per example too). For a :class:`~sdegen.parameterization.NoisePrediction`
    model it is E ||z_hat - z||^2.

    **The model as a score function.** A noise-conditional network s_theta(x, sigma) on the levels
    is, in sdegen, a :class:`~sdegen.parameterization.ScoreModel` of the VE SDE: level sigma_i is
    the time tau_i at which the SDE's kernel std equals it, sigma(tau_i) = sigma_i, so
    s_theta(x, sigma_i) = model(tau_i, x), and the model is already the ``score_fn(t, x)`` that
    samplers and :func:`~sdegen.log_likelihood` take. Between levels it is the network's
    interpolation in t (the VE SDE's t is affine in log sigma wherever sigma >> sigma_min), which
    the probability-flow ODE integrates. Below the smallest level it was never trained, so sample
    and evaluate likelihoods at ``eps = levels.t[-1]`` = tau_L, where p_eps is the data convolved
    with N(0, sigma_L^2), NCSN's own final distribution. With
    :class:`~sdegen.parameterization.NoisePrediction` the network's output is divided by sigma,
    the s_theta(x, sigma) = net(x, sigma) / sigma of NCSNv2 (Song and Ermon 2020, technique 3).

    **Sampling** as in NCSN (Alg. 1) is ``AnnealedLangevinSampler(ts=levels.t, snr=0.22)``:
    Langevin steps a_i = 4 snr^2 sigma_i^2 (Alg. 1's epsilon sigma_i^2 / sigma_L^2 with
    epsilon = 4 snr^2 sigma_L^2; 0.22 gives the paper's 2e-5 at sigma_L = 0.01) at exactly the
    training levels tau_2 > ... > tau_L, starting from the prior N(0, sigma_max^2 I), which stands
    in for the top level's Langevin run (for data of variance v per dimension the prior is p_T up
    to a KL of about (v / sigma_max^2)^2 / 4 nats per dimension).

    Args:
        levels: the number of noise levels L.
        reduction: see :class:`~sdegen.losses.base.Loss`.
    """

    def __init__(self, levels: int = 10, *, reduction: Reduction = "mean") -> None:
        super().__init__(NCSNLevels(levels), reduction=reduction)

    @property
    def levels(self) -> NCSNLevels:
        """The :class:`NCSNLevels` weighting; ``loss.levels.of(sde)`` gives the levels to sample on."""
        return self.weighting

    def __repr__(self) -> str:
        return f"NCSNLoss(levels={self.weighting.levels})"
