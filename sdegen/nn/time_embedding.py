"""Embeddings of the diffusion time t, and of class labels, for conditioning a network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sdegen._checks import check_class_labels, check_steps

__all__ = ["GaussianFourierFeatures", "ClassEmbedding"]


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


class ClassEmbedding(nn.Module):
    """A learned vector per class label 0..C-1 and one for the null label C ("no label").

    Added to a network's time embedding, it makes the network class-conditional, ``net(t, x, y)``,
    as in Dhariwal and Nichol 2021 (ADM's ``label_emb``). The extra row C is the unconditional
    model of classifier-free guidance (Ho and Salimans 2022): trained on examples whose label was
    dropped, ``net(t, x, C)`` learns the score of p_t(x) while ``net(t, x, y)`` learns p_t(x | y).
    ``y`` of shape ``[B]`` maps to ``[B, dim]``.

    Args:
        n_classes: C, the number of classes.
        dim: the width of the embedding (that of the time embedding it is added to).
    """

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        self.n_classes = check_steps("n_classes", n_classes)
        self.table = nn.Embedding(self.n_classes + 1, dim)

    @property
    def null_label(self) -> int:
        """C: the label meaning "no label"."""
        return self.n_classes

    def forward(self, y: Tensor) -> Tensor:
        return self.table(y)


class ClassConditional:
    """What a network with an optional :class:`ClassEmbedding` ``label_embed`` says about its labels.

    Mixed into :class:`~sdegen.nn.ScoreMLP` and :class:`~sdegen.nn.UNet`: ``n_classes`` and
    ``null_label`` are None for an unconditional network.
    """

    label_embed: ClassEmbedding | None

    @property
    def n_classes(self) -> int | None:
        """C for a class-conditional network, else None."""
        return None if self.label_embed is None else self.label_embed.n_classes

    @property
    def null_label(self) -> int | None:
        """C, the label of the unconditional model, for a class-conditional network; else None."""
        return None if self.label_embed is None else self.label_embed.null_label


def embed_label(
    owner: nn.Module, embedding: ClassEmbedding | None, y: Tensor | None, x: Tensor
) -> Tensor | None:
    """``embedding(y)``, after checking that ``y`` is given exactly when ``owner`` is class-conditional.

    The label's dtype and shape are checked, and its range for labels on the CPU (where it costs
    nothing that matters); on an accelerator reading the range back would synchronise the device
    at every evaluation, so it is checked where labels enter (losses, ``ScoreModel.given``, guidance).
    """
    name = type(owner).__name__
    if embedding is None:
        if y is not None:
            raise TypeError(
                f"{name} is unconditional (built without n_classes) but was given labels y; build it "
                f"with n_classes=C to condition on a class"
            )
        return None
    if y is None:
        raise ValueError(
            f"{name} is class-conditional (n_classes={embedding.n_classes}): call it as net(t, x, y) with "
            f"int64 labels y [B] in 0..{embedding.n_classes - 1}, or the null label {embedding.null_label} "
            f"for the unconditional model"
        )
    if not torch.is_tensor(y) or y.dtype != torch.int64 or tuple(y.shape) != (x.shape[0],):
        got = f"dtype {y.dtype}, shape {tuple(y.shape)}" if torch.is_tensor(y) else type(y).__name__
        raise TypeError(f"{name} needs labels y as an int64 tensor of shape [{x.shape[0]}]; got {got}")
    if y.device.type == "cpu":
        C = embedding.n_classes
        check_class_labels(
            "y", y, x.shape[0], C + 1, meaning=f"labels in 0..{C} (classes 0..{C - 1} and the null label {C})"
        )
    return embedding(y)
