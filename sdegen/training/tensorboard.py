"""A TensorBoard writer for training: every logged record as scalars, beside ``metrics.jsonl``.

Needs the ``tensorboard`` package (``pip install sdegen[tensorboard]``), imported only when a
:class:`TensorBoardLogger` is made. Point TensorBoard at the run: ``tensorboard --logdir RUN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdegen.training.callbacks import Callback, TrainerView

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(Callback):
    """Write each record the trainer logs (training loss, learning rate, gradient norm, held-out
    metrics) as TensorBoard scalars at its step, under ``log_dir`` (default
    ``run_dir/tensorboard``).

    Tags group the metrics as TensorBoard's dashboard shows them: ``train/loss``, ``train/lr``,
    ``train/grad_norm``, and ``eval/<name>`` for the evaluations (``eval/held_out_loss``,
    ``eval/held_out_nll``, ...). A resumed run purges the events after its checkpoint's step
    (TensorBoard's ``purge_step``), so steps redone after an interruption are shown once, as in
    ``metrics.jsonl``. Under torchrun it writes on process 0 only, like every callback.
    """

    TRAIN = ("loss", "lr", "grad_norm")

    def __init__(self, log_dir: str | Path | None = None, *, flush_secs: int = 30) -> None:
        super().__init__()
        # Imported here, so that sdegen works without it, and a missing package fails before training.
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package; install it with "
                "`pip install sdegen[tensorboard]` (or `pip install tensorboard`)"
            ) from e
        self._writer_class = SummaryWriter
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.flush_secs = flush_secs
        self.writer: Any = None

    def on_fit_start(self, trainer: TrainerView) -> None:
        log_dir = self.log_dir
        if log_dir is None:
            if trainer.run_dir is None:
                raise ValueError("TensorBoardLogger needs a log_dir when the trainer has no run_dir")
            log_dir = Path(trainer.run_dir) / "tensorboard"
        self.writer = self._writer_class(
            str(log_dir), purge_step=trainer.step if trainer.step > 0 else None, flush_secs=self.flush_secs
        )

    def on_log(self, trainer: TrainerView, record: dict[str, float]) -> None:
        if self.writer is None:
            return
        step = int(record["step"])
        for name, value in record.items():
            if name != "step":
                group = "train" if name in self.TRAIN else "eval"
                self.writer.add_scalar(f"{group}/{name}", value, step)

    def on_fit_end(self, trainer: TrainerView) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
