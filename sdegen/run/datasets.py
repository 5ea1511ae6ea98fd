"""A data set as the CLI uses it (:class:`DataBundle`) and the loaders of the image sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sdegen import data as D
from sdegen.run.errors import SettingsError

__all__ = ["DataBundle", "toy", "digits", "image_folder", "vision"]


@dataclass
class DataBundle:
    """A data set as the CLI uses it: 2-D distribution or image splits, and how to batch it."""

    name: str
    event_shape: tuple[int, ...]
    distribution: D.ToyDistribution | None = None
    train: D.ImageData | None = None
    test: D.ImageData | None = None

    @property
    def is_image(self) -> bool:
        return self.distribution is None

    @property
    def n_classes(self) -> int | None:
        """The number of classes of a labelled set, else None."""
        return self.distribution.n_classes if self.distribution is not None else self.train.n_classes

    def batches(self, batch_size: int, seed: int, *, labels: bool = False) -> D.BatchSource:
        """Training batches; with ``labels`` as :class:`~sdegen.data.LabelledBatch` ``(x, y)``."""
        if self.distribution is not None:
            return D.DistributionBatches(self.distribution, batch_size, labels=labels)
        if batch_size > len(self.train):
            raise SettingsError(f"--batch-size {batch_size} exceeds the {len(self.train)} training images")
        if labels:
            return D.DatasetBatches(
                self.train, batch_size, seed=seed, labels=self.train.labels, n_classes=self.n_classes
            )
        return D.DatasetBatches(self.train, batch_size, seed=seed)

    def held_out(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` held-out points: fresh samples (2-D) or dequantized test images (first ``n``)."""
        if self.distribution is not None:
            return self.distribution.sample(n, generator, dtype=dtype)
        pixels = self.test.pixels[: min(n, len(self.test))]
        return self.test.to_model(pixels, generator, dtype=dtype)

    def held_out_labelled(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor]:
        """The points of :meth:`held_out` (the same for the same generator) and their labels."""
        if self.distribution is not None:
            return self.distribution.sample_labelled(n, generator, dtype=dtype)
        m = min(n, len(self.test))
        return self.test.to_model(self.test.pixels[:m], generator, dtype=dtype), self.test.labels[:m]

    def class_samples(self, labels: Tensor, generator: torch.Generator) -> Tensor:
        """Fresh 2-D points, one of class ``labels[i]`` for each i (the data's p(x | y)), float64."""
        dist = self.distribution
        mixture = getattr(dist, "mixture", None)
        out = torch.empty(labels.shape[0], 2, dtype=torch.float64)
        for k in labels.unique().tolist():
            where = (labels == k).nonzero().reshape(-1)
            if mixture is not None:
                out[where] = mixture.class_conditional(k).sample(where.numel(), generator)
                continue
            found: list[Tensor] = []
            while sum(len(f) for f in found) < where.numel():  # rejection from the joint p(x, y)
                x, y = dist.sample_labelled(4 * where.numel(), generator, dtype=torch.float64)
                found.append(x[y == k])
            out[where] = torch.cat(found)[: where.numel()]
        return out


def toy(make: Any):
    """The loader of a 2-D distribution made by ``make()``."""

    def load(cfg: Mapping[str, Any]) -> DataBundle:
        return DataBundle(cfg["name"], (2,), distribution=make())

    return load


def digits(cfg: Mapping[str, Any]) -> DataBundle:  # labelled: the digit 0..9 of each image
    return DataBundle(cfg["name"], (1, 8, 8), train=D.load_digits("train"), test=D.load_digits("test"))


def _root(cfg: Mapping[str, Any]) -> str:
    root = cfg.get("root")
    if root is None:
        raise SettingsError(f"--data {cfg['name']} needs --data-root DIR")
    return root


def image_folder(cfg: Mapping[str, Any]) -> DataBundle:
    root = _root(cfg)
    images = D.load_image_folder(root, image_size=cfg["image_size"], channels=cfg["channels"])
    if len(images) < 2:
        raise SettingsError(f"--data-root {root} holds {len(images)} image(s); need at least 2")
    train, test = images.split(0.1, seed=0)
    return DataBundle(cfg["name"], images.event_shape, train=train, test=test)


def vision(loader: Any):
    """The loader of a torchvision set read by ``loader(root, split, download=...)``."""

    def load(cfg: Mapping[str, Any]) -> DataBundle:
        root, download = _root(cfg), bool(cfg.get("download"))
        train, test = (loader(root, split, download=download) for split in ("train", "test"))
        return DataBundle(cfg["name"], train.event_shape, train=train, test=test)

    return load
