"""Evaluation split across processes in fixed chunks of examples, gathered on the main process.

The n examples (seeds, data points) are cut by global index into the chunks [0, c), [c, 2c), ...
of a fixed size c, and chunk k is computed by process k mod N. A chunk is computed the same way
whichever process computes it: same examples, same per-example seeds, same batch. So with fixed
c the results are bit-identical for any number of processes, even where an example's result
depends on the others of its batch (the shared step sequence of an adaptive ODE solve). No
collective runs inside a chunk, so processes that take different numbers of solver steps never wait
for each other there (the hang of DDP-wrapped adaptive solves); they meet once, at the gather.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from sdegen._checks import check_steps
from sdegen.distributed.world import World, current

__all__ = ["fixed_chunks", "map_chunks"]

Result = Mapping[str, Any]


def fixed_chunks(n: int, size: int, world: World | None = None) -> list[tuple[int, int]]:
    """The chunks ``(start, stop)`` of ``range(n)`` of ``size`` examples (the last may be shorter)
    that process ``world.rank`` computes: chunk k goes to process k mod ``world.size``."""
    n, size = check_steps("n", n), check_steps("size", size)
    world = world or World()
    starts = range(0, n, size)
    return [(s, min(s + size, n)) for k, s in enumerate(starts) if k % world.size == world.rank]


def map_chunks(
    fn: Callable[[int, int], Result], n: int, size: int, *, world: World | None = None
) -> dict[str, Any] | None:
    """Compute ``fn(start, stop)`` for this process's fixed chunks and gather all chunks on the main
    process, in global order.

    ``fn`` returns a mapping whose tensors have ``stop - start`` rows (concatenated over the
    chunks into ``n`` rows, on the CPU) and whose numbers are summed over the chunks (e.g. NFE).
    Returns the gathered mapping on the main process and None on the others. A failure on any
    process raises on every process.
    """
    world = world or current()
    mine: list[tuple[int, Result]] = []
    error = None
    try:
        for start, stop in fixed_chunks(n, size, world):
            out = dict(fn(start, stop))
            for key, value in out.items():
                if torch.is_tensor(value):
                    if value.shape[:1] != (stop - start,):
                        raise ValueError(
                            f"map_chunks: fn({start}, {stop}) returned {key!r} of shape {tuple(value.shape)}; "
                            f"its first dimension must be the chunk's {stop - start} examples"
                        )
                    out[key] = value.detach().cpu()
            mine.append((start, out))
    except Exception as e:
        error = e
    world.agree(error)
    gathered = world.gather(mine)
    if gathered is None:
        return None
    chunks = sorted((c for part in gathered for c in part), key=lambda c: c[0])
    if not chunks:
        return {}
    merged: dict[str, Any] = {}
    for key, first in chunks[0][1].items():
        values = [c[1][key] for c in chunks]
        merged[key] = torch.cat(values) if torch.is_tensor(first) else sum(values)
    return merged
