"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice).

During :meth:`~sdegen.training.Trainer.fit` with a run directory, the first SIGINT or SIGTERM does
not end the process: it asks the loop to stop after the step it is taking, and the trainer saves a
checkpoint there before raising :class:`TrainingInterrupted` (a ``KeyboardInterrupt``, so code that
handles Ctrl-C keeps working). The handlers are installed only for the duration of ``fit`` and
only from the main thread (where Python delivers signals), and the previous ones are restored as
soon as the first signal arrives, so a second Ctrl-C interrupts at once, as it would have (the
checkpoint being written is atomic: the previous one stays intact).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["TrainingInterrupted", "stop_on_signals", "SIGNALS"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint at ``step`` (to ``checkpoint``)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        saved = (
            f"a checkpoint was saved at step {step} in {str(checkpoint)!r}: resume it to continue"
            if checkpoint
            else "no checkpoint was saved"
        )
        super().__init__(f"training stopped by {name} at step {step}; {saved}")


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[int], None]) -> Iterator[None]:
    """For the block, turn the first SIGINT or SIGTERM into ``request_stop(signum)``; restore the
    previous handlers after that signal and at the end of the block. Outside the main thread it
    installs nothing (Python runs signal handlers only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def restore() -> None:
        for s, handler in previous.items():
            # None: a handler installed from C, which Python cannot reinstall; the default is closest.
            signal.signal(s, signal.SIG_DFL if handler is None else handler)

    def handler(signum: int, frame: object) -> None:
        restore()  # a second signal acts as it would have without us
        request_stop(signum)

    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        restore()
