"""Call torchsde and torchdiffeq yourself on sdegen's reverse-time SDE and probability-flow ODE.

sde.reverse(score_fn) is an object torchsde.sdeint integrates as it is (in reversed time
s = T - t, on a flattened state); sde.probability_flow(score_fn) is a func(t, x) for
torchdiffeq.odeint. Both are checked here against the exact marginal of a Gaussian mixture.

Run: python examples/engines_directly.py [--quick]
"""

import sys

import torch
import torchdiffeq
import torchsde

import sdegen
from sdegen.analytic import GaussianMixture
from sdegen.testing.oracle import calibrate, check_samples

sde = sdegen.VPSDE(beta_min=0.1, beta_max=20.0)
data = GaussianMixture.ring(n=8, radius=4.0, std=0.5)  # p_0: 8 Gaussians on a circle
score = data.score(sde)  # the exact score of p_t; a trained network goes here
quick = "--quick" in sys.argv[1:]  # the test suite's setting: fewer samples and steps
eps, n, steps = sde.sampling_eps, (500 if quick else 2000), (100 if quick else 500)
g = torch.Generator().manual_seed(0)
# The prior N(0, I); the exact p_T differs from it by alpha(T) = 0.0066 (its modes sit at radius 0.03).
x_T = sde.prior_sampling((n, 2), generator=g, dtype=torch.float64)
ts = torch.tensor([sde.T, eps], dtype=torch.float64)  # from T down to eps

# The reverse-time SDE through torchsde. torchsde wants increasing times and a [B, D] state:
# s = T - t, and flatten/unflatten (pass event_shape=x.shape[1:] to sde.reverse for images).
rsde = sde.reverse(score)
s = rsde.reversed_times(ts)  # tensor([0., 0.999]); ys[k] below is the state at t = ts[k]
bm = sdegen.SequentialBrownian(0.0, float(s[-1]), (n, 2), dtype=torch.float64, generator=g)
with torch.no_grad():
    ys = torchsde.sdeint(rsde, rsde.flatten(x_T), s, bm=bm, method="euler", dt=float(s[-1]) / steps)
x_sde = rsde.unflatten(ys[-1])

# The probability-flow ODE through torchdiffeq, which integrates from T down to eps as it is.
ode = sde.probability_flow(score)
with torch.no_grad():
    x_ode = torchdiffeq.odeint(ode, x_T, ts, method="dopri5", rtol=1e-5, atol=1e-5)[-1]


def fmt(v: torch.Tensor) -> str:
    return "[" + ", ".join(f"{float(a):+.3f}" for a in v.flatten()) + "]"


truth = data.marginal(sde, eps)  # the exact p_eps
print(f"{'exact p_eps':26s} mean {fmt(truth.mean())}  covariance {fmt(truth.covariance())}")
null = calibrate(truth, n)  # the two-sample tests' null distributions, shared by both checks
failed = False
for name, x in [(f"torchsde euler, {steps} steps", x_sde), ("torchdiffeq dopri5", x_ode)]:
    report = check_samples(x, truth, null=null)
    print(f"{name:26s} mean {fmt(x.mean(0))}  covariance {fmt(torch.cov(x.T))}")
    print(f"{'':26s} {'matches p_eps' if report else 'DOES NOT MATCH p_eps'}: {report}")
    failed |= not report
sys.exit(1 if failed else 0)
