"""Training callbacks: periodic evaluations on the EMA model, and hooks into the training loop.

A :class:`Callback` is called every ``every`` steps (and at the last step) with the trainer and
returns metrics to log; it is also told when :meth:`~sdegen.training.Trainer.fit` starts, after
every logged record, and when ``fit`` ends (``on_fit_start``, ``on_log``, ``on_fit_end``), which is
what loggers (:class:`~sdegen.training.TensorBoardLogger`) and early stopping need: a callback may
call ``trainer.stop()``. Under torchrun callbacks run on process 0 only.

The evaluations draw from their own seeded generators, never the trainer's, so evaluating does not
change the training run, and each evaluation uses the same random numbers, which makes successive
values comparable (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from sdegen._checks import check_batch_shape, check_steps
from sdegen._deprecation import moved_names
from sdegen.data.images import check_dataset_labels
from sdegen.likelihood import DivergenceEstimator, log_likelihood
from sdegen.losses.base import Loss

__all__ = ["Callback", "TrainerView", "HeldOutLoss", "HeldOutNLL"]


class TrainerView(Protocol):
    """What a callback may use of the :class:`~sdegen.training.Trainer` that calls it."""

    step: int
    device: torch.device
    dtype: torch.dtype
    loss: Loss
    model: nn.Module
    history: list[dict[str, float]]
    run_dir: Path | None

    @property
    def ema_model(self) -> nn.Module: ...

    def stop(self) -> None: ...


class Callback:
    """A hook into :meth:`~sdegen.training.Trainer.fit`; subclass it and override what you need.

    ``__call__`` is an evaluation, run every ``every`` steps and at the last step on the EMA model;
    the metrics it returns join that step's log record. ``every=None`` (a callback that only
    watches, such as a logger) never evaluates. The ``on_*`` hooks are called on process 0:
    ``on_fit_start`` before the first step (after resuming), ``on_log`` after each record is
    logged (``{"step": k, "loss": ..., "lr": ..., "grad_norm": ..., evaluations}``), and
    ``on_fit_end`` when ``fit`` ends, normally or by an error (release what you hold there).
    A callback may call ``trainer.stop()`` to end training after the current step.

    Example: stop when the held-out loss has not improved for ``patience`` evaluations::

        class EarlyStopping(Callback):
            def __init__(self, patience):
                super().__init__()
                self.best, self.bad, self.patience = float("inf"), 0, patience

            def on_log(self, trainer, record):
                if "held_out_loss" in record:
                    if record["held_out_loss"] < self.best:
                        self.best, self.bad = record["held_out_loss"], 0
                    else:
                        self.bad += 1
                        if self.bad >= self.patience:
                            trainer.stop()
    """

    def __init__(self, every: int | None = None) -> None:
        self.every = None if every is None else check_steps("every", every)

    def __call__(self, trainer: TrainerView) -> dict[str, float]:
        """Evaluate ``trainer.ema_model`` (or anything else) and return metrics to log."""
        return {}

    def on_fit_start(self, trainer: TrainerView) -> None:
        """Called when :meth:`~sdegen.training.Trainer.fit` starts, at ``trainer.step``."""

    def on_log(self, trainer: TrainerView, record: dict[str, float]) -> None:
        """Called after ``record`` has been logged (and written to ``metrics.jsonl``)."""

    def on_fit_end(self, trainer: TrainerView) -> None:
        """Called when :meth:`~sdegen.training.Trainer.fit` ends, however it ends."""


class HeldOutLoss(Callback):
    """The training objective on held-out data ``x`` (``[N, ...]``), with fixed random numbers.

    Logged as ``held_out_loss``; ``loss`` defaults to the trainer's own objective. For a
    class-conditional model or a classifier pass the labels ``y`` (int64 ``[N]``): the loss is then
    its conditional path, :meth:`~sdegen.losses.Loss.labelled_per_sample`.
    """

    def __init__(
        self,
        x: Tensor,
        every: int,
        *,
        y: Tensor | None = None,
        loss: Loss | None = None,
        seed: int = 0,
        batch_size: int = 4096,
    ) -> None:
        super().__init__(every)
        self.x = check_batch_shape("x", x)
        self.y = None if y is None else check_dataset_labels(y, x.shape[0], "y")
        self.loss, self.seed = loss, seed
        self.batch_size = check_steps("batch_size", batch_size)

    @torch.no_grad()
    def __call__(self, trainer: TrainerView) -> dict[str, float]:
        loss = self.loss or trainer.loss
        g = torch.Generator(trainer.device).manual_seed(self.seed)
        total = 0.0
        labels = (
            [None] * len(self.x.split(self.batch_size)) if self.y is None else self.y.split(self.batch_size)
        )
        for chunk, y in zip(self.x.split(self.batch_size), labels, strict=True):
            x = chunk.to(trainer.device, trainer.dtype)
            if y is None:
                per = loss.per_sample(trainer.ema_model, x, g)
            else:
                per = loss.labelled_per_sample(trainer.ema_model, x, y.to(trainer.device), g)
            total += float(per.sum())
        return {"held_out_loss": total / self.x.shape[0]}


class HeldOutNLL(Callback):
    """-log p_eps(x) of held-out data by the probability-flow ODE, averaged over ``x`` (``[N, ...]``).

    The exact likelihood of Song et al. 2021 (eq. 40) through :func:`sdegen.log_likelihood`, on the
    EMA model, with the probes drawn from a generator seeded by ``seed`` at every evaluation.
    Logged as ``held_out_nll`` (nats per example) and, given ``bits_per_dim`` (a map from log p
    ``[B]`` to bits/dim ``[B]``, such as :meth:`~sdegen.data.ImageData.bits_per_dim`), as
    ``held_out_bpd``.

    For a class-conditional model it is -log p_eps(x | y) of the labels ``y`` (int64 ``[N]``), or
    without labels -log p_eps(x) of its unconditional half (the null label).
    """

    def __init__(
        self,
        x: Tensor,
        every: int,
        *,
        divergence: DivergenceEstimator | None = None,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        eps: float = 1e-5,
        bits_per_dim: Callable[[Tensor], Tensor] | None = None,
        seed: int = 0,
        batch_size: int = 1000,
        y: Tensor | None = None,
    ) -> None:
        super().__init__(every)
        self.x = check_batch_shape("x", x)
        self.y = None if y is None else check_dataset_labels(y, x.shape[0], "y")
        self.divergence, self.rtol, self.atol, self.eps = divergence, rtol, atol, eps
        self.bits_per_dim, self.seed = bits_per_dim, seed
        self.batch_size = check_steps("batch_size", batch_size)

    def __call__(self, trainer: TrainerView) -> dict[str, float]:
        model = trainer.ema_model
        g = torch.Generator(trainer.device).manual_seed(self.seed)
        logps = []
        n_chunks = len(self.x.split(self.batch_size))
        labels = [None] * n_chunks if self.y is None else self.y.split(self.batch_size)
        for chunk, y in zip(self.x.split(self.batch_size), labels, strict=True):
            score_fn = model
            if model.is_conditional:
                score_fn = model.given(model.null_label if y is None else y.to(trainer.device))
            elif y is not None:
                model.check_labels(y, chunk)  # raises: labels for an unconditional model
            result = log_likelihood(
                chunk.to(trainer.device, trainer.dtype),
                model.sde,
                score_fn,
                divergence=self.divergence,
                rtol=self.rtol,
                atol=self.atol,
                eps=self.eps,
                generator=g,
            )
            logps.append(result.logp.detach())
        logp = torch.cat(logps)
        metrics = {"held_out_nll": -float(logp.mean())}
        if self.bits_per_dim is not None:
            metrics["held_out_bpd"] = float(self.bits_per_dim(logp).mean())
        return metrics


__getattr__ = moved_names("sdegen.training.callbacks", {"HeldOutAccuracy": "sdegen.classifier"})
