"""Time-conditioned networks: ``net(t, x)`` with ``t`` of shape ``[B]`` and ``x`` of shape ``[B, ...]``."""

from sdegen.nn.mlp import ScoreMLP
from sdegen.nn.time_embedding import GaussianFourierFeatures
from sdegen.nn.unet import UNET_SIZES, UNet, UNetConfig

__all__ = ["ScoreMLP", "UNet", "UNetConfig", "UNET_SIZES", "GaussianFourierFeatures"]
