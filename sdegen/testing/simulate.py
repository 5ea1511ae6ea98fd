"""Forward simulation of an :class:`~sdegen.sde.SDE` through torchsde, as ground truth for marginals."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchsde
from torch import Tensor

from sdegen._broadcast import expand_like
from sdegen._checks import check_batch_shape, check_positive, check_steps, check_time
from sdegen.sde.base import SDE

__all__ = ["simulate_forward"]


class _TorchsdeForward(torch.nn.Module):
    """dx = f(t, x) dt + g(t) dW in torchsde's 2-D layout; g(t) I is diagonal noise."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, sde: SDE, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.sde, self.shape = sde, shape

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        x = y.reshape(self.shape)
        return self.sde.drift(t.expand(y.shape[0]), x).reshape(y.shape)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        return expand_like(self.sde.diffusion(t.expand(y.shape[0])), y).expand_as(y)


def simulate_forward(
    sde: SDE,
    x0: Tensor,
    t1: float | Sequence[float],
    *,
    steps: int = 200,
    method: str = "srk",
    seed: int = 0,
) -> Tensor:
    """Simulate x(t1) from x(0) = ``x0`` (shape ``[B, ...]``) with ``torchsde.sdeint``.

    The default is Roessler's SRK (weak order 1.5 for this diagonal noise) with step ``t_max /
    steps``, the Brownian motion seeded by ``seed``, so the result is deterministic. ``t1`` may be
    one time (the result is shaped like ``x0``) or an increasing sequence of times (the result is
    ``[len(t1), B, ...]``, all from one path per sample).
    """
    check_batch_shape("x0", x0)
    many = not isinstance(t1, (int, float))
    times = [check_positive(f"t1[{i}]", v) for i, v in enumerate(t1)] if many else [check_positive("t1", t1)]
    for v in times:
        check_time(v, sde.T, name="t1")
    if any(b <= a for a, b in zip(times[:-1], times[1:], strict=False)):
        raise ValueError(f"t1 must be strictly increasing; got t1={times}")
    t1 = times[-1]
    steps = check_steps("steps", steps)
    y0 = x0.reshape(x0.shape[0], -1)
    ts = torch.tensor([0.0, *times], dtype=x0.dtype, device=x0.device)
    bm = torchsde.BrownianInterval(
        t0=0.0,
        t1=t1,
        size=y0.shape,
        dtype=x0.dtype,
        device=x0.device,
        entropy=seed,
        levy_area_approximation="space-time",
    )
    # A step a hair longer than t1 / steps: with exactly t1 / steps, float rounding can leave a last
    # step of ~1e-16, and BrownianInterval then builds a dependency tree at that resolution
    # (unbounded memory). torchsde clips the last step at t1.
    dt = t1 / steps * (1 + 1e-9)
    ys = torchsde.sdeint(_TorchsdeForward(sde, tuple(x0.shape)), y0, ts, bm=bm, method=method, dt=dt)
    if many:
        return ys[1:].reshape((len(times),) + tuple(x0.shape))
    return ys[-1].reshape(x0.shape)
