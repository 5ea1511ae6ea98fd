"""The reverse-time SDE as an object ``torchsde.sdeint`` integrates as it is."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from sdegen._checks import check_decreasing_times, check_same_sde, check_score_fn, check_score_output
from sdegen.sde.coefficients import Coefficients, check_schedule

if TYPE_CHECKING:
    from sdegen.sde.base import SDE, ScoreFn

__all__ = ["ReverseTimeSDE"]

# Engine objects validate the schedule on [_VALIDATION_T_MIN T, T]: sampling never starts below
# eps >= 1e-6 T, and a kernel given by sigma alone may have a NaN autograd derivative at t = 0.
_VALIDATION_T_MIN = 1e-6

# sdeint's contract check evaluates f at (ts[0], y0) up to three times and torchsde's srk re-evaluates
# the drift at earlier stages: 4 entries cover srk's 4 stages, so every distinct (s, y) costs one
# score evaluation.
_CACHE_SIZE = 4


class ReverseTimeSDE(torch.nn.Module):
    """The reverse-time SDE of ``sde`` driven by ``score_fn``, in torchsde's layout.

    Run backwards from t = T, the reverse process is (Anderson 1982; Song et al. 2021, eq. 6)

        dx = [f(t, x) - g(t)^2 score(t, x)] dt + g(t) dW_bar.

    torchsde needs strictly increasing times and a 2-D state, so this object integrates the same
    process in reversed time s = T - t on the flattened state y = x.reshape(B, -1):

        dy = [g(T - s)^2 score(T - s, y) - f(T - s, y)] ds + g(T - s) dW_s,   s from 0 to T - eps.

    Usage (``ts`` decreasing from T to eps; ``ys[k]`` is the state at time ``ts[k]``)::

        rsde = sde.reverse(score_fn, event_shape=x_T.shape[1:])
        ys = torchsde.sdeint(rsde, rsde.flatten(x_T), rsde.reversed_times(ts), method="euler", dt=1e-3)
        x = rsde.unflatten(ys[-1])            # the sample at t = ts[-1]

    :meth:`reversed_times` validates ``ts`` and returns s = T - ts; map back with t = T - s.

    The diffusion g(t) does not depend on x, so the noise is additive: Ito and Stratonovich
    calculus give the same process, and every torchsde method for additive or diagonal noise
    solves it. torchsde still checks the label against the method: use ``sde_type="ito"`` for
    euler, milstein and srk, and ``sde_type="stratonovich"`` for heun, midpoint, euler_heun,
    reversible_heun and log_ode.

    ``noise_type="diagonal"`` (default) works with every method and with sdeint's default Brownian
    motion. ``noise_type="additive"`` lets srk take its 2-stage additive-noise scheme (SRA1 of
    Roessler 2010: 2 score evaluations per step instead of 4), but torchsde's additive ``g`` would
    be a dense [B, D, D] matrix, so this object then provides only the products ``g_prod`` and
    ``f_and_g_prod``: pass ``bm`` to sdeint (its noise size cannot be inferred) and do not use
    reversible_heun or log_ode.

    A drift evaluated twice at the same (s, y) -- sdeint's contract check and srk's stages do
    this -- is computed once: the last few results are kept, keyed on the state tensor's identity
    and version counter, so a state modified in place is recomputed.

    Args:
        sde: the forward SDE.
        score_fn: ``(t [B], x [B, *event_shape]) -> [B, *event_shape]``.
        event_shape: shape of one sample; ``None`` means vectors (the state is already [B, D]).
        sde_type: ``"ito"`` or ``"stratonovich"`` (the same process; see above).
        noise_type: ``"diagonal"`` or ``"additive"``.
    """

    def __init__(
        self,
        sde: SDE,
        score_fn: ScoreFn,
        *,
        event_shape: Sequence[int] | None = None,
        sde_type: Literal["ito", "stratonovich"] = "ito",
        noise_type: Literal["diagonal", "additive"] = "diagonal",
    ) -> None:
        super().__init__()
        check_score_fn(score_fn)
        check_same_sde(sde, score_fn, "score_fn", "of the reverse-time SDE")
        if sde_type not in ("ito", "stratonovich"):
            raise ValueError(f"sde_type must be 'ito' or 'stratonovich'; got sde_type={sde_type!r}")
        if noise_type not in ("diagonal", "additive"):
            raise ValueError(f"noise_type must be 'diagonal' or 'additive'; got noise_type={noise_type!r}")
        self.sde = sde
        self.score_fn = score_fn
        self.T = float(sde.T)
        self.event_shape = None if event_shape is None else tuple(int(d) for d in event_shape)
        self.sde_type = sde_type
        self.noise_type = noise_type
        # Validated here once over (0, T]: the vector field below is unchecked, as torchsde's are.
        check_schedule(sde, _VALIDATION_T_MIN * self.T, self.T)
        self.coefficients = Coefficients(sde)
        if noise_type == "diagonal":
            # torchsde probes these with hasattr, so they exist only when they are cheap.
            self.g = self._g_diagonal
            self.f_and_g = self._f_and_g_diagonal
        self._cache: list[tuple[Tensor, int, float, Tensor]] = []

    def extra_repr(self) -> str:
        return f"sde={self.sde!r}, sde_type={self.sde_type!r}, noise_type={self.noise_type!r}"

    # -- time and state layout ------------------------------------------------------------------
    def reversed_times(self, ts: Tensor | Sequence[float]) -> Tensor:
        """s = T - ts for times ``ts`` strictly decreasing in [0, T]: the increasing grid torchsde needs.

        A list becomes a float64 tensor; a tensor keeps its dtype and device.
        """
        ts = check_decreasing_times("ts", ts, self.T, lower=0.0)
        return self.T - ts

    def flatten(self, x: Tensor) -> Tensor:
        """The torchsde state y = x.reshape(B, -1) of a batch ``x`` of shape [B, *event_shape]."""
        expected = self.event_shape if self.event_shape is not None else None
        if expected is None:
            if x.ndim != 2:
                raise ValueError(
                    f"x must have shape [B, D] for event_shape=None; got shape {tuple(x.shape)}. "
                    f"Pass event_shape=x.shape[1:] to sde.reverse(...) for other data shapes."
                )
        elif tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"x must have shape [B, {', '.join(map(str, expected))}] (event_shape={expected}); "
                f"got shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], -1)

    def unflatten(self, y: Tensor) -> Tensor:
        """The batch [..., B, *event_shape] of a torchsde state (or stack of states) [..., B, D]."""
        if self.event_shape is None:
            return y
        return y.reshape(y.shape[:-1] + self.event_shape)

    def _unflatten_state(self, y: Tensor) -> Tensor:
        if self.event_shape is None:
            return y
        if y.ndim != 2 or y.shape[1] != math.prod(self.event_shape):
            raise ValueError(
                f"the torchsde state must have shape [B, {math.prod(self.event_shape)}] for "
                f"event_shape={self.event_shape}; got shape {tuple(y.shape)}. Build it with rsde.flatten(x)."
            )
        return y.view((y.shape[0],) + self.event_shape)

    # -- the coefficients -------------------------------------------------------------------------
    def tabulate(self, s: Tensor | Sequence[float]) -> None:
        """Precompute the coefficients at the reversed times ``s`` in one vectorised evaluation.

        A solver whose times are known in advance (a fixed-step torchsde solve visits
        s_k = min(s_{k-1} + dt, s_N)) then skips the SDE's coefficient functions at those exact
        times: on a CPU each 0-d tensor operation costs microseconds, about 20 us per step for VP.
        Other times are computed as usual.
        """
        s_values = torch.as_tensor(s, dtype=torch.float64).detach().cpu().reshape(-1).tolist()
        # Keyed on t = T - s computed exactly as _coefficients computes it.
        self.coefficients.tabulate([self.T - v for v in s_values])

    def _coefficients(self, s: Tensor) -> tuple[float, float | None, float]:
        """(s, a(T - s) or None for a general SDE, g(T - s)^2), the scalars as Python floats.

        Multiplying data by floats is one kernel each; 0-d tensor arithmetic would cost several
        microseconds per operation on every step.
        """
        s_value = float(s)
        # torchsde passes s as a tensor that is read here anyway, so this range check costs nothing.
        if not (-1e-6 * self.T <= s_value <= self.T * (1 + 1e-6)):
            raise ValueError(
                f"s must lie in [0, T] = [0, {self.T:.6g}] (s = T - t is reversed time); got s={s_value:.6g}. "
                f"Build the torchsde times with rsde.reversed_times(ts)."
            )
        a, g2 = self.coefficients.at_float(self.T - s_value)
        return s_value, a, g2

    def _drift(self, s_value: float, a: float | None, g2: float, y: Tensor) -> Tensor:
        for cached_y, version, cached_s, out in self._cache:
            if cached_y is y and version == y._version and cached_s == s_value:
                return out
        x = self._unflatten_state(y)
        t_batch = torch.full((y.shape[0],), self.T - s_value, dtype=y.dtype, device=y.device)
        score = self.score_fn(t_batch, x)
        check_score_output(score, x)
        # dy/ds = -(f - g^2 score): the reverse drift, negated because s runs against t.
        out = self.coefficients.field(t_batch, x, score, a, g2, weight=1.0, scale=-1.0).reshape(y.shape)
        self._cache.append((y, y._version, s_value, out))
        if len(self._cache) > _CACHE_SIZE:
            self._cache.pop(0)
        return out

    # -- the torchsde protocol --------------------------------------------------------------------
    def f(self, s: Tensor, y: Tensor) -> Tensor:
        """Drift in reversed time: g(T - s)^2 score(T - s, y) - f(T - s, y), shape [B, D]."""
        s_value, a, g2 = self._coefficients(s)
        return self._drift(s_value, a, g2, y)

    def g_prod(self, s: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """g(T - s) v: the diffusion applied to a Brownian increment ``v`` [B, D]."""
        return v * math.sqrt(self._coefficients(s)[2])

    def f_and_g_prod(self, s: Tensor, y: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """(f, g v) with the coefficients computed once."""
        s_value, a, g2 = self._coefficients(s)
        return self._drift(s_value, a, g2, y), v * math.sqrt(g2)

    def _g_diagonal(self, s: Tensor, y: Tensor) -> Tensor:
        """g(T - s) on the diagonal, shape [B, D] (an expanded view)."""
        g = math.sqrt(self._coefficients(s)[2])
        return torch.full((1, 1), g, dtype=y.dtype, device=y.device).expand_as(y)

    def _f_and_g_diagonal(self, s: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        s_value, a, g2 = self._coefficients(s)
        g = torch.full((1, 1), math.sqrt(g2), dtype=y.dtype, device=y.device).expand_as(y)
        return self._drift(s_value, a, g2, y), g
