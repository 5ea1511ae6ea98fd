"""Empirical order of convergence: fit error ~ C h^p by least squares on log-log axes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from sdegen._checks import check_positive
from sdegen.testing.result import CheckResult

__all__ = ["OrderFit", "empirical_order", "check_order"]


class OrderFit(NamedTuple):
    """The least-squares line log(error) = log(C) + order log(h).

    ``order_stderr`` is the slope's standard error from the residuals (0 for two points), a measure
    of how straight the log-log line is.
    """

    order: float
    constant: float
    order_stderr: float
    step_sizes: tuple[float, ...]
    errors: tuple[float, ...]


def empirical_order(step_sizes: Sequence[float], errors: Sequence[float]) -> OrderFit:
    """Fit the order p of error = C h^p from errors measured at several step sizes h.

    The slope of the ordinary least-squares line through (log h_i, log e_i). Needs at least two
    distinct step sizes and positive, finite errors.
    """
    h = [check_positive(f"step_sizes[{i}]", v) for i, v in enumerate(step_sizes)]
    e = [check_positive(f"errors[{i}]", v) for i, v in enumerate(errors)]
    if len(h) != len(e):
        raise ValueError(f"step_sizes and errors must have the same length; got {len(h)} and {len(e)}")
    if len(set(h)) < 2:
        raise ValueError(f"need at least two distinct step sizes; got step_sizes={h}")
    x = torch.tensor([math.log(v) for v in h], dtype=torch.float64)
    y = torch.tensor([math.log(v) for v in e], dtype=torch.float64)
    xc, yc = x - x.mean(), y - y.mean()
    slope = float((xc * yc).sum() / (xc * xc).sum())
    intercept = float(y.mean() - slope * x.mean())
    n = len(h)
    if n > 2:
        resid = yc - slope * xc
        stderr = math.sqrt(float((resid * resid).sum()) / (n - 2) / float((xc * xc).sum()))
    else:
        stderr = 0.0
    return OrderFit(slope, math.exp(intercept), stderr, tuple(h), tuple(e))


def check_order(
    step_sizes: Sequence[float],
    errors: Sequence[float] | Callable[[float], float],
    expected: float,
    tolerance: float = 0.25,
    name: str = "order of convergence",
) -> CheckResult:
    """Check that the fitted order is within ``tolerance`` of the declared ``expected`` order.

    ``errors`` may be the measured errors or a function ``h -> error`` evaluated at each step size.
    """
    if callable(errors):
        errors = [float(errors(h)) for h in step_sizes]
    fit = empirical_order(step_sizes, errors)
    return CheckResult.from_statistic(
        name,
        abs(fit.order - expected),
        tolerance,
        f"fitted order {fit.order:.3f} (+- {fit.order_stderr:.2g}) vs declared {expected:g} over "
        f"h = {', '.join(f'{v:.3g}' for v in fit.step_sizes)}",
    )
