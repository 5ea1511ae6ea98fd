"""Time grids T = t_0 > t_1 > ... > t_N = eps that samplers step through."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["uniform_times"]


def uniform_times(T: float, t_end: float, steps: int) -> Tensor:
    """``steps + 1`` equally spaced times from T down to ``t_end``, in float64 (as EDM keeps grids)."""
    return torch.linspace(T, t_end, steps + 1, dtype=torch.float64)
