"""``metrics.jsonl``: one JSON record per logged step, each step at most once, in increasing order.

The log is idempotent by step: appending the record of step s first drops any record of a step
>= s (a run redone from an earlier checkpoint, or the records of a writer that should not have
been there), so that however a run was interrupted, resumed or raced, the file holds one record
per step, those of the run that reached it last. Appending reads only the file's last line; the
rare rewrite is atomic (:func:`sdegen.training.files.atomic_write`). A last line cut short by a
crash is ignored by :meth:`MetricsLog.read` and replaced by the next append.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sdegen.training.files import atomic_write

__all__ = ["MetricsLog"]

_TAIL = 1 << 16  # bytes read from the end to find the last record (records are ~100 bytes)


class MetricsLog:
    """The records of ``path`` (``{"step": k, name: value, ...}`` per line)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"MetricsLog({str(self.path)!r})"

    def read(self) -> list[dict[str, Any]]:
        """Every complete record, in file order (a line cut short by a crash is skipped)."""
        if not self.path.is_file():
            return []
        return [r for r in map(_parse, self.path.read_text().splitlines()) if r is not None]

    def last_step(self) -> int | None:
        """The step of the last complete record, or None for an empty or absent log."""
        return self._tail()[0]

    def append(self, record: dict[str, Any]) -> None:
        """Add ``record`` (with its ``step``), dropping first any record of the same or a later step."""
        step = int(record["step"])
        last, complete = self._tail()
        if (last is not None and last >= step) or not complete:
            self.truncate(step - 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _tail(self) -> tuple[int | None, bool]:
        """The step of the last complete record (or None), and whether the file ends with a newline."""
        if not self.path.is_file():
            return None, True
        with open(self.path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL))
            tail = f.read()
        for line in reversed(tail.decode(errors="replace").splitlines()):
            record = _parse(line)
            if record is not None:
                return int(record.get("step", 0)), tail.endswith(b"\n")
        return None, not tail or tail.endswith(b"\n")

    def truncate(self, step: int) -> list[dict[str, Any]]:
        """Keep the records of steps <= ``step`` (rewriting the file only if that changes it); return them."""
        if not self.path.is_file():
            return []
        old = self.path.read_text()
        kept = [
            line for line in old.splitlines() if (r := _parse(line)) is not None and r.get("step", 0) <= step
        ]
        text = "".join(line + "\n" for line in kept)
        if text != old:
            atomic_write(self.path, lambda f: f.write(text.encode()), fsync=False)
        return [json.loads(line) for line in kept]


def _parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
