"""Image sets through torchvision: MNIST, CIFAR-10 and a folder of the user's own images.

Each loader reads the whole split into memory as integer pixels (an :class:`ImageData`), which
keeps batching, seeding and resuming identical for every image set. Nothing is downloaded unless
``download=True``; a missing data set raises ``FileNotFoundError`` saying how to get it.
Needs torchvision (``pip install sdegen[images]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from sdegen.data.images import ImageData

__all__ = ["load_mnist", "load_cifar10", "load_image_folder"]


def _torchvision():
    try:
        import torchvision
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "image data sets need torchvision; install it with `pip install sdegen[images]`"
        ) from e
    return torchvision


def _check_split(split: str) -> bool:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got split={split!r}")
    return split == "train"


def _open(cls, name: str, root: str | Path, train: bool, download: bool):
    try:
        return cls(str(root), train=train, download=download)
    except (OSError, RuntimeError) as e:
        if download:
            # Offline, torchvision raises URLError (CIFAR-10) or RuntimeError (MNIST's mirrors).
            raise ConnectionError(
                f"could not download {name} into {str(root)!r} ({' '.join(str(e).split()) or type(e).__name__}); "
                f"check the network connection, or fetch it elsewhere and point root at the copy"
            ) from e
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise
        raise FileNotFoundError(
            f"{name} not found under {str(root)!r} ({e}); pass download=True "
            f"(sdegen train --download) to fetch it, or point root at an existing copy"
        ) from None


def load_mnist(
    root: str | Path, split: Literal["train", "test"] = "train", *, download: bool = False
) -> ImageData:
    """MNIST (LeCun et al. 1998): 28x28 grey digits, 256 levels, shape ``[N, 1, 28, 28]``."""
    train = _check_split(split)
    ds = _open(_torchvision().datasets.MNIST, "MNIST", root, train, download)
    return ImageData(ds.data.unsqueeze(1), levels=256, name="mnist")


def load_cifar10(
    root: str | Path, split: Literal["train", "test"] = "train", *, download: bool = False
) -> ImageData:
    """CIFAR-10 (Krizhevsky 2009): 32x32 colour images, 256 levels, shape ``[N, 3, 32, 32]``."""
    train = _check_split(split)
    ds = _open(_torchvision().datasets.CIFAR10, "CIFAR-10", root, train, download)
    return ImageData(torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), levels=256, name="cifar10")


def load_image_folder(root: str | Path, *, image_size: int = 32, channels: Literal[1, 3] = 3) -> ImageData:
    """Every image under ``root`` (torchvision ``ImageFolder`` layout: ``root/<class>/<image>``),
    resized so the short side is ``image_size``, centre-cropped to a square, as ``channels``
    channels (1: grey, 3: RGB); 256 levels, shape ``[N, channels, image_size, image_size]``."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got channels={channels!r}")
    if not Path(root).is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    tv = _torchvision()
    T = tv.transforms
    transform = T.Compose(
        [
            T.Lambda(lambda im: im.convert("L" if channels == 1 else "RGB")),
            T.Resize(image_size),
            T.CenterCrop(image_size),
            T.PILToTensor(),
        ]
    )
    try:
        ds = tv.datasets.ImageFolder(str(root), transform=transform)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no images found under {str(root)!r}: {e}") from None
    pixels = torch.stack([ds[i][0] for i in range(len(ds))])
    return ImageData(pixels, levels=256, name=Path(root).name)
