"""Evaluation callbacks and figures of a run (held-out NLL, samples, densities, image grids)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from sdegen.cli._build import DataBundle
from sdegen.sde import LinearSDE
from sdegen.training import Callback


def evaluation_callbacks(
    cfg: dict[str, Any], bundle: DataBundle, sde: LinearSDE, held_out: Tensor, out: Path
) -> list[Callback]:
    """Callbacks beyond the held-out loss: wired once samplers and likelihood are merged."""
    return []
