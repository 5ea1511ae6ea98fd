"""Linear Gaussian observations y = A x_0 + s n of the data, held in orthonormal coordinates.

One representation serves the three users of an observation -- the samplers' per-step projection
(:meth:`Observation.project`), reconstruction guidance (:meth:`Observation.log_likelihood`) and
the exact conditional of the Gaussian-mixture oracle (:meth:`Observation.basis`,
:meth:`Observation.free_basis`) -- so that the three always agree on what was observed.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_real

__all__ = ["Observation"]


class Observation(abc.ABC):
    """An observation y = A x_0 + s n, n ~ N(0, I_m), of data x_0 with ``event_shape`` (d elements).

    With the thin singular value decomposition A = U S V^T over the rank r of A, everything y says
    about x_0 lies in the r orthonormal *observed coordinates* c(x) = V^T x, measured as

        u = S^{-1} U^T y = c(x_0) + s_j n'_j,    s_j = s / S_j,   n' ~ N(0, I_r),

    while the part of y orthogonal to the range of A is noise independent of x_0. Subclasses
    (:class:`~sdegen.observations.Inpainting`, :class:`~sdegen.observations.Colorization`,
    :class:`~sdegen.observations.LinearObservation`) hold u and s_j and implement c(x) and its
    adjoint V c without forming V where a structured form exists.

    ``u`` is one observation (shape ``[r]``, shared by every sample) or one per sample (``[B, r]``).

    Attributes:
        event_shape: the shape of one data point.
        noise_std: s, the standard deviation of the observation noise (0: exact observations).
        n_observed: r, the number of observed coordinates.
    """

    event_shape: tuple[int, ...]
    noise_std: float
    #: u, float64 on the CPU: ``[r]`` or ``[B, r]``
    _u: Tensor
    #: s_j = s / S_j, float64 on the CPU: ``[r]``
    _coordinate_std: Tensor

    def _init_base(
        self, event_shape: tuple[int, ...], u: Tensor, coordinate_std: Tensor, noise_std: float
    ) -> None:
        self.event_shape = event_shape
        self.noise_std = noise_std
        self._u = u
        self._coordinate_std = coordinate_std
        self._exact = noise_std == 0.0
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    # -- the coordinates ----------------------------------------------------------------------------
    @property
    def n_observed(self) -> int:
        """r, the number of observed coordinates."""
        return self._coordinate_std.shape[0]

    @property
    def dim(self) -> int:
        """d, the number of elements of one data point."""
        return math.prod(self.event_shape)

    @property
    def batch_size(self) -> int | None:
        """B for one observation per sample, None for one observation shared by every sample."""
        return self._u.shape[0] if self._u.ndim == 2 else None

    @abc.abstractmethod
    def coordinates(self, x: Tensor) -> Tensor:
        """c(x) = V^T x: the observed coordinates of ``x`` [B, *event_shape], shape ``[B, r]``."""

    @abc.abstractmethod
    def embed(self, c: Tensor) -> Tensor:
        """V c: the point of the observed subspace with coordinates ``c`` [B, r], shape ``[B, *event_shape]``."""

    @abc.abstractmethod
    def basis(self) -> Tensor:
        """V^T as a dense float64 ``[r, d]`` matrix with orthonormal rows (for the oracle; small d)."""

    def free_basis(self) -> Tensor:
        """F: float64 ``[f, d]`` orthonormal rows spanning what the observation leaves free.

        The orthogonal complement of the observed coordinates (f = d - r) for an exact observation;
        every direction (F = I, f = d) for a noisy one, which fixes no coordinate.
        """
        d = self.dim
        if not self._exact:
            return torch.eye(d, dtype=torch.float64)
        V = self.basis()
        # The complete QR of V's columns: its last d - r columns span the complement.
        Q, _ = torch.linalg.qr(V.T, mode="complete")
        return Q[:, self.n_observed :].T.contiguous()

    def free_coordinates(self, x: Tensor) -> Tensor:
        """F x, shape ``[B, f]`` (float64): the coordinates the oracle's conditional describes."""
        self.check(x, "x")
        return x.reshape(x.shape[0], -1).double() @ self.free_basis().to(x.device).T

    def observed_values(self) -> Tensor:
        """u as a float64 ``[r]`` vector, for a single observation (the oracle's conditional)."""
        if self._u.ndim == 2 and self._u.shape[0] != 1:
            raise ValueError(
                f"the exact conditional is defined for one observation; this {type(self).__name__} holds "
                f"{self._u.shape[0]} (one per sample). Build one observation per conditional."
            )
        return self._u.reshape(-1)

    @property
    def coordinate_std(self) -> Tensor:
        """s_j = s / S_j, the noise std of each observed coordinate, float64 ``[r]``."""
        return self._coordinate_std

    # -- validation ---------------------------------------------------------------------------------
    def check(self, x: Tensor, name: str = "x_T") -> None:
        """Raise ``ValueError`` unless ``x`` is a batch ``[B, *event_shape]`` this observation fits."""
        check_batch_shape(name, x)
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but this {type(self).__name__} observes data of shape "
                f"{self.event_shape}: {name} must have shape [B, {', '.join(map(str, self.event_shape))}]"
            )
        B = self.batch_size
        if B is not None and B not in (1, x.shape[0]):
            raise ValueError(
                f"this {type(self).__name__} holds {B} observations (one per sample) but {name} has "
                f"{x.shape[0]} samples; pass one observation, or one per sample"
            )

    def _on(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(u, s_j) on ``x``'s device and dtype, cached."""
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = (self._u.to(x.device, x.dtype), self._coordinate_std.to(x.device, x.dtype))
        return self._cache[key]

    # -- what the samplers and reconstruction guidance use ------------------------------------------
    def project(self, x: Tensor, alpha: float, sigma: float, z: Tensor | None) -> Tensor:
        """Replace the observed coordinates of ``x`` by a draw of the noised observation.

        At a time where the kernel is N(alpha x_0, sigma^2 I), with ``z`` ~ N(0, I) shaped like x,

            c_j(x) <- alpha u_j + sqrt(sigma^2 - alpha^2 s_j^2) c_j(z)   where sigma / alpha >= s_j,

        and the other coordinates of x are left as they are (``z`` may be None where sigma = 0). For an exact observation (s = 0) this
        is the replacement of Song et al. 2021, appendix I (x_t of the observed part drawn from the
        forward kernel given the observed data). A noisy observation is an exact observation of
        x_{t*} / alpha(t*) at the time t* where sigma / alpha = s_j, since u = c(x_0) + s_j n':
        above t* the same replacement draws c(x_t) from the forward transition given c(x_{t*}),
        and below it the coordinate is left to the sampler (as SNIPS and DDRM treat the noise,
        Kawar et al. 2021, 2022). On a grid the last replaced time lies up to one step above t*,
        an error that vanishes with the step.
        """
        u, _ = self._on(x)
        if self._exact:
            target = torch.add(alpha * u, self.coordinates(z), alpha=sigma) if sigma > 0 else alpha * u
            return x + self.embed(target - self.coordinates(x))
        # Which coordinates are still above their noise level, decided on the CPU copy of s_j.
        var = sigma * sigma - (alpha * self._coordinate_std) ** 2
        active = var >= 0
        if not bool(active.any()):
            return x
        scale = var.clamp_min(0).sqrt().to(x.device, x.dtype)
        delta = alpha * u + scale * self.coordinates(z) - self.coordinates(x)
        return x + self.embed(delta * active.to(x.device, x.dtype))

    def log_likelihood(self, x0: Tensor) -> Tensor:
        """log N(y; A x0, s^2 I) up to a constant in x0, shape ``[B]``: -1/2 sum_j (u_j - c_j(x0))^2 / s_j^2.

        Needs a noisy observation (s > 0); the constant is the same for every x0, so gradients and
        differences are exact.
        """
        if self._exact:
            raise ValueError(
                f"this {type(self).__name__} is exact (noise_std=0): its likelihood is a point mass. "
                f"Give it noise_std > 0 (the observation noise, or a small value as DPS does), or "
                f"condition by projection (observation= of a sampler) instead."
            )
        u, s = self._on(x0)
        r = (u - self.coordinates(x0)) / s
        return -0.5 * (r * r).sum(dim=-1)

    def __repr__(self) -> str:
        B = self.batch_size
        per = f", batch={B}" if B is not None else ""
        return (
            f"{type(self).__name__}(event_shape={self.event_shape}, n_observed={self.n_observed}, "
            f"noise_std={self.noise_std:g}{per})"
        )


def check_noise_std(noise_std: object) -> float:
    """``noise_std`` as a finite float >= 0, or raise naming it."""
    s = check_real("noise_std", noise_std)
    if s < 0:
        raise ValueError(f"noise_std must be >= 0 (0 for exact observations); got noise_std={s:.6g}")
    return s


def as_float64(name: str, value: object) -> Tensor:
    """``value`` as a float64 CPU tensor, or raise naming it."""
    if torch.is_tensor(value):
        if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a real tensor; got dtype {value.dtype}")
        return value.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor or a nested sequence of numbers; got {value!r}") from None
