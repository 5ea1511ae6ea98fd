"""Likelihood speed and accuracy: sdegen.log_likelihood against the reference implementation's way.

Prints, from one run with interleaved repeats (medians):

1. Overhead: wall time / (NFE x (one score forward + one VJP)) for ScoreMLP on (1000, 2) and the
   tiny UNet on (64, 1, 8, 8), with one Rademacher probe (target <= 1.2), and the speed-up over a
   baseline written as score_sde_pytorch's ``likelihood.py`` does it: scipy ``solve_ivp`` RK45 on
   flattened float64 numpy arrays, the same tolerances and score function, the score called twice
   per evaluation (once without grad for the drift, once with grad for the divergence).
2. Accuracy: both against the Gaussian-mixture oracle's exact log p_eps, with the oracle's score
   and its exact log p_T as the prior, so that only solver (and probe) error remains. sdegen
   controls every sample's error (a per-sample norm), the reference an RMS over the whole batch:
   sdegen takes more NFE at equal tolerances and is far more accurate in the worst sample; the
   1e-4 row compares at matched accuracy.

Run: python benchmarks/bench_likelihood.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import integrate

from sdegen import VPSDE, ExactTrace, Hutchinson, log_likelihood
from sdegen.analytic import GaussianMixture
from sdegen.nn import ScoreMLP, UNet

EPS, RTOL, ATOL = 1e-5, 1e-5, 1e-5


class ReferenceResult(NamedTuple):
    logp: torch.Tensor
    nfe: int


def reference_log_likelihood(x, sde, score_fn, probe, *, exact=False, prior_logp=None):
    """score_sde_pytorch's likelihood.py, transcribed.

    ``probe`` is the fixed Hutchinson vector; ``exact`` replaces it by the sum over basis vectors
    (for the accuracy table only; the reference has no exact trace).
    """
    shape, B = x.shape, x.shape[0]
    device = x.device
    basis = (
        torch.eye(x[0].numel(), device=device).reshape(-1, 1, *shape[1:]).expand(-1, *shape)
        if exact
        else None
    )

    def drift_fn(xt, vec_t):
        return sde.probability_flow_drift(vec_t, xt, score_fn(vec_t, xt))

    def div_fn(xt, vec_t):
        with torch.enable_grad():
            xt.requires_grad_(True)
            f = drift_fn(xt, vec_t)
            vectors = basis if exact else probe[None]
            total = 0
            for i, v in enumerate(vectors):
                (g,) = torch.autograd.grad(torch.sum(f * v), xt, retain_graph=i < len(vectors) - 1)
                total = total + torch.sum(g * v, dim=tuple(range(1, len(shape))))
        xt.requires_grad_(False)
        return total

    def ode_func(t, y):
        xt = torch.from_numpy(y[:-B].reshape(shape)).to(device).type(torch.float32)
        vec_t = torch.ones(B, device=device) * t
        drift = drift_fn(xt, vec_t).detach().cpu().numpy().reshape((-1,))
        logp_grad = div_fn(xt, vec_t).detach().cpu().numpy().reshape((-1,))
        return np.concatenate([drift, logp_grad], axis=0)

    with torch.no_grad():
        init = np.concatenate([x.detach().cpu().numpy().reshape((-1,)), np.zeros((B,))], axis=0)
        sol = integrate.solve_ivp(ode_func, (EPS, sde.T), init, rtol=RTOL, atol=ATOL, method="RK45")
        zp = sol.y[:, -1]
        z = torch.from_numpy(zp[:-B].reshape(shape)).to(device).type(torch.float32)
        delta = torch.from_numpy(zp[-B:]).to(device).type(torch.float32)
        prior = (prior_logp or sde.prior_logp)(z)
        return ReferenceResult(prior + delta, sol.nfev)


def fwd_vjp(score_fn, x, v) -> None:
    xg = x.detach().requires_grad_(True)
    out = score_fn(torch.full((x.shape[0],), 0.5), xg)
    torch.autograd.grad(out, xg, v)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def speed_table(repeats: int) -> None:
    torch.manual_seed(0)  # network initialisation only
    sde = VPSDE()
    ring = GaussianMixture.ring()
    workloads = [
        (
            "ScoreMLP (1000, 2)",
            ScoreMLP(2),
            ring.sample(1000, torch.Generator().manual_seed(1), dtype=torch.float32),
        ),
        (
            "UNet tiny (64, 1, 8, 8)",
            UNet.from_size("tiny", 1),
            torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2)),
        ),
    ]
    print("## Speed (float32, VP SDE, rtol = atol = 1e-5, one Rademacher probe; medians)\n")
    print(
        "| workload | fwd+VJP ms | sdegen s | NFE | sdegen / (NFE x (fwd+VJP)) | reference-way s | NFE "
        "| speed-up | per-NFE speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, net, x in workloads:
        print(_speed_row(name, net, x, sde, repeats))


def _speed_row(name: str, net: torch.nn.Module, x: torch.Tensor, sde: VPSDE, repeats: int) -> str:
    probe = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(3)).float() * 2 - 1
    units, ours, refs = [], [], []
    nfe = ref_nfe = 0
    fwd_vjp(net, x, probe)  # warm-up
    for _ in range(repeats):  # interleaved, so that machine noise hits all three alike
        units.append(statistics.median(timed(lambda: fwd_vjp(net, x, probe))[0] for _ in range(5)))
        dt, res = timed(lambda: log_likelihood(x, sde, net, generator=torch.Generator().manual_seed(4)))
        ours.append(dt)
        nfe = res.nfe
        dt, (_, ref_nfe) = timed(lambda: reference_log_likelihood(x, sde, net, probe))
        refs.append(dt)
    unit, t_ours, t_ref = (statistics.median(v) for v in (units, ours, refs))
    return (
        f"| {name} | {1e3 * unit:.2f} | {t_ours:.3f} | {nfe} | {t_ours / (nfe * unit):.3f} "
        f"| {t_ref:.3f} | {ref_nfe} | {t_ref / t_ours:.2f}x | {(t_ref / ref_nfe) / (t_ours / nfe):.2f}x |"
    )


def accuracy_table() -> None:
    sde = VPSDE()
    gm = GaussianMixture.ring()
    x = gm.marginal(sde, EPS).sample(1000, torch.Generator().manual_seed(5), dtype=torch.float32)
    truth = gm.marginal(sde, EPS).log_prob(x.double())
    p_T = gm.marginal(sde, sde.T)

    def prior(z):
        return p_T.log_prob(z.double()).float()

    score = gm.score(sde)
    probe = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(6)).float() * 2 - 1

    class SameProbe(Hutchinson):
        def draw(self, x, generator=None):
            return probe[None]

    rows = [
        (
            "sdegen, exact trace",
            lambda: log_likelihood(x, sde, score, divergence=ExactTrace(), prior_logp=prior),
        ),
        (
            "sdegen, exact trace, rtol = atol = 1e-4",
            lambda: log_likelihood(
                x, sde, score, divergence=ExactTrace(), prior_logp=prior, rtol=1e-4, atol=1e-4
            ),
        ),
        (
            "reference way, exact trace",
            lambda: reference_log_likelihood(x, sde, score, probe, exact=True, prior_logp=prior),
        ),
        (
            "sdegen, 1 Rademacher probe",
            lambda: log_likelihood(x, sde, score, divergence=SameProbe(), prior_logp=prior),
        ),
        (
            "reference way, same probe",
            lambda: reference_log_likelihood(x, sde, score, probe, prior_logp=prior),
        ),
    ]
    print("\n## Accuracy against the oracle (ring of 8 Gaussians, d = 2, 1000 points of p_eps, float32,")
    print("## rtol = atol = 1e-5, the oracle's score and exact log p_T)\n")
    print("| method | NFE | mean abs error (nats) | max abs error (nats) |")
    print("|---|---|---|---|")
    for name, run in rows:
        res = run()
        logp, nfe = res.logp, res.nfe
        err = (logp.double() - truth).abs()
        print(f"| {name} | {nfe} | {float(err.mean()):.2e} | {float(err.max()):.2e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} interleaved repeats\n"
    )
    speed_table(args.repeats)
    accuracy_table()


if __name__ == "__main__":
    main()
