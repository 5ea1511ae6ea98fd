"""Training: the :class:`Trainer` loop, its settings, evaluation callbacks and checkpoint files."""

from sdegen.training.callbacks import Callback, HeldOutAccuracy, HeldOutLoss, HeldOutNLL, TrainerView
from sdegen.training.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from sdegen.training.config import TrainConfig
from sdegen.training.interrupt import TrainingInterrupted
from sdegen.training.metrics_log import MetricsLog
from sdegen.training.run_directory import RunDirectory, RunDirectoryBusy, RunDirectoryLost
from sdegen.training.tensorboard import TensorBoardLogger
from sdegen.training.trainer import Trainer, TrainResult

__all__ = [
    "Trainer",
    "TrainConfig",
    "TrainResult",
    "Callback",
    "TrainerView",
    "HeldOutLoss",
    "HeldOutNLL",
    "HeldOutAccuracy",
    "TensorBoardLogger",
    "CheckpointError",
    "RunDirectory",
    "RunDirectoryBusy",
    "RunDirectoryLost",
    "TrainingInterrupted",
    "MetricsLog",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
]
