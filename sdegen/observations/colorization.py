"""Colorization: the grayscale image (the mean over channels) is observed, the colours are free."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sdegen.observations.base import Observation, as_float64, check_noise_std

__all__ = ["Colorization"]


class Colorization(Observation):
    """The channel mean of an image x_0 of shape ``[C, H, W]`` is observed: y = mean_c x_0[c] + s n.

    Per pixel, A is the row (1, ..., 1) / C, so the observed coordinate is sum_c x[c] / sqrt(C)
    (u = sqrt(C) y, s_j = sqrt(C) s) and the free ones are C - 1 orthonormal contrasts between the
    channels: the decoupling of score_sde's colorization (Song et al. 2021, appendix I.2), whose
    orthogonal 3 x 3 matrix has (1, 1, 1) / sqrt(3) as its first column.

    Args:
        gray: the observed channel mean, ``[1, H, W]`` (shared by every sample) or ``[B, 1, H, W]``.
        channels: C, the number of colour channels of the data (3 for RGB).
        noise_std: s >= 0, the standard deviation of the observation noise on the gray image.
    """

    def __init__(self, gray: Tensor, channels: int = 3, noise_std: float = 0.0) -> None:
        gray = as_float64("gray", gray)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 2:
            raise ValueError(f"channels must be an int >= 2 (3 for RGB); got channels={channels!r}")
        if gray.ndim == 3:
            gray = gray[None]
        if gray.ndim != 4 or gray.shape[1] != 1:
            raise ValueError(
                f"gray must have shape [1, H, W] or [B, 1, H, W] (the channel mean of the image); got "
                f"shape {tuple(gray.shape)}"
            )
        if not bool(torch.isfinite(gray).all()):
            raise ValueError("gray must be finite")
        self.channels = channels
        H, W = gray.shape[2], gray.shape[3]
        u = math.sqrt(channels) * gray.reshape(gray.shape[0], H * W)
        s = check_noise_std(noise_std)
        self._init_base(
            (channels, H, W),
            u if u.shape[0] > 1 else u[0],
            torch.full((H * W,), math.sqrt(channels) * s, dtype=torch.float64),
            s,
        )

    def coordinates(self, x: Tensor) -> Tensor:
        return x.sum(dim=1).reshape(x.shape[0], -1) / math.sqrt(self.channels)

    def embed(self, c: Tensor) -> Tensor:
        C, H, W = self.event_shape
        return (c / math.sqrt(C)).reshape(c.shape[0], 1, H, W).expand(c.shape[0], C, H, W).contiguous()

    def basis(self) -> Tensor:
        C, H, W = self.event_shape
        # Row p of V^T: 1 / sqrt(C) at pixel p of every channel (layout [C, H, W] flattened).
        eye = torch.eye(H * W, dtype=torch.float64)
        return torch.cat([eye] * C, dim=1) / math.sqrt(C)
