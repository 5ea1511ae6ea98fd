"""Check that a likelihood routine matches a Gaussian mixture's exact log-density."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sdegen._checks import check_positive, check_score_fn, check_steps
from sdegen.analytic import GaussianMixture
from sdegen.sde.base import LinearSDE
from sdegen.testing.result import CheckResult

__all__ = ["check_likelihood"]

LikelihoodFn = Callable[..., Any]


def check_likelihood(
    likelihood: LikelihoodFn,
    sde: LinearSDE,
    mixture: GaussianMixture,
    *,
    n: int = 32,
    eps: float = 1e-5,
    tolerance: float = 1e-2,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> CheckResult:
    """Check ``likelihood`` against the exact log p_eps of the oracle's marginal at ``eps``.

    ``likelihood`` is any callable with sdegen's likelihood signature,
    ``likelihood(x, sde, score_fn, *, eps, prior_logp) -> LikelihoodResult | Tensor`` (log-density
    in nats, ``[B]``). It is given the oracle's exact score and its exact log p_T as
    ``prior_logp``, so the only error left is the routine's own (solver tolerance, divergence).
    The statistic is max_i |logp_i - log p_eps(x_i)| over ``n`` data points x_i ~ p_0 (``seed``),
    in nats. Pass a deterministic divergence (e.g. ``ExactTrace()``) or a tolerance that allows for
    a stochastic estimator's spread.
    """
    n = check_steps("n", n)
    tolerance = check_positive("tolerance", tolerance)
    eps = check_positive("eps", eps)
    check_score_fn(likelihood, "likelihood", "(x, sde, score_fn, eps=..., prior_logp=...)")
    x = mixture.sample(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    p_T = mixture.marginal(sde, sde.T)
    exact = mixture.marginal(sde, eps).log_prob(x.double())
    out = likelihood(x, sde, mixture.score(sde), eps=eps, prior_logp=p_T.log_prob)
    logp = out if torch.is_tensor(out) else out.logp
    if tuple(logp.shape) != (n,):
        raise ValueError(f"likelihood returned logp of shape {tuple(logp.shape)}; expected ({n},)")
    err = (logp.double() - exact).abs()
    name = getattr(likelihood, "__name__", None) or repr(likelihood)
    return CheckResult.from_statistic(
        f"{name} on {sde!r}",
        float(err.max()) if bool(torch.isfinite(err).all()) else float("inf"),
        tolerance,
        f"max |logp - log p_eps| over {n} points, in nats (mean {float(err.mean()):.3g}); "
        f"exact score and exact log p_T given",
    )
