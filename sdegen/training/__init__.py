"""Training: the :class:`Trainer` loop, its settings, evaluation callbacks and checkpoint files."""

from sdegen.training.callbacks import Callback, HeldOutLoss, HeldOutNLL
from sdegen.training.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from sdegen.training.config import TrainConfig
from sdegen.training.run_directory import RunDirectory, RunDirectoryBusy
from sdegen.training.trainer import Trainer, TrainResult

__all__ = [
    "Trainer",
    "TrainConfig",
    "TrainResult",
    "Callback",
    "HeldOutLoss",
    "HeldOutNLL",
    "CheckpointError",
    "RunDirectory",
    "RunDirectoryBusy",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
]
