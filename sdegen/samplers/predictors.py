"""Predictors: one step of a discretised reverse-time SDE from t_i down to t_{i+1} (Song et al. 2021, Alg. 2-3)."""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import torch
from torch import Tensor

from sdegen._checks import check_bool, check_linear_sde
from sdegen.sde.base import ScoreFn
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["Predictor", "EulerMaruyama", "ReverseDiffusion", "AncestralSampling", "NonePredictor"]

_USE_INSTEAD = "Use the EulerMaruyama predictor or ReverseSDESampler instead."


class Predictor(abc.ABC):
    """One step x(t_i) -> x(t_{i+1}), t_{i+1} < t_i, of a reverse-time discretisation.

    ``update`` receives the standard normal noise ``z`` of the step (a buffer the sampler
    overwrites on its next draw), or ``None`` for the noise-free mean of the step.
    """

    #: weak order of convergence in the step size
    order: ClassVar[float | None]
    #: whether the step draws noise
    stochastic: ClassVar[bool]
    #: score evaluations per step
    nfe_per_step: ClassVar[int] = 1
    #: whether the step needs the Gaussian kernel (alpha, sigma) of a LinearSDE
    requires_linear_sde: ClassVar[bool] = False

    def check(self, grid: CoefficientGrid) -> None:
        """Raise ``TypeError`` before sampling if the SDE lacks what this predictor needs."""
        if self.requires_linear_sde:
            check_linear_sde(grid.sde, f"{type(self).__name__}()", _USE_INSTEAD)

    @abc.abstractmethod
    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, z: Tensor | None) -> Tensor:
        """x at t_{i+1} from ``x`` at t_i."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EulerMaruyama(Predictor):
    """Euler-Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6; score_sde's EulerMaruyamaPredictor).

    With h = t_i - t_{i+1} and s = score(t_i, x):

        x_{i+1} = x - h [f(t_i, x) - g(t_i)^2 s] + g(t_i) sqrt(h) z.
    """

    order = 1.0
    stochastic = True

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, z: Tensor | None) -> Tensor:
        h, g2 = grid.step_size(i), grid.g2[i]
        s = score(grid.batch_time(i, x), x)
        if grid.a is not None:  # f = a x: one fused update (no pass to multiply by 1 where a = 0, VE)
            c = 1.0 - h * grid.a[i]
            mean = torch.add(x if c == 1.0 else x * c, s, alpha=h * g2)
        else:
            mean = torch.add(x - h * grid.drift(i, x), s, alpha=h * g2)
        # mean is a new tensor here: the noise is added into it in place (no fresh buffer to fill)
        return mean if z is None else mean.add_(z, alpha=math.sqrt(g2 * h))


class ReverseDiffusion(Predictor):
    """The reverse of the forward SDE's own discretisation (Song et al. 2021, eq. 46, App. E).

    The forward step x_{t_i} = x_{t_{i+1}} + F_i(x) + G_i z is reversed as

        x_{i+1} = x - F_i(x) + G_i^2 score(t_i, x) + G_i z.

    For a linear SDE the forward step is its exact transition, F_i(x) = (A_i - 1) x and
    G_i^2 = v_i (see :class:`~sdegen.sde.coefficients.CoefficientGrid`): for VP, A_i = sqrt(1 - beta_i) and
    v_i = beta_i as in DDPM; for VE, A_i = 1 and v_i = sigma_i^2 - sigma_{i+1}^2 as in SMLD
    (score_sde's ReverseDiffusionPredictor). Otherwise it is the Euler step, F_i = h f(t_i, x) and
    G_i^2 = h g(t_i)^2.
    """

    order = 1.0
    stochastic = True

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, z: Tensor | None) -> Tensor:
        s = score(grid.batch_time(i, x), x)
        if grid.linear:
            A, v = grid.transition(i)
            mean = torch.add(x if A == 1.0 else x * (2.0 - A), s, alpha=v)  # A = 1: VE, no pass
        else:
            h = grid.step_size(i)
            v = h * grid.g2[i]
            mean = torch.add(x - h * grid.drift(i, x), s, alpha=v)
        return mean if z is None else torch.add(mean, z, alpha=math.sqrt(v))


class AncestralSampling(Predictor):
    """Ancestral sampling of the discrete Markov chain behind the SDE (Song et al. 2021, eq. 47).

    With the exact forward transition x_{t_i} = A_i x_{t_{i+1}} + sqrt(v_i) z of a linear SDE and
    Tweedie's estimate of x_0, the Gaussian posterior step is

        x_{i+1} = (x + v_i score(t_i, x)) / A_i + sqrt(w_i) z,

    with w_i the posterior variance v_i sigma_{i+1}^2 / sigma_i^2 (``posterior_variance=True``:
    SMLD's ancestral step for VE, Song and Ermon 2019 / score_sde) or w_i = v_i (DDPM's choice
    sigma_t^2 = beta_t, Ho et al. 2020 Alg. 2 / score_sde for VP). For VP, A_i = sqrt(1 - beta_i)
    and v_i = beta_i on the sampling grid: the DDPM chain respaced to that grid.
    """

    order = 1.0
    stochastic = True
    requires_linear_sde = True

    def __init__(self, posterior_variance: bool = True) -> None:
        check_bool("posterior_variance", posterior_variance)
        self.posterior_variance = posterior_variance

    def __repr__(self) -> str:
        return f"AncestralSampling(posterior_variance={self.posterior_variance})"

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, z: Tensor | None) -> Tensor:
        A, v = grid.transition(i)
        s = score(grid.batch_time(i, x), x)
        mean = torch.add(x, s, alpha=v)
        if A != 1.0:  # VE: no division by 1
            mean = mean / A
        if z is None:
            return mean
        w = v * (grid.sigma[i + 1] / grid.sigma[i]) ** 2 if self.posterior_variance else v
        return torch.add(mean, z, alpha=math.sqrt(w))


class NonePredictor(Predictor):
    """No predictor: the state is left as it is (corrector-only sampling)."""

    order = None
    stochastic = False
    nfe_per_step = 0

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, z: Tensor | None) -> Tensor:
        return x
