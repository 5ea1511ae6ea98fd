"""Conditional and composed generation against exact conditionals: error at NFE 20, 100, 1000 and cost.

Every method samples a 2-D Gaussian-mixture problem whose conditional target is known in closed
form (sdegen.analytic), starting from exact samples of the target's p_T where one exists, with the
oracle's exact scores, so the error is the method's own (its bias plus the discretisation):

* classifier guidance (scale 1, exact noisy classifier)          -> p(x | y)
* classifier-free guidance w = 0 / w = 3 (exact conditional model) -> p(x | y) / the tilted target
  p(x) p(y | x)^(1 + w) / Z (exact samples by rejection)
* replacement inpainting, independent / correlated coordinates    -> p(x_2 | x_1)
  (correlated also with a Langevin corrector after each replacement, as score_sde's PC inpainting)
* noisy linear observation by projection (rotated independent)    -> p(x | y)
* reconstruction guidance (DPS), correlated, noise 0.1 and 0.5     -> p(x | y)
* projection of the same noisy observations (stopped at their noise level) -> p(x | y)
* product of experts: the naive sum, + annealed Langevin, + MALA   -> p_1 p_2 / Z

NFE = score evaluations of the composed score (a CFG evaluation is one call of the model at batch
2B; a product-of-experts evaluation calls both experts). DDPM ancestral steps at NFE = steps; with
a corrector, steps = NFE / (evaluations per step). The error is the energy distance to exact
samples (n each) minus the mean of its null (true vs true), in units of the null's std (z), the
median over ``--seeds`` runs; z <= 6 is indistinguishable from exact (the null has a heavy right
tail); "diverged" marks samples that flew apart (z > 1000). z grows like n for a fixed bias.

Cost: wall time per NFE relative to unconditional DDPM sampling, with 3 x 256 MLPs standing in
for trained networks (score model, classifier, conditional model with a label embedding,
energies), interleaved repeats: what a user pays at equal NFE. The Metropolis correctors'
log-density evaluations are not counted in NFE but are in the time.

Run: python benchmarks/bench_conditional.py [--n 1000] [--seeds 3] [--threads 1] [--cost-only] [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import sdegen
from sdegen import (
    VPSDE,
    ClassifierFreeGuidance,
    ClassifierGuidance,
    DDPMSampler,
    Inpainting,
    LinearObservation,
    PredictorCorrectorSampler,
    ProductOfExperts,
    ReconstructionGuidance,
)
from sdegen.analytic import GaussianMixture
from sdegen.metrics import energy_distance
from sdegen.nn import ScoreMLP
from sdegen.samplers import AnnealedLangevinCorrector, LangevinCorrector, MALACorrector, ReverseDiffusion
from sdegen.testing.two_sample import calibrate_null

F64 = torch.float64
SDE = VPSDE(0.1, 20.0)

LABELLED = GaussianMixture(
    [0.3, 0.2, 0.3, 0.2],
    [[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5], [0.0, -1.5]],
    [0.5, 0.5, 0.3, 0.3],
    labels=[0, 1, 0, 1],
)
CORRELATED = GaussianMixture(
    [0.5, 0.5], [[-2.0, -2.0], [2.0, 2.0]], [[[1.0, 0.8], [0.8, 1.0]], [[1.0, 0.8], [0.8, 1.0]]]
)
EXPERT_1 = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], [[1.0, 0.25], [1.0, 0.25]])
EXPERT_2 = GaussianMixture([0.7, 0.3], [[0.0, -2.0], [0.0, 2.0]], [[0.25, 1.0], [0.25, 1.0]])


def independent(rotation: float = 0.0) -> GaussianMixture:
    """p(z_1) p(z_2) in coordinates x = R z."""
    weights = [a * b for a in (0.4, 0.6) for b in (0.3, 0.7)]
    means = torch.tensor([[a, b] for a in (-2.0, 1.5) for b in (-1.0, 2.0)], dtype=F64)
    covs = torch.diag_embed(torch.tensor([[a, b] for a in (0.25, 0.16) for b in (0.09, 0.36)], dtype=F64))
    c, s = math.cos(rotation), math.sin(rotation)
    R = torch.tensor([[c, -s], [s, c]], dtype=F64)
    return GaussianMixture(weights, means @ R.T, R @ covs @ R.T)


def tilted(y: int, w: float, n: int, seed: int) -> torch.Tensor:
    """Exact samples of p(x) p(y | x)^(1 + w) / Z: rejection from p(x | y), acceptance p(y | x)^w."""
    g, kept = torch.Generator().manual_seed(seed), []
    cond, clf = LABELLED.class_conditional(y), LABELLED.classifier(SDE)
    while sum(k.shape[0] for k in kept) < n:
        x = cond.sample(4 * n, generator=g)
        kept.append(x[torch.rand(4 * n, generator=g, dtype=F64).log() < w * clf(0.0, x)[:, y]])
    return torch.cat(kept)[:n]


class Problem:
    """A method: its score, observation, sampler per NFE, and the exact target (free coordinates)."""

    def __init__(
        self,
        name: str,
        score: Callable,
        reference: Callable[[int, torch.Generator], torch.Tensor],
        *,
        start: GaussianMixture | None = None,
        observation=None,
        corrector: Callable[[], object] | None = None,
        corrector_nfe: int = 0,
        free: Callable[[torch.Tensor], torch.Tensor] | None = None,
        weights_of: GaussianMixture | None = None,
    ) -> None:
        self.name, self.score, self.reference = name, score, reference
        #: the exact conditional whose component weights the samples are compared with, if reported
        self.weights_of = weights_of
        self.start, self.observation = start, observation
        self.corrector, self.corrector_nfe = corrector, corrector_nfe
        self.free = free or (lambda x: x)

    def sampler(self, nfe: int) -> sdegen.Sampler:
        if self.corrector is None:
            return DDPMSampler(nfe)
        return PredictorCorrectorSampler(
            ReverseDiffusion(), self.corrector(), max(1, nfe // (1 + self.corrector_nfe))
        )


def problems() -> list[Problem]:
    eps = SDE.sampling_eps
    at_eps = lambda gm: lambda m, g: gm.marginal(SDE, eps).sample(m, generator=g)  # noqa: E731
    inpaint_ind = Inpainting(torch.tensor([True, False]), torch.tensor([1.2, 0.0], dtype=F64))
    inpaint_corr = Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0], dtype=F64))
    rotated = LinearObservation(
        2 * torch.tensor([[math.cos(0.6), math.sin(0.6)]], dtype=F64), torch.tensor([2.4], dtype=F64), 0.3
    )
    product = EXPERT_1.product(EXPERT_2)
    poe = ProductOfExperts(
        [EXPERT_1.score(SDE), EXPERT_2.score(SDE)],
        log_densities=[EXPERT_1.marginal_log_prob(SDE), EXPERT_2.marginal_log_prob(SDE)],
    )
    out = [
        Problem(
            "classifier guidance, scale 1",
            ClassifierGuidance(LABELLED.score(SDE), LABELLED.classifier(SDE), 0),
            at_eps(LABELLED.class_conditional(0)),
            start=LABELLED.class_conditional(0),
        ),
        Problem(
            "classifier-free guidance, w = 0",
            ClassifierFreeGuidance(LABELLED.conditional_score(SDE), 0, 0.0),
            at_eps(LABELLED.class_conditional(0)),
            start=LABELLED.class_conditional(0),
        ),
        Problem(
            "classifier-free guidance, w = 3 (vs tilted)",
            ClassifierFreeGuidance(LABELLED.conditional_score(SDE), 0, 3.0),
            lambda m, g: tilted(0, 3.0, m, int(torch.randint(0, 2**31, (1,), generator=g))),
        ),
        Problem(
            "replacement, independent coordinates",
            independent().score(SDE),
            at_eps(independent().condition(inpaint_ind)),
            observation=inpaint_ind,
            free=inpaint_ind.free_coordinates,
        ),
        Problem(
            "replacement, correlated (rho = 0.8)",
            CORRELATED.score(SDE),
            at_eps(CORRELATED.condition(inpaint_corr)),
            observation=inpaint_corr,
            free=inpaint_corr.free_coordinates,
            weights_of=CORRELATED.condition(inpaint_corr),
        ),
        Problem(
            "replacement, correlated, + Langevin corrector",
            CORRELATED.score(SDE),
            at_eps(CORRELATED.condition(inpaint_corr)),
            observation=inpaint_corr,
            free=inpaint_corr.free_coordinates,
            corrector=lambda: LangevinCorrector(0.16, 1),
            corrector_nfe=1,
            weights_of=CORRELATED.condition(inpaint_corr),
        ),
        Problem(
            "projection, noisy linear y = A x + 0.3 n",
            independent(0.6).score(SDE),
            at_eps(independent(0.6).condition(rotated)),
            observation=rotated,
        ),
    ]
    for s in (0.1, 0.5):
        obs = Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0], dtype=F64), noise_std=s)
        out.append(
            Problem(
                f"reconstruction guidance (DPS), correlated, s = {s}",
                ReconstructionGuidance(CORRELATED.score(SDE), SDE, obs),
                at_eps(CORRELATED.condition(obs)),
                weights_of=CORRELATED.condition(obs),
            )
        )
    for s in (0.1, 0.5):
        obs = Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0], dtype=F64), noise_std=s)
        out.append(
            Problem(
                f"projection, correlated, noisy s = {s}",
                CORRELATED.score(SDE),
                at_eps(CORRELATED.condition(obs)),
                observation=obs,
                weights_of=CORRELATED.condition(obs),
            )
        )
    out += [
        Problem("product of experts, naive sum", poe, at_eps(product), start=product, weights_of=product),
        Problem(
            "product of experts + annealed Langevin (3 steps)",
            poe,
            at_eps(product),
            start=product,
            corrector=lambda: AnnealedLangevinCorrector(0.16, 3),
            corrector_nfe=3,
        ),
        Problem(
            "product of experts + MALA (2 steps)",
            poe,
            at_eps(product),
            start=product,
            corrector=lambda: MALACorrector(poe.log_density, 0.5, 2),
            corrector_nfe=3,
            weights_of=product,
        ),
    ]
    return out


def run(problem: Problem, nfe: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    kwargs = {"observation": problem.observation} if problem.observation is not None else {}
    if problem.start is not None:
        x_T = problem.start.marginal(SDE, SDE.T).sample(n, generator=g)
        shape = None
    else:
        x_T, shape = None, (n, 2)
    return sdegen.sample(
        SDE, problem.score, shape, problem.sampler(nfe), x_T=x_T, generator=g, dtype=F64, **kwargs
    ).x


def error_table(n: int, nfes: list[int], seeds: int) -> None:
    print(
        f"\n### Error against the exact conditional (n = {n}, 2-D, VP, DDPM ancestral steps, float64; "
        f"median of {seeds} seeds)\n"
    )
    header = " | ".join(f"z @ NFE {k}" for k in nfes)
    print(f"| method | {header} |")
    print("|---|" + "---:|" * len(nfes))
    weights = []
    for i, problem in enumerate(problems()):
        null = calibrate_null(problem.reference, n, n_null=20, seed=100 + i)
        refs = [problem.reference(n, torch.Generator().manual_seed(200 + 10 * i + j)) for j in range(seeds)]
        cells, w = [], []
        for k in nfes:
            zs = []
            for j in range(seeds):
                x = run(problem, k, n, seed=300 + 10 * i + j)
                d = float(energy_distance(problem.free(x), refs[j]))
                zs.append((d - null.mean) / null.std)
                if k == nfes[-1]:
                    if problem.weights_of is not None:
                        w.append(problem.weights_of.responsibilities(problem.free(x)).mean(0))
            z = statistics.median(zs)
            cells.append(f"{z:.1f}" if z < 1e3 else "diverged")
        print(f"| {problem.name} | {' | '.join(cells)} |")
        if w:
            weights.append((problem.name, torch.stack(w).mean(0), problem.weights_of.weights))
    print(
        f"\n### Component weights at NFE {nfes[-1]} (mean posterior responsibilities, {seeds} seeds pooled)\n"
    )
    print("| method | samples | exact |")
    print("|---|---|---|")
    for name, w, exact in weights:
        fmt = lambda v: ", ".join(f"{float(a):.3f}" for a in v)  # noqa: E731
        print(f"| {name} | {fmt(w)} | {fmt(exact)} |")


class ConditionalMLP(nn.Module):
    """A stand-in conditional network: ScoreMLP on [x, embedding(y)] with a null label (cost only)."""

    def __init__(self, n_classes: int = 2) -> None:
        super().__init__()
        self.n_classes, self.null_label = n_classes, n_classes
        self.embed = nn.Embedding(n_classes + 1, 2)
        self.net = ScoreMLP((4,))

    def forward(self, t, x, y):
        return self.net(t, torch.cat([x, self.embed(y)], dim=1))[:, :2]


class Head(nn.Module):
    """ScoreMLP followed by a linear head: a classifier (C logits) or an energy (one scalar)."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.n_classes = outputs
        self.net, self.head = ScoreMLP((2,)), nn.Linear(2, outputs)

    def forward(self, t, x):
        out = self.head(self.net(t, x))
        return out if self.n_classes > 1 else out[:, 0]


def cost_table(n: int, nfe: int, repeats: int) -> None:
    torch.manual_seed(0)
    net, other = ScoreMLP((2,)).requires_grad_(False), ScoreMLP((2,)).requires_grad_(False)
    clf, cond = Head(2).requires_grad_(False), ConditionalMLP().requires_grad_(False)
    e1, e2 = Head(1).requires_grad_(False), Head(1).requires_grad_(False)
    # Random networks: a weak, wide likelihood keeps DPS finite; its cost does not depend on the values.
    obs = Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0]), noise_std=1.0)
    exact_obs = Inpainting(torch.tensor([True, False]), torch.tensor([0.5, 0.0]))
    noisy_linear = LinearObservation([[1.0, 2.0]], [1.0], noise_std=0.3)
    poe = ProductOfExperts([net, other], log_densities=[e1, e2])
    configs = {
        "unconditional": (net, DDPMSampler(nfe), {}),
        "classifier guidance": (ClassifierGuidance(net, clf, 0), DDPMSampler(nfe), {}),
        "classifier-free guidance (w != 0, -1)": (ClassifierFreeGuidance(cond, 0, 3.0), DDPMSampler(nfe), {}),
        "replacement (inpainting)": (net, DDPMSampler(nfe), {"observation": exact_obs}),
        "replacement + Langevin corrector": (
            net,
            PredictorCorrectorSampler(ReverseDiffusion(), LangevinCorrector(0.16, 1), nfe // 2),
            {"observation": exact_obs},
        ),
        "projection of a noisy linear observation": (net, DDPMSampler(nfe), {"observation": noisy_linear}),
        "reconstruction guidance (DPS)": (ReconstructionGuidance(net, SDE, obs, 0.01), DDPMSampler(nfe), {}),
        "product of 2 experts": (poe, DDPMSampler(nfe), {}),
        "product of 2 experts + annealed Langevin (3 steps)": (
            poe,
            PredictorCorrectorSampler(ReverseDiffusion(), AnnealedLangevinCorrector(0.16, 3), nfe // 4),
            {},
        ),
        "product of 2 experts + MALA (2 steps)": (
            poe,
            PredictorCorrectorSampler(ReverseDiffusion(), MALACorrector(poe.log_density, 0.5, 2), nfe // 4),
            {},
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(repeats):  # interleaved
        for name, (score, sampler, kwargs) in configs.items():
            g = torch.Generator().manual_seed(0)
            start = time.perf_counter()
            out = sdegen.sample(SDE, score, (n, 2), sampler, generator=g, **kwargs)
            times[name].append((time.perf_counter() - start) / out.nfe)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    print(
        f"\n### Cost with 3 x 256 MLPs (batch {n}, float32, {nfe} NFE, median of {repeats} interleaved runs)\n"
    )
    print("| method | ms / NFE | / unconditional |")
    print("|---|---:|---:|")
    for name in configs:
        print(f"| {name} | {1e3 * med[name]:.3f} | {med[name] / med['unconditional']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="samples per run")
    parser.add_argument("--seeds", type=int, default=3, help="runs per cell; the table shows the median")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cost-only", action="store_true", help="only the cost table with networks")
    parser.add_argument("--quick", action="store_true", help="n = 500, NFE 20 and 100 only: a smoke test")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    nfes = [20, 100, 1000]
    if args.quick:
        args.n, nfes, args.repeats, args.seeds = 500, [20, 100], 1, 1
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU")
    if not args.cost_only:
        error_table(args.n, nfes, args.seeds)
    cost_table(1024, 100 if not args.quick else 20, args.repeats)


if __name__ == "__main__":
    main()
