"""What a network predicts, and how that prediction becomes a score.

A network ``net(t, x)`` can be trained to output the score grad_x log p_t(x) directly, the noise
``z`` that produced ``x_t = alpha(t) x_0 + sigma(t) z``, or the clean data ``x_0``. For a linear SDE
with transition kernel N(alpha(t) x_0, sigma(t)^2 I) the three are affine in one another
(Tweedie's formula); the conversions are written once, in :class:`~sdegen.sde.GaussianKernel`:

    score = -z_hat / sigma(t)                         (noise prediction, Ho et al. 2020)
    score = (alpha(t) x0_hat - x) / sigma(t)^2        (data prediction)
    score = -(sigma x + alpha v_hat) / (sigma r^2)    (v-prediction, Salimans and Ho 2022; r^2 = alpha^2 + sigma^2)

and EDM's preconditioning (Karras et al. 2022) is a data prediction whose network also sees a scaled
input and a noise embedding instead of t (:meth:`Parameterization.network_input`).

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
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from sdegen._broadcast import batch_time, expand_like
from sdegen._checks import check_batch_shape, check_class_labels, check_linear_sde, check_positive, check_sde
from sdegen.sde.base import SDE
from sdegen.sde.kernel import GaussianKernel

__all__ = [
    "Parameterization",
    "ScorePrediction",
    "NoisePrediction",
    "DataPrediction",
    "VPrediction",
    "EDMPreconditioning",
    "ScoreModel",
    "TransitionKernel",
]


#: The former name of :class:`~sdegen.sde.GaussianKernel`, kept importable from here.
TransitionKernel = GaussianKernel


class Parameterization(abc.ABC):
    """The meaning of a network's output: its training target and its conversion to a score.

    Subclasses define :meth:`target`, :meth:`to_score` and :meth:`from_score` for the kernel
    x_t = alpha x_0 + sigma z, each one call of a :class:`~sdegen.sde.GaussianKernel` conversion.
    ``needs_kernel`` says whether :meth:`to_score` uses alpha and sigma (only direct score
    prediction does not, so it also serves SDEs without a Gaussian kernel).
    """

    needs_kernel: ClassVar[bool] = True

    @abc.abstractmethod
    def target(self, x0: Tensor, noise: Tensor, kernel: GaussianKernel) -> Tensor:
        """The output that is exact for ``x_t = alpha x0 + sigma noise``, shaped like ``x0``."""

    @abc.abstractmethod
    def to_score(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        """The score implied by the network's ``output`` at state ``x``, shaped like ``x``."""

    @abc.abstractmethod
    def from_score(self, score: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        """The inverse of :meth:`to_score`: the output that represents ``score`` at ``x``."""

    def score_scale(self, kernel: GaussianKernel) -> Tensor:
        """d score / d output, shape ``[B]``: ``to_score`` is ``score_scale * output + c(x)``.

        Since :meth:`to_score` is affine in the output, its slope is ``to_score(1, 0)``, evaluated
        per sample on ``[B]`` tensors (``kernel`` holds ``[B]`` tensors).
        """
        ones = torch.ones_like(kernel.sigma)
        return self.to_score(ones, torch.zeros_like(ones), kernel)

    def to_data(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        """x0_hat = (x + sigma^2 score) / alpha implied by ``output`` (Tweedie's formula).

        Subclasses whose output is closer to x0_hat than the score override this with the direct
        map, so that no precision is lost in a round trip through the score.
        """
        return kernel.data_from_score(x, self.to_score(output, x, kernel))

    def to_noise(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        """eps_hat = -sigma score implied by ``output``; overridden with direct maps like :meth:`to_data`."""
        return kernel.noise_from_score(self.to_score(output, x, kernel))

    def network_input(self, t: Tensor, x: Tensor, kernel: GaussianKernel | None) -> tuple[Tensor, Tensor]:
        """What the network is called with at time ``t`` ``[B]`` and state ``x``: ``(t, x)`` itself.

        A preconditioning (:class:`EDMPreconditioning`) overrides this to scale the input and to
        replace the time by a noise-level embedding.
        """
        return t, x

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

    def target(self, x0: Tensor, noise: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.score_from_noise(noise)

    def to_score(self, output: Tensor, x: Tensor, kernel: GaussianKernel | None) -> Tensor:
        return output

    def from_score(self, score: Tensor, x: Tensor, kernel: GaussianKernel | None) -> Tensor:
        return score


class NoisePrediction(Parameterization):
    """The network outputs the noise z_hat (Ho et al. 2020, Alg. 1): score = -z_hat / sigma(t).

    The DSM loss with lambda(t) = sigma(t)^2 is then exactly ||z_hat - z||^2.
    """

    def target(self, x0: Tensor, noise: Tensor, kernel: GaussianKernel) -> Tensor:
        return noise

    def to_score(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.score_from_noise(output)

    def from_score(self, score: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.noise_from_score(score)

    def to_data(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.data_from_noise(x, output)

    def to_noise(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return output


class DataPrediction(Parameterization):
    """The network outputs the denoised x0_hat: score = (alpha(t) x0_hat - x) / sigma(t)^2.

    Tweedie's formula E[x_0 | x_t] = (x_t + sigma^2 grad log p_t(x_t)) / alpha (Efron 2011, eq. 2.8;
    the denoiser D of Karras et al. 2022, eq. 3, with alpha = 1).
    """

    def target(self, x0: Tensor, noise: Tensor, kernel: GaussianKernel) -> Tensor:
        return x0

    def to_score(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.score_from_data(x, output)

    def from_score(self, score: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.data_from_score(x, score)

    def to_data(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return output

    def to_noise(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.noise_from_data(x, output)


class VPrediction(Parameterization):
    """The network outputs the velocity v = alpha(t) z - sigma(t) x_0 (Salimans and Ho 2022, sec. 4).

    For x_t = alpha x_0 + sigma z, with r^2 = alpha^2 + sigma^2 (1 on a VP SDE),

        x0_hat  = (alpha x - sigma v) / r^2,       eps_hat = (sigma x + alpha v) / r^2,
        score   = -eps_hat / sigma = -(sigma x + alpha v) / (sigma r^2),

    exact for every linear SDE (Salimans and Ho state the VP case, r = 1, as x0_hat = alpha x -
    sigma v; ``prediction_type="v_prediction"`` of diffusers). Its output stays of unit size at both
    ends of the schedule: v -> z as sigma -> 0 and v -> -x_0 as alpha -> 0, where noise and data
    prediction each divide by a vanishing coefficient.
    """

    def target(self, x0: Tensor, noise: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.velocity(x0, noise)

    def to_score(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.score_from_v(x, output)

    def from_score(self, score: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.v_from_score(x, score)

    def to_data(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.data_from_v(x, output)

    def to_noise(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.noise_from_v(x, output)


class EDMPreconditioning(Parameterization):
    """EDM's preconditioned denoiser D = c_skip x~ + c_out F(c_in x~, c_noise) (Karras et al. 2022).

    Table 1 ("Ours") and eq. 7 of Karras et al. 2022, for the kernel x~ = x_0 + sigma~ z of a VE
    SDE, with sigma_data the standard deviation of the data:

        c_skip  = sigma_data^2 / (sigma~^2 + sigma_data^2),   c_out = sigma~ sigma_data / sqrt(sigma~^2 + sigma_data^2),
        c_in    = 1 / sqrt(sigma~^2 + sigma_data^2),           c_noise = log(sigma~) / 4.

    **Any linear SDE.** x_t = alpha x_0 + sigma z is that VE kernel in the scaled variable
    x~ = x_t / alpha with noise level sigma~ = sigma / alpha = exp(-lambda) (Karras et al. 2022,
    eq. 4 and sec. 3, "scaling s(t)"), so the network F sees c_in x / alpha and c_noise = -lambda / 4,
    and x0_hat = D; on :class:`~sdegen.EDMVESDE` (alpha = 1, sigma = t) this is EDM exactly. The
    network is called as ``net(c_noise, c_in x~)``: its time input is the noise embedding c_noise
    ``[B]``, not t.

    The training target of F is (x_0 - c_skip x~) / c_out, and a loss weighted by lambda(t) in score
    space is lambda(t) (alpha c_out / sigma^2)^2 ||F - target||^2; EDM's own weighting, unit weight on
    F, is lambda(t) = sigma^4 / (alpha c_out)^2.

    Args:
        sigma_data: standard deviation of the data (EDM's 0.5 for images in [-1, 1]).
    """

    def __init__(self, sigma_data: float = 0.5) -> None:
        self.sigma_data = check_positive("sigma_data", sigma_data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma_data={self.sigma_data:g})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.sigma_data == other.sigma_data  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.sigma_data))

    def coefficients(self, kernel: GaussianKernel) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in, c_noise), each ``[B]``, at the scaled noise level sigma~ = sigma / alpha."""
        sd = self.sigma_data
        sig = kernel.sigma / kernel.alpha
        norm = torch.sqrt(sig * sig + sd * sd)
        return sd * sd / (norm * norm), sig * sd / norm, 1.0 / norm, torch.log(sig) / 4.0

    def network_input(self, t: Tensor, x: Tensor, kernel: GaussianKernel) -> tuple[Tensor, Tensor]:
        _, _, c_in, c_noise = self.coefficients(kernel)
        return c_noise.to(t.dtype), x * expand_like(c_in / kernel.alpha, x)

    def target(self, x0: Tensor, noise: Tensor, kernel: GaussianKernel) -> Tensor:
        c_skip, c_out, _, _ = self.coefficients(kernel)
        scaled = x0 + expand_like(kernel.sigma / kernel.alpha, noise) * noise
        return (x0 - expand_like(c_skip, x0) * scaled) / expand_like(c_out, x0)

    def to_data(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        c_skip, c_out, _, _ = self.coefficients(kernel)
        return expand_like(c_skip / kernel.alpha, x) * x + expand_like(c_out, x) * output

    def to_score(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.score_from_data(x, self.to_data(output, x, kernel))

    def to_noise(self, output: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        return kernel.noise_from_data(x, self.to_data(output, x, kernel))

    def from_score(self, score: Tensor, x: Tensor, kernel: GaussianKernel) -> Tensor:
        c_skip, c_out, _, _ = self.coefficients(kernel)
        x0 = kernel.data_from_score(x, score)
        return (x0 - expand_like(c_skip / kernel.alpha, x) * x) / expand_like(c_out, x)


class ScoreModel(nn.Module):
    """A network, an SDE and a parameterisation, as a score function ``forward(t, x)``.

    ``ScoreModel(net, sde, NoisePrediction())(t, x) = -net(t, x) / sigma(t)``. The module owns
    ``net`` (so ``state_dict``, ``.to`` and EMA work on it) and is itself a
    ``score_fn(t, x)`` for :func:`sdegen.sample` and :func:`sdegen.log_likelihood`.

    It also implements the denoiser protocol of ``sdegen.samplers.tweedie``:
    :meth:`data_prediction` and :meth:`noise_prediction` map the network's output straight to
    x0_hat and eps_hat (for :class:`DataPrediction` the output itself), so the few-step samplers
    use an x0- or noise-predicting network without a round trip through the score.

    **Class-conditional models.** A network with an attribute ``n_classes`` (e.g.
    ``ScoreMLP(2, n_classes=C)``) is called as ``net(t, x, y)``; the model then is the conditional
    score ``model(t, x, y)`` = grad_x log p_t(x | y) with int64 labels ``y`` ``[B]`` (or an int), and
    has ``n_classes`` and ``null_label`` (C, the unconditional model learned with label dropout):
    the :class:`~sdegen.composition.ConditionalScoreModel` that
    :class:`~sdegen.composition.ClassifierFreeGuidance` takes. ``model.given(y)`` is the score
    function ``(t, x)`` of one class (``given(model.null_label)``: the unconditional one) for any
    sampler, and is how every loss trains a conditional model. Calling a conditional model without
    a label, or an unconditional one with a label, is an error.

    Args:
        net: any module ``net(t, x)`` (``net(t, x, y)`` if it has ``n_classes``) returning a tensor
            shaped like ``x``.
        sde: the forward SDE; a :class:`~sdegen.sde.LinearSDE` unless the parameterisation is
            :class:`ScorePrediction`.
        parameterization: what ``net`` predicts (default :class:`NoisePrediction`).
    """

    def __init__(self, net: nn.Module, sde: SDE, parameterization: Parameterization | None = None) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module net(t, x); got {type(net).__name__}")
        check_sde(sde)
        parameterization = NoisePrediction() if parameterization is None else parameterization
        if not isinstance(parameterization, Parameterization):
            raise TypeError(
                f"parameterization must be a Parameterization such as NoisePrediction(); "
                f"got {type(parameterization).__name__}"
            )
        if parameterization.needs_kernel:
            check_linear_sde(sde, type(parameterization).__name__, "Use ScorePrediction() for this SDE.")
        n_classes = getattr(net, "n_classes", None)
        if n_classes is not None and (
            isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1
        ):
            raise ValueError(f"net.n_classes must be a positive int or None; got {n_classes!r}")
        self.net = net
        self.sde = sde
        self.parameterization = parameterization

    # -- classes ---------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int | None:
        """C for a class-conditional model (its network's ``n_classes``), None for an unconditional one."""
        return getattr(self.net, "n_classes", None)

    @property
    def null_label(self) -> int | None:
        """The label of the unconditional model (C, unless the network says otherwise), or None."""
        if self.n_classes is None:
            return None
        null = getattr(self.net, "null_label", None)
        return self.n_classes if null is None else null

    @property
    def is_conditional(self) -> bool:
        """Whether the model takes class labels, ``model(t, x, y)``."""
        return self.n_classes is not None

    def check_labels(self, y: object, x: Tensor, name: str = "y") -> Tensor:
        """``y`` (an int or an int64 ``[B]`` tensor) as labels for the batch ``x``, on ``x``'s device.

        Raises ``TypeError`` for an unconditional model and ``ValueError`` for a label outside
        0..C-1 and the null label C. The range is read from labels on the CPU only: on an
        accelerator it would synchronise the device at every step.
        """
        if not self.is_conditional:
            raise TypeError(
                f"{name} given but this ScoreModel is unconditional: its network {type(self.net).__name__} has "
                f"no n_classes. Build the network with n_classes=C (e.g. ScoreMLP(2, n_classes=C)) to "
                f"train and sample a class-conditional model."
            )
        return self._labels(name, y, x.shape[0], x.device)

    def _labels(self, name: str, y: object, batch: int | None, device: torch.device | None) -> Tensor:
        """``check_class_labels`` with this model's labels: classes 0..C-1 and the null label C."""
        C = self.n_classes
        meaning = f"classes 0..{C - 1}, or the null label {C} (unconditional)"
        return check_class_labels(name, y, batch, C + 1, meaning=meaning, device=device)

    def given(self, y: int | Tensor) -> ScoreModel:
        """The score model of class ``y`` with the label bound: ``given(y)(t, x) = self(t, x, y)``.

        ``y`` is an int (every sample) or an int64 ``[B]`` tensor (one label per sample, for batches
        of B); ``given(self.null_label)`` is the unconditional model. The result shares this model's
        network (training it trains this model) and is an unconditional :class:`ScoreModel`, so it
        is a ``score_fn(t, x)`` for every sampler and the likelihood, and every loss trains through
        it: :meth:`sdegen.losses.Loss.labelled_per_sample`.
        """
        if not self.is_conditional:
            self.check_labels(y, torch.empty(0))
        checked = self._labels("y", y, None, None)
        labels: int | Tensor = int(checked) if checked.ndim == 0 else checked
        return ScoreModel(_LabelledNet(self.net, labels), self.sde, self.parameterization)

    # -- evaluation ------------------------------------------------------------------------------
    def kernel(self, t: Tensor) -> GaussianKernel:
        """alpha(t) and sigma(t) of the SDE at times ``t`` (shape ``[B]``)."""
        return GaussianKernel.of(self.sde, t)

    def _net(self, t: Tensor, x: Tensor, y: int | Tensor | None, kernel: GaussianKernel | None) -> Tensor:
        """The network at times ``t`` ``[B]``, with the labels ``y`` exactly when it is conditional,
        on the input the parameterisation makes of ``(t, x)`` (itself, unless it preconditions)."""
        if y is None:
            if self.is_conditional:
                raise ValueError(
                    f"this ScoreModel is class-conditional (n_classes={self.n_classes}): call it as "
                    f"model(t, x, y) with labels y in 0..{self.n_classes - 1} (or the null label "
                    f"{self.null_label} for the unconditional score), or sample model.given(y) or "
                    f"ClassifierFreeGuidance(model, y, guidance)"
                )
            return self.net(*self.parameterization.network_input(t, x, kernel))
        if not self.is_conditional:
            self.check_labels(y, x)
        if isinstance(y, int) and not isinstance(y, bool):
            y = torch.full((x.shape[0],), y, dtype=torch.int64, device=x.device)
        elif torch.is_tensor(y) and y.device.type == "cpu":  # free on the CPU; see check_class_labels
            y = self.check_labels(y, x)
        return self.net(*self.parameterization.network_input(t, x, kernel), y)

    def _kernel_if_needed(self, t: Tensor) -> GaussianKernel | None:
        return self.kernel(t) if self.parameterization.needs_kernel else None

    def output(self, t: float | Tensor, x: Tensor, y: int | Tensor | None = None) -> Tensor:
        """The raw network output ``net(t, x)`` (``net(t, x, y)``), with ``t`` broadcast to ``[B]``
        (for :class:`EDMPreconditioning`: ``net(c_noise, c_in x / alpha)``)."""
        tb = batch_time(t, x)
        return self._net(tb, x, y, self._kernel_if_needed(tb))

    def forward(self, t: float | Tensor, x: Tensor, y: int | Tensor | None = None) -> Tensor:
        """The score s_theta(t, x) (of class ``y`` for a conditional model), shaped like ``x``."""
        # t is not range-checked here: that would synchronise a GPU on every solver step, and
        # the samplers and the likelihood validate their time grids once, up front. Likewise the
        # range of y, checked where labels enter (losses, given, guidance).
        check_batch_shape("x", x)
        tb = batch_time(t, x)
        kernel = self._kernel_if_needed(tb)
        return self.parameterization.to_score(self._net(tb, x, y, kernel), x, kernel)

    def data_prediction(self, t: float | Tensor, x: Tensor, y: int | Tensor | None = None) -> Tensor:
        """x0_hat(t, x) = E[x_0 | x_t = x] from the network's output without passing through the score."""
        return self._prediction("data_prediction", self.parameterization.to_data, t, x, y)

    def noise_prediction(self, t: float | Tensor, x: Tensor, y: int | Tensor | None = None) -> Tensor:
        """eps_hat(t, x) = E[z | x_t = x] from the network's output without passing through the score."""
        return self._prediction("noise_prediction", self.parameterization.to_noise, t, x, y)

    def _prediction(
        self, what: str, convert: Callable[..., Tensor], t: float | Tensor, x: Tensor, y: int | Tensor | None
    ) -> Tensor:
        """``convert(net output, x, kernel)``: the network's output as the prediction ``what``."""
        check_batch_shape("x", x)
        self._require_kernel(what)
        tb = batch_time(t, x)
        kernel = self.kernel(tb)
        return convert(self._net(tb, x, y, kernel), x, kernel)

    def _require_kernel(self, what: str) -> None:
        check_linear_sde(self.sde, f"ScoreModel.{what}")

    def extra_repr(self) -> str:
        classes = "" if self.n_classes is None else f", n_classes={self.n_classes}"
        return f"sde={self.sde!r}, parameterization={self.parameterization!r}{classes}"


class _LabelledNet(nn.Module):
    """``net(t, x, y)`` with the labels bound: a network ``(t, x)`` sharing ``net``'s parameters.

    An int label serves any batch; a ``[B]`` tensor of labels serves batches of B only.
    """

    def __init__(self, net: nn.Module, y: int | Tensor) -> None:
        super().__init__()
        self.net = net
        self.y = y
        # What the shape checks (check_fits_model) read from a network.
        for attr in ("data_shape", "in_channels"):
            if hasattr(net, attr):
                setattr(self, attr, getattr(net, attr))

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        if isinstance(self.y, int):
            y = torch.full((x.shape[0],), self.y, dtype=torch.int64, device=x.device)
        elif self.y.shape[0] != x.shape[0]:
            raise ValueError(
                f"the model was given {self.y.shape[0]} labels but is evaluated on a batch of {x.shape[0]}; "
                f"give one label per sample, or an int label for every sample"
            )
        else:
            y = self.y.to(x.device)
        return self.net(t, x, y)

    def extra_repr(self) -> str:
        return f"y={self.y}" if isinstance(self.y, int) else f"y=<{self.y.shape[0]} labels>"
