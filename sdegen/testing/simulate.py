"""Forward simulation of an :class:`~sdegen.sde.SDE` through torchsde, as ground truth for marginals."""

from __future__ import annotations

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
    t1: float,
    *,
    steps: int = 200,
    method: str = "srk",
    seed: int = 0,
) -> Tensor:
    """Simulate x(t1) from x(0) = ``x0`` (shape ``[B, ...]``) with ``torchsde.sdeint``.

    The default is Roessler's SRK (weak order 1.5 for this diagonal noise) on a uniform grid of
    ``steps`` steps, with the Brownian motion seeded by ``seed``, so the result is deterministic.
    """
    check_batch_shape("x0", x0)
    t1 = check_positive("t1", t1)
    check_time(t1, sde.T, name="t1")
    steps = check_steps("steps", steps)
    y0 = x0.reshape(x0.shape[0], -1)
    ts = torch.tensor([0.0, t1], dtype=x0.dtype, device=x0.device)
    bm = torchsde.BrownianInterval(
        t0=0.0,
        t1=t1,
        size=y0.shape,
        dtype=x0.dtype,
        device=x0.device,
        entropy=seed,
        levy_area_approximation="space-time",
    )
    ys = torchsde.sdeint(_TorchsdeForward(sde, tuple(x0.shape)), y0, ts, bm=bm, method=method, dt=t1 / steps)
    return ys[-1].reshape(x0.shape)
