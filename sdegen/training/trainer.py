"""The training loop: AdamW with warm-up and clipping, an EMA of the weights, checkpoints, logs.

One :class:`Trainer` owns every piece of state a run needs to continue exactly where it stopped:
the model, its EMA, the optimizer, the learning-rate schedule, the step count and the state of the
single ``torch.Generator`` from which all training randomness (batches, times, noise) is drawn.
Batches are addressed by step (:mod:`sdegen.data.batches`), so on CPU k steps, a checkpoint, a
fresh process resuming it and n - k more steps give bit-for-bit the weights of n straight steps.

Class-conditional models and noise-conditional classifiers train the same way on labelled batches
(:class:`~sdegen.data.LabelledBatch`): the labels go to the loss, ``loss(model, x0, y)``.

With a ``run_dir`` the trainer is that directory's only writer while it trains, saves or loads (a
lock: :mod:`sdegen.training.run_directory`), and it refuses a directory that already holds a run
unless told what to do with it (``if_exists="resume"`` or ``"overwrite"``).

Under ``torchrun --nproc_per_node=N`` (:mod:`sdegen.distributed`) the trainer is data-parallel:
the network is wrapped in ``DistributedDataParallel``, each process trains on its rows of every
global batch (``data.batch_size`` examples, labels included), and only process 0 locks the run
directory and writes checkpoints, logs and evaluations. Every random number of a step (data, times,
noise, the label-dropout mask) is drawn for the global batch from the one seeded stream, which every
process advances alike, and each process keeps its rows (:class:`~sdegen.random.GlobalBatchGenerator`):
so the parameters after k steps are those of one process with the same global batch, up to float32
round-off in the gradient sums, whatever the number of processes or of accumulated micro-batches,
and a checkpoint resumes on any number of processes.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from sdegen import distributed
from sdegen._checks import check_fits_model
from sdegen._progress import progress
from sdegen.data.batches import BatchSource, LabelledBatch
from sdegen.losses.base import Loss
from sdegen.random import GlobalBatchGenerator
from sdegen.training import state as checkpoint_state
from sdegen.training.callbacks import Callback
from sdegen.training.checkpoint import describe, load_checkpoint, save_checkpoint
from sdegen.training.config import TrainConfig
from sdegen.training.interrupt import TrainingInterrupted, stop_on_signals
from sdegen.training.metrics_log import MetricsLog
from sdegen.training.run_directory import IF_EXISTS, RunDirectory

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
    """Train a :class:`~sdegen.parameterization.ScoreModel` (or a noise-conditional classifier) on a
    :class:`~sdegen.data.BatchSource`.

    A class-conditional score model (a network with ``n_classes``) trains on labelled batches
    (``DistributionBatches(..., labels=True)``, ``DatasetBatches(..., labels=...)``), usually with
    :class:`~sdegen.losses.LabelDropout` for classifier-free guidance; a
    :class:`~sdegen.classifier.NoisyClassifier` trains on them with
    :class:`~sdegen.classifier.NoisyClassifierLoss`. A model and a batch source that disagree about
    labels (labels for an unconditional model, none for a conditional one, another number of
    classes) are refused here, before any step.

    Args:
        model: the model ``loss`` trains (its ``loss.model_type``: a score model, or a classifier for
            the classifier's loss); its parameters are trained in place.
        loss: the objective, e.g. :class:`~sdegen.losses.DenoisingScoreMatching`.
        data: where training batches come from.
        config: optimisation settings.
        run_dir: if given, checkpoints go to ``run_dir/checkpoints/last.pt`` and log records to
            ``run_dir/metrics.jsonl`` (one JSON object per line). Pass a
            :class:`~sdegen.training.RunDirectory` to share its lock with the caller (who may hold
            it around more than training, e.g. writing reports).
        if_exists: what to do if ``run_dir`` already holds a run (a checkpoint or a metrics log):
            ``"error"`` (default) raises ``FileExistsError``; ``"resume"`` continues it (:meth:`fit`
            first loads its checkpoint, if any); ``"overwrite"`` replaces it (its checkpoint and
            log are removed when :meth:`fit` starts).
        callbacks: periodic evaluations (held-out loss, NLL, figures), each run every
            ``callback.every`` steps and at the end, on the EMA model.
        device: where to train (default: the model's device); under torchrun ``"cuda"`` means this
            process's ``cuda:<LOCAL_RANK>``.
        metadata: JSON-compatible values stored in every checkpoint (e.g. how to rebuild the model).

    Launched by torchrun, the trainer joins the process group (:func:`sdegen.distributed.init`) and
    trains data-parallel (module docstring); every process must then construct it and call
    :meth:`fit`, :meth:`save_checkpoint` and :meth:`load_checkpoint` alike, since they synchronise.
    Callbacks run on process 0 only, and their metrics are sent to the others, so that every
    process's ``history`` is the same.

    The EMA is torch's :class:`~torch.optim.swa_utils.AveragedModel` (buffers included), updated
    after every optimizer step with the decay of :meth:`TrainConfig.ema_decay_at`, which ramps up
    so that a short run's EMA is not its initialisation. Dropout draws from torch's global
    generator, so exact resumption holds for networks without it (the default).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        data: BatchSource,
        config: TrainConfig | None = None,
        *,
        run_dir: str | Path | RunDirectory | None = None,
        if_exists: Literal["error", "resume", "overwrite"] = "error",
        callbacks: Sequence[Callback] = (),
        device: torch.device | str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be an sdegen.losses.Loss; got {type(loss).__name__}")
        loss.check_model(model)  # the loss says what it trains: a ScoreModel, a NoisyClassifier
        if not isinstance(data, BatchSource):
            raise TypeError(
                f"data must be a BatchSource (DistributionBatches, DatasetBatches); got {type(data).__name__}"
            )
        _check_labels_fit(model, loss, data)
        if config is not None and not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances; got {type(cb).__name__}")
        if if_exists not in IF_EXISTS:
            raise ValueError(
                f"if_exists must be 'error', 'resume' or 'overwrite'; got if_exists={if_exists!r}"
            )
        if metadata is not None:
            try:
                json.dumps(metadata)
            except (TypeError, ValueError) as e:
                raise TypeError(f"metadata must hold JSON-compatible values only; {e}") from None
        self.config = config or TrainConfig()
        first = next(model.parameters(), None)
        if first is None:
            raise ValueError("model has no parameters to train")
        try:
            self.device = torch.device(device) if device is not None else first.device
        except (RuntimeError, TypeError):
            raise ValueError(
                f"device must be a torch device such as 'cpu' or 'cuda'; got device={device!r}"
            ) from None
        self.world = distributed.init(self.device)
        self.device = self.world.device(self.device)
        parts = self.world.size * self.config.grad_accumulation
        if data.batch_size % parts:
            raise ValueError(
                f"the global batch of {data.batch_size} examples (data.batch_size) must split evenly "
                f"over {self.world.size} process(es) x grad_accumulation={self.config.grad_accumulation}; "
                f"choose a batch size divisible by {parts}"
            )
        self.dtype = first.dtype
        self.model = model.to(self.device)
        self.loss, self.data, self.callbacks = loss, data, list(callbacks)
        self._check_data_fits_model()
        if run_dir is None or isinstance(run_dir, RunDirectory):
            self.run = run_dir
        elif isinstance(run_dir, (str, Path)):
            self.run = RunDirectory(run_dir)
        else:
            raise TypeError(f"run_dir must be a path, a RunDirectory or None; got {type(run_dir).__name__}")
        self.run_dir = None if self.run is None else self.run.path
        self.if_exists = if_exists
        self.metadata = dict(metadata or {})
        if self.run is not None and if_exists == "error" and self.run.holds_run():
            raise FileExistsError(
                f"{str(self.run_dir)!r} already holds a run ({self.run.contents()}); pass "
                f"if_exists='resume' to continue it or if_exists='overwrite' to replace it, or use "
                f"another run_dir"
            )
        # Whether the files in run_dir are this trainer's: written or loaded by it. Until then
        # fit() checks, under the lock, that no other run appeared there in the meantime.
        self._owns_run = self.run is None

        cfg = self.config
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.ema = AveragedModel(model, multi_avg_fn=self._ema_update, use_buffers=True)
        if cfg.compile:
            # In place (nn.Module.compile), so state_dict keys stay those of the plain network; the
            # EMA copy above stays eager. Compiling the loss around it would retrace per draw shape.
            getattr(model, "net", model).compile()
        # What the backward pass runs through: the loss of the model as one module, so that DDP
        # sees the network's forward (the loss calls model.output, not model.forward).
        self._objective: torch.nn.Module = _Objective(model, loss)
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self._objective = DistributedDataParallel(self._objective, device_ids=ids)
        self._precision = getattr(torch, cfg.precision)
        # float16 needs its gradients scaled against underflow; bfloat16 has float32's range. The
        # scale starts at 2^10 rather than torch's 2^16, at which gradients of order one overflow
        # float16 and the first steps are skipped; it grows from there when gradients are small.
        self.scaler = (
            torch.amp.GradScaler(self.device.type, init_scale=2.0**10) if cfg.precision == "float16" else None
        )
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)
        self.step = 0
        self.history: list[dict[str, float]] = []
        # Settings changed on resuming: [{"step": k, "changed": {name: [old, new]}}], kept in
        # every later checkpoint.
        self.setting_changes: list[dict[str, Any]] = []
        self._grad_norm = torch.tensor(math.nan)
        self._saved_step: int | None = None  # of the last checkpoint in run_dir, for error messages
        self._lock_depth = 0  # nesting of locked() on every process (process 0 holds the lock)
        self._preflown = False  # whether preflight() has run
        self._stop_requested = False  # by stop()
        self._stop_signal: int | None = None  # SIGINT or SIGTERM received during fit()

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up: lr * min(1, (step + 1) / warmup_steps)."""
        warmup = self.config.warmup_steps
        return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0

    @torch.no_grad()
    def _ema_update(self, ema: list[Tensor], current: list[Tensor], _: Tensor) -> None:
        # Called by AveragedModel from the second update on (the first copies the weights), before
        # self.step is incremented: this is update number self.step + 1.
        decay = self.config.ema_decay_at(self.step + 1)
        if ema and (torch.is_floating_point(ema[0]) or torch.is_complex(ema[0])):
            torch._foreach_lerp_(ema, current, 1.0 - decay)
        else:
            for e, c in zip(ema, current, strict=True):
                e.copy_(e * decay + c * (1.0 - decay))

    # -- the models --------------------------------------------------------------------------------
    @property
    def ema_model(self) -> nn.Module:
        """The exponential moving average of the model: the one to sample and evaluate."""
        return self.ema.module

    @property
    def configuration(self) -> dict[str, str]:
        """What produced this trainer's checkpoints: SDE, network, parameterisation and loss."""
        return describe(self.model, self.loss)

    # -- the run directory -------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory for the block (a no-op without one): the trainer writes only
        inside such a block, and :meth:`fit`, :meth:`save_checkpoint` and :meth:`load_checkpoint`
        take it themselves. Raises :class:`~sdegen.training.RunDirectoryBusy` if another writer
        holds it."""
        if self.run is None or self._lock_depth > 0:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with self.run.lock_for(self.world):
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1

    def check_lock(self) -> None:
        """Raise :class:`~sdegen.training.RunDirectoryLost` if this process holds the run directory's
        lock and its lock file has been removed or replaced: another writer may be in, so nothing
        more is written (called before every write; the last checkpoint stays as it was)."""
        if self.run is not None and self.run.locked:
            last = f"step {self._saved_step}" if self._saved_step is not None else "none yet"
            self.run.check_held(f"at step {self.step}; last checkpoint: {last}")

    def _claim_run(self) -> None:
        """Under the lock, before the first write: resume, replace or refuse what is there."""
        if self._owns_run:
            return
        self.world.run(lambda: self.run.claim(self.if_exists, self._resume_found, world=self.world))
        self._owns_run = True

    def _resume_found(self) -> None:
        if self.step > 0:  # loading now would throw away the steps taken
            raise FileExistsError(
                f"{str(self.run_dir)!r} holds a run to resume, but this trainer has taken "
                f"{self.step} steps without loading it; call load_checkpoint() before training"
            )
        self._load(self.checkpoint_path, own_run=True)

    # -- training ----------------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        """One optimizer step on the global batch; returns this process's share of its loss (a 0-d
        tensor, not synchronised to the host): the sum of the shares over the processes is the
        batch's loss, and in one process the share is the loss.

        Each process takes its contiguous rows of the global batch, in ``grad_accumulation``
        micro-batches; the gradient is that of the loss reduced over the global batch (DDP
        averages over processes, so each micro-batch's loss is scaled to make the average that).
        """
        self.model.train()
        world, cfg = self.world, self.config
        G, A = self.data.batch_size, cfg.grad_accumulation
        per_process = G // world.size
        micro = per_process // A
        first = world.rank * per_process
        batch = self.data.batch(
            self.step, self.generator, device=self.device, dtype=self.dtype, rows=(first, first + per_process)
        )
        # Labels (of a conditional model or a classifier) are rows of the batch like the data.
        x0, y = batch if isinstance(batch, LabelledBatch) else (batch, None)
        draws = GlobalBatchGenerator(self.generator, G)
        # d(global loss) = sum over micro-batches and processes of scale * d(micro-batch loss), with
        # DDP's average over processes: 1/A of each micro-batch mean, or W times each sum.
        mean = self.loss.reduction == "mean"
        scale = 1.0 / A if mean else float(world.size)
        share = 1.0 / (A * world.size) if mean else 1.0
        self.optimizer.zero_grad(set_to_none=True)
        total = None
        for m in range(A):
            start = first + m * micro
            last = m == A - 1
            no_sync = getattr(self._objective, "no_sync", contextlib.nullcontext)
            with contextlib.nullcontext() if last else no_sync():
                with self._network_precision():
                    rows = slice(m * micro, (m + 1) * micro)
                    loss = self._objective(
                        x0[rows], None if y is None else y[rows], draws.rows(start, start + micro)
                    )
                scaled = loss if scale == 1.0 else loss * scale
                (scaled if self.scaler is None else self.scaler.scale(scaled)).backward()
            total = loss.detach() if total is None else total + loss.detach()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        # With max_norm = inf this only measures the norm, which is logged either way.
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        self._grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped, with a lower scale, on inf/NaN gradients
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        return total if share == 1.0 else total * share

    @contextlib.contextmanager
    def _network_precision(self) -> Iterator[None]:
        """Autocast for the network in ``config.precision``; its output is cast back to the data's
        dtype, so the loss is computed (and checked) in float32."""
        if self._precision == torch.float32:
            yield
            return
        net = getattr(self.model, "net", self.model)
        # The network is called net(t, x) or, class-conditional, net(t, x, y): x is its second argument.
        hook = net.register_forward_hook(lambda module, args, out: out.to(args[1].dtype))
        try:
            with torch.autocast(self.device.type, dtype=self._precision):
                yield
        finally:
            hook.remove()

    def fit(self, steps: int | None = None) -> TrainResult:
        """Train until ``self.step == steps`` (default ``config.steps``); log, evaluate, checkpoint.

        Before anything is written, :meth:`preflight` evaluates the objective once, so that a
        model, loss and data that cannot train together fail here. With a run directory, holds
        its lock throughout, and the first SIGINT (Ctrl-C) or SIGTERM ends training after the
        current step with a checkpoint there, then raises
        :class:`~sdegen.training.TrainingInterrupted` (a ``KeyboardInterrupt``; a second signal
        interrupts at once). :meth:`stop` (from a callback, say) ends it the same way but returns.
        Raises ``FloatingPointError`` naming the steps if the loss becomes NaN or infinite.
        """
        cfg = self.config
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
            raise TypeError(f"steps must be an int or None; got {steps!r}")
        target = cfg.steps if steps is None else steps
        self.preflight()
        self._stop_requested, self._stop_signal = False, None
        signals = stop_on_signals(self._on_signal) if self.run is not None else contextlib.nullcontext()
        with self.locked(), signals:
            self._claim_run()
            if target < self.step:
                raise ValueError(f"steps={target} is before the current step {self.step}; nothing to do")
            start = time.perf_counter()
            self._truncate_log()  # records past this step belong to a run being redone or replaced
            bar = progress(
                target,
                label="train",
                unit="step",
                initial=self.step,
                enabled=cfg.progress and self.world.is_main,
            )
            loss_sum, n_summed, first_summed = None, 0, self.step + 1
            try:
                self._on_main(lambda cb: cb.on_fit_start(self))
                while self.step < target:
                    loss = self.train_step()
                    loss_sum = loss if loss_sum is None else loss_sum + loss
                    n_summed += 1
                    bar.update(1)
                    last = self.step == target
                    record: dict[str, float] = {}
                    if self.step % cfg.log_every == 0 or last:
                        mean = float(self.world.all_reduce_sum(loss_sum)) / n_summed
                        if not math.isfinite(mean):
                            raise FloatingPointError(
                                f"training loss is {mean} over steps {first_summed}..{self.step}; lower lr, "
                                f"raise eps, or enable grad_clip"
                            )
                        lr = self.scheduler.get_last_lr()[0]
                        record.update(loss=mean, lr=lr, grad_norm=float(self._grad_norm))
                        bar.set_postfix_str(f"loss={mean:.4g}")
                        loss_sum, n_summed, first_summed = None, 0, self.step + 1
                    # Evaluations run on schedule only: a stop (Ctrl-C) should not wait for an NLL.
                    due = [
                        cb
                        for cb in self.callbacks
                        if cb.every is not None and (self.step % cb.every == 0 or last)
                    ]
                    if due:
                        # On process 0 (the EMA is the same everywhere); every process logs its metrics.
                        metrics = self.world.run(lambda due=due: self.evaluate(due), where="main")
                        record.update(self.world.broadcast(metrics))
                    if record:
                        self._log({"step": self.step, **record})
                    # After the step's record, so that a callback that asks to stop is heard now; the
                    # loss of a partial logging interval is not logged (the checkpoint has the state).
                    stopping = not last and self._stopping()
                    if self.run_dir is not None and (
                        last or stopping or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
                    ):
                        self.save_checkpoint()
                    if stopping:
                        break
            except RuntimeError as e:
                if not (self.world.distributed and _lost_a_process(e)):
                    raise
                last = f"step {self._saved_step}" if self._saved_step is not None else "none yet"
                first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise distributed.RankFailed(
                    f"another process of the run stopped while this one was at step {self.step} "
                    f"({first_line}); the last checkpoint ({last}) is intact: resume the run from it, "
                    f"on any number of processes"
                ) from e
            finally:
                bar.close()
                if self.world.is_main:  # no collective here: a peer may be gone
                    for cb in self.callbacks:
                        cb.on_fit_end(self)
        if self._stop_signal is not None:
            saved = self.checkpoint_path if self._saved_step == self.step else None
            raise TrainingInterrupted(self._stop_signal, self.step, saved)
        return TrainResult(self.step, list(self.history), time.perf_counter() - start)

    def stop(self) -> None:
        """Ask :meth:`fit` to end after the step it is taking, saving a checkpoint there (with a run
        directory); ``fit`` then returns normally. Callable from a callback or another thread."""
        self._stop_requested = True

    def _on_signal(self, signum: int) -> None:
        self._stop_signal = signum

    def _stopping(self) -> bool:
        """Whether to stop after this step: asked by :meth:`stop` or a signal on any process. With
        several processes they agree on it at every step (a small all-reduce), so all stop alike."""
        local = [
            float(self._stop_requested),
            float(self._stop_signal == signal.SIGINT),
            float(self._stop_signal == signal.SIGTERM),
        ]
        if not self.world.distributed:
            return any(local)
        agreed = self.world.all_reduce_sum(torch.tensor(local, device=self.device)).tolist()
        if self._stop_signal is None and (agreed[1] or agreed[2]):  # another process got the signal
            self._stop_signal = signal.SIGINT if agreed[1] else signal.SIGTERM
        return any(agreed)

    def _on_main(self, hook: Callable[[Callback], None]) -> None:
        """Run ``hook`` on every callback, on process 0 (callbacks run there only)."""

        def run() -> None:
            for cb in self.callbacks:
                hook(cb)

        self.world.run(run, where="main")

    def preflight(self) -> None:
        """Evaluate the objective once on a few rows of the next batch, so that whatever would make
        the first step fail (a loss that does not fit the SDE or the model, data of the wrong
        shape or dtype, a network that fails) fails now, before the run directory is claimed or
        anything is written. It uses a copy of the trainer's generator and the model in eval mode
        (nothing is updated, dropout and batch statistics are untouched), so the run is the one it
        would have been. :meth:`fit` calls it once; callers that write files of their own before
        ``fit`` (the CLI's ``config.json``) call it first."""
        if not self._preflown:
            # Every process tries; a failure on any is raised on all (none goes on to wait for it).
            self.world.run(self._preflight)
            self._preflown = True

    def _preflight(self) -> None:
        G = self.data.batch_size
        per_process = G // self.world.size
        first = self.world.rank * per_process
        rows = min(2, per_process // self.config.grad_accumulation)
        g = torch.Generator(self.device)
        g.set_state(self.generator.get_state())
        was_training = self.model.training
        self.model.eval()
        try:
            batch = self.data.batch(
                self.step, g, device=self.device, dtype=self.dtype, rows=(first, first + rows)
            )
            x0, y = batch if isinstance(batch, LabelledBatch) else (batch, None)
            with self._network_precision():
                self.loss(self.model, x0, y, generator=GlobalBatchGenerator(g, G).rows(first, first + rows))
        finally:
            self.model.train(was_training)

    def _check_data_fits_model(self) -> None:
        """Data that do not fit the network fail here, with their shapes, not deep inside torch."""
        shape = getattr(self.data, "event_shape", None)
        if shape is not None:
            example = torch.empty((1, *shape), dtype=self.dtype, device=self.device)
            check_fits_model("data", example, self.model, takes_labels=True)

    def evaluate(self, callbacks: Sequence[Callback] | None = None) -> dict[str, float]:
        """Run ``callbacks`` (default: all) on the EMA model; return their merged metrics."""
        self.check_lock()  # evaluations write figures (the CLI's) into the run directory
        metrics: dict[str, float] = {}
        self.ema_model.eval()
        for cb in self.callbacks if callbacks is None else callbacks:
            metrics.update(cb(self))
        return metrics

    def _log(self, record: dict[str, float]) -> None:
        self.history.append(record)

        def write() -> None:  # on process 0, which writes the log and runs the callbacks
            if self.run_dir is not None:
                self._append(record)
            for cb in self.callbacks:
                cb.on_log(self, record)

        self.world.run(write, where="main")

    def _append(self, record: dict[str, float]) -> None:
        self.check_lock()
        try:
            MetricsLog(self.run.metrics).append(record)
        except OSError as e:
            last = f"step {self._saved_step}" if self._saved_step is not None else "none yet"
            raise OSError(
                e.errno,
                f"could not append to {str(self.run.metrics)!r}: {e.strerror or e}; training stopped at "
                f"step {self.step} (last checkpoint: {last})",
            ) from e

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """``run_dir/checkpoints/last.pt``, or None without a run directory."""
        return None if self.run is None else self.run.checkpoint

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return checkpoint_state.state_of(self)

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

            def write() -> None:
                if path is None:
                    self.check_lock()
                save_checkpoint(target, state, configuration=self.configuration)

            self.world.run(write, where="main")
        if path is None:
            self._saved_step = self.step
        return target

    def load_checkpoint(self, path: str | Path | None = None) -> int:
        """Restore the state saved at ``path`` (default :attr:`checkpoint_path`); return its step.

        The file is read with ``weights_only=True``, its checksum verified and its contents checked
        against this trainer before anything is changed: a corrupt or mismatched checkpoint (other
        network, SDE or SDE parameters, parameterisation, loss, seed) raises
        :class:`~sdegen.training.CheckpointError` naming what differs, and leaves the trainer and
        every file as they were. Optimisation settings of this trainer's config that differ from
        the checkpoint's (:data:`~sdegen.training.config.RESUMABLE`: ``lr``, ``betas``,
        ``weight_decay``, ``warmup_steps``, ``grad_clip``, ``ema_decay``, ``ema_rampup``,
        ``precision``) are applied from here on and recorded in ``setting_changes``. Records after
        the checkpoint's step are dropped from ``metrics.jsonl``, so a resumed run's log has no
        duplicates.
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
        changes = checkpoint_state.check_state(self, path, state)
        checkpoint_state.restore(self, state)
        if changes:
            self.setting_changes.append({"step": self.step, "changed": changes})
            checkpoint_state.apply_settings(self, self._lr_factor)
        if own_run:
            self._owns_run = True
            self._saved_step = self.step
        self.history = [r for r in self.history if r.get("step", 0) <= self.step]
        if self._owns_run:
            self._truncate_log()

    def _truncate_log(self) -> None:
        """Drop the log's records after this step (process 0 rewrites the file; every process reads it)."""
        if self.run is None or not self.run.metrics.is_file():
            return
        log = MetricsLog(self.run.metrics)
        kept = [r for r in log.read() if r.get("step", 0) <= self.step]
        if self.world.is_main:
            log.truncate(self.step)
        self.history = kept


def _check_labels_fit(model: nn.Module, loss: Loss, data: BatchSource) -> None:
    """Raise ``ValueError`` unless the batches carry labels exactly when the model or loss uses them,
    with the model's number of classes."""
    have = getattr(data, "n_classes", None)
    want = model.n_classes
    labelled = "DistributionBatches(distribution, B, labels=True) or DatasetBatches(data, B, labels=...)"
    if have is None and (want is not None or loss.needs_labels):
        what = "a classifier" if loss.needs_labels else "a class-conditional model"
        raise ValueError(f"model is {what} (n_classes={want}) but data yields no labels; use {labelled}")
    if have is not None and want is None:
        raise ValueError(
            f"data yields labels ({have} classes) but the model is unconditional; build its network with "
            f"n_classes={have} to train a class-conditional model, or use unlabelled batches"
        )
    if have is not None and have != want:
        raise ValueError(
            f"data has {have} classes but the model has n_classes={want}; build the network with n_classes={have}"
        )


def _lost_a_process(error: RuntimeError) -> bool:
    """Whether a collective failed because a peer process went away (gloo's and NCCL's errors)."""
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, getattr(dist, "DistError", ())) or any(
        word in text for word in ("gloo", "NCCL", "Connection reset", "Connection closed")
    )


class _Objective(torch.nn.Module):
    """The loss of a model on a micro-batch, as one module: what DistributedDataParallel wraps, so
    that its forward hooks see the network however the loss calls it."""

    def __init__(self, model: nn.Module, loss: Loss) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x0: Tensor, y: Tensor | None, generator: Any) -> Tensor:
        return self.loss(self.model, x0, y, generator=generator)
