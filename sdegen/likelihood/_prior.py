"""The prior log-density pi(x_T) that the exact likelihood and the bounds both end with."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from sdegen._checks import check_output
from sdegen.sde.base import SDE

PriorLogp = Callable[[Tensor], Tensor]


def check_prior_logp(prior_logp: object) -> None:
    """Raise ``TypeError`` unless ``prior_logp`` is None (the SDE's own prior) or a callable z -> [B]."""
    if prior_logp is not None and not callable(prior_logp):
        raise TypeError(f"prior_logp must be a callable z -> [B]; got {type(prior_logp).__name__}")


def log_prior(sde: SDE, prior_logp: PriorLogp | None, z: Tensor) -> Tensor:
    """log pi(z) ``[B]`` of the states ``z`` ``[B, ...]`` at T: ``prior_logp(z)``, or ``sde.prior_logp(z)``."""
    value = (sde.prior_logp if prior_logp is None else prior_logp)(z)
    return check_output("prior_logp(z)", value, f"a tensor of shape [B] = [{z.shape[0]}]", [(z.shape[0],)])
