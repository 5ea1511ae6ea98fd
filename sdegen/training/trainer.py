"""The training loop: AdamW with warm-up and clipping, an EMA of the weights, checkpoints, logs.

One :class:`Trainer` owns every piece of state a run needs to continue exactly where it stopped:
the model, its EMA, the optimizer, the learning-rate schedule, the step count and the state of the
single ``torch.Generator`` from which all training randomness (batches, times, noise) is drawn.
Batches are addressed by step (:mod:`sdegen.data.batches`), so on CPU k steps, a checkpoint, a
fresh process resuming it and n - k more steps give bit-for-bit the weights of n straight steps.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from sdegen.data.batches import BatchSource
from sdegen.losses.base import Loss
from sdegen.parameterization import ScoreModel
from sdegen.training.callbacks import Callback
from sdegen.training.checkpoint import (
    CheckpointError,
    check_state_dict_matches,
    load_checkpoint,
    save_checkpoint,
)
from sdegen.training.config import TrainConfig

__all__ = ["Trainer", "TrainResult"]


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: the final step, the logged records and the wall time (s)."""

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time: float = 0.0

    @property
    def final_loss(self) -> float:
        """The last logged training loss (NaN if nothing was logged)."""
        losses = [r["loss"] for r in self.history if "loss" in r]
        return losses[-1] if losses else math.nan


class Trainer:
    """Train a :class:`~sdegen.parameterization.ScoreModel` on a :class:`~sdegen.data.BatchSource`.

    Args:
        model: the score model; its parameters are trained in place.
        loss: the objective, e.g. :class:`~sdegen.losses.DenoisingScoreMatching`.
        data: where training batches come from.
        config: optimisation settings.
        run_dir: if given, checkpoints go to ``run_dir/checkpoints/last.pt`` and log records to
            ``run_dir/metrics.jsonl`` (one JSON object per line).
        callbacks: periodic evaluations (held-out loss, NLL, figures), each run every
            ``callback.every`` steps and at the end, on the EMA model.
        device: where to train (default: the model's device).
        metadata: JSON-compatible values stored in every checkpoint (e.g. how to rebuild the model).

    The EMA is torch's :class:`~torch.optim.swa_utils.AveragedModel` with
    ``get_ema_multi_avg_fn(ema_decay)``, updated after every optimizer step (buffers included).
    Dropout draws from torch's global generator, so exact resumption holds for networks without
    it (the default).
    """

    def __init__(
        self,
        model: ScoreModel,
        loss: Loss,
        data: BatchSource,
        config: TrainConfig | None = None,
        *,
        run_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        device: torch.device | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, ScoreModel):
            raise TypeError(f"model must be a ScoreModel; got {type(model).__name__}")
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be an sdegen.losses.Loss; got {type(loss).__name__}")
        if not isinstance(data, BatchSource):
            raise TypeError(
                f"data must be a BatchSource (DistributionBatches, DatasetBatches); got {type(data).__name__}"
            )
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances; got {type(cb).__name__}")
        self.config = config or TrainConfig()
        first = next(model.parameters(), None)
        if first is None:
            raise ValueError("model has no parameters to train")
        self.device = torch.device(device) if device is not None else first.device
        self.dtype = first.dtype
        self.model = model.to(self.device)
        self.loss, self.data, self.callbacks = loss, data, list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.metadata = dict(metadata or {})

        cfg = self.config
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        warmup = cfg.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        )
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._grad_norm = torch.tensor(math.nan)

    # -- the models --------------------------------------------------------------------------------
    @property
    def ema_model(self) -> ScoreModel:
        """The exponential moving average of the model: the one to sample and evaluate."""
        return self.ema.module

    # -- training ----------------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        """One optimizer step; returns the loss (a 0-d tensor, not synchronised to the host)."""
        self.model.train()
        x0 = self.data.batch(self.step, self.generator, device=self.device, dtype=self.dtype)
        loss = self.loss(self.model, x0, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # With max_norm = inf this only measures the norm, which is logged either way.
        max_norm = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        self._grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        return loss.detach()

    def fit(self, steps: int | None = None) -> TrainResult:
        """Train until ``self.step == steps`` (default ``config.steps``); log, evaluate, checkpoint.

        Raises ``FloatingPointError`` naming the steps if the loss becomes NaN or infinite.
        """
        cfg = self.config
        target = cfg.steps if steps is None else int(steps)
        if target < self.step:
            raise ValueError(f"steps={target} is before the current step {self.step}; nothing to do")
        start = time.perf_counter()
        self._truncate_log()  # records past this step belong to a run being redone or replaced
        bar = _progress(target, self.step, cfg.progress)
        loss_sum, n_summed, first_summed = None, 0, self.step + 1
        try:
            while self.step < target:
                loss = self.train_step()
                loss_sum = loss if loss_sum is None else loss_sum + loss
                n_summed += 1
                bar.update(1)
                last = self.step == target
                record: dict[str, float] = {}
                if self.step % cfg.log_every == 0 or last:
                    mean = float(loss_sum) / n_summed
                    if not math.isfinite(mean):
                        raise FloatingPointError(
                            f"training loss is {mean} over steps {first_summed}..{self.step}; lower lr, "
                            f"raise eps, or enable grad_clip"
                        )
                    lr = self.scheduler.get_last_lr()[0]
                    record.update(loss=mean, lr=lr, grad_norm=float(self._grad_norm))
                    bar.set_postfix(loss=f"{mean:.4g}")
                    loss_sum, n_summed, first_summed = None, 0, self.step + 1
                due = [cb for cb in self.callbacks if self.step % cb.every == 0 or last]
                if due:
                    record.update(self.evaluate(due))
                if record:
                    self._log({"step": self.step, **record})
                if self.run_dir is not None and (
                    last or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
                ):
                    self.save_checkpoint()
        finally:
            bar.close()
        return TrainResult(self.step, list(self.history), time.perf_counter() - start)

    def evaluate(self, callbacks: Sequence[Callback] | None = None) -> dict[str, float]:
        """Run ``callbacks`` (default: all) on the EMA model; return their merged metrics."""
        metrics: dict[str, float] = {}
        self.ema_model.eval()
        for cb in self.callbacks if callbacks is None else callbacks:
            metrics.update(cb(self))
        return metrics

    def _log(self, record: dict[str, float]) -> None:
        self.history.append(record)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """``run_dir/checkpoints/last.pt``, or None without a run directory."""
        return None if self.run_dir is None else self.run_dir / "checkpoints" / "last.pt"

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
            "metadata": self.metadata,
        }

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write :meth:`state_dict` atomically to ``path`` (default :attr:`checkpoint_path`)."""
        path = path if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("save_checkpoint needs a path when the trainer has no run_dir")
        return save_checkpoint(path, self.state_dict())

    def load_checkpoint(self, path: str | Path | None = None) -> int:
        """Restore the state saved at ``path`` (default :attr:`checkpoint_path`); return its step.

        The file is read with ``weights_only=True`` and checked against this trainer before anything
        is changed: a corrupt or mismatched checkpoint raises :class:`CheckpointError` and leaves
        the trainer (and the file) as they were. Records after the checkpoint's step are dropped
        from ``metrics.jsonl``, so a resumed run's log has no duplicates.
        """
        path = path if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("load_checkpoint needs a path when the trainer has no run_dir")
        state = load_checkpoint(path, map_location=self.device)
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
                stacklevel=2,
            )
            self.generator.manual_seed(self.config.seed + int(state["step"]))
        self.step = int(state["step"])
        self.history = [r for r in self.history if r.get("step", 0) <= self.step]
        self._truncate_log()
        return self.step

    def _truncate_log(self) -> None:
        log = None if self.run_dir is None else self.run_dir / "metrics.jsonl"
        if log is None or not log.is_file():
            return
        kept = []
        for line in log.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
        log.write_text("".join(line + "\n" for line in kept))
        self.history = [json.loads(line) for line in kept]


def _progress(total: int, initial: int, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the `train` extra
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True, leave=False)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kw: object) -> None:
        pass

    def close(self) -> None:
        pass
