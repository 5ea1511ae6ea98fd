"""SDEs shared by the tests."""

import torch

from sdegen import SDE, VPSDE, LinearSDE


class OrnsteinUhlenbeck(LinearSDE):
    """dx = -theta x dt + sqrt(2 theta) dW: alpha = exp(-theta t), sigma^2 = 1 - exp(-2 theta t).

    A user's SDE given only by alpha and sigma, so drift and diffusion come from the base's autograd path.
    """

    def __init__(self, theta: float = 1.5, T: float = 2.0):
        super().__init__(T)
        self.theta = theta

    def alpha(self, t):
        return torch.exp(-self.theta * t)

    def sigma(self, t):
        return torch.sqrt(self.sigma_squared(t))

    def sigma_squared(self, t):
        return -torch.expm1(-2 * self.theta * t)


class OpaqueVP(SDE):
    """VPSDE known only through its drift and diffusion (a general SDE): the same process, without
    the closed forms a LinearSDE offers."""

    def __init__(self, beta_max: float = 20.0):
        super().__init__(T=1.0)
        self.inner = VPSDE(beta_max=beta_max)

    def drift(self, t, x):
        return self.inner.drift(t, x)

    def diffusion(self, t):
        return self.inner.diffusion(t)

    def prior_sampling(self, shape, generator=None, device=None, dtype=None):
        return self.inner.prior_sampling(shape, generator, device, dtype)

    def prior_logp(self, z):
        return self.inner.prior_logp(z)
