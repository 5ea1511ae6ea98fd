"""A time-conditioned MLP for vector data (and any data shape, flattened)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sdegen._broadcast import batch_time
from sdegen.nn.time_embedding import GaussianFourierFeatures

__all__ = ["ScoreMLP"]


class ScoreMLP(nn.Module):
    """MLP network ``(t, x) -> [B, *shape]`` with Gaussian Fourier time features added to every layer.

    h_0 = x;  h_{l+1} = SiLU(W_l h_l + V_l e(t));  out = W_L h_L,  with e(t) the Fourier features.
    ``x`` of shape ``[B, *data_shape]`` is flattened and the output reshaped back, so it serves any
    data shape. What the output means (score, noise, data) is set by the parameterisation that
    wraps it.

    Args:
        data_shape: shape of one sample, e.g. ``(2,)``.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        time_dim: number of Fourier features.
        fourier_scale: std of the Fourier frequencies (t is in [0, T]).
    """

    def __init__(
        self,
        data_shape: int | Sequence[int],
        hidden: int = 256,
        depth: int = 3,
        time_dim: int = 64,
        fourier_scale: float = 4.0,
    ) -> None:
        super().__init__()
        self.data_shape = (data_shape,) if isinstance(data_shape, int) else tuple(data_shape)
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1; got depth={depth}, hidden={hidden}")
        d = math.prod(self.data_shape)
        self.time_embed = GaussianFourierFeatures(time_dim, fourier_scale)
        widths = [d] + [hidden] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.time_proj = nn.ModuleList(nn.Linear(time_dim, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, d)
        self.act = nn.SiLU()

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        emb = self.time_embed(batch_time(t, x))
        h = x.reshape(x.shape[0], -1)
        for layer, proj in zip(self.layers, self.time_proj, strict=True):
            h = self.act(layer(h) + proj(emb))
        return self.out(h).reshape(x.shape)

    @torch.no_grad()
    def n_parameters(self) -> int:
        """The number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
