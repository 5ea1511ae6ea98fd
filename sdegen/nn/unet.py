"""A time-conditioned U-Net for images (Ho et al. 2020, with the NCSN++ time embedding).

Residual blocks with GroupNorm and an additive time embedding, self-attention at the lowest
resolutions, skip connections between the down and up paths. Upsampling interpolates to the skip's
size, so any H, W works (8x8, 28x28, 32x32, odd sizes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from sdegen._broadcast import batch_time
from sdegen._checks import check_steps
from sdegen.nn.time_embedding import ClassConditional, ClassEmbedding, GaussianFourierFeatures, embed_label

__all__ = ["UNet", "UNetClassifier", "UNetConfig", "UNET_SIZES"]


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet`.

    ``channel_mults[i]`` scales ``channels`` at resolution level i (each level halves H and W);
    attention is applied at levels listed in ``attention_levels``.
    """

    channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2)
    blocks_per_level: int = 1
    attention_levels: tuple[int, ...] = (1,)
    groups: int = 8
    time_dim: int = 128
    fourier_scale: float = 4.0
    dropout: float = 0.0


UNET_SIZES: dict[str, UNetConfig] = {
    # ~0.22 M: tests and CPU benchmarks on 8x8.
    "tiny": UNetConfig(
        channels=16, channel_mults=(1, 2), blocks_per_level=1, attention_levels=(1,), groups=8
    ),
    # ~1.1 M: 8x8 digits on a CPU in minutes.
    "small": UNetConfig(channels=32, channel_mults=(1, 2, 2), blocks_per_level=1, attention_levels=(2,)),
    # ~6.5 M: MNIST / CIFAR-10 on a GPU.
    "base": UNetConfig(
        channels=64, channel_mults=(1, 2, 2), blocks_per_level=2, attention_levels=(1, 2), groups=32
    ),
}
"""Named sizes for ``UNet.from_size``: tiny (~0.22 M parameters, tests and CPU benchmarks on 8x8),
small (~1.1 M, 8x8 digits on a CPU in minutes), base (~6.5 M, MNIST and CIFAR-10 on a GPU); the
parameter counts are for 1 input channel."""


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the time embedding, twice, with a residual connection."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(math.gcd(groups, c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + rearrange(self.time(emb), "b c -> b c 1 1")
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (three c) h w -> three b 1 (h w) c", three=3)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(rearrange(out, "b 1 (h w) c -> b c h w", h=h, w=w))


class UNet(ClassConditional, nn.Module):
    """U-Net ``(t, x[, y]) -> [B, C, H, W]`` for images ``x`` of shape ``[B, C, H, W]``.

    Build with a config or a named size: ``UNet(1, config=UNET_SIZES["small"])`` or
    ``UNet.from_size("small", in_channels=1)``. With ``n_classes=K`` it is class-conditional,
    ``net(t, x, y)`` with int64 labels ``y`` ``[B]``: a learned embedding of y (rows 0..K-1 and the
    null label K, :class:`~sdegen.nn.ClassEmbedding`) is added to the time embedding that every
    residual block receives, as ADM does (Dhariwal and Nichol 2021).
    """

    def __init__(
        self, in_channels: int, config: UNetConfig | None = None, *, n_classes: int | None = None
    ) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        self.config, self.in_channels = cfg, in_channels
        self.time_embed = _time_mlp(cfg)
        self.stem, self.down, skip_chans, c = _down_path(cfg, in_channels)
        self.mid = _middle(cfg, c)
        chans = [cfg.channels * m for m in cfg.channel_mults]

        self.up = nn.ModuleList()
        for level in reversed(range(len(chans))):
            c_out = chans[level]
            for _ in range(cfg.blocks_per_level + 1):
                self.up.append(_level_block(cfg, c + skip_chans.pop(), c_out, level))
                c = c_out
            if level > 0:
                self.up.append(_Upsample(c))

        self.head = nn.Sequential(nn.GroupNorm(math.gcd(cfg.groups, c), c), nn.SiLU())
        self.out = nn.Conv2d(c, in_channels, 3, padding=1)
        # Registered only when conditional: an unconditional U-Net keeps its parameters and checkpoints.
        self.label_embed = None if n_classes is None else ClassEmbedding(n_classes, cfg.time_dim)

    @classmethod
    def from_size(cls, size: str, in_channels: int, *, n_classes: int | None = None) -> UNet:
        """A U-Net of a documented size: one of ``UNET_SIZES`` ("tiny", "small", "base")."""
        if size not in UNET_SIZES:
            raise ValueError(f"size must be one of {sorted(UNET_SIZES)}; got size={size!r}")
        return cls(in_channels, UNET_SIZES[size], n_classes=n_classes)

    def forward(self, t: Tensor | float, x: Tensor, y: Tensor | None = None) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must have shape [B, C, H, W]; got shape {tuple(x.shape)}")
        emb = self.time_embed(batch_time(t, x))
        label = embed_label(self, self.label_embed, y, x)
        if label is not None:
            emb = emb + label.to(emb.dtype)
        h, skips = _encode(self, x, emb)
        for layer in self.up:
            if isinstance(layer, _Upsample):
                h = layer(h, skips[-1].shape[-2:])
            else:
                h = _apply(layer, torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(self.head(h))


class UNetClassifier(nn.Module):
    """A noise-conditional classifier ``(t, x) -> logits [B, K]``: the U-Net's encoder, pooled.

    The down path and middle of :class:`UNet` (with the same config), then GroupNorm, SiLU, a
    global average over positions and a linear layer to K logits: the half-U-Net classifier of
    Dhariwal and Nichol 2021 (ADM's ``EncoderUNetModel`` with adaptive pooling), here timed by the
    Fourier embedding of t. Trained by :class:`~sdegen.classifier.NoisyClassifierLoss`, its softmax
    estimates p_t(y | x); wrap it in :class:`~sdegen.classifier.NoisyClassifier`.

    Args:
        in_channels: C of the images.
        n_classes: K, the number of classes.
        config: the architecture (default ``UNetConfig()``).
    """

    def __init__(self, in_channels: int, n_classes: int, config: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        self.config, self.in_channels = cfg, in_channels
        self.n_classes = check_steps("n_classes", n_classes)
        self.time_embed = _time_mlp(cfg)
        self.stem, self.down, _, c = _down_path(cfg, in_channels)
        self.mid = _middle(cfg, c)
        self.head = nn.Sequential(nn.GroupNorm(math.gcd(cfg.groups, c), c), nn.SiLU())
        self.out = nn.Linear(c, self.n_classes)

    @classmethod
    def from_size(cls, size: str, in_channels: int, n_classes: int) -> UNetClassifier:
        """The encoder of a U-Net of a documented size (``UNET_SIZES``) as a classifier."""
        if size not in UNET_SIZES:
            raise ValueError(f"size must be one of {sorted(UNET_SIZES)}; got size={size!r}")
        return cls(in_channels, n_classes, UNET_SIZES[size])

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"x must have shape [B, C, H, W]; got shape {tuple(x.shape)}")
        h, _ = _encode(self, x, self.time_embed(batch_time(t, x)))
        return self.out(self.head(h).mean(dim=(-2, -1)))


def _time_mlp(cfg: UNetConfig) -> nn.Sequential:
    td = cfg.time_dim
    return nn.Sequential(
        GaussianFourierFeatures(td, cfg.fourier_scale), nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td)
    )


def _level_block(cfg: UNetConfig, c_in: int, c_out: int, level: int) -> nn.ModuleList:
    block = nn.ModuleList([ResBlock(c_in, c_out, cfg.time_dim, cfg.groups, cfg.dropout)])
    if level in cfg.attention_levels:
        block.append(SelfAttention(c_out, cfg.groups))
    return block


def _down_path(cfg: UNetConfig, in_channels: int) -> tuple[nn.Conv2d, nn.ModuleList, list[int], int]:
    """The stem, the down path, the channels of each skip connection and the channels at the bottom."""
    stem = nn.Conv2d(in_channels, cfg.channels, 3, padding=1)
    chans = [cfg.channels * m for m in cfg.channel_mults]
    down = nn.ModuleList()
    skip_chans, c = [cfg.channels], cfg.channels
    for level, c_out in enumerate(chans):
        for _ in range(cfg.blocks_per_level):
            down.append(_level_block(cfg, c, c_out, level))
            c = c_out
            skip_chans.append(c)
        if level < len(chans) - 1:
            down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            skip_chans.append(c)
    return stem, down, skip_chans, c


def _middle(cfg: UNetConfig, c: int) -> nn.ModuleList:
    return nn.ModuleList(
        [
            ResBlock(c, c, cfg.time_dim, cfg.groups, cfg.dropout),
            SelfAttention(c, cfg.groups),
            ResBlock(c, c, cfg.time_dim, cfg.groups, cfg.dropout),
        ]
    )


def _encode(net: UNet | UNetClassifier, x: Tensor, emb: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The stem, the down path and the middle: the bottom features and the skip connections."""
    h = net.stem(x)
    skips = [h]
    for layer in net.down:
        h = _apply(layer, h, emb)
        skips.append(h)
    h = net.mid[0](h, emb)
    h = net.mid[1](h)
    h = net.mid[2](h, emb)
    return h, skips


class _Upsample(nn.Module):
    """Nearest-neighbour upsampling to a given size, then a 3x3 conv."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))


def _apply(layer: nn.Module, h: Tensor, emb: Tensor) -> Tensor:
    if isinstance(layer, nn.ModuleList):
        h = layer[0](h, emb)
        for extra in layer[1:]:
            h = extra(h)
        return h
    return layer(h)
