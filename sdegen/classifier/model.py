"""A noise-conditional classifier: a network and the SDE whose noised data it classifies.

For a labelled data distribution p(x_0, y) and the forward kernel x_t = alpha(t) x_0 + sigma(t) z,
the class posterior of the noised data is p_t(y | x) = p_t(x | y) p(y) / p_t(x). A network
``net(t, x) -> logits [B, C]`` trained by cross-entropy on (x_t, y) at random t
(:class:`~sdegen.classifier.NoisyClassifierLoss`) estimates it, and its gradient in x turns an
unconditional score into a class-conditional one (Bayes' rule, Song et al. 2021, eq. 14 and
appendix I.1; Dhariwal and Nichol 2021): :class:`~sdegen.classifier.ClassifierGuidance`.
"""

from __future__ import annotations

from torch import Tensor, nn

from sdegen._broadcast import batch_time
from sdegen._checks import check_batch_shape, check_class_labels, check_sde
from sdegen.sde.base import SDE

__all__ = ["NoisyClassifier"]


class NoisyClassifier(nn.Module):
    """``classifier(t, x) -> logits [B, C]`` with log p_t(y | x) = log_softmax(logits)[y], on the SDE ``sde``.

    The module owns ``net`` (so ``state_dict``, ``.to``, EMA and checkpoints work on it) and records
    the SDE whose marginals it was trained on, so that guidance can refuse a classifier of another
    process. It is the :class:`~sdegen.classifier.NoiseConditionalClassifier` that
    :class:`~sdegen.classifier.ClassifierGuidance` takes.

    Args:
        net: a module ``net(t [B], x [B, ...]) -> [B, C]`` with an attribute ``n_classes`` = C, e.g.
            :class:`~sdegen.classifier.MLPClassifier` or :class:`~sdegen.classifier.UNetClassifier`.
        sde: the forward SDE whose noised data x_t it classifies.
    """

    def __init__(self, net: nn.Module, sde: SDE) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module net(t, x) -> logits; got {type(net).__name__}")
        check_sde(sde)
        n_classes = getattr(net, "n_classes", None)
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(
                f"net must have an attribute n_classes >= 2, the width of its logits (e.g. "
                f"MLPClassifier(2, n_classes=4)); got n_classes={n_classes!r}"
            )
        self.net = net
        self.sde = sde

    @property
    def n_classes(self) -> int:
        """C, the number of classes."""
        return self.net.n_classes

    def forward(self, t: float | Tensor, x: Tensor) -> Tensor:
        """The logits of p_t(y | x), shape ``[B, C]``."""
        check_batch_shape("x", x)
        return self.net(batch_time(t, x), x)

    def log_prob(self, t: float | Tensor, x: Tensor, y: int | Tensor) -> Tensor:
        """log p_t(y | x) of the labels ``y`` (an int or an int64 ``[B]`` tensor), shape ``[B]``."""
        labels = check_class_labels("y", y, x.shape[0], self.n_classes, device=x.device)
        return self(t, x).log_softmax(dim=-1).gather(1, labels[:, None]).squeeze(1)

    def extra_repr(self) -> str:
        return f"sde={self.sde!r}, n_classes={self.n_classes}"
