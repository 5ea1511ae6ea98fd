"""Sources of training batches, addressed by step number so that training can resume exactly.

``source.batch(step, generator)`` returns the minibatch of a training step. A finite data set is
visited in epochs, each a permutation drawn from a generator seeded by ``(seed, epoch)``, so batch
``step`` is a function of ``step`` alone and needs no saved iterator state; randomness within a
batch (fresh samples, dequantization noise) comes from the trainer's generator, whose state the
checkpoint keeps.

A labelled source (``n_classes`` not None) returns a :class:`LabelledBatch` ``(x, y)``: the data and
their int64 class labels, for class-conditional models and classifiers.

A training step's batch is global: with several processes (or accumulated micro-batches) each
takes its ``rows`` of it, and those rows are exactly the rows of the undivided batch, random numbers
and labels included (every process draws the randomness of the whole batch from the same stream and
keeps its rows), so training does not depend on how the batch is split.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import torch
from torch import Tensor

from sdegen._checks import check_bool, check_int, check_steps
from sdegen.data.images import ImageData, check_dataset_labels
from sdegen.data.toy import ToyDistribution
from sdegen.random import GlobalBatchGenerator

__all__ = ["BatchSource", "DistributionBatches", "DatasetBatches", "LabelledBatch"]


class LabelledBatch(NamedTuple):
    """A minibatch ``x`` ``[B, ...]`` and its class labels ``y`` (int64 ``[B]``, on ``x``'s device)."""

    x: Tensor
    y: Tensor


class BatchSource(abc.ABC):
    """Minibatches of shape ``[batch_size, *event_shape]`` for each training step.

    ``n_classes`` is None for unlabelled batches (``batch`` returns a tensor) and the number of
    classes for labelled ones (``batch`` returns a :class:`LabelledBatch`).
    """

    batch_size: int
    event_shape: tuple[int, ...]
    n_classes: int | None = None

    @abc.abstractmethod
    def batch(
        self,
        step: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        rows: tuple[int, int] | None = None,
    ) -> Tensor | LabelledBatch:
        """The batch for training step ``step`` (0-based), or its rows ``start:stop`` (``rows``)."""

    def _rows(self, rows: tuple[int, int] | None) -> tuple[int, int]:
        if rows is None:
            return 0, self.batch_size
        start, stop = rows
        if not 0 <= start < stop <= self.batch_size:
            raise ValueError(
                f"rows must lie in [0, batch_size={self.batch_size}] with start < stop; got {rows}"
            )
        return start, stop


class DistributionBatches(BatchSource):
    """Fresh samples of a :class:`~sdegen.data.toy.ToyDistribution` at every step.

    With ``labels=True`` (a labelled distribution: the Gaussian mixtures, the moons) each batch is a
    :class:`LabelledBatch` of points and their classes, the points being those of ``labels=False``.
    """

    def __init__(self, distribution: ToyDistribution, batch_size: int, *, labels: bool = False) -> None:
        if not isinstance(distribution, ToyDistribution):
            raise TypeError(f"distribution must be a ToyDistribution; got {type(distribution).__name__}")
        if not isinstance(labels, bool):
            raise TypeError(f"labels must be a bool; got {labels!r}")
        if labels and distribution.n_classes is None:
            raise ValueError(
                f"labels=True needs a labelled distribution; {distribution!r} has no classes (the "
                f"Gaussian mixtures ring and grid and the moons have)"
            )
        self.distribution = distribution
        self.batch_size = check_steps("batch_size", batch_size)
        self.event_shape = distribution.event_shape
        self.n_classes = distribution.n_classes if labels else None

    def batch(
        self, step, generator=None, *, device=None, dtype=torch.float32, rows=None
    ) -> Tensor | LabelledBatch:
        start, stop = self._rows(rows)
        whole = (start, stop) == (0, self.batch_size)
        # The whole batch is drawn (fresh samples are cheap) and the rows kept, labels with points.
        if self.n_classes is None:
            x = self.distribution.sample(self.batch_size, generator, device=device, dtype=dtype)
            return x if whole else x[start:stop]
        x, y = self.distribution.sample_labelled(self.batch_size, generator, device=device, dtype=dtype)
        return LabelledBatch(x, y) if whole else LabelledBatch(x[start:stop], y[start:stop])


class DatasetBatches(BatchSource):
    """Epochs of random minibatches of a finite data set: a float tensor ``[N, ...]`` or an
    :class:`~sdegen.data.images.ImageData` (dequantized with the trainer's generator).

    An epoch has ``N // batch_size`` batches (the remainder is dropped, as with ``drop_last``);
    the order in epoch e is ``randperm(N)`` from a generator seeded with ``seed`` and e.

    With ``labels`` (int64 ``[N]``, classes 0..C-1, e.g. ``images.labels`` of a labelled
    :class:`~sdegen.data.ImageData`) each batch is a :class:`LabelledBatch` of the examples and
    their labels; ``n_classes`` is C (given, or the largest label + 1).
    """

    def __init__(
        self,
        data: Tensor | ImageData,
        batch_size: int,
        *,
        seed: int = 0,
        dequantize: bool = True,
        labels: Tensor | None = None,
        n_classes: int | None = None,
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
        self.data, self.dequantize = data, check_bool("dequantize", dequantize)
        self.seed = check_int("seed", seed, 0)
        self.batch_size = check_steps("batch_size", batch_size)
        if self.batch_size > len(data):
            raise ValueError(
                f"batch_size must be <= the number of examples {len(data)}; got batch_size={batch_size}"
            )
        self.batches_per_epoch = len(data) // self.batch_size
        self._epoch: tuple[int, Tensor] | None = None
        self.labels = None if labels is None else check_dataset_labels(labels, len(data))
        if n_classes is not None and labels is None:
            raise ValueError("n_classes is the number of classes of labels; pass labels=... with it")
        if self.labels is not None:
            largest = int(self.labels.max()) if len(data) else -1
            if n_classes is None:
                n_classes = largest + 1
            elif check_steps("n_classes", n_classes) <= largest:
                raise ValueError(
                    f"labels must lie in 0..n_classes-1 = 0..{n_classes - 1}; got a label {largest}"
                )
        self.n_classes = n_classes

    def indices(self, step: int) -> Tensor:
        """The example indices of batch ``step``."""
        epoch, position = divmod(int(step), self.batches_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            self._epoch = (epoch, torch.randperm(len(self.data), generator=g))
        return self._epoch[1][position * self.batch_size : (position + 1) * self.batch_size]

    def batch(
        self, step, generator=None, *, device=None, dtype=torch.float32, rows=None
    ) -> Tensor | LabelledBatch:
        start, stop = self._rows(rows)
        idx = self.indices(step)[start:stop]
        if isinstance(self.data, ImageData):
            pixels = self.data.pixels[idx].to(device)
            # The dequantization noise of the rows is theirs in the whole batch's draw.
            if generator is None or isinstance(generator, torch.Generator):
                generator = GlobalBatchGenerator(generator, self.batch_size).rows(start, stop)
            x = self.data.to_model(pixels, generator, dequantize=self.dequantize, dtype=dtype)
        else:
            x = self.data[idx].to(device=device, dtype=dtype)
        if self.labels is None:
            return x
        return LabelledBatch(x, self.labels[idx].to(x.device))
