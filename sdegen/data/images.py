"""Images as integer pixels, and their map to the continuous space a score model works in.

An :class:`ImageData` holds ``N`` images of integer pixels k in {0, ..., levels - 1}, shape
``[N, C, H, W]``. The model sees

    x = 2 (k + u) / levels - 1 in [-1, 1],   u ~ U[0, 1)^d  (uniform dequantization),

so a continuous density p(x) on [-1, 1]^d gives the discrete model P(k) >= E_u[p(x)] (2 / levels)^d
(Theis, van den Oord and Bethge 2016, sec. 3.1). :meth:`ImageData.bits_per_dim` turns log p(x)
into that bound in bits per dimension, -(log p(x) + d log(2 / levels)) / (d log 2).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_class_labels, check_steps

__all__ = ["ImageData"]


class ImageData:
    """``pixels`` of shape ``[N, C, H, W]`` with integer values in [0, levels), and perhaps class labels.

    ``labels`` (int64 ``[N]``, classes 0..n_classes-1) make a labelled image set, for
    class-conditional models and classifiers: ``DatasetBatches(images, B, labels=images.labels)``.
    """

    def __init__(
        self, pixels: Tensor, levels: int = 256, *, name: str = "images", labels: Tensor | None = None
    ) -> None:
        if not torch.is_tensor(pixels) or pixels.ndim != 4:
            shape = tuple(pixels.shape) if torch.is_tensor(pixels) else type(pixels).__name__
            raise ValueError(f"pixels must be a tensor of shape [N, C, H, W]; got {shape}")
        if pixels.is_floating_point():
            raise TypeError(f"pixels must hold integers (uint8 or int); got dtype {pixels.dtype}")
        self.levels = check_steps("levels", levels, minimum=2)
        if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= levels):
            raise ValueError(
                f"pixels must lie in [0, {levels - 1}] for levels={levels}; got range "
                f"[{int(pixels.min())}, {int(pixels.max())}]"
            )
        self.pixels = pixels if levels > 256 else pixels.to(torch.uint8)
        self.name = name
        #: int64 ``[N]`` class labels, or None
        self.labels = None if labels is None else check_dataset_labels(labels, pixels.shape[0])

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __repr__(self) -> str:
        classes = "" if self.labels is None else f", classes={self.n_classes}"
        return f"ImageData({self.name!r}, n={len(self)}, shape={self.event_shape}, levels={self.levels}{classes})"

    @property
    def n_classes(self) -> int | None:
        """The number of classes of a labelled set (labels 0..n_classes-1), else None."""
        return None if self.labels is None else int(self.labels.max()) + 1

    @property
    def event_shape(self) -> tuple[int, int, int]:
        """The shape ``(C, H, W)`` of one image."""
        c, h, w = self.pixels.shape[1:]
        return (c, h, w)

    def to_model(
        self,
        pixels: Tensor,
        generator: random.RandomSource = None,
        *,
        dequantize: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Pixels k -> x = 2 (k + u) / levels - 1, with u ~ U[0, 1) or, without dequantization, 1/2."""
        k = pixels.to(dtype)
        if dequantize:
            k = k + random.rand(k.shape, generator, device=k.device, dtype=dtype)
        else:
            k = k + 0.5
        return 2 * k / self.levels - 1

    def to_unit_interval(self, x: Tensor) -> Tensor:
        """Model space [-1, 1] -> [0, 1] for display, clamped."""
        return ((x + 1) / 2).clamp(0, 1)

    def bits_per_dim(self, logp: Tensor, x_shape: tuple[int, ...] | None = None) -> Tensor:
        """Bits per dimension of the discrete data from log p(x) in nats of model-space x, ``[B]``.

        bpd = -(log p(x) + d log(2 / levels)) / (d log 2), with d = C H W: the change of variables
        from [-1, 1] to bins of width 1 / levels (module docstring).
        """
        d = math.prod(x_shape or self.event_shape)
        return -(logp + d * math.log(2 / self.levels)) / (d * math.log(2))

    def split(self, fraction: float, *, seed: int = 0) -> tuple[ImageData, ImageData]:
        """A reproducible random split into (first, second) parts, ``fraction`` of it in the second."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must lie in (0, 1); got fraction={fraction!r}")
        n = len(self)
        n_second = max(1, round(fraction * n))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        second, first = perm[:n_second].sort().values, perm[n_second:].sort().values
        return self._subset(first), self._subset(second)

    def _subset(self, index: Tensor) -> ImageData:
        labels = None if self.labels is None else self.labels[index]
        return ImageData(self.pixels[index], self.levels, name=self.name, labels=labels)


def check_dataset_labels(labels: object, n: int, name: str = "labels") -> Tensor:
    """``labels`` as an int64 CPU tensor ``[n]`` of classes 0..C-1 (every value >= 0), or raise naming it."""
    if not torch.is_tensor(labels):
        raise TypeError(f"{name} must be an int64 tensor [N] of class labels; got {type(labels).__name__}")
    if labels.ndim == 0:
        raise ValueError(f"{name} must have one label per example, shape [{n}]; got shape ()")
    return check_class_labels(name, labels.detach().cpu(), n, None, meaning="class labels >= 0")
