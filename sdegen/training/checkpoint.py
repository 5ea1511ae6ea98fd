"""Checkpoint files: written atomically, read with ``weights_only=True``, validated before use.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so
``torch.load(..., weights_only=True)`` can read it without executing code from the file. It is
first written to a temporary file in the same directory, flushed to disk, then moved over the old
one with ``os.replace`` (atomic on POSIX and Windows), so a crash or a full disk never leaves a
half-written checkpoint in place of a good one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "load_weights", "FORMAT", "VERSION"]

FORMAT = "sdegen-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, not an sdegen checkpoint, or does not match the model."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors and plain values) to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, *, map_location: torch.device | str | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` for a file that
    cannot be read (truncated, corrupt, or holding pickled objects) or is not an sdegen checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... by cause
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a weights-only torch file ({first_line})"
        ) from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an sdegen checkpoint (no format={FORMAT!r} entry)")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {state.get('version')!r}; this sdegen reads "
            f"version {VERSION}"
        )
    return state


def check_state_dict_matches(name: str, saved: dict[str, Any], module: torch.nn.Module) -> None:
    """Raise :class:`CheckpointError` unless ``saved`` has exactly ``module``'s keys and shapes."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint entry {name!r} is not a state dict")
    own = module.state_dict()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    wrong = [
        f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in saved and torch.is_tensor(saved[k]) and saved[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected {_preview(unexpected)}")
        if wrong:
            parts.append(f"shape mismatch {_preview(wrong)}")
        raise CheckpointError(
            f"checkpoint {name} does not match this model ({'; '.join(parts)}); was it written for a "
            f"different network or size?"
        )


def _preview(items: list[str], n: int = 3) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_weights(model: torch.nn.Module, path: str | Path, *, ema: bool = True) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model``: its EMA (default) or its raw training weights.

    ``model`` must be built like the trained one (same network and size). The checkpoint is validated
    before ``model`` is touched. Returns the checkpoint's ``metadata`` entry (``{}`` if none), e.g.
    the settings needed to rebuild the model.
    """
    state = load_checkpoint(path, map_location=next(model.parameters()).device)
    key = "ema" if ema else "model"
    if key not in state:
        raise CheckpointError(f"checkpoint {str(path)!r} has no {key!r} entry")
    weights = state[key]
    if ema:
        # AveragedModel stores the averaged copy under "module." plus its update counter.
        weights = {k.removeprefix("module."): v for k, v in weights.items() if k != "n_averaged"}
    check_state_dict_matches(key, weights, model)
    model.load_state_dict(weights)
    return dict(state.get("metadata") or {})
