"""A run directory: the schema of its ``config.json`` and how a run is rebuilt from it.

``sdegen train`` and ``sdegen demo`` write a :class:`RunConfig`; ``sdegen sample``, ``sdegen nll``
and ``sdegen train --resume`` read it back with :func:`read_config` and rebuild data, SDE and model
with :func:`build_run` (or :func:`load_run`, which also loads the trained weights). A run
directory holds::

    config.json            every setting, resolved (this schema)
    checkpoints/last.pt    the trainer's state (sdegen.training.checkpoint)
    metrics.jsonl          one JSON record per log step
    figures/               samples, trajectories, densities
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import sdegen
from sdegen.cli._common import UsageError, as_usage_error
from sdegen.cli._data import DataBundle
from sdegen.cli.registry import (
    AUTO_MODEL,
    DATASETS,
    LOSSES,
    MODELS,
    PARAMETERIZATIONS,
    SDES,
    LossOptions,
    lookup,
)
from sdegen.losses import Loss, NCSNLevels, NoiseLevels
from sdegen.parameterization import ScoreModel
from sdegen.sde import LinearSDE
from sdegen.training import TrainConfig, load_weights

__all__ = [
    "RunConfig",
    "Run",
    "CONFIG",
    "CHECKPOINT",
    "sde_section",
    "read_config",
    "build_run",
    "load_run",
]

CONFIG = "config.json"
CHECKPOINT = Path("checkpoints") / "last.pt"


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run, as stored in ``config.json``.

    Each named section is ``{"name": <registry key>, **that entry's settings}``: ``data`` (a key of
    :data:`~sdegen.cli.registry.DATASETS` and the data options it reads), ``sde`` (a key of
    ``SDES`` and its options), ``model`` (a key of ``MODELS``, ``hidden``, ``depth``) and ``loss``
    (a key of ``LOSSES``, ``eps`` and the loss's options, e.g. ``levels`` for ``ncsn``). ``eval`` is
    ``{"every": steps, "n": held-out points}``. ``resumed`` records each ``--resume`` that changed
    settings: ``{"step": k, "changed": {option: [old, new]}}``.
    Construction checks every name and key, so a run that was written can be rebuilt.
    """

    data: dict[str, Any]
    sde: dict[str, Any]
    model: dict[str, Any]
    parameterization: str
    loss: dict[str, Any]
    batch_size: int
    train: TrainConfig
    eval: dict[str, int]
    seed: int
    resumed: tuple[dict[str, Any], ...] = ()
    sdegen_version: str = field(default=sdegen.__version__)

    def __post_init__(self) -> None:
        data = lookup(DATASETS, _require(self.data, "data", "name"), "data set")
        for key in ("root",) if "root" in data.options else ():
            _require(self.data, "data", key)
        sde = lookup(SDES, _require(self.sde, "sde", "name"), "SDE")
        for opt in sde.options:
            _require(self.sde, "sde", opt.name)
        name = _require(self.model, "model", "name")
        if name == "auto":
            object.__setattr__(self, "model", {**self.model, "name": AUTO_MODEL[data.images]})
        model = lookup(MODELS, self.model["name"], "model")
        if model.images and not data.images:
            raise UsageError(
                f"--model {self.model['name']} needs image data; {self.data['name']} is 2-D, use --model mlp"
            )
        for key in ("hidden", "depth"):
            _require(self.model, "model", key)
        lookup(PARAMETERIZATIONS, self.parameterization, "parameterization")
        loss = lookup(LOSSES, _require(self.loss, "loss", "name"), "loss")
        for key in ("eps", *loss.options):
            _require(self.loss, "loss", key)
        for key in ("every", "n"):
            _require(self.eval, "eval", key)
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig; got {type(self.train).__name__}")

    # -- config.json ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``config.json``."""
        return {
            "sdegen_version": self.sdegen_version,
            "data": dict(self.data),
            "sde": dict(self.sde),
            "model": dict(self.model),
            "parameterization": self.parameterization,
            "loss": dict(self.loss),
            "batch_size": self.batch_size,
            "train": self.train.to_dict(),
            "eval": dict(self.eval),
            "seed": self.seed,
            "resumed": [dict(r) for r in self.resumed],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = CONFIG) -> RunConfig:
        """Inverse of :meth:`to_dict`; a missing or malformed entry raises :class:`UsageError`
        naming ``source`` and the key."""
        if not isinstance(d, Mapping):
            raise UsageError(f"{source} must hold a JSON object; got {type(d).__name__}")
        keys = [f.name for f in dataclasses.fields(cls) if f.name not in ("sdegen_version", "resumed")]
        missing = [k for k in keys if k not in d]
        if missing:
            raise UsageError(f"{source} lacks the setting(s) {missing}; was it written by `sdegen train`?")
        try:
            with as_usage_error(f"settings in {source}"):
                train = TrainConfig.from_dict(d["train"])
            return cls(
                **{k: d[k] for k in keys if k != "train"},
                train=train,
                resumed=tuple(d.get("resumed") or ()),
                sdegen_version=d.get("sdegen_version", "unknown"),
            )
        except UsageError as e:
            raise UsageError(f"{source}: {e}") from None

    def with_train(self, **changes: Any) -> RunConfig:
        """A copy whose training settings have ``changes`` applied."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))

    def with_resumed(self, step: int, changed: Mapping[str, list[Any]]) -> RunConfig:
        """A copy that records a resume at ``step`` with ``changed`` settings."""
        return dataclasses.replace(self, resumed=(*self.resumed, {"step": step, "changed": dict(changed)}))

    @property
    def is_image(self) -> bool:
        return DATASETS[self.data["name"]].images


def _require(section: object, name: str, key: str) -> Any:
    if not isinstance(section, Mapping):
        raise UsageError(f"setting {name!r} must be a JSON object; got {section!r}")
    if key not in section:
        raise UsageError(f"setting {name!r} lacks {key!r}; got {dict(section)}")
    return section[key]


def sde_section(name: str, **values: float) -> dict[str, Any]:
    """The ``sde`` section for the SDE ``name``: its options at their defaults, updated by ``values``."""
    spec = lookup(SDES, name, "SDE")
    return {"name": name, **{opt.name: opt.default for opt in spec.options}, **values}


# -- rebuilding a run --------------------------------------------------------------------------------
@dataclass
class Run:
    """The objects of a run: its settings, data, SDE, score model (on ``device``) and loss."""

    config: RunConfig
    data: DataBundle
    sde: LinearSDE
    model: ScoreModel
    loss: Loss

    @property
    def levels(self) -> NoiseLevels | None:
        """The noise levels (in float64) of a run trained on NCSN's discrete levels, else None."""
        weighting = getattr(self.loss, "weighting", None)
        if not isinstance(weighting, NCSNLevels):
            return None
        return weighting.of(self.sde, dtype=torch.float64)

    def end_time(self, eps: float | None) -> float | None:
        """``eps`` if given, else where the model's training stops: NCSN's smallest level (below it
        the network was never trained), or None for a model trained down to the SDE's eps."""
        levels = self.levels
        return eps if eps is not None or levels is None else float(levels.t[-1])


def read_config(run_dir: str | Path) -> RunConfig:
    """The :class:`RunConfig` in ``run_dir/config.json``."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist; is {str(path.parent)!r} a run directory made by `sdegen train`?"
        )
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{str(path)!r} is not valid JSON ({e})") from None
    return RunConfig.from_dict(d, source=repr(str(path)))


def build_run(config: RunConfig, device: torch.device) -> Run:
    """Data, SDE, a freshly initialised model (seeded by the run's seed) and the loss of ``config``."""
    bundle = DATASETS[config.data["name"]].factory(config.data)
    with as_usage_error("SDE settings"):
        sde = SDES[config.sde["name"]].factory(**{k: v for k, v in config.sde.items() if k != "name"})
    with as_usage_error("loss settings"):
        loss = LOSSES[config.loss["name"]].factory(LossOptions(config.loss["eps"], sde, bundle, config.loss))
    # Parameter initialisation draws from torch's global generator; fork it so the caller's
    # random state is left as it was.
    with torch.random.fork_rng(devices=[]), as_usage_error("model settings"):
        torch.manual_seed(config.seed)
        net = MODELS[config.model["name"]].factory(config.model, bundle.event_shape)
        model = ScoreModel(net, sde, PARAMETERIZATIONS[config.parameterization].factory())
    return Run(config, bundle, sde, model.to(device), loss)


def load_run(run_dir: str | Path, device: torch.device, *, ema: bool = True) -> Run:
    """The run in ``run_dir`` with its trained weights (the EMA by default), in eval mode."""
    run_dir = Path(run_dir)
    run = build_run(read_config(run_dir), device)
    ckpt = run_dir / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{str(ckpt)!r} does not exist; has `sdegen train --out {run_dir}` finished a checkpoint?"
        )
    load_weights(run.model, ckpt, ema=ema)
    run.model.eval()
    return run
