"""Time-conditioned MLPs for vector data (and any data shape, flattened): a score network and a classifier."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sdegen._broadcast import batch_time
from sdegen._checks import check_steps
from sdegen.nn.time_embedding import ClassConditional, ClassEmbedding, GaussianFourierFeatures, embed_label

__all__ = ["ScoreMLP", "MLPClassifier"]


class _TimeMLP(ClassConditional, nn.Module):
    """h_0 = x;  h_{l+1} = SiLU(W_l h_l + V_l e);  out = W_L h_L, with e = e(t) (+ the label's embedding).

    The trunk shared by :class:`ScoreMLP` and :class:`MLPClassifier`; ``out_features`` sets the
    width of the last layer.
    """

    def __init__(
        self,
        data_shape: int | Sequence[int],
        out_features: int | None,
        hidden: int,
        depth: int,
        time_dim: int,
        fourier_scale: float,
        n_classes: int | None,
    ) -> None:
        super().__init__()
        self.data_shape = (data_shape,) if isinstance(data_shape, int) else tuple(data_shape)
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1; got depth={depth}, hidden={hidden}")
        d = math.prod(self.data_shape)
        self.time_embed = GaussianFourierFeatures(time_dim, fourier_scale)
        widths = [d] + [hidden] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.time_proj = nn.ModuleList(nn.Linear(time_dim, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, d if out_features is None else out_features)
        self.act = nn.SiLU()
        # Registered only when conditional, so that an unconditional network's parameters (and its
        # checkpoints) are those it always had.
        self.label_embed = None if n_classes is None else ClassEmbedding(n_classes, time_dim)

    def _features(self, t: Tensor | float, x: Tensor, y: Tensor | None) -> Tensor:
        emb = self.time_embed(batch_time(t, x))
        label = embed_label(self, self.label_embed, y, x)
        if label is not None:
            emb = emb + label.to(emb.dtype)
        h = x.reshape(x.shape[0], -1)
        for layer, proj in zip(self.layers, self.time_proj, strict=True):
            h = self.act(layer(h) + proj(emb))
        return self.out(h)

    @torch.no_grad()
    def n_parameters(self) -> int:
        """The number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class ScoreMLP(_TimeMLP):
    """MLP network ``(t, x[, y]) -> [B, *shape]`` with Gaussian Fourier time features added to every layer.

    h_0 = x;  h_{l+1} = SiLU(W_l h_l + V_l e(t));  out = W_L h_L,  with e(t) the Fourier features.
    ``x`` of shape ``[B, *data_shape]`` is flattened and the output reshaped back, so it serves any
    data shape. What the output means (score, noise, data) is set by the parameterisation that
    wraps it.

    With ``n_classes=C`` the network is class-conditional, ``net(t, x, y)`` with int64 labels
    ``y`` ``[B]``: a learned embedding of y (:class:`~sdegen.nn.ClassEmbedding`, rows 0..C-1 and
    the null label C) is added to e(t), and so enters every layer. The null label is the
    unconditional model of classifier-free guidance.

    Args:
        data_shape: shape of one sample, e.g. ``(2,)``.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        time_dim: number of Fourier features.
        fourier_scale: std of the Fourier frequencies (t is in [0, T]).
        n_classes: C for a class-conditional network; None (default) for an unconditional one.
    """

    def __init__(
        self,
        data_shape: int | Sequence[int],
        hidden: int = 256,
        depth: int = 3,
        time_dim: int = 64,
        fourier_scale: float = 4.0,
        *,
        n_classes: int | None = None,
    ) -> None:
        super().__init__(data_shape, None, hidden, depth, time_dim, fourier_scale, n_classes)

    def forward(self, t: Tensor | float, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self._features(t, x, y).reshape(x.shape)


class MLPClassifier(_TimeMLP):
    """A noise-conditional classifier ``(t, x) -> logits [B, C]``: the trunk of :class:`ScoreMLP` with C outputs.

    Trained by :class:`~sdegen.classifier.NoisyClassifierLoss` on x_t = alpha(t) x0 + sigma(t) z, its
    softmax estimates p_t(y | x), the posterior of the class given the noised data (Song et al.
    2021, sec. 5 and appendix I.1); wrap it in :class:`~sdegen.classifier.NoisyClassifier`.

    Args:
        data_shape: shape of one sample, e.g. ``(2,)``.
        n_classes: C, the number of classes.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        time_dim: number of Fourier features.
        fourier_scale: std of the Fourier frequencies.
    """

    def __init__(
        self,
        data_shape: int | Sequence[int],
        n_classes: int,
        hidden: int = 256,
        depth: int = 3,
        time_dim: int = 64,
        fourier_scale: float = 4.0,
    ) -> None:
        super().__init__(
            data_shape, check_steps("n_classes", n_classes), hidden, depth, time_dim, fourier_scale, None
        )
        self.n_outputs = n_classes

    @property
    def n_classes(self) -> int:  # type: ignore[override]
        """C, the number of classes (the width of the logits)."""
        return self.n_outputs

    @property
    def null_label(self) -> None:  # type: ignore[override]
        return None

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        return self._features(t, x, None)
