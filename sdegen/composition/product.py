"""Products of experts: weighted sums of scores, the composition of Du et al. (2023)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdegen._checks import check_real
from sdegen.sde.base import ScoreFn

__all__ = ["ProductOfExperts"]

LogDensityFn = Callable[[Tensor, Tensor], Tensor]


class ProductOfExperts:
    """The weighted sum of expert scores, sum_i w_i s_i(t, x): the score of prod_i p_i,t(x)^{w_i}.

    At t = 0 this is the score of the composed density prod_i p_i(x)^{w_i} / Z (a product of
    experts, Hinton 2002; with w_i < 0 a negation, Du et al. 2023, sec. 3). At t > 0 it is NOT the
    score of that density diffused to t: the diffusion of a product is not the product of the
    diffusions, so reverse diffusion driven by this sum samples the wrong distribution however
    fine its steps (Du et al. 2023, sec. 3.1; measured in docs/benchmarks/conditional.md). What it
    does give exactly is the gradient of an energy at every t,

        log q_t(x) = sum_i w_i log p_i,t(x) + const,

    so MCMC targeting q_t at each noise level -- the annealed Langevin corrector, or with the
    energies (``log_densities``) the Metropolis-adjusted correctors
    :class:`~sdegen.samplers.MALACorrector` and :class:`~sdegen.samplers.HMCCorrector` -- samples the
    sequence q_t whose last member, q_0, is the product itself (Du et al. 2023, sec. 4).

    The object is a score function ``(t, x)``, usable with every sampler.

    Args:
        scores: the expert scores ``(t, x) -> grad_x log p_i,t(x)``.
        weights: w_i, real numbers (default all 1: the plain product).
        log_densities: the experts' ``(t, x) -> log p_i,t(x)`` ``[B]`` (up to constants in x), if
            known; they make :meth:`log_density` available.
    """

    def __init__(
        self,
        scores: Sequence[ScoreFn],
        weights: Sequence[float] | None = None,
        *,
        log_densities: Sequence[LogDensityFn] | None = None,
    ) -> None:
        scores = list(scores)
        if len(scores) == 0:
            raise ValueError("scores must hold at least one expert score function")
        for i, s in enumerate(scores):
            if not callable(s):
                raise TypeError(f"scores[{i}] must be callable as score(t, x); got {type(s).__name__}")
        if weights is None:
            weights = [1.0] * len(scores)
        weights = [check_real(f"weights[{i}]", w) for i, w in enumerate(weights)]
        if len(weights) != len(scores):
            raise ValueError(f"weights must have one entry per expert ({len(scores)}); got {len(weights)}")
        if log_densities is not None:
            log_densities = list(log_densities)
            if len(log_densities) != len(scores):
                raise ValueError(
                    f"log_densities must have one entry per expert ({len(scores)}); got {len(log_densities)}"
                )
            for i, f in enumerate(log_densities):
                if not callable(f):
                    raise TypeError(f"log_densities[{i}] must be callable as f(t, x); got {type(f).__name__}")
        self.scores, self.weights, self.log_densities = scores, weights, log_densities

    def __repr__(self) -> str:
        energies = ", with energies" if self.log_densities is not None else ""
        return f"ProductOfExperts({len(self.scores)} experts, weights={self.weights}{energies})"

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        out = None
        for w, score in zip(self.weights, self.scores, strict=True):
            s = score(t, x)
            out = s * w if out is None else torch.add(out, s, alpha=w)
        return out

    def log_density(self, t: Tensor, x: Tensor) -> Tensor:
        """log q_t(x) = sum_i w_i log p_i,t(x) (up to a constant in x), shape ``[B]``."""
        if self.log_densities is None:
            raise ValueError(
                "this ProductOfExperts has no energies: pass log_densities=[...] (each expert's "
                "(t, x) -> log p_t(x)) to use log_density, e.g. for MALACorrector"
            )
        out = None
        for w, f in zip(self.weights, self.log_densities, strict=True):
            v = f(t, x)
            out = v * w if out is None else torch.add(out, v, alpha=w)
        return out
