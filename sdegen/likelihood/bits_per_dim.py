"""Bits per dimension of n-bit data under uniform dequantization, with the offset stated.

n-bit data (8-bit images) take integer values k in {0, ..., 2^n - 1} per dimension; scaled to a
range [lo, hi] they are x = lo + (hi - lo) k / (2^n - 1). A continuous model is evaluated at the
dequantized point

    y = lo + (hi - lo) (k + u) / 2^n,    u ~ U[0, 1)^D,

(for [0, 1]: y = (255 x + u) / 256; Theis et al. 2016, "A note on the evaluation of generative
models", sec. 3.1; Song et al. 2021, appendix D.2). In the integer units k + u the density is
p(y) ((hi - lo) / 2^n)^D, so the code length per dimension is

    bpd = -log p(y) / (D ln 2) + n - log2(hi - lo)          (bits),

an offset of n - log2(hi - lo): **8 for data in [0, 1] and 7 for data in [-1, 1]** with n = 8. This
is score_sde_pytorch's ``offset = 7. - inverse_scaler(-1.)`` (its issue #51) written out.

By Jensen's inequality, E_u[bpd(y)] >= -log2 P(k) / D >= 0 for the discrete model
P(k) = integral of the density over the cell of k: dequantized bits/dim are an upper bound on a
true code length, non-negative on average.

**Why un-dequantized data give meaningless (negative) bpd.** Evaluated at the grid points x
themselves, the density is not a probability: nothing stops it from concentrating on the 256^D
grid points. A score model is the extreme case: its p_eps is (close to) the data distribution
smoothed by N(0, sigma(eps)^2 I), so at a training point log p_eps(x) ~ -D log(sigma(eps)) grows
without bound as eps -> 0, and bpd goes to -infinity; it measures eps, not the model (score_sde
issue #24). Always dequantize (:func:`dequantize`) before computing bits/dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_real, check_steps, check_tensor

__all__ = ["Quantization", "bits_per_dim", "dequantize"]


def _check_quantization(data_range: object, n_bits: object) -> tuple[float, float, int]:
    try:
        lo, hi = data_range  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"data_range must be a pair (lo, hi) like (0.0, 1.0); got {data_range!r}") from None
    lo, hi = check_real("data_range[0]", lo), check_real("data_range[1]", hi)
    if hi <= lo:
        raise ValueError(f"data_range must have lo < hi; got data_range=({lo:g}, {hi:g})")
    n_bits = check_steps("n_bits", n_bits)
    if n_bits > 24:
        raise ValueError(f"n_bits must be <= 24 (exact integers in float32); got n_bits={n_bits}")
    return lo, hi, n_bits


@dataclass(frozen=True)
class Quantization:
    """How continuous data came from n-bit integers: x = lo + (hi - lo) k / (2^n - 1).

    Pass it as ``log_likelihood(..., bits_per_dim=Quantization(data_range=(-1.0, 1.0)))``.
    ``offset`` = n_bits - log2(hi - lo) is the constant added to -log p / (D ln 2).
    """

    data_range: tuple[float, float] = (0.0, 1.0)
    n_bits: int = 8

    def __post_init__(self) -> None:
        lo, hi, n_bits = _check_quantization(self.data_range, self.n_bits)
        object.__setattr__(self, "data_range", (lo, hi))
        object.__setattr__(self, "n_bits", n_bits)

    @property
    def offset(self) -> float:
        """n_bits - log2(hi - lo): 8 for 8-bit data in [0, 1], 7 for [-1, 1]."""
        lo, hi = self.data_range
        return self.n_bits - math.log2(hi - lo)


def check_quantization(value: object) -> Quantization:
    """Return ``value`` if it is a :class:`Quantization` (the ``bits_per_dim=`` of a likelihood or a
    bound), else raise ``TypeError`` saying what to pass."""
    if not isinstance(value, Quantization):
        raise TypeError(
            f"bits_per_dim must be a Quantization saying how x was quantized, e.g. "
            f"bits_per_dim=Quantization(data_range=(0.0, 1.0), n_bits=8); got {value!r}"
        )
    return value


def _dims(x_shape_or_dims: int | Sequence[int], batch: int | None) -> int:
    if isinstance(x_shape_or_dims, int) and not isinstance(x_shape_or_dims, bool):
        if x_shape_or_dims < 1:
            raise ValueError(f"the number of dimensions must be >= 1; got {x_shape_or_dims}")
        return x_shape_or_dims
    try:
        if isinstance(x_shape_or_dims, str):
            raise TypeError
        shape = tuple(int(s) for s in x_shape_or_dims)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(
            f"x_shape_or_dims must be x.shape = (B, ...) or the int number of dimensions per sample; "
            f"got {x_shape_or_dims!r}"
        ) from None
    if len(shape) < 2 or (batch is not None and shape[0] != batch) or min(shape) < 1:
        raise ValueError(
            f"x_shape_or_dims must be x.shape = (B, ...) with B = len(logp) = {batch} and at least one "
            f"data dimension, or the int number of dimensions per sample; got {shape}"
        )
    return math.prod(shape[1:])


def bits_per_dim(
    logp: Tensor,
    x_shape_or_dims: int | Sequence[int],
    *,
    data_range: tuple[float, float] = (0.0, 1.0),
    n_bits: int = 8,
) -> Tensor:
    """Bits per dimension -log p(y) / (D ln 2) + n_bits - log2(hi - lo) of dequantized n-bit data.

    ``logp`` is the log-density in nats of dequantized data ``y`` (see :func:`dequantize`) in
    ``data_range`` = (lo, hi); ``x_shape_or_dims`` is ``x.shape`` (batch first) or D. The offset is
    8 for 8-bit data in [0, 1] and 7 for [-1, 1] (module docstring; Theis et al. 2016, sec. 3.1).
    """
    check_tensor("logp", logp)
    lo, hi, n_bits = _check_quantization(data_range, n_bits)
    D = _dims(x_shape_or_dims, logp.shape[0] if logp.ndim == 1 else None)
    return -logp / (D * math.log(2.0)) + (n_bits - math.log2(hi - lo))


def grid_levels(x: Tensor, lo: float, hi: float, levels: int, *, what: str) -> Tensor:
    """The integer levels k (float64, shaped like ``x``) of data on the grid lo + (hi - lo) k / (levels - 1).

    ``x`` holds either the integers k themselves (an integer dtype) or the grid values (a float
    dtype). Raises ``ValueError`` naming ``what`` if ``x`` is off the grid (e.g. already
    dequantized, or scaled to another range) or outside [0, levels - 1], ``TypeError`` if it is not
    a real tensor.
    """
    if not torch.is_tensor(x) or x.dtype == torch.bool or x.is_complex():
        raise TypeError(
            f"x must be a real or integer torch.Tensor; got {type(x).__name__} {getattr(x, 'dtype', '')}"
        )
    top = levels - 1
    k = (x.double() - lo) * (top / (hi - lo)) if x.is_floating_point() else x.double()
    if not bool(torch.isfinite(k).all()):
        raise ValueError(f"x contains NaN or infinity; expected {what}")
    k_int = k.round()
    off_grid = float((k - k_int).abs().max()) if k.numel() else 0.0
    if off_grid > 0.05 or (k.numel() and (float(k_int.min()) < 0 or float(k_int.max()) > top)):
        raise ValueError(
            f"x is not {what} in data_range=({lo:g}, {hi:g}): expected values "
            f"lo + (hi - lo) k / {top} with integer k in [0, {top}] (or the integers k "
            f"themselves); got values up to {off_grid:.3g} grid steps off the grid, k in "
            f"[{float(k.min()):.4g}, {float(k.max()):.4g}]. Was x already dequantized, or scaled to "
            f"another range?"
        )
    return k_int


def dequantize(
    x: Tensor,
    *,
    data_range: tuple[float, float] = (0.0, 1.0),
    n_bits: int = 8,
    generator: random.RandomSource = None,
) -> Tensor:
    """Uniform dequantization y = lo + (hi - lo) (k + u) / 2^n, u ~ U[0, 1), of n-bit data.

    ``x`` holds either the integers k (an integer dtype, e.g. ``uint8`` images; returned in the
    default float dtype) or the scaled values lo + (hi - lo) k / (2^n - 1) (a float dtype, kept).
    For [0, 1] this is y = (255 x + u) / 256 (Theis et al. 2016, sec. 3.1). Raises ``ValueError``
    if ``x`` is not on that grid, e.g. data that were already dequantized.
    """
    lo, hi, n_bits = _check_quantization(data_range, n_bits)
    k_int = grid_levels(x, lo, hi, 2**n_bits, what=f"{n_bits}-bit data")
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    u = random.rand(x.shape, generator, device=x.device, dtype=torch.float64)
    return (lo + (hi - lo) * (k_int + u) / 2**n_bits).to(dtype)
