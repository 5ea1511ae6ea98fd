"""A Brownian motion for fixed-step torchsde solvers that draws each increment fresh."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchsde
from torch import Tensor

from sdegen import random
from sdegen._checks import check_real, check_shape_tuple
from sdegen.random import RandomSource

__all__ = ["SequentialBrownian"]

_ADVICE = (
    "SequentialBrownian serves only the sequential, non-overlapping queries of a fixed-step solver; "
    "adaptive stepping (adaptive=True) and sdeint_adjoint query intervals again. Use "
    "torchsde.BrownianInterval(t0, t1, size, dtype=..., device=..., dt=dt, "
    "levy_area_approximation='space-time') there."
)


class SequentialBrownian(torchsde.BaseBrownian):
    """Brownian motion on [t0, t1] whose increments are drawn fresh, one query after another.

    A fixed-step torchsde solver asks for W(t_{k+1}) - W(t_k) exactly once per step, in order.
    Independent draws W_k ~ N(0, h_k I), h_k = t_{k+1} - t_k, are then the increments of a Brownian
    path on that grid, so the solution has exactly the law it would have with
    ``torchsde.BrownianInterval``, at the cost of one ``normal_`` per step instead of a tree search.
    With ``return_U=True`` (srk asks for it) the space-time Levy area

        U = int_{t_k}^{t_{k+1}} (W(s) - W(t_k)) ds,   Var U = h^3 / 3,   Cov(W, U) = h^2 / 2,

    is drawn jointly as U = h/2 W + sqrt(h^3 / 12) Z with Z ~ N(0, I) independent of W (the moments
    of this Gaussian pair; Roessler 2010, sec. 3; Foster et al. 2020, "The optimal polynomial
    approximation of Brownian motion", Thm. 2.2).

    Queries must start at t0, each start where the previous one ended, and stay within [t0, t1];
    anything else -- adaptive stepping, ``sdeint_adjoint``, point evaluations ``bm(t)`` -- raises
    ``RuntimeError`` pointing to ``torchsde.BrownianInterval``. Use one object per solve.

    Args:
        t0: start of the time interval.
        t1: end of the time interval, t1 > t0.
        size: shape of one increment, ``(B, D)`` for torchsde.
        dtype: of the increments.
        device: of the increments.
        generator: the source of randomness (``None`` uses torch's global generator); a
            :class:`~sdegen.random.PerSampleGenerator` draws row i of every increment from sample i's stream.
    """

    def __init__(
        self,
        t0: float,
        t1: float,
        size: Sequence[int],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        generator: RandomSource = None,
    ) -> None:
        super().__init__()
        t0, t1 = check_real("t0", t0), check_real("t1", t1)
        if not t1 > t0:
            raise ValueError(f"t1 must be > t0; got t0={t0:.6g}, t1={t1:.6g}")
        self._t0, self._t1 = t0, t1
        self._shape = check_shape_tuple("size", size)
        self._dtype = dtype if dtype is not None else torch.get_default_dtype()
        if generator is not None and device is None:
            device = generator.device
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        if generator is not None and generator.device != self._device:
            raise ValueError(
                f"generator is on {generator.device} but device is {self._device}; pass a generator "
                f"created with torch.Generator(device={str(self._device)!r})"
            )
        self._generator = generator
        self._tol = 1e-9 * max(1.0, abs(t0), abs(t1))
        self._last = t0  # where the next query must start

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(t0={self._t0:g}, t1={self._t1:g}, size={self._shape}, "
            f"dtype={self._dtype}, device={self._device})"
        )

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def levy_area_approximation(self) -> str:
        # The space-time Levy area U is exact; the full Levy area A (log_ode) is not available.
        return "space-time"

    def _normal(self, std: float) -> Tensor:
        out = torch.empty(self._shape, dtype=self._dtype, device=self._device)
        return random.normal_(out, self._generator, std=std)

    def __call__(
        self,
        ta: Tensor | float,
        tb: Tensor | float | None = None,
        return_U: bool = False,
        return_A: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The increment W(tb) - W(ta) [and U], for ta equal to the end of the previous query."""
        if tb is None:
            raise RuntimeError(f"point evaluations bm(t) are not supported. {_ADVICE}")
        if return_A:
            raise RuntimeError(
                "SequentialBrownian has no Levy area A (log_ode needs it); use torchsde.BrownianInterval("
                "..., levy_area_approximation='foster')."
            )
        a, b = float(ta), float(tb)
        if abs(a - self._last) > self._tol or not b > a or b > self._t1 + self._tol:
            raise RuntimeError(
                f"query [{a:.6g}, {b:.6g}] does not continue the previous one, which ended at "
                f"{self._last:.6g} (interval [{self._t0:.6g}, {self._t1:.6g}]). {_ADVICE}"
            )
        self._last = b
        h = b - a
        W = self._normal(math.sqrt(h))
        if not return_U:
            return W
        U = torch.add(self._normal(math.sqrt(h**3 / 12)), W, alpha=0.5 * h)
        return W, U
