"""The mean negative log-likelihood of a data set, with its standard error over examples.

Examples are the independent units: with R repeats of the estimate per example (fresh
dequantization noise and divergence probes), example i contributes m_i = -(1/R) sum_r log p_r(x_i),
and

    NLL = (1/n) sum_i m_i,    SE = sd(m_1, ..., m_n) / sqrt(n)     (sd with n - 1),

so the SE holds both the spread of the data and the noise of the estimator; repeats shrink the
latter only. Bits/dim are affine in log p, so they are summarised the same way from each example's
bits/dim (as score_sde and improved DDPM report them, a mean over the test set).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from sdegen._checks import check_tensor

__all__ = ["NLLSummary", "summarize_nll"]


class NLLSummary(NamedTuple):
    """A data set's mean NLL (nats per example) and bits/dim, each with its standard error.

    ``se`` and ``bits_per_dim_se`` are NaN for a single example; ``bits_per_dim`` and its SE are
    None unless asked for.
    """

    nll: float
    se: float
    n: int
    repeats: int
    bits_per_dim: float | None = None
    bits_per_dim_se: float | None = None


def summarize_nll(logp: Tensor, *, bits_per_dim: Callable[[Tensor], Tensor] | None = None) -> NLLSummary:
    """The mean of -log p over examples and its standard error (module docstring).

    Args:
        logp: log-likelihoods in nats, ``[n]`` (one per example) or ``[R, n]`` (R repeats of each),
            e.g. the ``logp`` of :class:`~sdegen.likelihood.LikelihoodResult` of each repeat stacked.
        bits_per_dim: ``logp [n] -> bpd [n]``, e.g.
            ``lambda lp: sdegen.bits_per_dim(lp, x.shape, data_range=(-1.0, 1.0))``, to summarise
            bits/dim too.
    """
    check_tensor("logp", logp)
    if logp.ndim not in (1, 2) or logp.numel() == 0:
        raise ValueError(
            f"logp must be [n] (one log-likelihood per example) or [repeats, n], non-empty; got shape "
            f"{tuple(logp.shape)}"
        )
    if not bool(torch.isfinite(logp).all()):
        raise ValueError(f"logp holds {int((~torch.isfinite(logp)).sum())} NaN or infinite value(s)")
    if bits_per_dim is not None and not callable(bits_per_dim):
        raise TypeError(
            f"bits_per_dim must be a callable logp [n] -> bpd [n]; got {type(bits_per_dim).__name__}"
        )
    per_repeat = logp.detach().double().reshape(-1, logp.shape[-1])
    per_example = per_repeat.mean(0)  # m_i, as log p: its sign is flipped below
    nll, se = _mean_se(-per_example)
    bpd = bpd_se = None
    if bits_per_dim is not None:
        bpd, bpd_se = _mean_se(bits_per_dim(per_example).double())
    return NLLSummary(nll, se, per_repeat.shape[1], per_repeat.shape[0], bpd, bpd_se)


def _mean_se(v: Tensor) -> tuple[float, float]:
    n = v.numel()
    se = float(v.std(correction=1)) / math.sqrt(n) if n > 1 else math.nan
    return float(v.mean()), se
