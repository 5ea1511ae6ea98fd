"""Training: the :class:`Trainer` loop, its settings, evaluation callbacks and checkpoint files."""

from sdegen._deprecation import moved_names
from sdegen.training.callbacks import Callback, HeldOutLoss, HeldOutNLL, TrainerView
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

#: Names this package exported before 0.2, where they live now (they work, with a warning, until 0.3).
_MOVED = {"HeldOutAccuracy": "sdegen.classifier"}

__getattr__ = moved_names("sdegen.training", _MOVED)
