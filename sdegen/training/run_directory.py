"""A run directory and its single writer.

A run directory holds one training run: ``checkpoints/last.pt`` and ``metrics.jsonl`` (and, from
the command line, ``config.json`` and figures). Only one writer may hold it at a time: writing
takes an exclusive, non-blocking lock on ``.lock`` (``filelock``, an OS lock that the kernel drops
when its process dies, so a killed run never leaves a stale lock), and a second writer is refused
with :class:`RunDirectoryBusy`, naming the process that holds it.

A writer *claims* the directory (:meth:`RunDirectory.claim`) under the lock before its first write:
it resumes the run it finds, replaces it, or refuses it, as it was told.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import filelock

from sdegen.distributed import World
from sdegen.training.files import check_writable

__all__ = ["RunDirectory", "RunDirectoryBusy", "RunDirectoryLost", "IF_EXISTS"]

# What a writer does with a directory that already holds a run.
IF_EXISTS = ("error", "resume", "overwrite")


class RunDirectoryBusy(RuntimeError):
    """Another writer holds the run directory."""


class RunDirectoryLost(RunDirectoryBusy):
    """The lock file of a run directory was removed or replaced while this writer held it: another
    writer may have taken the directory, so this one must not write to it any more."""


class RunDirectory:
    """``path`` as a run directory: where its files are, whether it holds a run, and its lock.

    :meth:`lock` is re-entrant for the same object: nested ``with rd.lock():`` blocks hold one
    OS lock, released when the outermost block ends.
    """

    LOCK = ".lock"
    OWNER = ".lock.owner"  # who holds the lock: read only to explain a refusal

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: filelock.BaseFileLock | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the lock file we locked
        self._depth = 0

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    def holds_run(self) -> bool:
        """True if a run was written here: a checkpoint, or a non-empty metrics log."""
        return self.checkpoint.is_file() or (self.metrics.is_file() and self.metrics.stat().st_size > 0)

    def contents(self) -> str:
        """The run's files, as named in messages: ``"checkpoints/last.pt, metrics.jsonl"``."""
        parts = []
        if self.checkpoint.is_file():
            parts.append(str(self.checkpoint.relative_to(self.path)))
        if self.metrics.is_file():
            parts.append(self.metrics.name)
        return ", ".join(parts) or "nothing"

    def claim(
        self,
        if_exists: Literal["error", "resume", "overwrite"],
        resume: Callable[[], None],
        *,
        world: World | None = None,
    ) -> None:
        """Under the lock, before a writer's first write: what it does with the run it finds.

        ``"resume"`` calls ``resume()`` if there is a checkpoint (a run without one starts from
        step 0); ``"overwrite"`` removes the checkpoint and the log (on process 0 of ``world``);
        ``"error"`` raises ``FileExistsError`` if a run appeared since the writer last looked.
        """
        if if_exists == "resume":
            if self.checkpoint.is_file():
                resume()
        elif if_exists == "overwrite":
            if world is None or world.is_main:
                self.checkpoint.unlink(missing_ok=True)
                self.metrics.unlink(missing_ok=True)
        elif self.holds_run():
            raise FileExistsError(
                f"{str(self.path)!r} now holds a run written by someone else ({self.contents()}); "
                f"pass if_exists='resume' or 'overwrite', or use another run_dir"
            )

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock now."""
        return self._depth > 0

    @contextlib.contextmanager
    def lock(self) -> Iterator[RunDirectory]:
        """Hold the run directory's lock for the block; raise :class:`RunDirectoryBusy` at once if
        another writer holds it, or ``OSError`` if the directory cannot be written."""
        if self._depth == 0:
            self._acquire()
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._release()

    @contextlib.contextmanager
    def lock_for(self, world: World) -> Iterator[RunDirectory]:
        """:meth:`lock` for a group of processes: process 0 is the one writer and takes the lock;
        every process learns whether it got it (and raises :class:`RunDirectoryBusy` alike)."""
        if not world.distributed:
            with self.lock():
                yield self
            return
        with contextlib.ExitStack() as stack:
            world.run(lambda: stack.enter_context(self.lock()), where="main")
            yield self

    def _acquire(self) -> None:
        check_writable(self.path)
        lock = filelock.FileLock(self.path / self.LOCK, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunDirectoryBusy(
                f"run directory {str(self.path)!r} is in use by another writer ({self._owner()}); wait "
                f"for it to finish, or use another directory"
            ) from None
        self._lock = lock
        self._identity = _identity(self.path / self.LOCK)
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        with contextlib.suppress(OSError):  # only used to explain a refusal
            (self.path / self.OWNER).write_text(json.dumps(owner))

    def check_held(self, context: str = "") -> None:
        """Raise :class:`RunDirectoryLost` if the lock file this object holds was removed or replaced
        (a no-op when it holds none). An OS lock lives on the file, not on its name: once the file
        is deleted, a second writer creates a new one and locks it too. Writers call this before
        each write, so that at most one of them goes on writing; ``context`` ends the message."""
        if self._lock is None or _identity(self.path / self.LOCK) == self._identity:
            return
        raise RunDirectoryLost(
            f"the lock file {str(self.path / self.LOCK)!r} was removed or replaced while this process held "
            f"it, so another writer may be using {str(self.path)!r}; this one stopped without writing"
            + (f" ({context})" if context else "")
            + "; do not delete .lock while a run writes"
        )

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock, self._identity = None, None

    def _owner(self) -> str:
        try:
            owner = json.loads((self.path / self.OWNER).read_text())
            return f"process {owner['pid']} on {owner['host']}, since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino
