"""Time-conditioned networks: ``net(t, x)`` with ``t`` of shape ``[B]`` and ``x`` of shape ``[B, ...]``.

Score networks (:class:`ScoreMLP`, :class:`UNet`) are class-conditional, ``net(t, x, y)``, when
built with ``n_classes``; the classifiers (:class:`MLPClassifier`, :class:`UNetClassifier`) map
``(t, x)`` to the logits of p_t(y | x).
"""

from sdegen.nn.mlp import MLPClassifier, ScoreMLP
from sdegen.nn.time_embedding import ClassEmbedding, GaussianFourierFeatures
from sdegen.nn.unet import UNET_SIZES, UNet, UNetClassifier, UNetConfig

__all__ = [
    "ScoreMLP",
    "UNet",
    "UNetConfig",
    "UNET_SIZES",
    "MLPClassifier",
    "UNetClassifier",
    "GaussianFourierFeatures",
    "ClassEmbedding",
]
