"""Broadcasting per-sample quantities against states of any shape ``[B, ...]``.

Every module uses these two helpers instead of writing ``[:, None, None, None]`` by hand, so the
library is shape-agnostic in one place.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["expand_like", "batch_time"]


def expand_like(v: Tensor, x: Tensor) -> Tensor:
    """View a per-sample tensor ``v`` of shape ``[B]`` (or a scalar) so it broadcasts against ``x``.

    ``[B] -> [B, 1, ..., 1]`` with ``x.ndim`` dimensions; a 0-d tensor is returned unchanged.
    """
    if v.ndim == 0:
        return v
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def batch_time(t: float | Tensor, x: Tensor) -> Tensor:
    """Return ``t`` as a tensor of shape ``[B]`` on ``x``'s device and dtype.

    A Python number or a 0-d tensor is broadcast to every sample; a ``[B]`` tensor is cast.
    """
    if not torch.is_tensor(t):
        return torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
    t = t.to(device=x.device, dtype=x.dtype)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    return t
