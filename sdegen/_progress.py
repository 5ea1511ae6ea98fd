"""Progress of long loops (sampling, likelihoods, training): one policy for all of them.

On a terminal, a tqdm bar labelled with what runs. Anywhere else -- a log file, a pipe, a batch
job -- a bar's carriage-return frames would litter the output, so progress becomes plain lines
instead (tqdm's ``disable=None`` convention decides the same way, by ``isatty``): one line per
tenth of the work, at most one per ``min_interval`` seconds so that a fast loop stays quiet, and a
heartbeat after ``heartbeat`` seconds without one so that a slow loop shows it is alive. A loop
that printed no line prints none at its end either: a run that finishes within seconds leaves no
trace in a log.

Every caller goes through :func:`progress`; ``enabled=False`` gives a bar that does nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Protocol

__all__ = ["Progress", "progress"]


class Progress(Protocol):
    """What a loop calls: ``update`` by an amount or ``advance_to`` a position, ``set_postfix_str``
    (a short status such as ``nfe=12`` or ``loss=0.31``), and ``close`` once at the end."""

    n: float

    def update(self, amount: float = 1) -> None: ...

    def advance_to(self, position: float) -> None: ...

    def set_postfix_str(self, text: str) -> None: ...

    def close(self) -> None: ...


def progress(
    total: float,
    *,
    label: str,
    unit: str = "it",
    enabled: bool = True,
    initial: float = 0,
    stream: IO[str] | None = None,
    position_format: str = "{n:g}/{total:g}",
    min_interval: float = 2.0,
    heartbeat: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> Progress:
    """A progress display over ``total`` units of work, labelled ``label`` (``"train"``, ``"nll"``,
    a sampler's name).

    ``stream`` (default ``sys.stderr``) decides the kind: a tqdm bar where it is a terminal, plain
    lines elsewhere (see the module docstring; ``min_interval``, ``heartbeat`` and ``clock`` tune
    and test them). ``position_format`` formats the position in both, with ``n`` and ``total``
    (e.g. ``"t={n:.3g}/{total:.3g}"`` for a sampler, whose work is the time it has covered).
    """
    if not enabled:
        return _Silent(initial)
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is in the `train` extra: without it, lines on the terminal too
            pass
        else:
            return _Bar(tqdm, total, label, unit, initial, stream, position_format)
    return _Lines(total, label, initial, stream, position_format, min_interval, heartbeat, clock)


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


class _Silent:
    def __init__(self, initial: float) -> None:
        self.n = initial

    def update(self, amount: float = 1) -> None:
        self.n += amount

    def advance_to(self, position: float) -> None:
        self.n = max(self.n, position)

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _Bar:
    """A tqdm bar; ``advance_to`` moves it forward only (adaptive solvers may probe backwards)."""

    def __init__(self, tqdm, total, label, unit, initial, stream, position_format) -> None:
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=label,
            unit=unit,
            file=stream,
            dynamic_ncols=True,
            leave=True,  # the final state stays on screen, as in k-diffusion and diffusers
            bar_format="{l_bar}{bar}| " + position_format + " [{elapsed}<{remaining}{postfix}]",
        )

    @property
    def n(self) -> float:
        return self._bar.n

    def update(self, amount: float = 1) -> None:
        self._bar.update(amount)

    def advance_to(self, position: float) -> None:
        if position > self._bar.n:
            self._bar.update(position - self._bar.n)

    def set_postfix_str(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self._bar.close()


class _Lines:
    """Plain lines ``label: 40% (t=0.6/1) nfe=8, 3.1 s`` for logs and pipes."""

    def __init__(
        self, total, label, initial, stream, position_format, min_interval, heartbeat, clock
    ) -> None:
        self.n = initial
        self._total, self._label, self._stream, self._format = total, label, stream, position_format
        self._min_interval, self._heartbeat, self._clock = min_interval, heartbeat, clock
        self._start = self._last = clock()
        self._next_tenth = self._tenth(initial) + 1
        self._postfix = ""
        self._printed = False

    def _tenth(self, n: float) -> int:
        return int(10 * n / self._total) if self._total > 0 else 10

    def update(self, amount: float = 1) -> None:
        self.advance_to(self.n + amount)

    def advance_to(self, position: float) -> None:
        if position <= self.n:
            return
        self.n = position
        now = self._clock()
        since = now - self._last
        # The last tenth is left to close(), which reports the end once.
        milestone = self._next_tenth <= self._tenth(position) < 10
        if (milestone and since >= self._min_interval) or since >= self._heartbeat:
            self._write(now)

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text

    def _write(self, now: float, end: str = "") -> None:
        fraction = min(1.0, self.n / self._total) if self._total > 0 else 1.0
        position = self._format.format(n=self.n, total=self._total)
        postfix = f" {self._postfix}" if self._postfix else ""
        print(
            f"{self._label}: {100 * fraction:3.0f}% ({position}){postfix}, {now - self._start:.1f} s{end}",
            file=self._stream,
            flush=True,
        )
        self._last, self._printed = now, True
        self._next_tenth = self._tenth(self.n) + 1

    def close(self) -> None:
        # A final line only for a loop that was long enough to report on the way.
        if self._printed:
            self._write(self._clock(), end=", done")
            self._printed = False
