"""The checkpoint state of a :class:`~sdegen.training.Trainer`: what it saves, and how a checkpoint
is checked against it and restored.

A checkpoint holds everything a run needs to continue exactly: the model, its EMA, the optimizer,
the learning-rate schedule, the step and the state of the trainer's generator, with the training
settings and the settings changed on earlier resumes. Loading checks the file (its checksum, see
:mod:`sdegen.training.checkpoint`) and its contents against the trainer before anything is changed;
which settings a resumed run may change is :data:`sdegen.training.config.RESUMABLE`.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

from sdegen.training.checkpoint import (
    CheckpointError,
    check_configuration,
    check_state_dict_matches,
    load_checkpoint,
    save_checkpoint,
)
from sdegen.training.config import RESUMABLE, TrainConfig

__all__ = ["CheckpointState"]


class CheckpointState:
    """The checkpoint methods of :class:`~sdegen.training.Trainer` (a mixin: ``self`` is the trainer,
    whose model, EMA, optimizer, schedule, generator, step and run directory they save and restore)."""

    @property
    def checkpoint_path(self) -> Path | None:
        """``run_dir/checkpoints/last.pt``, or None without a run directory."""
        return None if self.run is None else self.run.checkpoint

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "generator_device": self.generator.device.type,
            "config": self.config.to_dict(),
            "setting_changes": self.setting_changes,
            "metadata": self.metadata,
            # For the record: a checkpoint resumes on any number of processes.
            "world_size": self.world.size,
            **({"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write :meth:`state_dict` atomically to ``path`` (default :attr:`checkpoint_path`), with its
        checksum and :attr:`configuration`. Temporary files of interrupted saves are removed.

        With several processes only process 0 writes (all must call it; a failure to write is
        raised on every process)."""
        if path is None and self.checkpoint_path is None:
            raise ValueError("save_checkpoint needs a path when the trainer has no run_dir")
        target = Path(path) if path is not None else self.checkpoint_path
        with self.locked() if path is None else contextlib.nullcontext():
            if path is None:
                self._claim_run()
            state = self.state_dict()
            self.world.run(
                lambda: save_checkpoint(target, state, configuration=self.configuration), where="main"
            )
        if path is None:
            self._saved_step = self.step
        return target

    def load_checkpoint(self, path: str | Path | None = None) -> int:
        """Restore the state saved at ``path`` (default :attr:`checkpoint_path`); return its step.

        The file is read with ``weights_only=True``, its checksum verified and its contents checked
        against this trainer before anything is changed: a corrupt or mismatched checkpoint (other
        network, SDE or SDE parameters, parameterisation, loss, seed) raises
        :class:`CheckpointError` naming what differs, and leaves the trainer and every file as they
        were. Optimisation settings of this trainer's config that differ from the checkpoint's
        (``lr``, ``betas``, ``weight_decay``, ``warmup_steps``, ``grad_clip``, ``ema_decay``,
        ``ema_rampup``) are applied from here on and recorded in ``setting_changes``. Records
        after the checkpoint's step are dropped from ``metrics.jsonl``, so a resumed run's log has
        no duplicates.
        """
        if path is None and self.checkpoint_path is None:
            raise ValueError("load_checkpoint needs a path when the trainer has no run_dir")
        own_run = path is None
        path = Path(path) if path is not None else self.checkpoint_path
        with self.locked() if own_run else contextlib.nullcontext():
            # Every process reads the file itself (process 0 holds the lock; nobody writes now).
            self.world.run(lambda: self._load(path, own_run))
        return self.step

    def _load(self, path: Path, own_run: bool) -> None:
        state = load_checkpoint(path, map_location=self.device)
        changes = self._check_checkpoint(path, state)
        self._restore(state)
        if changes:
            self.setting_changes.append({"step": self.step, "changed": changes})
            self._apply_settings()
        if own_run:
            self._owns_run = True
            self._saved_step = self.step
        self.history = [r for r in self.history if r.get("step", 0) <= self.step]
        if self._owns_run:
            self._truncate_log()

    def _check_checkpoint(self, path: Path, state: dict[str, Any]) -> dict[str, list[Any]]:
        """Raise :class:`CheckpointError` unless ``state`` fits this trainer; return the changed
        optimisation settings ``{name: [checkpoint's, this trainer's]}``."""
        required = ("step", "model", "ema", "optimizer", "scheduler", "generator")
        missing = [k for k in required if k not in state]
        if missing:
            raise CheckpointError(f"checkpoint {str(path)!r} lacks entries {missing}")
        check_state_dict_matches("model", state["model"], self.model)
        check_state_dict_matches("ema", state["ema"], self.ema)
        n_params = sum(len(g["params"]) for g in self.optimizer.state_dict()["param_groups"])
        saved_groups = state["optimizer"].get("param_groups", [])
        if sum(len(g["params"]) for g in saved_groups) != n_params:
            raise CheckpointError(
                f"checkpoint {str(path)!r} optimizer state is for a different parameter set"
            )
        check_configuration(path, state.get("configuration"), self.configuration)
        try:
            saved = TrainConfig.from_dict(state.get("config") or {})
        except (TypeError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds unreadable training settings ({e})"
            ) from None
        if saved.seed != self.config.seed:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was trained with seed {saved.seed}, this trainer has seed "
                f"{self.config.seed}; the random stream continues from the checkpoint, so resume with "
                f"seed={saved.seed}"
            )
        return {
            name: [_plain(getattr(saved, name)), _plain(getattr(self.config, name))]
            for name in RESUMABLE
            if getattr(saved, name) != getattr(self.config, name)
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("generator_device") == self.generator.device.type:
            self.generator.set_state(state["generator"].cpu())
        else:
            warnings.warn(
                f"checkpoint was written with a {state.get('generator_device')} generator and is resumed on "
                f"{self.generator.device.type}; the random stream restarts from seed + step, so the run "
                f"continues correctly but not bit-for-bit",
                stacklevel=3,
            )
            self.generator.manual_seed(self.config.seed + int(state["step"]))
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        self.step = int(state["step"])
        self.setting_changes = list(state.get("setting_changes") or [])

    def _apply_settings(self) -> None:
        """Make the optimizer and schedule follow this trainer's config after loading a checkpoint
        written with other optimisation settings (the loaded state carries the old ones)."""
        cfg = self.config
        self.scheduler.base_lrs = [cfg.lr for _ in self.optimizer.param_groups]
        factor = self._lr_factor(self.scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group.update(
                initial_lr=cfg.lr, lr=cfg.lr * factor, betas=cfg.betas, weight_decay=cfg.weight_decay
            )
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
