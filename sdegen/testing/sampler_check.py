"""Check that a sampler reproduces a Gaussian mixture's distribution from exact samples of p_T."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sdegen._checks import check_positive, check_steps
from sdegen.analytic import GaussianMixture
from sdegen.metrics import energy_distance, mmd
from sdegen.sde.base import LinearSDE
from sdegen.testing.result import CheckResult
from sdegen.testing.two_sample import two_sample_test

__all__ = ["check_sampler", "check_moments"]

SamplerFn = Callable[..., Any]


def check_moments(
    samples: Tensor, target: GaussianMixture, *, z_tolerance: float = 5.0, seed: int = 0
) -> CheckResult:
    """Sample mean and covariance against the target's, as z-scores.

    The standard errors come from the target itself: std/sqrt(n) for each mean coordinate and
    sqrt(Var[(x_i - m_i)(x_j - m_j)] / n) for each covariance entry, the variance estimated from
    an exact sample of the same size (``seed``). The statistic is the largest |z|.
    """
    n = samples.shape[0]
    x = samples.reshape(n, -1).double()
    mean, cov = target.mean().reshape(-1).to(x), target.covariance().to(x)
    ref = target.sample(n, generator=torch.Generator().manual_seed(seed)).reshape(n, -1).to(x)
    z_mean = float(((x.mean(0) - mean).abs() / (torch.diagonal(cov) / n).sqrt()).max())
    centred_ref = ref - mean
    prod_ref = centred_ref[:, :, None] * centred_ref[:, None, :]
    se_cov = (prod_ref.var(0) / n).sqrt()
    z_cov = float(((torch.cov(x.T, correction=1).reshape(cov.shape) - cov).abs() / se_cov).max())
    return CheckResult.all_of(
        "moments",
        [
            CheckResult.from_statistic("mean", z_mean, z_tolerance, f"largest |z| of {n} samples' mean"),
            CheckResult.from_statistic(
                "covariance", z_cov, z_tolerance, f"largest |z| of {n} samples' covariance entries"
            ),
        ],
    )


def check_sampler(
    sampler: SamplerFn,
    sde: LinearSDE,
    mixture: GaussianMixture,
    *,
    n: int = 2000,
    eps: float | None = None,
    seed: int = 0,
    z_tolerance: float = 5.0,
    n_null: int = 24,
) -> CheckResult:
    """Check that ``sampler`` carries exact samples of p_T to samples of p_eps.

    ``sampler`` is any callable with sdegen's sampler signature,
    ``sampler(sde, score_fn, x_T, *, eps, generator) -> SampleResult | Tensor``. It is given
    ``n`` exact samples of the oracle's marginal p_T (not the prior, so the prior mismatch does not
    blur the verdict) and the oracle's exact score; its output is compared with the exact marginal
    p_eps by

    * mean and covariance z-scores (:func:`check_moments`),
    * the energy distance (global shape), and
    * a Gaussian-kernel MMD at the scale of the mixture's components (local shape: mode widths),

    each a z-score against its null distribution calibrated on true-vs-true samples of the same
    size (:func:`~sdegen.testing.two_sample.two_sample_test`). Everything is seeded by ``seed``.
    """
    n = check_steps("n", n, minimum=10)
    z_tolerance = check_positive("z_tolerance", z_tolerance)
    if not callable(sampler):
        raise TypeError(
            f"sampler must be callable as sampler(sde, score_fn, x_T, eps=..., generator=...); got {sampler!r}"
        )
    if eps is None:
        eps = float(getattr(sde, "sampling_eps", 1e-3))
    eps = check_positive("eps", eps)
    p_T, p_eps = mixture.marginal(sde, sde.T), mixture.marginal(sde, eps)
    x_T = p_T.sample(n, generator=torch.Generator().manual_seed(seed))
    out = sampler(sde, mixture.score(sde), x_T, eps=eps, generator=torch.Generator().manual_seed(seed + 1))
    x = out if torch.is_tensor(out) else out.x
    if tuple(x.shape) != tuple(x_T.shape):
        raise ValueError(f"sampler returned shape {tuple(x.shape)} for x_T of shape {tuple(x_T.shape)}")
    name = getattr(sampler, "__name__", None) or repr(sampler)
    if not bool(torch.isfinite(x).all()):
        return CheckResult.from_statistic(
            f"{name} on {sde!r}", math.inf, z_tolerance, "samples contain NaN or inf"
        )

    # The components' typical scale at eps: the MMD kernel resolves structure of that size.
    scale = math.sqrt(float(torch.linalg.eigvalsh(p_eps.covariances).mean()))
    local_mmd = functools.partial(mmd, bandwidth=scale)
    local_mmd.__name__ = f"MMD(h={scale:.3g})"  # type: ignore[attr-defined]
    reference = lambda m, g: p_eps.sample(m, generator=g)  # noqa: E731
    return CheckResult.all_of(
        f"{name} on {sde!r} from exact p_T samples (n={n}, eps={eps:g})",
        [
            check_moments(x, p_eps, z_tolerance=z_tolerance, seed=seed + 2),
            two_sample_test(
                x,
                reference,
                statistic=energy_distance,
                n_null=n_null,
                z_tolerance=z_tolerance,
                seed=seed + 3,
                name="energy distance",
            ),
            two_sample_test(
                x,
                reference,
                statistic=local_mmd,
                n_null=n_null,
                z_tolerance=z_tolerance,
                seed=seed + 4,
                name="local MMD",
            ),
        ],
    )
