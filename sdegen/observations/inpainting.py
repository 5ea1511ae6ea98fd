"""Inpainting: some entries of the data are observed, the others are to be filled in."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen.observations.base import Observation, as_float64, check_noise_std

__all__ = ["Inpainting"]


class Inpainting(Observation):
    """The entries of x_0 where ``mask`` is True are observed: y = x_0[mask] + s n.

    A is the rows of the identity at the observed entries, so the observed coordinates are the
    entries themselves (V^T x = x[mask], s_j = s) and the free ones, for an exact observation, are
    the other entries in their flattened order. Sampling with ``observation=Inpainting(...)``
    is the replacement method of Song et al. 2021, appendix I (score_sde's inpainting).

    Args:
        mask: bool tensor of the data's shape (one sample, e.g. ``[1, 8, 8]``): True where observed.
        values: the observed data, ``mask``'s shape (shared by every sample) or ``[B, *mask.shape]``
            (one image per sample); entries outside the mask are ignored and may be NaN.
        noise_std: s >= 0, the standard deviation of the observation noise.
    """

    def __init__(self, mask: Tensor, values: Tensor, noise_std: float = 0.0) -> None:
        if not torch.is_tensor(mask) or mask.dtype != torch.bool:
            raise TypeError(
                f"mask must be a bool tensor of the data's shape (True where observed); got "
                f"{type(mask).__name__ if not torch.is_tensor(mask) else mask.dtype}"
            )
        if mask.ndim == 0:
            raise ValueError("mask must have the shape of one data point, e.g. [1, 8, 8]; got a 0-d tensor")
        event_shape = tuple(mask.shape)
        values = as_float64("values", values)
        if tuple(values.shape) == event_shape:
            values = values[None]
        elif values.ndim != mask.ndim + 1 or tuple(values.shape[1:]) != event_shape:
            raise ValueError(
                f"values must have mask's shape {event_shape} or [B, {', '.join(map(str, event_shape))}]; "
                f"got shape {tuple(values.shape)}"
            )
        n_obs = int(mask.sum())
        if n_obs == 0:
            raise ValueError("mask observes nothing (no True entry); sample without an observation instead")
        self.mask = mask.detach().cpu()
        self._index = self.mask.reshape(-1).nonzero().reshape(-1)
        u = values.reshape(values.shape[0], -1)[:, self._index]
        if not bool(torch.isfinite(u).all()):
            raise ValueError("values must be finite where mask is True")
        s = check_noise_std(noise_std)
        self._init_base(
            event_shape, u if u.shape[0] > 1 else u[0], torch.full((n_obs,), s, dtype=torch.float64), s
        )
        self._on_device: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor]] = {}

    def _masked(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(flat index, mask, values scattered to the data's shape) on ``x``'s device and dtype."""
        key = (x.device, x.dtype)
        if key not in self._on_device:
            u, _ = self._on(x)
            full = torch.zeros((u.shape[0] if u.ndim == 2 else 1, self.dim), dtype=x.dtype, device=x.device)
            full[:, self._index.to(x.device)] = u if u.ndim == 2 else u[None]
            self._on_device[key] = (
                self._index.to(x.device),
                self.mask.to(x.device),
                full.reshape((-1,) + self.event_shape),
            )
        return self._on_device[key]

    def coordinates(self, x: Tensor) -> Tensor:
        index, _, _ = self._masked(x)
        return x.reshape(x.shape[0], -1)[:, index]

    def embed(self, c: Tensor) -> Tensor:
        index, _, _ = self._masked(c)
        out = c.new_zeros((c.shape[0], self.dim))
        out[:, index] = c
        return out.reshape((c.shape[0],) + self.event_shape)

    def basis(self) -> Tensor:
        return torch.eye(self.dim, dtype=torch.float64)[self._index]

    def free_basis(self) -> Tensor:
        if not self._exact:
            return torch.eye(self.dim, dtype=torch.float64)
        return torch.eye(self.dim, dtype=torch.float64)[~self.mask.reshape(-1)]

    def project(self, x: Tensor, alpha: float, sigma: float, z: Tensor | None) -> Tensor:
        # The general rule, written as a masked select so that observed entries are set exactly.
        if not self._exact:
            return super().project(x, alpha, sigma, z)
        _, mask, values = self._masked(x)
        target = torch.add(alpha * values, z, alpha=sigma) if sigma > 0 else alpha * values
        return torch.where(mask, target, x)
