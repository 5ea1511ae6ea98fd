"""Products of experts: weighted sums of scores, the composition of Du et al. (2023)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdegen._checks import check_output, check_real, check_score_fn, check_score_output, common_sde
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
        if callable(scores) or not isinstance(scores, Sequence):
            raise TypeError(f"scores must be a list of expert score functions; got {type(scores).__name__}")
        scores = list(scores)
        if len(scores) == 0:
            raise ValueError("scores must hold at least one expert score function")
        for i, s in enumerate(scores):
            check_score_fn(s, f"scores[{i}]")
        if weights is None:
            weights = [1.0] * len(scores)
        if isinstance(weights, (str, bytes)) or not isinstance(weights, (Sequence, torch.Tensor)):
            raise TypeError(f"weights must be a sequence of real numbers; got {weights!r}")
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
                check_score_fn(f, f"log_densities[{i}]", "(t, x) -> [B]")
        self.scores, self.weights, self.log_densities = scores, weights, log_densities
        #: the SDE the experts agree on (None if none says); experts of different SDEs are refused
        self.sde = common_sde([(f"scores[{i}]", s) for i, s in enumerate(scores)])

    def __repr__(self) -> str:
        energies = ", with energies" if self.log_densities is not None else ""
        return f"ProductOfExperts({len(self.scores)} experts, weights={self.weights}{energies})"

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        out = None
        for i, (w, score) in enumerate(zip(self.weights, self.scores, strict=True)):
            s = score(t, x)
            check_score_output(s, x, f"scores[{i}]")  # each expert like a top-level score
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
        for i, (w, f) in enumerate(zip(self.weights, self.log_densities, strict=True)):
            v = check_output(
                f"log_densities[{i}]",
                f(t, x),
                f"a tensor [B] = [{x.shape[0]}] of x's dtype {x.dtype} on {x.device}",
                [(x.shape[0],)],
                dtype=x.dtype,
                device=x.device,
            )
            out = v * w if out is None else torch.add(out, v, alpha=w)
        return out
