"""Tools for testing SDEs, samplers and likelihoods against closed-form ground truth.

Every check takes the user's object and returns a :class:`CheckResult` (pass/fail, the measured
statistic, its tolerance and what was compared), usable in any test framework:

* :func:`check_marginals` -- an SDE's ``marginal_prob`` satisfies the moment ODEs of its drift and
  diffusion and agrees with forward simulation through torchsde;
* :func:`check_sampler` -- a sampler carries exact samples of p_T to the oracle's p_eps (moments
  and two-sample tests calibrated on true-vs-true samples), and :func:`check_samples` for samples;
* :func:`check_likelihood` -- a likelihood routine matches the oracle's exact log-density;
* :func:`empirical_order` / :func:`check_order` -- fitted orders of convergence.

``sdegen.testing.strategies`` holds hypothesis strategies and needs hypothesis
(``pip install sdegen[test]``); nothing else here does.
"""

from sdegen.testing.convergence import OrderFit, check_order, empirical_order
from sdegen.testing.likelihood_check import check_likelihood
from sdegen.testing.marginals import check_forward_simulation, check_marginals, check_moment_odes
from sdegen.testing.oracle import OracleNulls, calibrate, check_moments, check_samples
from sdegen.testing.result import CheckResult
from sdegen.testing.sampler_check import check_sampler
from sdegen.testing.simulate import simulate_forward
from sdegen.testing.two_sample import NullDistribution, calibrate_null, two_sample_test

__all__ = [
    "CheckResult",
    "check_marginals",
    "check_moment_odes",
    "check_forward_simulation",
    "check_sampler",
    "check_samples",
    "check_moments",
    "calibrate",
    "OracleNulls",
    "check_likelihood",
    "empirical_order",
    "check_order",
    "OrderFit",
    "two_sample_test",
    "calibrate_null",
    "NullDistribution",
    "simulate_forward",
]
