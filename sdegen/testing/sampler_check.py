"""Check that a sampler reproduces a Gaussian mixture's distribution from exact samples of p_T."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from sdegen._checks import check_positive, check_score_fn, check_steps
from sdegen.analytic import GaussianMixture
from sdegen.sde.base import LinearSDE
from sdegen.testing.oracle import OracleNulls, check_samples
from sdegen.testing.result import CheckResult

__all__ = ["check_sampler"]

SamplerFn = Callable[..., Any]


def check_sampler(
    sampler: SamplerFn,
    sde: LinearSDE,
    mixture: GaussianMixture,
    *,
    n: int = 2000,
    eps: float | None = None,
    seed: int = 0,
    null: OracleNulls | None = None,
    z_tolerance: float = 5.0,
    two_sample_z: float = 6.0,
) -> CheckResult:
    """Check that ``sampler`` carries exact samples of p_T to samples of p_eps.

    ``sampler`` is any callable with sdegen's sampler signature,
    ``sampler(sde, score_fn, x_T, *, eps, generator) -> SampleResult | Tensor`` (every
    :class:`sdegen.Sampler` is one). It is given ``n`` exact samples of the oracle's marginal p_T
    -- not the prior, so the prior mismatch does not blur the verdict -- and the oracle's exact
    score; its output is compared with the exact marginal p_eps by :func:`check_samples` (moments,
    energy distance, local MMD). ``eps`` defaults to ``sde.sampling_eps``. Seeded by ``seed``.
    """
    n = check_steps("n", n, minimum=10)
    check_score_fn(sampler, "sampler", "(sde, score_fn, x_T, eps=..., generator=...)")
    eps = check_positive("eps", float(getattr(sde, "sampling_eps", 1e-3)) if eps is None else eps)
    p_T, p_eps = mixture.marginal(sde, sde.T), mixture.marginal(sde, eps)
    x_T = p_T.sample(n, generator=torch.Generator().manual_seed(seed))
    out = sampler(sde, mixture.score(sde), x_T, eps=eps, generator=torch.Generator().manual_seed(seed + 1))
    x = out if torch.is_tensor(out) else out.x
    if tuple(x.shape) != tuple(x_T.shape):
        raise ValueError(f"sampler returned shape {tuple(x.shape)} for x_T of shape {tuple(x_T.shape)}")
    name = f"{getattr(sampler, '__name__', None) or sampler!r} on {sde!r} from exact p_T samples (n={n}, eps={eps:g})"
    if not bool(torch.isfinite(x).all()):
        return CheckResult.from_statistic(name, math.inf, z_tolerance, "samples contain NaN or inf")
    return check_samples(
        x, p_eps, null=null, seed=seed + 2, z_tolerance=z_tolerance, two_sample_z=two_sample_z, name=name
    )
