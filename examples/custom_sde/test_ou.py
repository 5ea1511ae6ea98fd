"""Property tests of a user-defined SDE with sdegen.testing (run: pytest examples/custom_sde).

Each check returns a CheckResult; ``raise_if_failed()`` turns a failure into an AssertionError that
carries the full report. Hypothesis draws the SDE's parameters and shrinks a failure to the
simplest ones; ``--hypothesis-profile=thorough`` runs more examples.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from ou import ScheduledOU

import sdegen
from sdegen.analytic import GaussianMixture
from sdegen.testing import strategies as sst
from sdegen.testing.likelihood_check import check_likelihood
from sdegen.testing.marginals import check_marginals, check_moment_odes
from sdegen.testing.sampler_check import check_sampler

ous = st.builds(
    ScheduledOU,
    theta_0=st.floats(0.0, 2.0),
    theta_1=st.floats(0.5, 8.0),
    s=st.floats(0.5, 3.0),
    T=st.floats(0.5, 2.0),
)


@given(sde=ous)
def test_moment_odes(sde):
    check_moment_odes(sde).raise_if_failed()


def test_marginals_agree_with_forward_simulation():
    check_marginals(ScheduledOU(), n_paths=10000).raise_if_failed()


@pytest.mark.parametrize(
    "sampler",
    [
        sdegen.ReverseSDESampler("euler", steps=400),
        sdegen.ProbabilityFlowSampler("dopri5"),
        sdegen.PredictorCorrectorSampler(
            sdegen.samplers.EulerMaruyama(), sdegen.samplers.LangevinCorrector(snr=0.1), steps=200
        ),
    ],
    ids=["reverse-sde", "pf-ode", "pc"],
)
def test_samplers_reproduce_the_oracle(sampler):
    mixture = GaussianMixture.ring(n=6, radius=3.0, std=0.4)
    check_sampler(sampler, ScheduledOU(), mixture, n=1000).raise_if_failed()


@given(mixture=sst.gaussian_mixtures(dim=2, max_components=3))
def test_exact_likelihood_matches_the_oracle(mixture):
    def likelihood(x, sde, score_fn, *, eps, prior_logp):
        return sdegen.log_likelihood(
            x,
            sde,
            score_fn,
            divergence=sdegen.ExactTrace(),
            rtol=1e-7,
            atol=1e-7,
            eps=eps,
            prior_logp=prior_logp,
        )

    check_likelihood(likelihood, ScheduledOU(), mixture, n=8, tolerance=1e-3).raise_if_failed()


def test_a_wrong_schedule_is_caught():
    """Claiming theta_1 = 4 in alpha but simulating with theta_1 = 5: forward simulation disagrees."""

    class Mismatched(ScheduledOU):
        def drift_coefficient(self, t):
            return ScheduledOU(theta_1=5.0).drift_coefficient(t)

    assert not check_marginals(Mismatched(), n_paths=10000)
    torch.testing.assert_close(  # while the true SDE's own coefficient is exactly -theta(t)
        ScheduledOU().drift_coefficient(torch.tensor([0.5], dtype=torch.float64)),
        torch.tensor([-(0.5 + 4.0 * 0.5)], dtype=torch.float64),
    )
