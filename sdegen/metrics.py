"""Two-sample statistics for comparing generated samples with data."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape

__all__ = ["energy_distance", "mmd"]


def _flat_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Validate two samples ``[n, ...]`` and ``[m, ...]`` and flatten them to float64 vectors."""
    check_batch_shape("x", x)
    check_batch_shape("y", y)
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"x and y must have the same sample shape; got {tuple(x.shape[1:])} and {tuple(y.shape[1:])}"
        )
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"x and y need >= 2 samples each; got {x.shape[0]} and {y.shape[0]}")
    x = x.reshape(x.shape[0], -1).double()
    return x, y.reshape(y.shape[0], -1).to(x)


def _mean_pairwise_distance(x: Tensor, y: Tensor, exclude_diagonal: bool, chunk: int = 2048) -> Tensor:
    total = x.new_zeros(())
    for i in range(0, x.shape[0], chunk):
        total = total + torch.cdist(x[i : i + chunk], y).sum()
    n_pairs = x.shape[0] * y.shape[0]
    if exclude_diagonal:  # the diagonal of |x - x| is zero; only the count changes
        n_pairs -= x.shape[0]
    return total / n_pairs


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased energy distance D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples.

    Szekely and Rizzo 2013, "Energy statistics: a class of statistics based on distances", eq. 2.
    Zero iff the distributions are equal, for any dimension. Samples of shape ``[n, ...]`` and
    ``[m, ...]`` are flattened to vectors and compared in float64; the within-sample terms are
    U-statistics (the diagonal is excluded), so E[D^2] = 0 for two samples of one distribution.
    """
    x, y = _flat_pair(x, y)
    xy = _mean_pairwise_distance(x, y, exclude_diagonal=False)
    xx = _mean_pairwise_distance(x, x, exclude_diagonal=True)
    yy = _mean_pairwise_distance(y, y, exclude_diagonal=True)
    return 2 * xy - xx - yy


def mmd(x: Tensor, y: Tensor, bandwidth: float | None = None) -> Tensor:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel k(a, b) = exp(-|a - b|^2 / (2 h^2)).

    Gretton et al. 2012, "A kernel two-sample test", eq. 3 (the U-statistic MMD^2_u). ``bandwidth``
    h defaults to the median pairwise distance of the pooled sample (the median heuristic); a
    smaller h resolves local structure (mode widths) that the energy distance, dominated by large
    distances, sees only weakly. Samples ``[n, ...]`` and ``[m, ...]`` are flattened, in float64.
    """
    x, y = _flat_pair(x, y)
    if bandwidth is None:
        pooled = torch.cat([x, y])[:2000]
        bandwidth = float(torch.pdist(pooled).median())
    elif not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got bandwidth={bandwidth}")
    gamma = 1.0 / (2 * bandwidth**2)

    def mean_kernel(a: Tensor, b: Tensor, exclude_diagonal: bool) -> Tensor:
        k = torch.exp(-gamma * torch.cdist(a, b).pow(2))
        if exclude_diagonal:
            n = a.shape[0]
            return (k.sum() - n) / (n * (n - 1))
        return k.mean()

    return mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False)
