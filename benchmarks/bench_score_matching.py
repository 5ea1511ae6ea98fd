"""The score-matching family side by side: cost per step, gradient variance at equal cost, held-out NLL.

For each objective -- DSM, SSM, SSM-VR, ESM, ISM (exact divergence), ISM (Hutchinson) and NCSN --
on a 2-D Gaussian mixture (the 8-component ring of ``sdegen train --data ring``) and on the 8x8
digits (64-D, dequantized into [-1, 1]), with one VE SDE, one network and one optimiser per data
set:

1. **cost per step**: median CPU milliseconds of one training step (loss, backward, Adam) at the
   batch size, on one thread, the objectives' steps interleaved so that they see the same load;
2. **gradient variance at equal cost**: tr Cov of the minibatch gradient at a common parameter
   point (the DSM run halfway through its budget), from independent batches, times the cost per
   step, relative to DSM: below 1 means less gradient noise than DSM for the same compute. SSM's
   gradients are doubled first (it keeps its paper's factor 1/2, so it is half of ISM in
   expectation);
3. **held-out NLL after a fixed budget**: each objective trains for the compute of ``--steps`` DSM
   steps, i.e. for steps x (DSM's cost / its cost) steps (cost ratios are steadier than times on a
   shared machine, and the runs are then deterministic), then the EMA model's NLL (nats; bits/dim for the digits) of held-out data through the probability-flow
   ODE (rtol = atol = 1e-4; exact divergence for the ring, one Rademacher probe per image for the
   digits) at eps = tau_L, the time of NCSN's smallest level,
   for every objective, so that all numbers are comparable. For the ring the true NLL at that eps
   comes from the oracle.

Before that, the constants by which the objectives differ (:mod:`sdegen.losses`): for a random
network at one time t (weight 1), L_ESM - L_ISM and L_DSM - L_ESM on 2^15 common draws, against
E ||grad log p_t||^2 and d / sigma^2 - E ||grad log p_t||^2 from the oracle (2^18 independent
draws), with z-scores against both standard errors.

ESM regresses onto the oracle's exact score on the ring; the digits have no oracle, so there it
distils the DSM-trained model (teacher), as ESM is used in practice (its cost is measured
against an untrained teacher of the same size). Times are CPU times (``time.process_time``),
which a shared machine disturbs less than wall time.

Run: python benchmarks/bench_score_matching.py [--part constants|ring|digits|all] [--steps 1500]
     [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

import sdegen
from sdegen import VESDE, VPSDE, ExactTrace, Hutchinson, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.data import load_digits
from sdegen.losses import (
    DenoisingScoreMatching,
    ExplicitScoreMatching,
    ImplicitScoreMatching,
    Loss,
    NCSNLevels,
    NCSNLoss,
    SlicedScoreMatching,
    TimeWeighting,
    WeightedTimes,
)
from sdegen.nn import ScoreMLP
from sdegen.parameterization import NoisePrediction, ScoreModel, ScorePrediction

LEVELS = 10
OBJECTIVES = ("DSM", "SSM", "SSM-VR", "ESM", "ISM exact", "ISM Hutchinson", "NCSN")


@dataclass
class Setup:
    name: str
    sde: VESDE
    event_shape: tuple[int, ...]
    make_net: Callable[[], torch.nn.Module]
    train_batch: Callable[[torch.Generator], Tensor]
    held_out: Tensor
    lr: float
    batch: int
    bits_per_dim: Callable[[Tensor], Tensor] | None = None
    oracle: GaussianMixture | None = None


def ring_setup(batch: int, n_eval: int) -> Setup:
    mixture = GaussianMixture.ring(8, radius=4.0, std=0.5)
    held_out = mixture.sample(n_eval, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    return Setup(
        name="ring (2-D)",
        sde=VESDE(0.01, 10.0),  # sigma_max ~ the largest distance between points (Song and Ermon 2020)
        event_shape=(2,),
        make_net=lambda: ScoreMLP((2,), hidden=128, depth=3, fourier_scale=1.0),
        train_batch=lambda g: mixture.sample(batch, generator=g, dtype=torch.float32),
        held_out=held_out,
        lr=2e-3,
        batch=batch,
        oracle=mixture,
    )


def digits_setup(batch: int, n_eval: int) -> Setup:
    train, test = load_digits("train"), load_digits("test")
    g = torch.Generator().manual_seed(1)
    held_out = test.to_model(test.pixels[:n_eval], g)

    def train_batch(gen: torch.Generator) -> Tensor:
        i = torch.randint(0, len(train), (batch,), generator=gen)
        return train.to_model(train.pixels[i], gen)

    return Setup(
        name="digits (8x8)",
        sde=VESDE(0.01, 20.0),  # the largest distance between two digits in [-1, 1]^64 is about 17
        event_shape=(1, 8, 8),
        make_net=lambda: ScoreMLP((1, 8, 8), hidden=256, depth=3, fourier_scale=1.0),
        train_batch=train_batch,
        held_out=held_out,
        lr=1e-3,
        batch=batch,
        bits_per_dim=lambda logp: test.bits_per_dim(logp),
    )


def make_loss(name: str, setup: Setup, teacher: ScoreModel | None) -> Loss:
    if name == "DSM":
        return DenoisingScoreMatching()
    if name == "SSM":
        return SlicedScoreMatching()
    if name == "SSM-VR":
        return SlicedScoreMatching(variance_reduced=True)
    if name == "ESM":
        target = setup.oracle.score(setup.sde) if setup.oracle is not None else teacher
        return ExplicitScoreMatching(target)
    if name == "ISM exact":
        return ImplicitScoreMatching()
    if name == "ISM Hutchinson":
        return ImplicitScoreMatching(divergence=Hutchinson())
    if name == "NCSN":
        return NCSNLoss(LEVELS)
    raise ValueError(name)


def new_model(setup: Setup, seed: int = 0) -> ScoreModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ScoreModel(setup.make_net(), setup.sde, NoisePrediction())


def train(setup: Setup, loss: Loss, steps: int, seed: int = 2) -> tuple[ScoreModel, ScoreModel]:
    """``steps`` of Adam with a cosine learning rate; the EMA model and a copy of the model halfway."""
    model, ema, half = new_model(setup), new_model(setup), new_model(setup)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=setup.lr)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        if step == steps // 2:
            half.load_state_dict(model.state_dict())
        for group in opt.param_groups:
            group["lr"] = setup.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.zero_grad(set_to_none=True)
        loss(model, setup.train_batch(g), generator=g).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for p, q in zip(ema.parameters(), model.parameters(), strict=True):
                p.lerp_(q, 1 - decay)
    return ema.eval(), half


def costs_per_step(setup: Setup, losses: dict[str, Loss], repeats: int) -> dict[str, float]:
    """Median CPU milliseconds of one training step of each loss, the losses' steps interleaved."""
    models = {name: new_model(setup) for name in losses}
    opts = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in models.items()}
    g = torch.Generator().manual_seed(3)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for i in range(repeats + 2):
        x0 = setup.train_batch(g)
        for name, loss in losses.items():
            start = time.process_time()
            opts[name].zero_grad(set_to_none=True)
            loss(models[name], x0, generator=g).backward()
            opts[name].step()
            if i >= 2:  # warm-up
                times[name].append(time.process_time() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def gradient_variance(setup: Setup, loss: Loss, at: ScoreModel, n: int, scale: float) -> float:
    """tr Cov of ``scale`` times the minibatch gradient at the parameters of ``at``."""
    model = new_model(setup)
    model.load_state_dict(at.state_dict())
    model.train()
    params = list(model.parameters())
    g = torch.Generator().manual_seed(4)
    grads = []
    for _ in range(n):
        gs = torch.autograd.grad(loss(model, setup.train_batch(g), generator=g), params, allow_unused=True)
        grads.append(
            scale
            * torch.cat(
                [
                    (x if x is not None else torch.zeros_like(p)).reshape(-1)
                    for x, p in zip(gs, params, strict=True)
                ]
            )
        )
    G = torch.stack(grads)
    return float(G.var(dim=0).sum())


def held_out_nll(setup: Setup, model: ScoreModel, eps: float) -> float:
    # The exact divergence costs D vector-Jacobian products per evaluation: for the digits one
    # Rademacher probe per image instead (unbiased; its spread averages out over the images).
    d = math.prod(setup.event_shape)
    divergence = ExactTrace() if d <= 16 else Hutchinson()
    result = sdegen.log_likelihood(
        setup.held_out,
        setup.sde,
        model,
        divergence=divergence,
        eps=eps,
        rtol=1e-4,
        atol=1e-4,
        generator=torch.Generator().manual_seed(5),
    )
    if setup.bits_per_dim is not None:
        return float(setup.bits_per_dim(result.logp).mean())
    return float(-result.logp.mean())


def run(setup: Setup, dsm_steps: int, repeats: int, n_grad: int) -> list[dict]:
    eps = float(NCSNLevels(LEVELS).of(setup.sde, dtype=torch.float64).t[-1])
    print(
        f"\n== {setup.name}: {setup.sde!r}, batch {setup.batch}, budget {dsm_steps} DSM steps, eps = {eps:.4f}"
    )
    stand_in = new_model(setup, seed=1).eval()  # a teacher of the right size, for ESM's cost
    costs = costs_per_step(setup, {name: make_loss(name, setup, stand_in) for name in OBJECTIVES}, repeats)
    rows, teacher, midway = [], None, None
    for name in OBJECTIVES:
        steps = max(1, round(dsm_steps * costs["DSM"] / costs[name]))
        loss = make_loss(name, setup, teacher)
        model, half = train(setup, loss, steps)
        if name == "DSM":
            teacher, midway = model, half
        rows.append({"objective": name, "steps": steps, "ms/step": costs[name], "model": model, "loss": loss})
        print(f"  {name:15s} {costs[name]:7.2f} ms/step, {steps:6d} steps", flush=True)
    print("  gradient variances and held-out NLLs ...", flush=True)
    for row in rows:
        scale = 2.0 if row["objective"].startswith("SSM") else 1.0
        row["var"] = gradient_variance(setup, row["loss"], midway, n_grad, scale)
        row["nll"] = held_out_nll(setup, row["model"], eps)
    base = next(r for r in rows if r["objective"] == "DSM")
    for row in rows:
        row["var x cost"] = row["var"] * row["ms/step"] / (base["var"] * base["ms/step"])
    unit = "bits/dim" if setup.bits_per_dim is not None else "NLL (nats)"
    print(
        f"\n| {setup.name} | ms/step | steps for the cost of {dsm_steps} DSM steps | tr Cov(grad) | "
        f"var x cost vs DSM | held-out {unit} |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['objective']} | {row['ms/step']:.2f} | {row['steps']} | {row['var']:.3g} | "
            f"{row['var x cost']:.2f} | {row['nll']:.3f} |"
        )
    if setup.oracle is not None:
        p_eps = setup.oracle.marginal(setup.sde, eps)
        true = float(-p_eps.log_prob(setup.held_out.double()).mean())
        print(f"| true NLL (oracle) | | | | | {true:.3f} |")
    return rows


class AtTime(TimeWeighting):
    """Every sample at one time t, weight 1."""

    def __init__(self, t: float) -> None:
        self.t = t

    def sample(self, sde, n, *, eps, generator=None, device=None, dtype=None):
        t = torch.full((n,), self.t, device=device, dtype=dtype)
        return WeightedTimes(t, torch.ones_like(t))


def _mean_se(v: Tensor) -> tuple[float, float]:
    return float(v.mean()), float(v.std()) / math.sqrt(v.numel())


def constants(n: int) -> None:
    mixture = GaussianMixture.ring(4, radius=2.0, std=0.4)
    x0 = mixture.sample(n, generator=torch.Generator().manual_seed(0))
    print(f"\n== the constants: random ScoreMLP (score prediction), ring(4, 2, 0.4), n = {n}, float64")
    print("F(t) = E ||grad log p_t(x_t)||^2 from the oracle; z against both standard errors")
    print("| SDE | t | sigma(t) | F(t) | L_ESM - L_ISM | z | d / sigma^2 - F(t) | L_DSM - L_ESM | z |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sde in (VPSDE(), SubVPSDE(), VESDE(0.01, 10.0)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            model = ScoreModel(
                ScoreMLP((2,), hidden=32, depth=2, fourier_scale=1.0).double(), sde, ScorePrediction()
            )
        for t in (0.05, 0.3, 0.8):
            w = AtTime(t)
            objectives = {
                "ESM": ExplicitScoreMatching(mixture.score(sde), w, reduction="none"),
                "ISM": ImplicitScoreMatching(w, reduction="none"),
                "DSM": DenoisingScoreMatching(w, reduction="none"),
            }
            with torch.no_grad():
                L = {
                    k: v(model, x0, generator=torch.Generator().manual_seed(3)) for k, v in objectives.items()
                }
            big = mixture.marginal(sde, t).sample(1 << 18, generator=torch.Generator().manual_seed(99))
            fisher, fisher_se = _mean_se((mixture.score(sde)(t, big) ** 2).sum(1))
            sigma = float(sde.sigma(torch.tensor(t, dtype=torch.float64)))
            cells = []
            for (a, b), theory in ((("ESM", "ISM"), fisher), (("DSM", "ESM"), 2 / sigma**2 - fisher)):
                m, se = _mean_se(L[a] - L[b])
                z = (m - theory) / math.sqrt(se**2 + fisher_se**2)
                cells.append(f"{theory:.5g} | {m:.5g} +- {se:.2g} | {z:+.2f}")
            print(f"| {type(sde).__name__} | {t} | {sigma:.4g} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=1500, help="training budget: the cost of this many DSM steps"
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per objective")
    parser.add_argument("--grad-samples", type=int, default=32, help="minibatch gradients per objective")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--part", choices=["constants", "ring", "digits", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="50-step budgets, few repeats: a smoke test")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.repeats, args.grad_samples = 50, 3, 4
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    if args.part in ("constants", "all"):
        constants(1 << 12 if args.quick else 1 << 15)
    if args.part in ("ring", "all"):
        run(ring_setup(args.batch, 1000), args.steps, args.repeats, args.grad_samples)
    if args.part in ("digits", "all"):
        run(digits_setup(args.batch, 360), args.steps, args.repeats, args.grad_samples)


if __name__ == "__main__":
    main()
