"""Do samples come from a Gaussian-mixture oracle? Moments and calibrated two-sample tests."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_positive
from sdegen.analytic import GaussianMixture
from sdegen.metrics import energy_distance, mmd
from sdegen.testing.result import CheckResult
from sdegen.testing.seeds import derived_seed, stream
from sdegen.testing.two_sample import NullDistribution, calibrate_null, two_sample_test

__all__ = ["OracleNulls", "calibrate", "check_moments", "check_samples"]


class OracleNulls(NamedTuple):
    """Null distributions of the two statistics of :func:`check_samples` for one oracle and n."""

    energy: NullDistribution
    local_mmd: NullDistribution


def _local_mmd(target: GaussianMixture):
    """A Gaussian-kernel MMD at the typical scale of the target's components (their mean std)."""
    scale = math.sqrt(float(torch.linalg.eigvalsh(target.covariances).mean()))
    statistic = functools.partial(mmd, bandwidth=scale)
    statistic.__name__ = f"MMD(h={scale:.3g})"  # type: ignore[attr-defined]
    return statistic


def calibrate(target: GaussianMixture, n: int, *, seed: int = 0, n_null: int = 40) -> OracleNulls:
    """Calibrate both two-sample statistics of :func:`check_samples` for ``n`` samples of ``target``.

    Compute once per (target, n) and pass as ``null=`` when checking many samplers. Each null has
    its own random stream derived from ``seed`` (``sdegen.testing.seeds``), so
    ``check_samples(..., seed=s)`` computes exactly ``calibrate(..., seed=s)`` when not given one,
    and its reference samples never reuse the nulls' draws.
    """
    reference = lambda m, g: target.sample(m, generator=g)  # noqa: E731
    return OracleNulls(
        calibrate_null(
            reference, n, statistic=energy_distance, n_null=n_null, seed=derived_seed(seed, "energy null")
        ),
        calibrate_null(
            reference,
            n,
            statistic=_local_mmd(target),
            n_null=n_null,
            seed=derived_seed(seed, "local MMD null"),
        ),
    )


def check_moments(
    samples: Tensor,
    target: GaussianMixture,
    *,
    z_tolerance: float = 5.0,
    seed: int = 0,
    n_moments: int = 100_000,
) -> CheckResult:
    """Sample mean and covariance against the target's, as z-scores.

    Standard errors come from the target: sqrt(C_jj / n) for each mean coordinate, and
    sqrt(Var[(x_j - m_j)(x_k - m_k)] / n) for each covariance entry, the variance estimated from
    ``n_moments`` exact samples (the stream ``"moments"`` of ``seed``). Each z is about N(0, 1) for
    exact samples; the
    statistic is the largest |z|.
    """
    check_batch_shape("samples", samples)
    z_tolerance = check_positive("z_tolerance", z_tolerance)
    n = samples.shape[0]
    x = samples.reshape(n, -1).double().cpu()
    if x.shape[1] != target.dim:
        raise ValueError(f"samples have {x.shape[1]} dimensions per sample but the target has {target.dim}")
    if not bool(torch.isfinite(x).all()):
        return CheckResult.from_statistic("moments", math.inf, z_tolerance, "samples contain NaN or inf")
    mean, cov = target.mean().reshape(-1), target.covariance()
    z_mean = float(((x.mean(0) - mean).abs() / (cov.diagonal() / n).sqrt()).max())
    big = target.sample(n_moments, generator=stream(seed, "moments")).reshape(n_moments, -1)
    centred = big - mean
    se_cov = ((centred[:, :, None] * centred[:, None, :]).var(0) / n).sqrt()
    z_cov = float(((torch.cov(x.T).reshape(cov.shape) - cov).abs() / se_cov).max())
    return CheckResult.all_of(
        "moments",
        [
            CheckResult.from_statistic("mean", z_mean, z_tolerance, f"largest |z| of the {n} samples' mean"),
            CheckResult.from_statistic(
                "covariance", z_cov, z_tolerance, f"largest |z| of the {n} samples' covariance entries"
            ),
        ],
    )


def check_samples(
    samples: Tensor,
    target: GaussianMixture,
    *,
    null: OracleNulls | None = None,
    seed: int = 0,
    z_tolerance: float = 5.0,
    two_sample_z: float = 6.0,
    name: str = "samples vs oracle",
) -> CheckResult:
    """Check that ``samples`` [n, *event_shape] are draws from ``target``.

    Three parts, each deterministic for a given ``seed`` and each drawing from its own random stream
    derived from it (``sdegen.testing.seeds``), so that no two parts share draws:

    * the mean and covariance (:func:`check_moments`, |z| <= ``z_tolerance``);
    * the energy distance, sensitive to global shape: scale, location, mode weights;
    * a Gaussian-kernel MMD at the scale of the components, sensitive to local shape (mode widths)
      that the energy distance, dominated by large distances, sees weakly;

    the last two as z-scores against their null distributions (``null`` from :func:`calibrate`,
    computed here when not given), passing at z <= ``two_sample_z``.
    """
    check_batch_shape("samples", samples)
    n = samples.shape[0]
    if null is None:
        null = calibrate(target, n, seed=seed)
    reference = lambda m, g: target.sample(m, generator=g)  # noqa: E731
    return CheckResult.all_of(
        name,
        [
            check_moments(samples, target, z_tolerance=z_tolerance, seed=seed),
            two_sample_test(
                samples,
                reference,
                statistic=energy_distance,
                null=null.energy,
                z_tolerance=two_sample_z,
                seed=derived_seed(seed, "energy reference"),
                name="energy distance",
            ),
            two_sample_test(
                samples,
                reference,
                statistic=_local_mmd(target),
                null=null.local_mmd,
                z_tolerance=two_sample_z,
                seed=derived_seed(seed, "local MMD reference"),
                name="local MMD",
            ),
        ],
    )
