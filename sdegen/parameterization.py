"""What a network predicts, and how that prediction becomes a score.

A network ``net(t, x)`` can be trained to output the score grad_x log p_t(x) directly, the noise
``z`` that produced ``x_t = alpha(t) x_0 + sigma(t) z``, or the clean data ``x_0``. For a linear SDE
with transition kernel N(alpha(t) x_0, sigma(t)^2 I) the three are affine in one another
(Tweedie's formula; Kingma et al. 2021, "Variational diffusion models", appendix; Karras et al.
2022, eq. 3):

    score = -z_hat / sigma(t)                         (noise prediction, Ho et al. 2020)
    score = (alpha(t) x0_hat - x) / sigma(t)^2        (data prediction)

Each :class:`Parameterization` holds both halves of its contract: the regression ``target`` the
network is trained on and the map ``to_score`` from its output to a score. Because
``to_score`` is affine in the output, ``score - true_score = score_scale * (output - target)``,
so a loss written in score space, lambda(t) ||s - grad log p_0t||^2, becomes the output-space loss
lambda(t) score_scale^2 ||output - target||^2 for every parameterisation and every SDE. Nothing here
asks which SDE it is: only ``alpha(t)`` and ``sigma(t)`` of :class:`~sdegen.sde.LinearSDE` are used.

:class:`ScoreModel` wraps a network, an SDE and a parameterisation into a module whose
``forward(t, x)`` is the score, so it is a ``score_fn(t, x)`` for every sampler and the likelihood.
"""

from __future__ import annotations

import abc
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from sdegen._broadcast import batch_time, expand_like
from sdegen._checks import check_batch_shape, check_linear_sde
from sdegen.sde.base import SDE, LinearSDE

__all__ = [
    "Parameterization",
    "ScorePrediction",
    "NoisePrediction",
    "DataPrediction",
    "ScoreModel",
    "TransitionKernel",
]


class TransitionKernel(NamedTuple):
    """alpha(t) and sigma(t) of p_0t(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I), each of shape ``[B]``."""

    alpha: Tensor
    sigma: Tensor

    @classmethod
    def of(cls, sde: LinearSDE, t: Tensor) -> TransitionKernel:
        """The kernel of ``sde`` at times ``t`` (shape ``[B]``)."""
        return cls(sde.alpha(t), sde.sigma(t))


class Parameterization(abc.ABC):
    """The meaning of a network's output: its training target and its conversion to a score.

    Subclasses define :meth:`target`, :meth:`to_score` and :meth:`from_score` for the kernel
    x_t = alpha x_0 + sigma z. ``needs_kernel`` says whether :meth:`to_score` uses alpha and sigma
    (only direct score prediction does not, so it also serves SDEs without a Gaussian kernel).
    """

    needs_kernel: ClassVar[bool] = True

    @abc.abstractmethod
    def target(self, x0: Tensor, noise: Tensor, kernel: TransitionKernel) -> Tensor:
        """The output that is exact for ``x_t = alpha x0 + sigma noise``, shaped like ``x0``."""

    @abc.abstractmethod
    def to_score(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        """The score implied by the network's ``output`` at state ``x``, shaped like ``x``."""

    @abc.abstractmethod
    def from_score(self, score: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        """The inverse of :meth:`to_score`: the output that represents ``score`` at ``x``."""

    @abc.abstractmethod
    def score_scale(self, kernel: TransitionKernel) -> Tensor:
        """d score / d output, shape ``[B]``: ``to_score`` is ``score_scale * output + c(x)``."""

    def to_data(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        """x0_hat = (x + sigma^2 score) / alpha implied by ``output`` (Tweedie's formula).

        Subclasses whose output is closer to x0_hat than the score override this with the direct
        map, so that no precision is lost in a round trip through the score.
        """
        a, s = expand_like(kernel.alpha, x), expand_like(kernel.sigma, x)
        return (x + s * s * self.to_score(output, x, kernel)) / a

    def to_noise(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        """eps_hat = -sigma score implied by ``output``; overridden with direct maps like :meth:`to_data`."""
        return -expand_like(kernel.sigma, x) * self.to_score(output, x, kernel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class ScorePrediction(Parameterization):
    """The network outputs the score itself: target grad log p_0t(x_t | x_0) = -z / sigma(t).

    Song et al. 2021, "Score-based generative modeling through SDEs", eq. 7.
    """

    needs_kernel = False

    def target(self, x0: Tensor, noise: Tensor, kernel: TransitionKernel) -> Tensor:
        return -noise / expand_like(kernel.sigma, noise)

    def to_score(self, output: Tensor, x: Tensor, kernel: TransitionKernel | None) -> Tensor:
        return output

    def from_score(self, score: Tensor, x: Tensor, kernel: TransitionKernel | None) -> Tensor:
        return score

    def score_scale(self, kernel: TransitionKernel) -> Tensor:
        return torch.ones_like(kernel.sigma)


class NoisePrediction(Parameterization):
    """The network outputs the noise z_hat (Ho et al. 2020, Alg. 1): score = -z_hat / sigma(t).

    The DSM loss with lambda(t) = sigma(t)^2 is then exactly ||z_hat - z||^2.
    """

    def target(self, x0: Tensor, noise: Tensor, kernel: TransitionKernel) -> Tensor:
        return noise

    def to_score(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        return -output / expand_like(kernel.sigma, output)

    def from_score(self, score: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        return -expand_like(kernel.sigma, score) * score

    def score_scale(self, kernel: TransitionKernel) -> Tensor:
        return -1.0 / kernel.sigma

    def to_data(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        a, s = expand_like(kernel.alpha, x), expand_like(kernel.sigma, x)
        return (x - s * output) / a

    def to_noise(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        return output


class DataPrediction(Parameterization):
    """The network outputs the denoised x0_hat: score = (alpha(t) x0_hat - x) / sigma(t)^2.

    Tweedie's formula E[x_0 | x_t] = (x_t + sigma^2 grad log p_t(x_t)) / alpha (Efron 2011, eq. 2.8;
    the denoiser D of Karras et al. 2022, eq. 3, with alpha = 1).
    """

    def target(self, x0: Tensor, noise: Tensor, kernel: TransitionKernel) -> Tensor:
        return x0

    def to_score(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        a, s = expand_like(kernel.alpha, x), expand_like(kernel.sigma, x)
        return (a * output - x) / (s * s)

    def from_score(self, score: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        a, s = expand_like(kernel.alpha, x), expand_like(kernel.sigma, x)
        return (x + s * s * score) / a

    def score_scale(self, kernel: TransitionKernel) -> Tensor:
        return kernel.alpha / kernel.sigma**2

    def to_data(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        return output

    def to_noise(self, output: Tensor, x: Tensor, kernel: TransitionKernel) -> Tensor:
        a, s = expand_like(kernel.alpha, x), expand_like(kernel.sigma, x)
        return (x - a * output) / s


class ScoreModel(nn.Module):
    """A network, an SDE and a parameterisation, as a score function ``forward(t, x)``.

    ``ScoreModel(net, sde, NoisePrediction())(t, x) = -net(t, x) / sigma(t)``. The module owns
    ``net`` (so ``state_dict``, ``.to`` and EMA work on it) and is itself a
    ``score_fn(t, x)`` for :func:`sdegen.sample` and :func:`sdegen.log_likelihood`.

    It also implements the denoiser protocol of ``sdegen.samplers.denoise``:
    :meth:`data_prediction` and :meth:`noise_prediction` map the network's output straight to
    x0_hat and eps_hat (for :class:`DataPrediction` the output itself), so the few-step samplers
    use an x0- or noise-predicting network without a round trip through the score.

    Args:
        net: any module ``net(t, x)`` returning a tensor shaped like ``x``.
        sde: the forward SDE; a :class:`~sdegen.sde.LinearSDE` unless the parameterisation is
            :class:`ScorePrediction`.
        parameterization: what ``net`` predicts (default :class:`NoisePrediction`).
    """

    def __init__(self, net: nn.Module, sde: SDE, parameterization: Parameterization | None = None) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module net(t, x); got {type(net).__name__}")
        if not isinstance(sde, SDE):
            raise TypeError(f"sde must be an sdegen.SDE; got {type(sde).__name__}")
        parameterization = NoisePrediction() if parameterization is None else parameterization
        if not isinstance(parameterization, Parameterization):
            raise TypeError(
                f"parameterization must be a Parameterization such as NoisePrediction(); "
                f"got {type(parameterization).__name__}"
            )
        if parameterization.needs_kernel:
            check_linear_sde(sde, type(parameterization).__name__, "Use ScorePrediction() for this SDE.")
        self.net = net
        self.sde = sde
        self.parameterization = parameterization

    def kernel(self, t: Tensor) -> TransitionKernel:
        """alpha(t) and sigma(t) of the SDE at times ``t`` (shape ``[B]``)."""
        return TransitionKernel.of(self.sde, t)

    def output(self, t: float | Tensor, x: Tensor) -> Tensor:
        """The raw network output ``net(t, x)``, with ``t`` broadcast to ``[B]``."""
        return self.net(batch_time(t, x), x)

    def forward(self, t: float | Tensor, x: Tensor) -> Tensor:
        """The score s_theta(t, x), shaped like ``x``."""
        # t is not range-checked here: that would synchronise a GPU on every solver step, and
        # the samplers and the likelihood validate their time grids once, up front.
        check_batch_shape("x", x)
        tb = batch_time(t, x)
        out = self.net(tb, x)
        kernel = self.kernel(tb) if self.parameterization.needs_kernel else None
        return self.parameterization.to_score(out, x, kernel)

    def data_prediction(self, t: float | Tensor, x: Tensor) -> Tensor:
        """x0_hat(t, x) = E[x_0 | x_t = x] from the network's output without passing through the score."""
        check_batch_shape("x", x)
        self._require_kernel("data_prediction")
        tb = batch_time(t, x)
        return self.parameterization.to_data(self.net(tb, x), x, self.kernel(tb))

    def noise_prediction(self, t: float | Tensor, x: Tensor) -> Tensor:
        """eps_hat(t, x) = E[z | x_t = x] from the network's output without passing through the score."""
        check_batch_shape("x", x)
        self._require_kernel("noise_prediction")
        tb = batch_time(t, x)
        return self.parameterization.to_noise(self.net(tb, x), x, self.kernel(tb))

    def _require_kernel(self, what: str) -> None:
        if not isinstance(self.sde, LinearSDE):
            raise TypeError(
                f"ScoreModel.{what} needs the Gaussian kernel N(alpha x0, sigma^2 I) of a LinearSDE; "
                f"{type(self.sde).__name__} has none"
            )

    def extra_repr(self) -> str:
        return f"sde={self.sde!r}, parameterization={self.parameterization!r}"
