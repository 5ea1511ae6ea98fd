"""A small run directory written through the CLI's own schema, without its evaluation callbacks
(figures and held-out NLL), for tests of the commands that read runs."""

from __future__ import annotations

from pathlib import Path

import torch

from sdegen.cli._common import write_json
from sdegen.cli.run import CONFIG, RunConfig, build_run, sde_section
from sdegen.training import TrainConfig, Trainer


def write_run(out: Path, *, sde: str = "vp", steps: int = 4, hidden: int = 16, lr: float = 1e-3) -> Path:
    """Train ``steps`` steps of a small MLP on the ring into ``out``, as `sdegen train` would."""
    config = RunConfig(
        data={"name": "ring"},
        sde=sde_section(sde),
        model={"name": "mlp", "hidden": hidden, "depth": 1},
        parameterization="noise",
        loss={"name": "dsm", "eps": 1e-5},
        batch_size=32,
        train=TrainConfig(
            steps=steps, lr=lr, warmup_steps=1, log_every=2, checkpoint_every=2, progress=False
        ),
        eval={"every": steps, "n": 16},
        seed=0,
    )
    run = build_run(config, torch.device("cpu"))
    trainer = Trainer(run.model, run.loss, run.data.batches(32, 0), config.train, run_dir=out)
    write_json(out / CONFIG, config.to_dict())
    trainer.fit()
    return out
