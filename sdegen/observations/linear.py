"""A general linear observation y = A x_0 + s n given by its matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from sdegen.observations.base import Observation, as_float64, check_noise_std

__all__ = ["LinearObservation"]

# Singular values below this fraction of the largest count as zero (the rank of A).
_RANK_RTOL = 1e-10
# An exact observation y must lie in the range of A up to this relative residual.
_RANGE_RTOL = 1e-8


class LinearObservation(Observation):
    """y = A x_0 + s n for a dense matrix A (m x d) acting on the flattened data.

    The thin SVD of A is computed once; the observed coordinates are V^T x over the rank r of A,
    u = S^{-1} U^T y, and s_j = s / S_j (see :class:`~sdegen.observations.Observation`). An exact
    observation (s = 0) must be consistent: y in the range of A. Sampling with
    ``observation=LinearObservation(...)`` replaces V^T x_t by the noised u on every step, the
    projection of Song et al. 2021 (appendix I) in the orthonormal coordinates of A (the form
    Song et al. 2022, "Solving inverse problems in medical imaging with score-based generative
    models", give it for a general A with lambda = 1).

    Args:
        A: ``[m, d]`` with d the number of elements of one data point.
        y: ``[m]`` (one observation shared by every sample) or ``[B, m]`` (one per sample).
        noise_std: s >= 0.
        event_shape: the shape of one data point, ``(d,)`` by default.
    """

    def __init__(
        self,
        A: Tensor | Sequence[Sequence[float]],
        y: Tensor | Sequence[float],
        noise_std: float = 0.0,
        *,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        A = as_float64("A", A)
        y = as_float64("y", y)
        if A.ndim != 2 or A.numel() == 0:
            raise ValueError(f"A must be a matrix of shape [m, d]; got shape {tuple(A.shape)}")
        if not bool(torch.isfinite(A).all()):
            raise ValueError("A must be finite")
        m, d = A.shape
        event_shape = (d,) if event_shape is None else tuple(int(v) for v in event_shape)
        if math.prod(event_shape) != d:
            raise ValueError(
                f"event_shape must have d = {d} elements (A's columns); got event_shape={event_shape}"
            )
        if y.ndim not in (1, 2) or y.shape[-1] != m:
            raise ValueError(
                f"y must have shape [m] = [{m}] or [B, {m}] for A of shape [{m}, {d}]; got {tuple(y.shape)}"
            )
        if not bool(torch.isfinite(y).all()):
            raise ValueError("y must be finite")
        s = check_noise_std(noise_std)
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        r = int((S > _RANK_RTOL * S[0]).sum())
        if r == 0:
            raise ValueError("A is zero: it observes nothing")
        U, S, Vh = U[:, :r], S[:r], Vh[:r]
        if s == 0.0:
            residual = y - (y @ U) @ U.T
            scale = max(1.0, float(y.abs().max()))
            if float(residual.abs().max()) > _RANGE_RTOL * scale:
                raise ValueError(
                    f"y is not in the range of A (residual {float(residual.abs().max()):.3g}): an exact "
                    f"observation (noise_std=0) must satisfy y = A x for some x. Pass the noise level "
                    f"noise_std > 0 of your measurements."
                )
        self.A = A
        self._Vh = Vh  # [r, d] = V^T
        u = (y @ U) / S
        self._init_base(event_shape, u, s / S, s)
        self._V_on: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def _V(self, x: Tensor) -> Tensor:
        key = (x.device, x.dtype)
        if key not in self._V_on:
            self._V_on[key] = self._Vh.to(x.device, x.dtype)
        return self._V_on[key]

    def coordinates(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1) @ self._V(x).T

    def embed(self, c: Tensor) -> Tensor:
        return (c @ self._V(c)).reshape((c.shape[0],) + self.event_shape)

    def basis(self) -> Tensor:
        return self._Vh.clone()
