"""The mean NLL over examples and its standard error: exact on known log-likelihoods, calibrated
on a Gaussian's, and aware that repeats average the estimator's noise, not the data's spread."""

import math

import pytest
import torch

from sdegen.likelihood import NLLSummary, bits_per_dim, summarize_nll


def test_the_mean_and_standard_error_of_per_example_means():
    logp = torch.tensor([[-1.0, -2.0, -4.0], [-3.0, -2.0, -2.0]])  # 2 repeats of 3 examples
    s = summarize_nll(logp)
    per_example = torch.tensor([2.0, 2.0, 3.0], dtype=torch.float64)
    expected = NLLSummary(7 / 3, float(per_example.std()) / math.sqrt(3), 3, 2)
    assert s[:2] == pytest.approx(expected[:2], rel=1e-12) and s[2:] == expected[2:]
    one = summarize_nll(torch.tensor([-1.5]))
    assert one.nll == 1.5 and math.isnan(one.se)


def test_the_standard_error_covers_the_true_nll_of_a_gaussian_and_repeats_shrink_only_the_noise():
    g = torch.Generator().manual_seed(0)
    d, n, R, noise = 4, 4000, 16, 3.0
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    logp = -0.5 * (x * x).sum(1) - 0.5 * d * math.log(2 * math.pi)
    truth = 0.5 * d * math.log(2 * math.pi * math.e)  # the entropy of N(0, I_d)
    exact = summarize_nll(logp)
    assert abs(exact.nll - truth) < 4 * exact.se
    assert exact.se == pytest.approx(math.sqrt(d / 2 / n), rel=0.1)  # Var(-log p) = d / 2
    # an unbiased estimator with noise of sd 3 per repeat: SE^2 = (d / 2 + 9 / R) / n
    noisy = summarize_nll(logp + noise * torch.randn(R, n, generator=g, dtype=torch.float64))
    assert noisy.repeats == R and noisy.n == n
    assert noisy.se == pytest.approx(math.sqrt((d / 2 + noise**2 / R) / n), rel=0.1)
    assert abs(noisy.nll - truth) < 4 * noisy.se


def test_bits_per_dim_are_summarised_with_the_same_standard_error_rescaled():
    logp = -torch.linspace(100.0, 140.0, 9)
    s = summarize_nll(logp, bits_per_dim=lambda lp: bits_per_dim(lp, 16, data_range=(-1.0, 1.0)))
    assert s.bits_per_dim == pytest.approx(s.nll / (16 * math.log(2)) + 7, rel=1e-12)
    assert s.bits_per_dim_se == pytest.approx(s.se / (16 * math.log(2)), rel=1e-12)


@pytest.mark.parametrize(
    "logp, kw, error, match",
    [
        (torch.zeros(2, 3, 4), {}, ValueError, r"logp must be \[n\]"),
        (torch.zeros(0), {}, ValueError, "non-empty"),
        (torch.tensor([0.0, math.nan]), {}, ValueError, "1 NaN or infinite"),
        (torch.zeros(3), {"bits_per_dim": 8}, TypeError, "bits_per_dim must be a callable"),
        ([0.0, 1.0], {}, TypeError, "logp"),
    ],
)
def test_bad_input_is_refused(logp, kw, error, match):
    with pytest.raises(error, match=match):
        summarize_nll(logp, **kw)
