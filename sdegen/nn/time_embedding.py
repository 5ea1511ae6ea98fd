"""Embeddings of the diffusion time t for conditioning a score network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GaussianFourierFeatures"]


class GaussianFourierFeatures(nn.Module):
    """Random Fourier features [sin(2 pi W t), cos(2 pi W t)] with fixed W ~ N(0, scale^2).

    Tancik et al. 2020, "Fourier features let networks learn high frequency functions"; used for
    time conditioning by Song et al. 2021 (NCSN++). ``W`` is a buffer (saved, never trained).
    ``t`` of shape ``[B]`` maps to ``[B, dim]``.
    """

    def __init__(self, dim: int, scale: float = 16.0) -> None:
        super().__init__()
        if dim <= 0 or dim % 2:
            raise ValueError(f"dim must be a positive even number; got dim={dim}")
        # Drawn from a fixed generator so that two networks built alike are identical.
        w = torch.randn(dim // 2, generator=torch.Generator().manual_seed(0)) * scale
        self.register_buffer("W", w)

    def forward(self, t: Tensor) -> Tensor:
        proj = 2 * math.pi * t[:, None].to(self.W.dtype) * self.W[None, :]
        return torch.cat([proj.sin(), proj.cos()], dim=-1)
