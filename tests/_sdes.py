"""SDEs shared by the tests."""

import torch

from sdegen import LinearSDE


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
