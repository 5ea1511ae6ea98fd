"""The optimisation settings of a training run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :class:`~sdegen.training.Trainer`.

    Args:
        steps: total optimisation steps of the run.
        lr: peak learning rate of AdamW (Loshchilov and Hutter 2019).
        betas: AdamW's moment coefficients.
        weight_decay: AdamW's decoupled weight decay.
        warmup_steps: the learning rate rises linearly from lr / warmup_steps to lr over these steps
            (Goyal et al. 2017), then stays constant, as in score_sde.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        ema_decay: decay of the exponential moving average of the weights (0: the EMA is the model).
        seed: seeds the trainer's generator, the only source of randomness in training.
        log_every: steps between log lines (mean loss, learning rate, gradient norm).
        checkpoint_every: steps between checkpoints (0: only at the end).
        progress: show a tqdm progress bar.
    """

    steps: int = 10_000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 500
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 1000
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "log_every"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0; got lr={self.lr!r}")
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, (int, float)) and math.isfinite(self.grad_clip) and self.grad_clip > 0
        ):
            raise ValueError(f"grad_clip must be > 0 or None; got grad_clip={self.grad_clip!r}")
        if not (isinstance(self.ema_decay, (int, float)) and 0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must lie in [0, 1); got ema_decay={self.ema_decay!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0; got weight_decay={self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1); got betas={self.betas!r}")

    def to_dict(self) -> dict:
        """The settings as JSON-compatible values."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown TrainConfig fields {unknown}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {name}={value}")
