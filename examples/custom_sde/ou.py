"""A user-defined SDE: an Ornstein-Uhlenbeck process with its own mean-reversion schedule.

    dx = -theta(t) x dt + sqrt(2 theta(t)) s dW,    theta(t) = theta_0 + theta_1 sin^2(pi t / 2T),

reverts to N(0, s^2) at a rate that speeds up over time. Its transition kernel is Gaussian with

    alpha(t) = exp(-Theta(t)),    sigma(t)^2 = s^2 (1 - exp(-2 Theta(t))),
    Theta(t) = int_0^t theta = theta_0 t + theta_1 (t / 2 - T sin(pi t / T) / (2 pi)),

so subclassing ``sdegen.LinearSDE`` with ``alpha`` and ``sigma`` is all it takes: the drift
coefficient a(t) = d log alpha / dt and g(t)^2 = d sigma^2 / dt - 2 a sigma^2 follow by autograd,
and every sampler, the likelihood and the checks of ``sdegen.testing`` work with it unchanged.

Run: python examples/custom_sde/ou.py [--quick]   (tests: pytest examples/custom_sde)
"""

from __future__ import annotations

import math
import sys

import torch
from torch import Tensor

import sdegen
from sdegen.analytic import GaussianMixture


class ScheduledOU(sdegen.LinearSDE):
    """Ornstein-Uhlenbeck process with mean-reversion rate theta_0 + theta_1 sin^2(pi t / 2T)."""

    def __init__(self, theta_0: float = 0.5, theta_1: float = 4.0, s: float = 2.0, T: float = 1.0) -> None:
        super().__init__(T)
        if theta_0 < 0 or theta_1 < 0 or theta_0 + theta_1 == 0:
            raise ValueError(f"need theta_0, theta_1 >= 0, not both 0; got {theta_0}, {theta_1}")
        if not s > 0:
            raise ValueError(f"s must be > 0; got s={s}")
        self.theta_0, self.theta_1, self.s = float(theta_0), float(theta_1), float(s)

    def __repr__(self) -> str:
        return f"ScheduledOU(theta_0={self.theta_0:g}, theta_1={self.theta_1:g}, s={self.s:g}, T={self.T:g})"

    def integrated_theta(self, t: Tensor) -> Tensor:
        return self.theta_0 * t + self.theta_1 * (
            t / 2 - self.T * torch.sin(math.pi * t / self.T) / (2 * math.pi)
        )

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(-self.integrated_theta(t))

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t: Tensor) -> Tensor:
        # Given separately so that autograd's d sigma^2 / dt stays finite at t = 0.
        return self.s**2 * -torch.expm1(-2 * self.integrated_theta(t))


def main() -> None:
    from sdegen.testing.marginals import check_marginals

    sde = ScheduledOU()
    quick = "--quick" in sys.argv[1:]  # the test suite's setting: fewer paths, samples and steps
    # Moment ODEs and torchsde forward simulation against alpha and sigma.
    print(check_marginals(sde, n_paths=2000 if quick else 20000))

    data = GaussianMixture.ring(n=6, radius=3.0, std=0.4)
    score = data.score(
        sde
    )  # the exact score of this SDE's marginals; a trained network plugs in the same way
    g = torch.Generator().manual_seed(0)
    eps = 1e-3
    truth = data.marginal(sde, eps)
    n, steps = (300, 50) if quick else (2000, 500)
    for sampler in [
        sdegen.ReverseSDESampler("euler", steps=steps),
        sdegen.ProbabilityFlowSampler("dopri5"),
        sdegen.PredictorCorrectorSampler(
            sdegen.samplers.EulerMaruyama(), sdegen.samplers.LangevinCorrector(snr=0.1), steps=steps * 3 // 5
        ),
    ]:
        out = sdegen.sample(sde, score, (n, 2), sampler, eps=eps, generator=g, dtype=torch.float64)
        ed = float(sdegen.metrics.energy_distance(out.x, truth.sample(n, generator=g)))
        print(f"{type(sampler).__name__:28s} NFE {out.nfe:5d}  energy distance to p_eps {ed:.4f}")

    x = data.sample(32 if quick else 256, generator=g)
    result = sdegen.log_likelihood(x, sde, score, divergence=sdegen.ExactTrace(), eps=1e-5)
    exact = data.marginal(sde, 1e-5).log_prob(x)
    print(
        f"log-likelihood with the SDE's own prior N(0, sigma(T)^2): {float(result.logp.mean()):.4f} nats; "
        f"exact {float(exact.mean()):.4f} (the gap is the prior mismatch, {sde.prior_std:.3f} vs p_T)"
    )


if __name__ == "__main__":
    main()
