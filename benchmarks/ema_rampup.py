"""EMA ramp-up: the CLI's default training on the ring for 200 and 1000 steps with EMA decay 0.999,
with and without the ramp-up; energy distance of 2000 reverse-SDE samples (500 Euler steps) of the EMA
and of the raw weights to 2000 fresh points (unbiased: about 0 +- 0.003 for data against data).

Run: OMP_NUM_THREADS=1 python benchmarks/ema_rampup.py   (a few minutes on 2 CPU cores)
"""

import torch

import sdegen
from sdegen import data as D
from sdegen.losses import DenoisingScoreMatching
from sdegen.metrics import energy_distance
from sdegen.nn import ScoreMLP
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.training import TrainConfig, Trainer

torch.set_num_threads(1)
ring = D.ring(8, radius=4.0, std=0.5)
fresh = ring.sample(2000, torch.Generator().manual_seed(123))


def ed(model, seed=7):
    out = sdegen.sample(
        sdegen.VPSDE(),
        model.eval(),
        (2000, 2),
        sdegen.ReverseSDESampler("euler", steps=500),
        generator=torch.Generator().manual_seed(seed),
    )
    return float(energy_distance(out.x, fresh))


for steps in (200, 1000):
    for rampup in (0.0, 0.05):
        torch.manual_seed(0)
        model = ScoreModel(ScoreMLP(2, hidden=256, depth=3), sdegen.VPSDE(), NoisePrediction())
        cfg = TrainConfig(
            steps=steps,
            lr=1e-3,
            warmup_steps=200,
            ema_decay=0.999,
            ema_rampup=rampup,
            progress=False,
            log_every=steps,
        )
        tr = Trainer(model, DenoisingScoreMatching(), D.DistributionBatches(ring, 256), cfg)
        tr.fit()
        print(
            f"steps {steps} ema_rampup {rampup}: EMA energy distance {ed(tr.ema_model):.4f}; raw weights {ed(tr.model):.4f}; final decay {cfg.ema_decay_at(steps):.4f}",
            flush=True,
        )
ref = float(energy_distance(ring.sample(2000, torch.Generator().manual_seed(5)), fresh))
print(f"fresh data vs fresh data: {ref:.4f}")
