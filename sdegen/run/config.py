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

from sdegen._version import __version__
from sdegen.classifier import NoisyClassifier
from sdegen.losses import LabelDropout, Loss, NCSNLevels, NoiseLevels
from sdegen.parameterization import ScoreModel
from sdegen.run.datasets import DataBundle
from sdegen.run.errors import SettingsError, as_settings_error
from sdegen.run.registry import (
    AUTO_MODEL,
    DATASETS,
    KINDS,
    LOSSES,
    MODELS,
    PARAMETERIZATIONS,
    SDES,
    LossOptions,
    lookup,
)
from sdegen.sde import LinearSDE
from sdegen.training import CheckpointError, TrainConfig, load_checkpoint, load_weights
from sdegen.training import config as training_config

__all__ = [
    "RunConfig",
    "Run",
    "CONFIG",
    "CHECKPOINT",
    "sde_section",
    "read_config",
    "build_run",
    "load_run",
    "load_teacher",
    "noised_data_difference",
    "teacher_checkpoint",
    "resumable",
    "run_definition",
    "check_run_record",
]

CONFIG = "config.json"
"""The file of a run directory that holds its :class:`RunConfig`."""
CHECKPOINT = Path("checkpoints") / "last.pt"
"""The trainer's last checkpoint, relative to the run directory."""

# The settings of config.json outside its "train" section that `sdegen train --resume` may change:
# the batch size, the evaluation schedule and where the data live (a moved copy; which data set it
# is may not change). The "train" section follows sdegen.training.config.resumable.
_RESUMABLE = {("batch_size",), ("eval", "every"), ("eval", "n"), ("data", "root"), ("data", "download")}


def resumable(path: tuple[str, ...]) -> bool:
    """Whether ``train --resume`` may change the setting at ``path`` in ``config.json`` (e.g.
    ``("train", "lr")``); every other setting defines the run and is refused."""
    if len(path) == 2 and path[0] == "train":
        return training_config.resumable(path[1])
    return tuple(path) in _RESUMABLE


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run, as stored in ``config.json``.

    Each named section is ``{"name": <registry key>, **that entry's settings}``: ``data`` (a key of
    :data:`~sdegen.run.registry.DATASETS` and the data options it reads), ``sde`` (a key of
    ``SDES`` and its options), ``model`` (a key of ``MODELS``, ``hidden``, ``depth``) and ``loss``
    (a key of ``LOSSES``, ``eps`` and the loss's options, e.g. ``levels`` for ``ncsn``). ``eval`` is
    ``{"every": steps, "n": held-out points}``. ``resumed`` records each ``--resume`` that changed
    settings: ``{"step": k, "changed": {option: [old, new]}}``.

    ``kind`` (one of :data:`~sdegen.run.registry.KINDS`) is what the run trains: ``"score"`` (an
    unconditional score model, the default of older runs), ``"conditional"`` (a class-conditional
    score model on the data's labels; its ``loss`` section holds ``label_dropout``, the probability
    of the null label) or ``"classifier"`` (a noise-conditional classifier p_t(y | x), with the loss
    ``cross-entropy``; ``parameterization`` is then unused). The number of classes is the data's.
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
    kind: str = "score"
    sdegen_version: str = field(default=__version__)

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
            raise SettingsError(
                f"--model {self.model['name']} needs image data; {self.data['name']} is 2-D, use --model mlp"
            )
        for key in ("hidden", "depth"):
            _require(self.model, "model", key)
        lookup(PARAMETERIZATIONS, self.parameterization, "parameterization")
        loss = lookup(LOSSES, _require(self.loss, "loss", "name"), "loss")
        absent = {k: v for k, v in loss.defaults.items() if k not in self.loss}
        object.__setattr__(self, "loss", {**self.loss, **absent})
        for key in ("eps", *loss.options):
            _require(self.loss, "loss", key)
        if self.kind not in KINDS:
            raise SettingsError(f"setting 'kind' must be one of {list(KINDS)}; got {self.kind!r}")
        flag = {"conditional": "--conditional", "classifier": "--classifier"}.get(self.kind)
        if flag and not data.labelled:
            labelled = [name for name, spec in DATASETS.items() if spec.labelled]
            raise SettingsError(
                f"{flag} needs a labelled data set ({', '.join(labelled)}); {self.data['name']} has no classes"
            )
        if loss.classifier != (self.kind == "classifier"):
            raise SettingsError(
                f"--loss {self.loss['name']} trains a classifier: add --classifier"
                if loss.classifier
                else f"--classifier trains with --loss cross-entropy; got --loss {self.loss['name']}"
            )
        if (self.kind == "conditional") != ("label_dropout" in self.loss):
            raise SettingsError(
                "setting 'loss' must hold 'label_dropout' exactly for a conditional run (kind 'conditional'); "
                f"got kind {self.kind!r} and loss {dict(self.loss)}"
            )
        if self.kind == "classifier" and model.classifier is None:
            raise SettingsError(
                f"--model {self.model['name']} has no classifier; use --model mlp or unet-SIZE"
            )
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
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = CONFIG) -> RunConfig:
        """Inverse of :meth:`to_dict`; a missing or malformed entry raises :class:`SettingsError`
        naming ``source`` and the key."""
        if not isinstance(d, Mapping):
            raise SettingsError(f"{source} must hold a JSON object; got {type(d).__name__}")
        optional = ("sdegen_version", "resumed", "kind")  # absent from the configs of older runs
        keys = [f.name for f in dataclasses.fields(cls) if f.name not in optional]
        missing = [k for k in keys if k not in d]
        if missing:
            raise SettingsError(f"{source} lacks the setting(s) {missing}; was it written by `sdegen train`?")
        try:
            with as_settings_error(f"settings in {source}"):
                train = TrainConfig.from_dict(d["train"])
            return cls(
                **{k: d[k] for k in keys if k != "train"},
                train=train,
                resumed=tuple(d.get("resumed") or ()),
                kind=d.get("kind", "score"),
                sdegen_version=d.get("sdegen_version", "unknown"),
            )
        except SettingsError as e:
            raise SettingsError(f"{source}: {e}") from None

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
        raise SettingsError(f"setting {name!r} must be a JSON object; got {section!r}")
    if key not in section:
        raise SettingsError(f"setting {name!r} lacks {key!r}; got {dict(section)}")
    return section[key]


def sde_section(name: str, **values: float) -> dict[str, Any]:
    """The ``sde`` section for the SDE ``name``: its options at their defaults, updated by ``values``."""
    spec = lookup(SDES, name, "SDE")
    return {"name": name, **{opt.name: opt.default for opt in spec.options}, **values}


# -- rebuilding a run --------------------------------------------------------------------------------
@dataclass
class Run:
    """The objects of a run: its settings, data, SDE, model (on ``device``) and loss.

    ``model`` is a :class:`~sdegen.parameterization.ScoreModel` (class-conditional for a
    ``conditional`` run) or, for a ``classifier`` run, a :class:`~sdegen.classifier.NoisyClassifier`.
    """

    config: RunConfig
    data: DataBundle
    sde: LinearSDE
    model: ScoreModel | NoisyClassifier
    loss: Loss

    @property
    def kind(self) -> str:
        """What the run trains: ``"score"``, ``"conditional"`` or ``"classifier"``."""
        return self.config.kind

    def batches(self):
        """The training batches, with labels for conditional and classifier runs."""
        cfg = self.config
        return self.data.batches(cfg.batch_size, cfg.seed, labels=self.kind != "score")

    @property
    def levels(self) -> NoiseLevels | None:
        """The noise levels (in float64) of a run trained on NCSN's discrete levels, else None."""
        loss = self.loss.loss if isinstance(self.loss, LabelDropout) else self.loss
        weighting = getattr(loss, "weighting", None)
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
        raise SettingsError(f"{str(path)!r} is not valid JSON ({e})") from None
    return RunConfig.from_dict(d, source=repr(str(path)))


def build_run(config: RunConfig, device: torch.device, *, training: bool = False) -> Run:
    """Data, SDE, a freshly initialised model (seeded by the run's seed) and the loss of ``config``.

    ``training=True`` also loads what only training needs: the distillation teacher of
    ``--loss esm --teacher RUN`` (verified against the checkpoint the run started from). Without
    it, such a loss refuses to be evaluated, and sampling from or evaluating the run works even
    where the teacher is gone.
    """
    bundle = DATASETS[config.data["name"]].factory(config.data)
    with as_settings_error("SDE settings"):
        sde = SDES[config.sde["name"]].factory(**{k: v for k, v in config.sde.items() if k != "name"})
    teacher = load_teacher(config, device) if training else None
    with as_settings_error("loss settings"):
        options = LossOptions(config.loss["eps"], sde, bundle, config.loss, teacher)
        loss = LOSSES[config.loss["name"]].factory(options)
        if config.kind == "conditional":
            loss = LabelDropout(loss, config.loss["label_dropout"])
    classes = None if config.kind == "score" else bundle.n_classes
    if config.kind != "score" and classes is None:
        raise SettingsError(f"the data of this run ({bundle.name}) carry no labels for a {config.kind} run")
    spec = MODELS[config.model["name"]]
    # Parameter initialisation draws from torch's global generator; fork it so the caller's
    # random state is left as it was.
    with torch.random.fork_rng(devices=[]), as_settings_error("model settings"):
        torch.manual_seed(config.seed)
        if config.kind == "classifier":
            model = NoisyClassifier(spec.classifier(config.model, bundle.event_shape, classes), sde)
        else:
            net = spec.factory(config.model, bundle.event_shape, classes)
            model = ScoreModel(net, sde, PARAMETERIZATIONS[config.parameterization].factory())
    return Run(config, bundle, sde, model.to(device), loss)


def teacher_checkpoint(teacher: str | Path, student: RunConfig) -> dict[str, Any]:
    """The checksum and step of the trained run ``teacher``, checked to be a teacher for
    ``student``: a finished score model of the same kind, trained on the same data with the same
    SDE (distillation regresses onto the teacher's score of the very p_t the student learns)."""
    teacher = Path(teacher)
    cfg = read_config(teacher)
    where = f"--teacher {teacher}"
    if cfg.kind != student.kind:
        kinds = {
            "score": "an unconditional score model",
            "conditional": "a class-conditional score model",
            "classifier": "a classifier",
        }
        raise SettingsError(
            f"{where} is {kinds[cfg.kind]}; distilling {kinds[student.kind]} needs a teacher of the same "
            f"kind{' (add --conditional)' if cfg.kind == 'conditional' else ''}"
        )
    diff = noised_data_difference(cfg, student)
    if diff is not None:
        part, theirs, ours = diff
        advice = {
            "SDE": "give the student the teacher's SDE settings (its score is that of the teacher's p_t)",
            "data": "distil on the teacher's data",
        }[part]
        raise SettingsError(f"{where} was trained with the {part} {theirs}, this run has {ours}; {advice}")
    state = load_checkpoint(teacher / CHECKPOINT)
    return {"checksum": state.get("checksum"), "step": state.get("step")}


def noised_data_difference(a: RunConfig, b: RunConfig) -> tuple[str, str, str] | None:
    """Where the noised data p_t of runs ``a`` and ``b`` differ: ``("SDE" or "data", a's settings,
    b's settings)``, or None if they are the same process on the same data set (wherever the data
    live). A teacher or a classifier is only meaningful for the run whose p_t it was trained on."""
    moved = ("root", "download")  # where the data live, not which data they are
    parts = {
        "SDE": (dict(a.sde), dict(b.sde)),
        "data": tuple({k: v for k, v in c.data.items() if k not in moved} for c in (a, b)),
    }
    for part, (ours, theirs) in parts.items():
        if ours != theirs:
            return part, _describe(ours), _describe(theirs)
    return None


def load_teacher(config: RunConfig, device: torch.device) -> ScoreModel | None:
    """The trained score model (EMA weights, eval mode, frozen) of the run's ``--teacher``, if it
    has one, after checking that the teacher is still the checkpoint the run started from."""
    path = config.loss.get("teacher")
    if path is None:
        return None
    found = teacher_checkpoint(path, config)
    recorded = config.loss.get("teacher_checksum")
    if recorded is not None and found["checksum"] != recorded:
        raise SettingsError(
            f"the teacher {path} has changed since this run started (its checkpoint is now at step "
            f"{found['step']}, with another checksum); training on would regress onto a different "
            f"target: restore the teacher's checkpoint, or distil it in a new run"
        )
    model = load_run(path, device).model
    model.requires_grad_(False)
    return model


def _describe(section: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in section.items())


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", *, ema: bool = True) -> Run:
    """The run in ``run_dir`` with its trained weights (the EMA by default), in eval mode, on ``device``.

    ``run.model`` is a score function for every sampler and for ``sdegen.log_likelihood``
    on ``run.sde``; ``run.config`` holds every setting and ``run.data`` the data set it was trained on.
    """
    run_dir = Path(run_dir)
    run = build_run(read_config(run_dir), torch.device(device))
    ckpt = run_dir / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{str(ckpt)!r} does not exist; has `sdegen train --out {run_dir}` finished a checkpoint?"
        )
    check_run_record(run.config, load_weights(run.model, ckpt, ema=ema), ckpt)
    run.model.eval()
    return run


def run_definition(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a ``config.json`` layout that define the run, ``{"data.name": "ring", ...}``:
    every one that ``train --resume`` may not change (see :func:`resumable`)."""

    def leaves(d: Mapping[str, Any], prefix: tuple[str, ...] = ()):
        for key, value in d.items():
            if isinstance(value, Mapping):
                yield from leaves(value, (*prefix, key))
            else:
                yield (*prefix, key), value

    record = {k: v for k, v in config.items() if k not in ("sdegen_version", "resumed")}
    return {".".join(path): value for path, value in leaves(record) if not resumable(path)}


def check_run_record(config: RunConfig, metadata: Mapping[str, Any], path: str | Path) -> None:
    """Raise :class:`~sdegen.training.CheckpointError` if the checkpoint at ``path`` (whose
    ``metadata`` the trainer wrote) was written for another run than ``config``: another data
    set, SDE, network, objective or seed, whether the checkpoint was copied from another run or
    ``config.json`` was edited. A checkpoint written before sdegen recorded its run (no
    ``metadata["config"]``) is taken to belong to the ``config.json`` beside it, as it always was."""
    saved = metadata.get("config") if isinstance(metadata, Mapping) else None
    if not isinstance(saved, Mapping):
        return
    try:  # fill in what older records leave implicit (defaults, "auto" network), as config.json does
        saved = RunConfig.from_dict(saved, source=f"the run recorded in {str(path)!r}").to_dict()
    except (TypeError, ValueError):  # SettingsError is a ValueError
        pass
    theirs, ours = run_definition(saved), run_definition(config.to_dict())
    diffs = [
        f"{key}: checkpoint {theirs.get(key, 'not set')!r} vs config.json {ours.get(key, 'not set')!r}"
        for key in sorted(set(theirs) | set(ours))
        if theirs.get(key, _ABSENT) != ours.get(key, _ABSENT)
    ]
    if diffs:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by another run than the config.json beside it "
            f"({'; '.join(diffs)}); use the run directory it belongs to, or restore its config.json"
        )


_ABSENT = object()
