"""Build an SDE and a Gaussian-mixture oracle; print an exact marginal and score.

Run: python examples/quickstart.py
"""

import torch

import sdegen
from sdegen.analytic import GaussianMixture

sde = sdegen.VPSDE(beta_min=0.1, beta_max=20.0)
data = GaussianMixture.ring(n=8, radius=4.0, std=0.5)  # p_0: 8 Gaussians on a circle

x0 = data.sample(4, generator=torch.Generator().manual_seed(0))
t = torch.full((4,), 0.5, dtype=torch.float64)
mean, std = sde.marginal_prob(t, x0)  # p_0t(x_t | x_0) = N(mean, std^2 I), exactly
print(f"{sde}: drift at t=0.5 is -beta/2 x; g(0.5) = {float(sde.diffusion(0.5)):.4f}")
print(f"x0 = {x0[0].tolist()} -> mean {mean[0].tolist()}, std {float(std[0]):.4f}")

p_t = data.marginal(sde, 0.5)  # the exact marginal mixture at t = 0.5
score = data.score(sde)  # (t, x) -> grad_x log p_t(x), closed form
x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
print(f"log p_0.5({x[0].tolist()}) = {float(p_t.log_prob(x)):.4f}")
print(f"score_0.5({x[0].tolist()}) = {score(0.5, x)[0].tolist()}")
