"""The SDE protocol: dx = f(t, x) dt + g(t) dW on [0, T] (Song et al. 2021, eq. 5).

Two base classes:

* :class:`SDE` is the minimal protocol every sampler and the likelihood need: a drift ``f(t, x)``,
  a scalar diffusion ``g(t)`` (the noise is ``g(t) I``, so Ito equals Stratonovich), a terminal
  time ``T`` and a prior ``p_T``. Subclass it for any SDE of that form.
* :class:`LinearSDE` covers SDEs with linear drift ``f(t, x) = a(t) x``. Their transition kernel is
  Gaussian, ``p_0t(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I)``, and the whole SDE follows from
  ``alpha`` and ``sigma``:  ``a(t) = d/dt log alpha(t)`` and
  ``g(t)^2 = d/dt sigma(t)^2 - 2 a(t) sigma(t)^2`` (Sarkka and Solin 2019, eq. 6.2 and 6.3).
  Subclasses define ``alpha`` and ``sigma``; closed forms of ``drift_coefficient`` and
  ``diffusion`` may be given for speed, otherwise they are computed by autograd.

Time comes first in every signature, as in torchsde and torchdiffeq: ``t`` is a tensor of shape
``[B]`` or a Python float (broadcast over the batch), and ``x`` has any shape ``[B, ...]``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import Tensor

from sdegen import random
from sdegen._broadcast import batch_time, expand_like
from sdegen._checks import check_batch_shape, check_positive, check_shape_tuple, check_time
from sdegen.random import RandomSource

if TYPE_CHECKING:  # runtime imports are lazy: reverse.py and probability_flow.py import this module
    from sdegen.sde.probability_flow import ProbabilityFlowODE
    from sdegen.sde.reverse import ReverseTimeSDE

__all__ = ["SDE", "LinearSDE"]

ScoreFn = Callable[[Tensor, Tensor], Tensor]


class SDE(abc.ABC):
    """An Ito SDE dx = f(t, x) dt + g(t) dW on [0, T] with a scalar diffusion ``g(t)``.

    Subclasses implement :meth:`drift`, :meth:`diffusion`, :meth:`prior_sampling` and
    :meth:`prior_logp`. :meth:`marginal_prob` is optional (it is exact for :class:`LinearSDE`).

    ``drift`` and ``diffusion`` are the vector field itself: solvers call them on every step with
    times they have already validated, so they should compute and not check (a range check on a
    tensor is a device synchronisation). Validation happens once, where a sampler, the likelihood,
    a loss or an engine object receives its arguments.
    """

    #: Default end time eps of sampling: samplers stop at t = eps > 0, where the score is still
    #: finite (1e-3 for VP and sub-VP, 1e-5 for VE, as in Song et al. 2021's reference code).
    sampling_eps: ClassVar[float] = 1e-3
    #: Default start time of :func:`sdegen.log_likelihood`: the reference code's 1e-5, or where an
    #: SDE's networks start (step 0 of a :class:`~sdegen.DiscreteVPSDE`).
    likelihood_eps: ClassVar[float] = 1e-5

    def __init__(self, T: float = 1.0) -> None:
        self.T = check_positive("T", T)

    # -- the SDE itself ---------------------------------------------------------------------
    @abc.abstractmethod
    def drift(self, t: float | Tensor, x: Tensor) -> Tensor:
        """The drift f(t, x), shaped like ``x``."""

    @abc.abstractmethod
    def diffusion(self, t: float | Tensor) -> Tensor:
        """The diffusion coefficient g(t): shape ``[B]`` for ``t`` of shape ``[B]``, 0-d for a float."""

    def diffusion_squared(self, t: Tensor) -> Tensor:
        """g(t)^2, the quantity the reverse-time SDE and the probability-flow ODE use."""
        g = self.diffusion(t)
        return g * g

    # -- the prior p_T ------------------------------------------------------------------------
    @abc.abstractmethod
    def prior_sampling(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw samples of shape ``shape = (B, ...)`` from the prior p_T."""

    @abc.abstractmethod
    def prior_logp(self, z: Tensor) -> Tensor:
        """log p_T(z) summed over all non-batch dimensions: shape ``[B]``."""

    def marginal_prob(self, t: float | Tensor, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (shaped like ``x0``) and std (``[B]``) of p_0t(x_t | x_0), if Gaussian."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form marginal; subclass LinearSDE for SDEs with "
            f"linear drift, whose marginals are Gaussian"
        )

    # -- drifts of the reverse-time SDE and the probability-flow ODE ------------------------------
    def reverse_drift(self, t: float | Tensor, x: Tensor, score: Tensor) -> Tensor:
        """f(t, x) - g(t)^2 score: the drift of the reverse-time SDE run backwards in t
        (Anderson 1982; Song et al. 2021, eq. 6), given ``score = score_fn(t, x)``."""
        g2 = self.diffusion_squared(batch_time(t, x))
        return self.drift(t, x) - expand_like(g2, x) * score

    def probability_flow_drift(self, t: float | Tensor, x: Tensor, score: Tensor) -> Tensor:
        """f(t, x) - 1/2 g(t)^2 score: the probability-flow ODE dx/dt (Song et al. 2021, eq. 13),
        given ``score = score_fn(t, x)``."""
        g2 = self.diffusion_squared(batch_time(t, x))
        return self.drift(t, x) - 0.5 * expand_like(g2, x) * score

    # -- objects for torchsde and torchdiffeq ------------------------------------------------------
    def reverse(
        self,
        score_fn: ScoreFn,
        *,
        event_shape: Sequence[int] | None = None,
        sde_type: Literal["ito", "stratonovich"] = "ito",
        noise_type: Literal["diagonal", "additive"] = "diagonal",
    ) -> ReverseTimeSDE:
        """The reverse-time SDE as an object ``torchsde.sdeint`` accepts, in reversed time s = T - t.

        See :class:`~sdegen.sde.reverse.ReverseTimeSDE`.
        """
        from sdegen.sde.reverse import ReverseTimeSDE

        return ReverseTimeSDE(
            self, score_fn, event_shape=event_shape, sde_type=sde_type, noise_type=noise_type
        )

    def probability_flow(self, score_fn: ScoreFn) -> ProbabilityFlowODE:
        """The probability-flow ODE dx/dt = f - 1/2 g^2 score as a ``func(t, x)`` for torchdiffeq.

        See :class:`~sdegen.sde.probability_flow.ProbabilityFlowODE`.
        """
        from sdegen.sde.probability_flow import ProbabilityFlowODE

        return ProbabilityFlowODE(self, score_fn)

    # -- validation shared by subclasses ------------------------------------------------------
    def _check_t(self, t: float | Tensor, x: Tensor | None = None) -> None:
        check_time(t, self.T, None if x is None else x.shape[0])


class LinearSDE(SDE):
    """An SDE with linear drift, dx = a(t) x dt + g(t) dW, defined by its Gaussian transition kernel.

    p_0t(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I) with alpha(0) = 1, sigma(0) = 0, and

        a(t)   = d/dt log alpha(t),
        g(t)^2 = d/dt sigma(t)^2 - 2 a(t) sigma(t)^2

    (the moment equations dm/dt = a m, dv/dt = 2 a v + g^2 of a linear SDE; Sarkka and Solin 2019,
    "Applied Stochastic Differential Equations", eq. 6.2-6.3).

    Subclasses implement :meth:`alpha` and :meth:`sigma` on tensors of times (and
    :meth:`sigma_squared` when sigma is a square root). The defaults of :meth:`drift_coefficient`,
    :meth:`diffusion_squared` and :meth:`inverse_log_snr` are derived from them (autograd,
    bisection); override them with closed forms when known. The prior is N(0, prior_std^2 I) with
    ``prior_std = sigma(T)`` unless a subclass says otherwise.

    These are the primitives: samplers, losses and the likelihood read ``alpha``, ``sigma``,
    ``drift_coefficient``, ``diffusion_squared`` and ``log_snr`` (through
    :mod:`sdegen.sde.coefficients`), never :meth:`drift`, :meth:`diffusion` or
    :meth:`marginal_prob`, which are derived conveniences that validate their arguments. A subclass
    that overrides one of those would be silently ignored, so it is refused when the class is
    defined: change alpha and sigma instead, or subclass :class:`SDE` for a general drift.
    """

    #: The noise level s = sigma/alpha below which few-step grids spend no steps: a
    #: ``LogSNRGrid(steps, floor=True)`` (the few-step samplers' default) stops there and takes one
    #: last step to the end time, a denoising step, as EDM's and k-diffusion's grids end at sigma_min
    #: and then 0. 0.01 is the noise level of VP(0.1, 20) at its sampling_eps = 1e-3, so that every
    #: VP-like schedule spends its steps where VP's do (sub-VP reaches 1e-4 at the same end time).
    noise_floor: ClassVar[float] = 0.01

    #: Methods derived from alpha and sigma; overriding them is refused (see the class docstring).
    _DERIVED: ClassVar[tuple[str, ...]] = (
        "drift",
        "diffusion",
        "marginal_prob",
        "reverse_drift",
        "probability_flow_drift",
    )

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in LinearSDE._DERIVED if name in cls.__dict__]
        if overridden:
            names = ", ".join(f"{name}()" for name in overridden)
            raise TypeError(
                f"{cls.__name__} overrides {names} of LinearSDE. A LinearSDE is defined by its kernel "
                f"N(alpha(t) x0, sigma(t)^2 I): its drift and diffusion are derived from alpha and sigma, "
                f"and samplers, losses and the likelihood use those coefficients, so the override would be "
                f"silently ignored. Change the process through alpha(t) and sigma(t) (optionally with "
                f"closed forms of drift_coefficient(t) = d log alpha/dt and diffusion_squared(t) = "
                f"d sigma^2/dt - 2 a sigma^2), or subclass sdegen.SDE to define a general drift(t, x) "
                f"and diffusion(t)."
            )

    @abc.abstractmethod
    def alpha(self, t: Tensor) -> Tensor:
        """Mean coefficient alpha(t) of the transition kernel, elementwise in ``t``."""

    @abc.abstractmethod
    def sigma(self, t: Tensor) -> Tensor:
        """Standard deviation sigma(t) of the transition kernel, elementwise in ``t``."""

    def sigma_squared(self, t: Tensor) -> Tensor:
        """sigma(t)^2. Override it when sigma is a square root (it usually is): the autograd
        derivative of sqrt(v)^2 at v = 0 is 0 * inf = NaN, that of v itself is finite."""
        return self.sigma(t) ** 2

    # -- coefficients derived from alpha and sigma --------------------------------------------
    def drift_coefficient(self, t: Tensor) -> Tensor:
        """a(t) = d/dt log alpha(t), so that f(t, x) = a(t) x. Default: autograd."""
        with torch.enable_grad():
            tt = t.detach().requires_grad_(True)
            da = _derivative(torch.log(self.alpha(tt)), tt)
        return da

    def diffusion_squared(self, t: Tensor) -> Tensor:
        """g(t)^2 = d/dt sigma(t)^2 - 2 a(t) sigma(t)^2. Default: autograd."""
        with torch.enable_grad():
            tt = t.detach().requires_grad_(True)
            var = self.sigma_squared(tt)
            dvar = _derivative(var, tt)
        return dvar - 2 * self.drift_coefficient(t) * var.detach()

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = log(alpha(t) / sigma(t)), half the log signal-to-noise ratio.

        Strictly decreasing from +inf at t = 0 (where sigma = 0) when g^2 > 0, since
        d(sigma^2 / alpha^2)/dt = g^2 / alpha^2. The time variable of exponential integrators
        (Kingma et al. 2021, "Variational diffusion models"; Lu et al. 2022, "DPM-Solver", eq. 3.2).
        """
        return torch.log(self.alpha(t)) - 0.5 * torch.log(self.sigma_squared(t))

    def inverse_log_snr(self, lam: Tensor) -> Tensor:
        """t(lambda), the inverse of :meth:`log_snr` on [0, T], elementwise.

        Default: bisection on [0, T] in float64 (80 halvings, below float64 resolution in t), for
        any schedule whose lambda decreases; values of lambda beyond lambda(T) map to T. The result
        has ``lam``'s dtype and device. Subclasses with a closed form override it.
        """
        target = lam.detach().to(torch.float64)
        lo = torch.zeros_like(target)
        hi = torch.full_like(target, self.T)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            above = self.log_snr(mid) > target  # lambda(mid) > target: the root lies later in t
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return (0.5 * (lo + hi)).to(lam.dtype)

    # -- the SDE protocol (derived, validated conveniences) ------------------------------------
    def drift(self, t: float | Tensor, x: Tensor) -> Tensor:
        """f(t, x) = a(t) x, shaped like ``x``."""
        check_batch_shape("x", x)
        self._check_t(t, x)
        return expand_like(self.drift_coefficient(batch_time(t, x)), x) * x

    def diffusion(self, t: float | Tensor) -> Tensor:
        """g(t) = sqrt(d/dt sigma^2 - 2 a sigma^2): shape ``[B]`` for ``t`` of shape ``[B]``."""
        self._check_t(t)
        t = _as_tensor(t)
        # Clamp: autograd or rounding can give -1e-17 where g^2 = 0 exactly.
        return self.diffusion_squared(t).clamp_min(0).sqrt()

    def marginal_prob(self, t: float | Tensor, x0: Tensor) -> tuple[Tensor, Tensor]:
        """Exact mean alpha(t) x0 (shaped like ``x0``) and std sigma(t) (``[B]``) of p_0t(x_t | x0)."""
        check_batch_shape("x0", x0)
        self._check_t(t, x0)
        tb = batch_time(t, x0)
        return expand_like(self.alpha(tb), x0) * x0, self.sigma(tb)

    # -- the prior ----------------------------------------------------------------------------
    @property
    def prior_std(self) -> float:
        """Standard deviation of the Gaussian prior p_T = N(0, prior_std^2 I)."""
        return float(self.sigma(torch.tensor(self.T, dtype=torch.float64)))

    def prior_sampling(
        self,
        shape: Sequence[int],
        generator: RandomSource = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Samples of shape ``(B, ...)`` from N(0, prior_std^2 I) (``generator``: any :data:`~sdegen.random.RandomSource`)."""
        shape = check_shape_tuple("shape", shape)
        if generator is not None and device is None:
            device = generator.device
        z = random.randn(shape, generator, device=device, dtype=dtype)
        return self.prior_std * z

    def prior_logp(self, z: Tensor) -> Tensor:
        """log N(z; 0, prior_std^2 I) summed over non-batch dimensions: shape ``[B]``."""
        check_batch_shape("z", z)
        s = self.prior_std
        d = z[0].numel()
        sq = z.reshape(z.shape[0], -1).pow(2).sum(dim=1)
        return -0.5 * sq / s**2 - 0.5 * d * math.log(2 * math.pi * s**2)

    def discretize(self, N: int, *, device=None, dtype=None):
        """The discrete-time chain behind ancestral sampling (DDPM for VP, SMLD for VE)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no discrete-time counterpart; ancestral sampling is defined "
            f"for VPSDE (DDPM) and VESDE (SMLD)"
        )


def _derivative(y: Tensor, t: Tensor) -> Tensor:
    """dy/dt elementwise by autograd; zero where y does not depend on t (e.g. alpha = ones_like(t))."""
    if not y.requires_grad:
        return torch.zeros_like(t)
    (dy,) = torch.autograd.grad(y.sum(), t, allow_unused=True)
    return torch.zeros_like(t) if dy is None else dy


def _as_tensor(t: float | Tensor) -> Tensor:
    if torch.is_tensor(t):
        return t if t.is_floating_point() else t.to(torch.get_default_dtype())
    return torch.tensor(float(t), dtype=torch.get_default_dtype())
