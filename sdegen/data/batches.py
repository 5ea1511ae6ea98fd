"""Sources of training batches, addressed by step number so that training can resume exactly.

``source.batch(step, generator)`` returns the minibatch of a training step. A finite data set is
visited in epochs, each a permutation drawn from a generator seeded by ``(seed, epoch)``, so batch
``step`` is a function of ``step`` alone and needs no saved iterator state; randomness within a
batch (fresh samples, dequantization noise) comes from the trainer's generator, whose state the
checkpoint keeps.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from sdegen._checks import check_steps
from sdegen.data.images import ImageData
from sdegen.data.toy import ToyDistribution

__all__ = ["BatchSource", "DistributionBatches", "DatasetBatches"]


class BatchSource(abc.ABC):
    """Minibatches of shape ``[batch_size, *event_shape]`` for each training step."""

    batch_size: int
    event_shape: tuple[int, ...]

    @abc.abstractmethod
    def batch(
        self,
        step: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """The batch for training step ``step`` (0-based)."""


class DistributionBatches(BatchSource):
    """Fresh samples of a :class:`~sdegen.data.toy.ToyDistribution` at every step."""

    def __init__(self, distribution: ToyDistribution, batch_size: int) -> None:
        if not isinstance(distribution, ToyDistribution):
            raise TypeError(f"distribution must be a ToyDistribution; got {type(distribution).__name__}")
        self.distribution = distribution
        self.batch_size = check_steps("batch_size", batch_size)
        self.event_shape = distribution.event_shape

    def batch(self, step, generator=None, *, device=None, dtype=torch.float32) -> Tensor:
        return self.distribution.sample(self.batch_size, generator, device=device, dtype=dtype)


class DatasetBatches(BatchSource):
    """Epochs of random minibatches of a finite data set: a float tensor ``[N, ...]`` or an
    :class:`~sdegen.data.images.ImageData` (dequantized with the trainer's generator).

    An epoch has ``N // batch_size`` batches (the remainder is dropped, as with ``drop_last``);
    the order in epoch e is ``randperm(N)`` from a generator seeded with ``seed`` and e.
    """

    def __init__(
        self, data: Tensor | ImageData, batch_size: int, *, seed: int = 0, dequantize: bool = True
    ) -> None:
        if isinstance(data, ImageData):
            self.event_shape = data.event_shape
        elif torch.is_tensor(data) and data.is_floating_point() and data.ndim >= 2:
            self.event_shape = tuple(data.shape[1:])
        else:
            raise TypeError(
                "data must be a floating tensor [N, ...] or an ImageData; got "
                + (
                    f"a tensor of shape {tuple(data.shape)}, dtype {data.dtype}"
                    if torch.is_tensor(data)
                    else type(data).__name__
                )
            )
        self.data, self.seed, self.dequantize = data, int(seed), bool(dequantize)
        self.batch_size = check_steps("batch_size", batch_size)
        if self.batch_size > len(data):
            raise ValueError(
                f"batch_size must be <= the number of examples {len(data)}; got batch_size={batch_size}"
            )
        self.batches_per_epoch = len(data) // self.batch_size
        self._epoch: tuple[int, Tensor] | None = None

    def indices(self, step: int) -> Tensor:
        """The example indices of batch ``step``."""
        epoch, position = divmod(int(step), self.batches_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            self._epoch = (epoch, torch.randperm(len(self.data), generator=g))
        return self._epoch[1][position * self.batch_size : (position + 1) * self.batch_size]

    def batch(self, step, generator=None, *, device=None, dtype=torch.float32) -> Tensor:
        idx = self.indices(step)
        if isinstance(self.data, ImageData):
            pixels = self.data.pixels[idx].to(device)
            return self.data.to_model(pixels, generator, dequantize=self.dequantize, dtype=dtype)
        return self.data[idx].to(device=device, dtype=dtype)
