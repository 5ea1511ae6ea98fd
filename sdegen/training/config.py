"""The optimisation settings of a training run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sdegen._checks import check_int, check_seed

__all__ = ["TrainConfig", "RESUMABLE", "EXECUTION", "SCHEDULE", "PRECISIONS", "resumable"]

# The resume policy of the training settings, stated here once (the CLI reads it through
# sdegen.run.config.resumable). RESUMABLE: settings a resumed run may change; the loaded optimizer and
# schedule are updated to them, and the change is recorded in the checkpoint.
RESUMABLE = (
    "lr",
    "betas",
    "weight_decay",
    "warmup_steps",
    "grad_clip",
    "ema_decay",
    "ema_rampup",
    "precision",
)
# Settings that change how a step is computed but not what it computes (beyond round-off): a
# resumed run may change them freely.
EXECUTION = ("grad_accumulation", "compile")
# The schedule of the run, its logs and checkpoints, which has no state: free to change.
SCHEDULE = ("steps", "log_every", "checkpoint_every", "progress")
# Every other setting (the seed: the random stream continues from the checkpoint) is fixed.


def resumable(name: str) -> bool:
    """Whether a resumed run may change the training setting ``name`` (a :class:`TrainConfig` field)."""
    return name in RESUMABLE or name in EXECUTION or name in SCHEDULE


PRECISIONS = ("float32", "bfloat16", "float16")


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
        ema_decay: decay of the exponential moving average of the weights (0: the EMA is the model),
            reached once the ramp-up below allows it.
        ema_rampup: EMA ramp-up (EDM's ``ema_rampup_ratio``; Karras et al. 2022, training loop): the
            EMA's half-life is at most this fraction of the steps taken so far, so the decay at
            update k is min(ema_decay, 0.5 ** (1 / (ema_rampup * k))) and a short run's EMA
            averages its recent weights rather than its initialisation. 0 turns the ramp off
            (constant decay from the second update on).
        seed: seeds the trainer's generator, the only source of randomness in training.
        log_every: steps between log lines (mean loss, learning rate, gradient norm).
        checkpoint_every: steps between checkpoints (0: only at the end).
        progress: show progress ("train"): a tqdm bar on a terminal, periodic lines in a log or pipe.
        grad_accumulation: split each process's share of a step's batch into this many
            micro-batches, whose gradients are summed before the optimizer step: the global batch
            (``data.batch_size``) is kept with 1/k of the activation memory, and the parameters agree
            with an undivided step to float32 round-off. The global batch must be divisible by the
            number of processes times this.
        precision: ``"float32"``, or ``"bfloat16"``/``"float16"`` autocast for the network's
            forward and backward passes (weights, optimizer, EMA and loss reduction stay float32;
            float16 scales the loss against gradient underflow with ``torch.amp.GradScaler``).
        compile: ``torch.compile`` the score network for training (off by default; the first steps
            compile, which takes seconds to minutes).
    """

    steps: int = 10_000
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 500
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    ema_rampup: float = 0.05
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 1000
    progress: bool = True
    grad_accumulation: int = 1
    precision: str = "float32"
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "log_every", "grad_accumulation"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        if not (_is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0; got lr={self.lr!r}")
        if self.grad_clip is not None and not (
            _is_real(self.grad_clip) and math.isfinite(self.grad_clip) and self.grad_clip > 0
        ):
            raise ValueError(f"grad_clip must be > 0 or None; got grad_clip={self.grad_clip!r}")
        if not (_is_real(self.ema_decay) and 0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must lie in [0, 1); got ema_decay={self.ema_decay!r}")
        if not (_is_real(self.ema_rampup) and 0.0 <= self.ema_rampup < math.inf):
            raise ValueError(f"ema_rampup must be a finite number >= 0; got ema_rampup={self.ema_rampup!r}")
        if not (_is_real(self.weight_decay) and 0.0 <= self.weight_decay < math.inf):
            raise ValueError(
                f"weight_decay must be a finite number >= 0; got weight_decay={self.weight_decay!r}"
            )
        betas = self.betas
        if not (
            isinstance(betas, (tuple, list))
            and len(betas) == 2
            and all(_is_real(b) and 0.0 <= b < 1.0 for b in betas)
        ):
            raise ValueError(f"betas must be two numbers in [0, 1); got betas={betas!r}")
        object.__setattr__(self, "betas", tuple(betas))
        for name in ("progress", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool; got {name}={getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got precision={self.precision!r}")

    def ema_decay_at(self, k: int) -> float:
        """The EMA decay of update ``k`` (1-based): min(ema_decay, 0.5 ** (1 / (ema_rampup * k)))."""
        if self.ema_rampup == 0:
            return self.ema_decay
        return min(self.ema_decay, 0.5 ** (1.0 / (self.ema_rampup * k)))

    def to_dict(self) -> dict:
        """The settings as JSON-compatible values."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"TrainConfig.from_dict needs a dict; got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(
                f"unknown TrainConfig fields {unknown}; known: {[f.name for f in dataclasses.fields(cls)]}"
            )
        return cls(**d)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: object, minimum: int) -> None:
    check_int(name, value, minimum)
    if name == "seed":
        check_seed(name, value)
