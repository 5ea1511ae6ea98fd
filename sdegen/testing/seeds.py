"""Independent random streams for the parts of one check, all derived from the check's ``seed``.

A verdict such as :func:`~sdegen.testing.check_samples` draws several samples: a reference for the
moments, a reference for each two-sample statistic and the true-vs-true pairs of each statistic's
null. Seeding them ``seed``, ``seed + 1``, ... makes parts that use the same offset draw the same
numbers, so two statistics meant to be independent share their randomness. Instead each part asks
for the stream of its own purpose: numpy's ``SeedSequence`` hashes ``(seed, purpose)`` into a
64-bit seed (NumPy NEP 19), so streams of different purposes, or of different seeds, do not overlap.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

__all__ = ["derived_seed", "stream"]


def derived_seed(seed: int, purpose: str) -> int:
    """A 64-bit seed for ``purpose``, a function of ``(seed, purpose)`` only."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got seed={seed!r}")
    key = zlib.crc32(purpose.encode())
    state = np.random.SeedSequence(seed, spawn_key=(key,)).generate_state(1, dtype=np.uint64)
    return int(state[0])


def stream(seed: int, purpose: str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derived_seed` ``(seed, purpose)``."""
    return torch.Generator().manual_seed(derived_seed(seed, purpose))
