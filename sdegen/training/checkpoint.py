"""Checkpoint files: atomic, checksummed, read with ``weights_only=True``, checked before use.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so
``torch.load(..., weights_only=True)`` reads it without executing code from the file. It is
written atomically (:func:`sdegen.training.files.atomic_write`: a crash or a full disk never
leaves a half-written checkpoint in place of a good one) and carries

* ``checksum``: SHA-256 of its contents (every tensor's dtype, shape and bytes, every plain
  value), recomputed on loading, so a flipped bit or a truncated tensor is refused instead of
  loading as a weight of 7e23;
* ``configuration``: what produced it (the SDE with its parameters, the network, the
  parameterisation and the loss, see ``describe``), compared with the model it is loaded
  into, so a VE checkpoint does not load silently into a VP model.

A mismatch raises :class:`CheckpointError` naming what differs, before anything is changed.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdegen.training.files import atomic_write

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "load_weights",
    "describe",
    "check_configuration",
    "FORMAT",
    "VERSION",
]

FORMAT = "sdegen-checkpoint"
VERSION = 2  # 2: checksum and configuration; 1 (no checksum) is still read, with a warning


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, corrupt, not an sdegen checkpoint, or does not match."""


# -- contents ----------------------------------------------------------------------------------------
def _update(h: Any, value: Any) -> None:
    """Feed a canonical encoding of ``value`` (nested dicts, lists, tensors, plain values) to ``h``."""
    if torch.is_tensor(value):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        h.update(f"D{len(value)}".encode())
        for k in sorted(value, key=repr):
            _update(h, k)
            _update(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _update(h, v)
    else:
        h.update(f"V{type(value).__name__}:{value!r};".encode())


def checksum(state: Mapping[str, Any]) -> str:
    """SHA-256 of every entry of ``state`` but ``checksum`` itself."""
    h = hashlib.sha256()
    _update(h, {k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


def describe(model: nn.Module, loss: object | None = None) -> dict[str, str]:
    """What a checkpoint of ``model`` (a :class:`~sdegen.parameterization.ScoreModel`) trained with
    ``loss`` was produced by: the SDE with its parameters, the network, the parameterisation and
    the loss, each as a string. Parts that cannot be known (no loss, a plain module) are left out."""
    parts: dict[str, str] = {}
    sde, net, param = (getattr(model, k, None) for k in ("sde", "net", "parameterization"))
    if sde is not None:
        parts["sde"] = repr(sde)
    network = net if isinstance(net, nn.Module) else model
    n = sum(p.numel() for p in network.parameters())
    parts["network"] = f"{type(network).__name__} with {n:,} parameters"
    if param is not None:
        parts["parameterization"] = type(param).__name__
    if loss is not None:
        parts["loss"] = repr(loss)
    return parts


def check_configuration(path: str | Path, saved: Mapping[str, str] | None, own: Mapping[str, str]) -> None:
    """Raise :class:`CheckpointError` listing every part of ``own`` that differs from ``saved``."""
    if not saved:
        return
    diffs = [
        f"{k}: checkpoint {saved[k]} vs this model {own[k]}" for k in own if k in saved and saved[k] != own[k]
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by a different configuration ({'; '.join(diffs)}); "
            f"load it into a model built the same way, or start a new run"
        )


# -- files -------------------------------------------------------------------------------------------
def save_checkpoint(
    path: str | Path, state: dict[str, Any], *, configuration: Mapping[str, str] | None = None
) -> Path:
    """Write ``state`` (tensors and plain values), its checksum and ``configuration`` (see
    ``describe``) to ``path`` atomically; return the path."""
    payload = {"format": FORMAT, "version": VERSION, "configuration": dict(configuration or {}), **state}
    payload["checksum"] = checksum(payload)
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, *, map_location: torch.device | str | None = "cpu") -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` for a file that
    cannot be read (truncated, corrupt, holding pickled objects), is not an sdegen checkpoint, or
    whose contents do not match their checksum. Reading never changes the file.
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
    version = state.get("version")
    if version == 1:
        warnings.warn(
            f"checkpoint {str(path)!r} was written by an older sdegen (format version 1) and has no "
            f"checksum or configuration to verify; saving it again upgrades it",
            stacklevel=2,
        )
        return state
    if version != VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {version!r}; this sdegen reads versions 1 and {VERSION}"
        )
    if state.get("checksum") != checksum(state):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: its contents do not match their SHA-256 checksum "
            f"(a damaged or altered file); restore it from a copy"
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


def load_weights(model: torch.nn.Module, path: str | Path, *, ema: bool = True) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model``: its EMA (default) or its raw training weights.

    ``model`` must be built like the trained one: same network and size, and for a
    :class:`~sdegen.parameterization.ScoreModel` the same SDE (with its parameters) and
    parameterisation. The checkpoint is verified before ``model`` is touched. Returns the
    checkpoint's ``metadata`` entry (``{}`` if none), e.g. the settings needed to rebuild the model.
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
    check_configuration(path, state.get("configuration"), describe(model))
    model.load_state_dict(weights)
    return dict(state.get("metadata") or {})
