"""A small run directory written through the CLI's own schema, without its evaluation callbacks
(figures and held-out NLL), for tests of the commands that read runs."""

from __future__ import annotations

from pathlib import Path

import torch

from sdegen.cli._common import write_json
from sdegen.run.config import CONFIG, RunConfig, build_run, sde_section
from sdegen.training import TrainConfig, Trainer


def write_run(
    out: Path,
    *,
    sde: str = "vp",
    steps: int = 4,
    hidden: int = 16,
    lr: float = 1e-3,
    kind: str = "score",
    data: str = "ring",
    model: str = "mlp",
    batch_size: int = 32,
    record: bool = True,
) -> Path:
    """Train ``steps`` steps of a small network on ``data`` into ``out``, as `sdegen train` would:
    a score model, a class-conditional one (``kind="conditional"``) or a classifier. Its checkpoints
    record the run (``record=False``: as sdegen wrote them before it did)."""
    loss = {"name": "cross-entropy" if kind == "classifier" else "dsm", "eps": 1e-5}
    if kind == "conditional":
        loss["label_dropout"] = 0.2
    config = RunConfig(
        data={"name": data},
        sde=sde_section(sde),
        model={"name": model, "hidden": hidden, "depth": 1},
        parameterization="noise",
        loss=loss,
        batch_size=batch_size,
        train=TrainConfig(
            steps=steps, lr=lr, warmup_steps=1, log_every=2, checkpoint_every=2, progress=False
        ),
        eval={"every": steps, "n": 16},
        seed=0,
        kind=kind,
    )
    run = build_run(config, torch.device("cpu"))
    metadata = {"config": config.to_dict()} if record else None
    trainer = Trainer(run.model, run.loss, run.batches(), config.train, run_dir=out, metadata=metadata)
    write_json(out / CONFIG, config.to_dict())
    trainer.fit()
    return out
