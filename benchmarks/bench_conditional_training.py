"""Trained conditional models against the exact conditionals of a labelled Gaussian mixture, by budget.

Three classes over five components on a circle of radius 2.5 (std 0.35; classes 0 and 2 are
two-component mixtures), VP SDE, noise prediction. For each number of training steps:

* a class-conditional ScoreMLP (3 x hidden, label dropout 0.2): per class, 1000 DDIM-50 samples
  against the exact p(x | y) -- the largest moment |z| (sdegen.testing.check_moments), the largest
  within-class component-weight error, the fraction in their class under the exact classifier, and
  the energy distance z against its calibrated null (sdegen.testing.check_samples); the same for the
  unconditional half (null label) against p(x); and the relative score error
  E ||s_theta - s||^2 / E ||s||^2 against the exact conditional score at t = 0.05, 0.5;
* a noise-conditional classifier (MLPClassifier, 2 x hidden): the cross-entropy gap to the exact
  p_t(y | x), E KL(p_t || q_t), at t = 0.01, 0.1, 0.3, 0.5, 0.8 (20000 draws each), and its accuracy
  against the exact classifier's;
* wall time of training (one thread).

Run: python benchmarks/bench_conditional_training.py [--steps 500 1500 5000] [--hidden 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import sdegen
from sdegen import VPSDE
from sdegen import data as D
from sdegen.analytic import GaussianMixture
from sdegen.classifier import MLPClassifier, NoisyClassifier, NoisyClassifierLoss
from sdegen.losses import DenoisingScoreMatching, LabelDropout
from sdegen.nn import ScoreMLP
from sdegen.parameterization import ScoreModel
from sdegen.testing import check_moments, check_samples
from sdegen.training import TrainConfig, Trainer

VP = VPSDE()
ANGLES = torch.arange(5, dtype=torch.float64) * 2 * math.pi / 5
MIX = GaussianMixture(
    [0.2, 0.1, 0.3, 0.15, 0.25],
    2.5 * torch.stack([ANGLES.cos(), ANGLES.sin()], 1),
    0.35**2,
    labels=[0, 0, 1, 2, 2],
)


def fit(model, loss, steps):
    cfg = TrainConfig(
        steps=steps,
        lr=3e-3,
        warmup_steps=50,
        ema_decay=0.99,
        log_every=steps,
        checkpoint_every=0,
        progress=False,
    )
    trainer = Trainer(model, loss, D.DistributionBatches(D.GaussianMixtureData(MIX), 256, labels=True), cfg)
    start = time.perf_counter()
    trainer.fit()
    return trainer.ema_model.eval(), time.perf_counter() - start


def part(result, name):
    return next(p.statistic for p in result.parts if p.name == name)


def conditional_rows(steps, hidden):
    torch.manual_seed(0)
    model = ScoreModel(ScoreMLP(2, hidden=hidden, depth=3, time_dim=32, n_classes=3), VP)
    model, seconds = fit(model, LabelDropout(DenoisingScoreMatching(), 0.2), steps)
    rows = []
    exact_score, classify = MIX.conditional_score(VP), MIX.classifier(VP)
    for y in (0, 1, 2, None):
        label = 3 if y is None else y
        with torch.no_grad():
            x = sdegen.sample(
                VP,
                model.given(label),
                (1000, 2),
                sdegen.DDIMSampler(50),
                generator=torch.Generator().manual_seed(1),
            ).x.double()
        target = (MIX if y is None else MIX.class_conditional(y)).marginal(VP, VP.sampling_eps)
        weights = float((target.responsibilities(x).mean(0) - target.weights).abs().max())
        agree = (
            float("nan")
            if y is None
            else float((classify(VP.sampling_eps, x).argmax(1) == y).double().mean())
        )
        law = check_samples(x, target, seed=label)
        errors = []
        for t in (0.05, 0.5):
            xt, yt = MIX.marginal(VP, t).sample_labelled(4000, torch.Generator().manual_seed(5))
            labels = yt if y is not None else torch.full_like(yt, 3)
            with torch.no_grad():
                s = model(t, xt.float(), labels).double()
            s0 = exact_score(t, xt, labels)
            errors.append(float(((s - s0) ** 2).sum(1).mean() / (s0**2).sum(1).mean()))
        rows.append((steps, "p(x)" if y is None else f"p(x | {y})", check_moments(x, target).statistic, weights, agree,
                     part(law, "energy distance"), part(law, "local MMD"), *errors, seconds))  # fmt: skip
    return rows


def classifier_rows(steps, hidden):
    torch.manual_seed(0)
    clf = NoisyClassifier(MLPClassifier(2, 3, hidden=hidden, depth=2, time_dim=32), VP)
    clf, seconds = fit(clf, NoisyClassifierLoss(), steps)
    exact, rows = MIX.classifier(VP), []
    g = torch.Generator().manual_seed(5)
    for t in (0.01, 0.1, 0.3, 0.5, 0.8):
        x, y = MIX.marginal(VP, t).sample_labelled(20000, g)
        with torch.no_grad():
            log_q = clf(t, x.float()).double().log_softmax(1)
        log_p = exact(t, x)
        kl = float((log_p.exp() * (log_p - log_q)).sum(1).mean())
        acc_q, acc_p = (float((lp.argmax(1) == y).double().mean()) for lp in (log_q, log_p))
        rows.append((steps, t, kl, acc_q, acc_p, seconds))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[500, 1500, 5000])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"class-conditional ScoreMLP 3 x {args.hidden}, label dropout 0.2, DDIM 50, 1000 samples per target"
    )
    print(
        "| steps | target | moments max z | weight err | in class | energy z | local MMD z | score err t=0.05 | t=0.5 | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for steps in args.steps:
        for r in conditional_rows(steps, args.hidden):
            print(
                f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.1f} | {r[6]:.1f} | {r[7]:.4f} | {r[8]:.4f} | {r[9]:.0f} |"
            )
    print(
        f"\nnoise-conditional MLPClassifier 2 x {args.hidden}: E KL(p_t(. | x) || q_t(. | x)) = cross-entropy gap"
    )
    print("| steps | t | KL (nats) | accuracy | exact accuracy | train s |")
    print("|---|---|---|---|---|---|")
    for steps in args.steps:
        for r in classifier_rows(steps, args.hidden):
            print(f"| {r[0]} | {r[1]:g} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.0f} |")


if __name__ == "__main__":
    main()
