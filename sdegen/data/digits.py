"""scikit-learn's bundled 8x8 handwritten digits: the default image set, no download needed."""

from __future__ import annotations

from typing import Literal

import torch

from sdegen.data.images import ImageData

__all__ = ["load_digits"]


def load_digits(
    split: Literal["train", "test", "all"] = "train", *, test_fraction: float = 0.2, split_seed: int = 0
) -> ImageData:
    """The 1797 8x8 digits of scikit-learn (UCI optdigits), pixels in {0, ..., 16}: 17 levels,
    with their digit labels 0..9 (``.labels``).

    ``split`` selects a reproducible random train/test split (``test_fraction`` of the images in
    the test part, the permutation drawn from ``split_seed``) or ``"all"``. Shape ``[N, 1, 8, 8]``.
    Needs scikit-learn (``pip install sdegen[train]``), which ships the data.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all'; got split={split!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("the digits need scikit-learn; install it with `pip install sdegen[train]`") from e
    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images).round().to(torch.uint8).unsqueeze(1)
    data = ImageData(images, levels=17, name="digits", labels=torch.from_numpy(bunch.target).long())
    if split == "all":
        return data
    train, test = data.split(test_fraction, seed=split_seed)
    return train if split == "train" else test
