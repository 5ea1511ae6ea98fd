"""Data: 2-D distributions with known densities, image sets, and resumable batch sources, labelled or not."""

from sdegen.data.batches import BatchSource, DatasetBatches, DistributionBatches, LabelledBatch
from sdegen.data.digits import load_digits
from sdegen.data.images import ImageData
from sdegen.data.toy import (
    Checkerboard,
    GaussianMixtureData,
    Moons,
    SwissRoll,
    ToyDistribution,
    grid,
    ring,
)
from sdegen.data.vision import load_cifar10, load_image_folder, load_mnist

__all__ = [
    "ToyDistribution",
    "GaussianMixtureData",
    "ring",
    "grid",
    "Moons",
    "SwissRoll",
    "Checkerboard",
    "ImageData",
    "load_digits",
    "load_mnist",
    "load_cifar10",
    "load_image_folder",
    "BatchSource",
    "DistributionBatches",
    "DatasetBatches",
    "LabelledBatch",
]
