"""The processes of a run: which one this is, how many there are, and how they agree.

sdegen runs multi-process the way EDM does (Karras et al. 2022, ``torch_utils/distributed.py``):
``torchrun --nproc_per_node=N`` starts one process per device and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address in the environment; :func:`init` sees them and joins the
process group (gloo on CPU, NCCL on CUDA). Without them it is one process, and every collective
below is the identity, so the same code serves both.

Rank 0 is the main process: it alone writes files. What one process does alone (lock a run
directory, read a checkpoint, write a report) can fail on that process alone, and the others must
not wait for it in a collective for ever: :meth:`World.agree` makes every process learn of a
failure on any of them and raise too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = ["World", "init", "current", "launched", "RankFailed"]

T = TypeVar("T")


class RankFailed(RuntimeError):
    """Another process of the run failed; its error is in the message."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run: ``rank`` of ``size`` (``local_rank`` on
    its machine). ``World()`` is the single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, requested: torch.device | str) -> torch.device:
        """The device of this process for a ``requested`` one: ``cuda`` means ``cuda:<local_rank>``."""
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None and self.distributed:
            return torch.device("cuda", self.local_rank)
        return device

    # -- collectives (the identity in one process) -------------------------------------------------
    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the processes (in place), identical on every process."""
        if self.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def broadcast(self, obj: T, src: int = 0) -> T:
        """``obj`` of process ``src``, on every process (pickled)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def gather(self, obj: T) -> list[T] | None:
        """Every process's ``obj`` in rank order on the main process; None on the others."""
        if not self.distributed:
            return [obj]
        out: list[Any] | None = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def all_gather(self, obj: T) -> list[T]:
        """Every process's ``obj`` in rank order, on every process."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def agree(self, error: BaseException | None) -> None:
        """Raise on every process if any failed: this process's own ``error`` if it has one, else a
        :class:`RankFailed` naming the first process that failed and its error."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        reports = self.all_gather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        for rank, report in enumerate(reports):
            if report is not None:
                raise RankFailed(f"process {rank} of {self.size} failed: {report}")

    def run(self, fn: Callable[[], T], *, where: str = "all") -> T | None:
        """Run ``fn`` on every process (``where="all"``) or only on the main one (``"main"``), and
        :meth:`agree` on its failure; returns its result (None where it did not run)."""
        result, error = None, None
        if where == "all" or self.is_main:
            try:
                result = fn()
            except Exception as e:  # re-raised by agree() on this process
                error = e
        self.agree(error)
        return result

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """The main process runs the block first; the others run it after it succeeded (a failure on
        the main process is raised on every process, before the others start)."""
        if self.is_main:
            error = None
            try:
                yield
            except Exception as e:
                error = e
            self.agree(error)
        else:
            self.agree(None)
            yield


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def init(device: torch.device | str = "cpu") -> World:
    """Join the process group of a torchrun launch (gloo for CPU, NCCL for CUDA) if there is one and
    it was not joined yet; return this process's :class:`World` (``World()`` without a launch).

    For CUDA the process's device is set to ``cuda:<LOCAL_RANK>``, so that NCCL and the caller's
    ``cuda`` tensors use one device per process.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    if not launched():
        return World()
    try:
        size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError(
            f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}, RANK={os.environ.get('RANK')!r} must be integers "
            f"(set by torchrun)"
        ) from None
    if size == 1:
        return World()
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run a single process")
    device = torch.device(device)
    backend = "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    dist.init_process_group(backend=backend)
    return World(rank, size, local_rank)


def current() -> World:
    """The :class:`World` of the process group this process has joined (``World()`` if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    rank, size = dist.get_rank(), dist.get_world_size()
    return World(rank, size, int(os.environ.get("LOCAL_RANK", rank)))
