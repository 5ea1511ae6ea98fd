"""The log-SNR lambda(t) = log(alpha / sigma) and its inverse on every LinearSDE: closed forms round-trip
in float64 and agree with the generic definitions (LinearSDE's log(alpha) - log(sigma) and bisection)."""

import math

import pytest
import torch
from _sdes import OrnsteinUhlenbeck
from hypothesis import given
from hypothesis import strategies as st

from sdegen import EDMVESDE, VESDE, VPSDE, CosineVPSDE, DiscreteVPSDE, LinearSDE, SubVPSDE
from sdegen.testing import strategies as sst

F64 = torch.float64
ROUND_TRIP = 1e-10


class DecayingVE(LinearSDE):
    """A user schedule with alpha^2 + sigma^2 != 1 and no closed forms: alpha = exp(-c t), sigma = t.

    lambda(t) = -c t - log t decreases strictly; the inverse is the base class's bisection.
    """

    def __init__(self, c: float = 0.5, T: float = 3.0):
        super().__init__(T)
        self.c = c

    def alpha(self, t):
        return torch.exp(-self.c * t)

    def sigma(self, t):
        return t.clone()


def user_sdes():
    """User LinearSDEs that define only alpha and sigma, so lambda's inverse is the generic bisection."""
    return st.one_of(
        st.builds(OrnsteinUhlenbeck, st.floats(0.1, 5.0), st.floats(0.5, 4.0)),
        st.builds(DecayingVE, st.floats(0.0, 3.0), st.floats(0.5, 4.0)),
    )


def times_across(sde: LinearSDE, extra: list[float]) -> torch.Tensor:
    """64 log-spaced times over [eps, T] (every decade of a VE grid), T itself, and ``extra``."""
    eps = sde.sampling_eps
    grid = torch.logspace(math.log10(eps), math.log10(sde.T), 64, dtype=F64)
    return torch.cat([grid, torch.tensor([eps, sde.T, *extra], dtype=F64)])


def assert_round_trip(sde: LinearSDE, t: torch.Tensor) -> None:
    lam = sde.log_snr(t)
    assert bool(torch.isfinite(lam).all()), f"{sde!r}: lambda not finite on [eps, T]"
    assert bool((lam[:63] > lam[1:64]).all()), f"{sde!r}: lambda must decrease in t"
    back = sde.inverse_log_snr(lam)
    worst = float(((back - t).abs() / t).max())
    assert worst <= ROUND_TRIP, f"{sde!r}: max |t(lambda(t)) - t| / t = {worst:.3g}"
    # and the other way: lambda -> t -> lambda over [lambda(T), lambda(eps)]
    lams = torch.linspace(float(lam.min()), float(lam.max()), 65, dtype=F64)
    err = float(((sde.log_snr(sde.inverse_log_snr(lams)) - lams).abs() / lams.abs().clamp_min(1.0)).max())
    assert err <= ROUND_TRIP, f"{sde!r}: max |lambda(t(lambda)) - lambda| = {err:.3g}"


@given(sde=sst.linear_sdes(), data=st.data())
def test_closed_form_inverse_round_trips_in_float64(sde, data):
    """VP, sub-VP, VE, cosine VP and EDM VE over their parameter ranges: t -> lambda -> t to 1e-10
    relative over [eps, T], and lambda -> t -> lambda likewise."""
    extra = data.draw(st.lists(st.floats(sde.sampling_eps, sde.T), max_size=4))
    assert_round_trip(sde, times_across(sde, extra))


@given(sde=user_sdes(), data=st.data())
def test_generic_bisection_inverse_round_trips_in_float64(sde, data):
    assert type(sde).inverse_log_snr is LinearSDE.inverse_log_snr  # the generic path is under test
    extra = data.draw(st.lists(st.floats(sde.sampling_eps, sde.T), max_size=4))
    assert_round_trip(sde, times_across(sde, extra))


@given(sde=sst.linear_sdes())
def test_closed_forms_agree_with_the_generic_definitions(sde):
    """Each closed form against LinearSDE's derivation from alpha and sigma alone: a = d log alpha/dt and
    g^2 = d sigma^2/dt - 2 a sigma^2 by autograd, lambda = log alpha - 1/2 log sigma^2, t(lambda) by
    bisection."""
    t = times_across(sde, [])
    clip = getattr(sde, "t_clip", None)
    t = t[t != clip]  # the cosine schedule's rate has a kink at t_clip, where autograd is one-sided
    torch.testing.assert_close(
        sde.drift_coefficient(t), LinearSDE.drift_coefficient(sde, t), rtol=1e-9, atol=0
    )
    torch.testing.assert_close(
        sde.diffusion_squared(t), LinearSDE.diffusion_squared(sde, t), rtol=1e-8, atol=0
    )
    lam = sde.log_snr(t)
    torch.testing.assert_close(lam, LinearSDE.log_snr(sde, t), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        sde.inverse_log_snr(lam), LinearSDE.inverse_log_snr(sde, lam), rtol=1e-10, atol=0
    )


@pytest.mark.parametrize(
    "sde",
    [
        VPSDE(),
        SubVPSDE(),
        VESDE(),
        CosineVPSDE(),
        EDMVESDE(),
        OrnsteinUhlenbeck(),
        DecayingVE(),
        DiscreteVPSDE.from_beta_schedule("scaled_linear", 1000, 0.00085, 0.012),
    ],
    ids=lambda s: type(s).__name__,
)
def test_inverse_maps_the_ends_and_keeps_dtype(sde):
    """lambda = +inf (sigma = 0) is t = 0; lambda below lambda(T) is clamped to T; float32 in, float32 out."""
    lam_T = float(sde.log_snr(torch.tensor(sde.T, dtype=F64)))
    out = sde.inverse_log_snr(torch.tensor([math.inf, lam_T - 1.0], dtype=F64))
    torch.testing.assert_close(out, torch.tensor([0.0, sde.T], dtype=F64), rtol=0, atol=1e-12 * sde.T)
    t32 = torch.tensor([0.25, 0.5], dtype=torch.float32) * sde.T
    back = sde.inverse_log_snr(sde.log_snr(t32))
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, t32, rtol=1e-5, atol=0)
