"""The loss protocol, and what every score-matching loss shares.

* :class:`Loss`: ``loss(model, x0[, y], generator=...)`` -> a scalar (or ``[B]`` per-sample losses),
  with labels ``y`` for a class-conditional model (:meth:`Loss.labelled_per_sample`).
* :class:`TimeWeightedLoss`: a loss on the noised data x_t = alpha(t) x0 + sigma(t) z of a
  :class:`~sdegen.sde.LinearSDE` at times drawn by a :class:`~sdegen.losses.TimeWeighting`.
* :func:`perturb`: that forward perturbation, the one place it is written.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from sdegen import random
from sdegen._checks import (
    check_batch_shape,
    check_class_labels,
    check_fits_model,
    check_generator,
    check_linear_sde,
    check_nonempty,
    check_score_output,
)
from sdegen.divergence import DivergenceEstimator
from sdegen.losses.weighting import TimeWeighting, check_eps, resolve_weighting
from sdegen.parameterization import ScoreModel
from sdegen.random import RandomSource
from sdegen.sde.coefficients import check_schedule
from sdegen.sde.kernel import GaussianKernel

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

    **Class-conditional models.** ``loss(model, x0, y)`` with int64 labels ``y`` ``[B]`` trains a
    conditional model (a :class:`~sdegen.parameterization.ScoreModel` whose network has
    ``n_classes``): every loss does it the same way, by :meth:`labelled_per_sample`, which
    evaluates :meth:`per_sample` on ``model.given(y)``, the model with the labels bound -- a
    conditional score is an unconditional score per label, so each objective keeps its meaning
    (and its minimiser, grad_x log p_t(x | y)) label by label. Labels may include the model's null
    label C (unlabelled examples, the unconditional model); :class:`~sdegen.losses.LabelDropout`
    draws them for classifier-free guidance. A conditional model without labels, labels for an
    unconditional model, or a label out of range is an error before any work.

    Subclasses implement :meth:`per_sample` and may extend :meth:`check`, which runs before any
    random number is drawn or any network is evaluated; a loss whose model is not a score model
    (:class:`~sdegen.classifier.NoisyClassifierLoss`) sets ``model_type`` and ``needs_labels``.
    """

    #: the kind of model the loss trains (checked first)
    model_type: ClassVar[type[nn.Module]] = ScoreModel
    #: whether every call needs labels (a classifier's targets) rather than taking them optionally
    needs_labels: ClassVar[bool] = False

    def __init__(self, reduction: Reduction = "mean") -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got reduction={reduction!r}")
        self.reduction = reduction

    def __call__(
        self,
        model: ScoreModel,
        x0: Tensor,
        y: Tensor | None = None,
        *,
        generator: RandomSource = None,
    ) -> Tensor:
        """The reduced loss of ``model`` on the data batch ``x0`` of shape ``[B, ...]`` (with labels ``y`` ``[B]``)."""
        self.check_model(model)
        check_batch_shape("x0", x0)
        check_nonempty("x0", x0)
        check_fits_model("x0", x0, model, takes_labels=True)
        check_generator(generator, x0, "x0")
        y = self.check_labels(model, x0, y)
        self.check(model, x0)
        if y is None:
            per_sample = self.per_sample(model, x0, generator)
        else:
            per_sample = self.labelled_per_sample(model, x0, y, generator)
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample

    def check_model(self, model: object) -> None:
        """Raise ``TypeError`` unless ``model`` is the kind of model this loss trains."""
        if not isinstance(model, self.model_type):
            what = (
                "a ScoreModel(net, sde, parameterization)"
                if self.model_type is ScoreModel
                else f"a {self.model_type.__name__}"
            )
            raise TypeError(f"model must be {what} for {type(self).__name__}; got {type(model).__name__}")

    def check_labels(self, model: nn.Module, x0: Tensor, y: object) -> Tensor | None:
        """``y`` checked against ``model`` and the batch ``x0`` (None if the call has no labels)."""
        n_classes = getattr(model, "n_classes", None)
        name = type(self).__name__
        if y is None:
            if self.needs_labels:
                raise ValueError(
                    f"{name} needs the class labels of x0: call it as loss(model, x0, y) with int64 y "
                    f"[{x0.shape[0]}] in 0..{n_classes - 1}"
                )
            if n_classes is not None:
                raise ValueError(
                    f"model is class-conditional (n_classes={n_classes}): pass the labels of x0, "
                    f"loss(model, x0, y) with int64 y [{x0.shape[0]}] in 0..{n_classes - 1} (the null "
                    f"label {model.null_label} for unlabelled examples)"
                )
            return None
        if self.needs_labels:
            return check_class_labels("y", y, x0.shape[0], n_classes, device=x0.device)
        if n_classes is None:
            raise TypeError(
                "labels y given but the model is unconditional (its network has no n_classes); build "
                "the network with n_classes=C to train a class-conditional model, or drop y"
            )
        return model.check_labels(y, x0)

    def check(self, model: ScoreModel, x0: Tensor) -> None:
        """Raise before any work if this loss cannot be computed for ``model`` on ``x0``."""
        return None  # the checks of __call__ suffice unless a subclass adds its own

    @abc.abstractmethod
    def per_sample(self, model: ScoreModel, x0: Tensor, generator: RandomSource) -> Tensor:
        """The unreduced loss, shape ``[B]``."""

    def labelled_per_sample(
        self, model: ScoreModel, x0: Tensor, y: Tensor, generator: RandomSource
    ) -> Tensor:
        """The unreduced loss of a class-conditional ``model`` on ``x0`` with labels ``y`` ``[B]``.

        :meth:`per_sample` of ``model.given(y)``: the one conditional path of every loss. Unchecked
        (:meth:`__call__` checks); the same random numbers are drawn as for :meth:`per_sample`.
        """
        return self.given(y).per_sample(model.given(y), x0, generator)

    def given(self, y: Tensor) -> Loss:
        """This loss for the examples of labels ``y``; losses with a label-dependent target (explicit
        score matching against a conditional score) bind it here."""
        return self


def sum_over_data_dims(v: Tensor) -> Tensor:
    """Sum ``[B, ...]`` over all but the batch dimension: shape ``[B]``."""
    return v.reshape(v.shape[0], -1).sum(dim=1)


def score_and_divergence(
    model: ScoreModel, b: NoisedBatch, estimator: DivergenceEstimator, vectors: Tensor
) -> tuple[Tensor, Tensor]:
    """The score s = model(t, x_t) and ``estimator``'s estimate of div_x s at x_t with ``vectors``.

    What the implicit objectives (:class:`~sdegen.losses.ImplicitScoreMatching`,
    :class:`~sdegen.losses.SlicedScoreMatching`) are written in. x_t is made a leaf that requires
    grad even under ``torch.no_grad`` (an evaluation), since the divergence is a derivative in x;
    the result keeps a graph to the parameters exactly when gradients are enabled (training).
    """
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x = b.x_t.detach().requires_grad_(True)
        score = model(b.t, x)
        check_score_output(score, x, "model(t, x)")
        div = estimator.trace(score, x, vectors, create_graph=create_graph)
    return (score, div) if create_graph else (score.detach(), div.detach())


def perturb(kernel: GaussianKernel, x0: Tensor, generator: RandomSource) -> tuple[Tensor, Tensor]:
    """A draw of p_0t(x_t | x0) = N(alpha x0, sigma^2 I): ``(x_t, z)`` with x_t = alpha x0 + sigma z.

    z ~ N(0, I) is drawn from ``generator``, shaped like ``x0``.
    """
    noise = random.randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
    return kernel.noised(x0, noise), noise


class NoisedBatch(NamedTuple):
    """One draw of the noised data: times ``t`` and weights ``weight`` (``[B]``), the kernel at
    ``t``, the noise ``z`` and x_t = alpha(t) x0 + sigma(t) z (shaped like x0)."""

    t: Tensor
    weight: Tensor
    kernel: GaussianKernel
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
        kernel = GaussianKernel.of(sde, t)
        x_t, noise = perturb(kernel, x0, generator)
        return NoisedBatch(t, weight, kernel, noise, x_t)
