"""The checkpoint state of a :class:`~sdegen.training.Trainer`: what it saves, and how a checkpoint
is checked against it and restored (the trainer's ``state_dict``, ``save_checkpoint`` and
``load_checkpoint`` are built on these functions).

A checkpoint holds everything a run needs to continue exactly: the model, its EMA, the optimizer,
the learning-rate schedule, the step and the state of the trainer's generator, with the training
settings and the settings changed on earlier resumes. Loading checks the file (its checksum, see
:mod:`sdegen.training.checkpoint`) and its contents against the trainer before anything is changed;
which settings a resumed run may change is :data:`sdegen.training.config.RESUMABLE`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from sdegen.distributed import World
from sdegen.training.checkpoint import CheckpointError, check_configuration, check_state_dict_matches
from sdegen.training.config import RESUMABLE, TrainConfig

__all__ = ["Resumable", "state_of", "check_state", "restore", "apply_settings"]


class Resumable(Protocol):
    """What a checkpoint saves of a trainer and restores into it (:class:`~sdegen.training.Trainer`)."""

    step: int
    model: nn.Module
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    scaler: torch.amp.GradScaler | None
    config: TrainConfig
    setting_changes: list[dict[str, Any]]
    metadata: dict[str, Any]
    world: World

    @property
    def configuration(self) -> dict[str, str]: ...


def state_of(trainer: Resumable) -> dict[str, Any]:
    """Everything needed to continue the run of ``trainer`` exactly."""
    return {
        "step": trainer.step,
        "model": trainer.model.state_dict(),
        "ema": trainer.ema.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "generator": trainer.generator.get_state(),
        "generator_device": trainer.generator.device.type,
        "config": trainer.config.to_dict(),
        "setting_changes": trainer.setting_changes,
        "metadata": trainer.metadata,
        # For the record: a checkpoint resumes on any number of processes.
        "world_size": trainer.world.size,
        **({"grad_scaler": trainer.scaler.state_dict()} if trainer.scaler is not None else {}),
    }


def check_state(trainer: Resumable, path: Path, state: dict[str, Any]) -> dict[str, list[Any]]:
    """Raise :class:`~sdegen.training.CheckpointError` unless ``state`` (read from ``path``) fits
    ``trainer``; return the changed optimisation settings ``{name: [checkpoint's, trainer's]}``
    (those of :data:`~sdegen.training.config.RESUMABLE`)."""
    required = ("step", "model", "ema", "optimizer", "scheduler", "generator")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks entries {missing}")
    check_state_dict_matches("model", state["model"], trainer.model)
    check_state_dict_matches("ema", state["ema"], trainer.ema)
    n_params = sum(len(g["params"]) for g in trainer.optimizer.state_dict()["param_groups"])
    saved_groups = state["optimizer"].get("param_groups", [])
    if sum(len(g["params"]) for g in saved_groups) != n_params:
        raise CheckpointError(f"checkpoint {str(path)!r} optimizer state is for a different parameter set")
    check_configuration(path, state.get("configuration"), trainer.configuration)
    try:
        saved = TrainConfig.from_dict(state.get("config") or {})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} holds unreadable training settings ({e})") from None
    own = trainer.config
    if saved.seed != own.seed:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was trained with seed {saved.seed}, this trainer has seed "
            f"{own.seed}; the random stream continues from the checkpoint, so resume with "
            f"seed={saved.seed}"
        )
    return {
        name: [_plain(getattr(saved, name)), _plain(getattr(own, name))]
        for name in RESUMABLE
        if getattr(saved, name) != getattr(own, name)
    }


def restore(trainer: Resumable, state: dict[str, Any]) -> None:
    """Load ``state`` (checked by :func:`check_state`) into ``trainer``."""
    trainer.model.load_state_dict(state["model"])
    trainer.ema.load_state_dict(state["ema"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    generator = trainer.generator
    if state.get("generator_device") == generator.device.type:
        generator.set_state(state["generator"].cpu())
    else:
        warnings.warn(
            f"checkpoint was written with a {state.get('generator_device')} generator and is resumed on "
            f"{generator.device.type}; the random stream restarts from seed + step, so the run "
            f"continues correctly but not bit-for-bit",
            stacklevel=4,
        )
        generator.manual_seed(trainer.config.seed + int(state["step"]))
    if trainer.scaler is not None and "grad_scaler" in state:
        trainer.scaler.load_state_dict(state["grad_scaler"])
    trainer.step = int(state["step"])
    trainer.setting_changes = list(state.get("setting_changes") or [])


def apply_settings(trainer: Resumable, lr_factor: Callable[[int], float]) -> None:
    """Make the optimizer and schedule of ``trainer`` follow its config after loading a checkpoint
    written with other optimisation settings (the loaded state carries the old ones);
    ``lr_factor(step)`` is the schedule's factor of the learning rate."""
    cfg, optimizer, scheduler = trainer.config, trainer.optimizer, trainer.scheduler
    scheduler.base_lrs = [cfg.lr for _ in optimizer.param_groups]
    factor = lr_factor(scheduler.last_epoch)
    for group in optimizer.param_groups:
        group.update(initial_lr=cfg.lr, lr=cfg.lr * factor, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
