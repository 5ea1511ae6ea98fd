"""``sdegen train``: fit a score model (unconditional, or class-conditional with ``--conditional``) or
a noise-conditional classifier (``--classifier``) and write a run directory.

The run directory holds ``config.json`` (every setting, resolved), ``checkpoints/last.pt``,
``metrics.jsonl`` (one JSON record per log step) and ``figures/``.

Under ``torchrun --nproc_per_node=N -m sdegen train ...`` it trains data-parallel on N processes
(``--batch-size`` is the global batch, split over them), and process 0 alone writes the run
directory; the result equals a one-process run's to float32 round-off, and either resumes the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from sdegen import distributed
from sdegen.cli import _report
from sdegen.cli._common import (
    UsageError,
    add_common_arguments,
    as_usage_error,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
    resolve_device,
    write_json,
)
from sdegen.cli._config_file import apply_config_file
from sdegen.run.config import (
    CONFIG,
    RunConfig,
    build_run,
    check_run_record,
    read_config,
    resumable,
    teacher_checkpoint,
)
from sdegen.run.registry import (
    AUTO_MODEL,
    DATA_OPTION_FLAGS,
    DATASETS,
    LOSS_OPTION_FLAGS,
    LOSSES,
    MODELS,
    PARAMETERIZATIONS,
    PRESETS,
    SDES,
    check_options_apply,
    sde_options,
)
from sdegen.training import (
    HeldOutLoss,
    RunDirectory,
    TensorBoardLogger,
    TrainConfig,
    Trainer,
    load_checkpoint,
)
from sdegen.training.config import PRECISIONS

__all__ = ["add_parser", "run", "config_from_args"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a score model",
        description="Train a time-conditioned score network by score matching and write a run directory "
        "(config.json, checkpoints/last.pt, metrics.jsonl, figures/).",
    )
    add_common_arguments(p, out="runs/train", out_help="run directory to create (or continue with --resume)")
    p.add_argument(
        "--preset",
        default=None,
        choices=PRESETS,
        help="a named set of defaults; options given on the command line win. "
        + "; ".join(f"{name}: {spec.title}" for name, spec in PRESETS.items()),
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", default="ring", choices=DATASETS, help="data set")
    g.add_argument("--data-root", default=None, metavar="DIR", help="where mnist/cifar10/folder data live")
    g.add_argument(
        "--download", action="store_true", help="download mnist/cifar10 into --data-root if missing"
    )
    g.add_argument("--image-size", type=positive_int, default=32, help="side of folder images after resizing")
    g.add_argument("--channels", type=int, choices=(1, 3), default=3, help="channels of folder images")
    g = p.add_argument_group("model")
    g.add_argument("--sde", default="vp", choices=SDES, help="forward SDE")
    for opt, sdes in sde_options().values():
        g.add_argument(
            "--" + opt.name.replace("_", "-"),
            type=float,
            default=opt.default,
            help=f"{opt.help} of {'/'.join(sdes)}",
        )
    g.add_argument(
        "--model",
        default="auto",
        choices=["auto", *MODELS],
        help="network (auto: mlp for 2-D, unet-small for images)",
    )
    g.add_argument("--hidden", type=positive_int, default=256, help="mlp width")
    g.add_argument("--depth", type=positive_int, default=3, help="mlp hidden layers")
    g.add_argument(
        "--parameterization",
        default="noise",
        choices=PARAMETERIZATIONS,
        help="what the network predicts",
    )
    g = p.add_argument_group("objective")
    g.add_argument("--loss", default="dsm", choices=LOSSES, help="training objective")
    g.add_argument("--ncsn-levels", type=positive_int, default=10, help="noise levels L of --loss ncsn")
    g.add_argument(
        "--teacher",
        default=None,
        metavar="RUN",
        help="a trained run (same data and SDE) whose EMA score --loss esm regresses onto: distillation; "
        "without it, esm uses the exact score of the Gaussian-mixture data sets",
    )
    g.add_argument("--eps", type=positive_float, default=1e-5, help="smallest training time")
    g = p.add_argument_group("classes")
    g.add_argument(
        "--conditional",
        action="store_true",
        help="train a class-conditional model on the data's labels (a class per Gaussian of ring and "
        "grid, per moon, per digit), sampled with `sdegen sample --label K --guidance W`",
    )
    g.add_argument(
        "--label-dropout",
        type=probability,
        default=0.1,
        help="with --conditional: probability of training on the null label instead of the class, which "
        "teaches the unconditional model that classifier-free guidance needs",
    )
    g.add_argument(
        "--classifier",
        action="store_true",
        help="train a noise-conditional classifier p_t(y | x) on the SDE's noised data (--loss cross-entropy) "
        "instead of a score model, for classifier guidance: `sdegen sample RUN --label K --classifier THIS`",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="total steps [default: 5000, or the run's on --resume]",
    )
    g.add_argument(
        "--batch-size", type=positive_int, default=256, help="examples per step (over all processes)"
    )
    g.add_argument(
        "--grad-accumulation",
        type=positive_int,
        default=1,
        help="micro-batches per process and step, to keep --batch-size on fewer devices",
    )
    g.add_argument(
        "--precision",
        default="float32",
        choices=PRECISIONS,
        help="autocast precision of the network (bfloat16, float16) or none (float32)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the network (slow first steps)")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="peak AdamW learning rate")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay")
    g.add_argument("--warmup", type=nonnegative_int, default=200, help="linear warm-up steps")
    g.add_argument("--grad-clip", type=positive_float, default=1.0, help="global gradient-norm clip")
    g.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the weights")
    g.add_argument(
        "--ema-rampup",
        type=float,
        default=0.05,
        help="EMA half-life at most this fraction of the steps so far (0: no ramp-up)",
    )
    g.add_argument("--log-every", type=positive_int, default=100, help="steps between log records")
    g.add_argument("--eval-every", type=positive_int, default=1000, help="steps between evaluations")
    g.add_argument("--checkpoint-every", type=nonnegative_int, default=1000, help="steps between checkpoints")
    g.add_argument("--n-eval", type=positive_int, default=500, help="held-out points for loss and NLL")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint; of its settings only the optimisation "
        "schedule (--steps, --lr, --batch-size, ...) may be changed, and a change is recorded in config.json",
    )
    g = p.add_argument_group("configuration and logging")
    g.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="start from the settings in FILE (the schema of the config.json a run writes, e.g. another "
        "run's); options given on the command line override them",
    )
    g.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration (what config.json would hold) and exit without training",
    )
    g.add_argument(
        "--log",
        default=None,
        choices=LOGGERS,
        help="also write the log records for TensorBoard to OUT/tensorboard (needs `pip install "
        "sdegen[tensorboard]`); metrics.jsonl is always written",
    )
    p.set_defaults(run=run, actions={a.dest: a for a in p._actions})


def _setting(args: argparse.Namespace, name: str):
    """An option as given on the command line (``args.explicit``), else as ``--preset`` sets it,
    else its default."""
    preset = PRESETS[args.preset].settings if getattr(args, "preset", None) else {}
    if name in preset and name not in getattr(args, "explicit", ()):
        return preset[name]
    return getattr(args, name)


def _kind(args: argparse.Namespace) -> str:
    """What the command line asks to train (see :data:`~sdegen.run.registry.KINDS`)."""
    if args.conditional and args.classifier:
        raise UsageError(
            "--conditional and --classifier train different models: a class-conditional score model, or "
            "a classifier to guide an unconditional one; choose one"
        )
    if "label_dropout" in getattr(args, "explicit", ()) and not args.conditional:
        raise UsageError(
            "--label-dropout is the label dropout of a class-conditional model: add --conditional"
        )
    return "conditional" if args.conditional else "classifier" if args.classifier else "score"


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The resolved settings of a new run, as stored in ``config.json``."""
    kind = _kind(args)
    sde_name = _setting(args, "sde")
    sde = {"name": sde_name, **{opt.name: _setting(args, opt.name) for opt in SDES[sde_name].options}}
    data = {
        "name": args.data,
        **{key: getattr(args, _DATA_OPTIONS[key]) for key in DATASETS[args.data].options},
    }
    loss = _setting(args, "loss")
    if kind == "classifier" and "loss" not in getattr(args, "explicit", ()):
        loss = "cross-entropy"  # the classifier's objective; a score loss given explicitly is refused
    model = AUTO_MODEL[DATASETS[args.data].images] if args.model == "auto" else args.model
    chosen = {"sde": sde_name, "data": args.data, "loss": loss, "model": model}
    check_options_apply("train", set(getattr(args, "explicit", ())), chosen)
    extra = {"label_dropout": args.label_dropout} if kind == "conditional" else {}
    with as_usage_error("training settings"):
        train = TrainConfig(
            steps=args.steps or 5000,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup,
            grad_clip=args.grad_clip,
            ema_decay=args.ema_decay,
            ema_rampup=args.ema_rampup,
            seed=args.seed,
            log_every=args.log_every,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
            grad_accumulation=args.grad_accumulation,
            precision=args.precision,
            compile=args.compile,
        )
    config = RunConfig(
        data=data,
        sde=sde,
        model={"name": args.model, "hidden": args.hidden, "depth": args.depth},
        parameterization=args.parameterization,
        loss={
            "name": loss,
            "eps": args.eps,
            **{key: _setting(args, _LOSS_OPTIONS[key]) for key in LOSSES[loss].options},
            **extra,
        },
        batch_size=args.batch_size,
        train=train,
        eval={"every": args.eval_every, "n": args.n_eval},
        seed=args.seed,
        kind=kind,
    )
    teacher = config.loss.get("teacher")
    if teacher is None:
        return config
    # The teacher by absolute path and by the checksum of its checkpoint now, so that resuming (from
    # anywhere) distils the same network, and refuses if the teacher has been trained on since.
    teacher = str(Path(teacher).resolve())
    found = teacher_checkpoint(teacher, config)
    loss = {**config.loss, "teacher": teacher, "teacher_checksum": found["checksum"]}
    return dataclasses.replace(config, loss=loss)


# The option behind each key a loss or a data set may read from its section (registry.py).
_LOSS_OPTIONS = LOSS_OPTION_FLAGS
_DATA_OPTIONS = DATA_OPTION_FLAGS


# Where each option of `sdegen train` is stored in config.json; whether `--resume` may change it is
# sdegen.run.config.resumable of that place.
SETTINGS: dict[str, tuple[str, ...]] = {
    "data": ("data", "name"),
    **{dest: ("data", key) for key, dest in _DATA_OPTIONS.items()},
    "sde": ("sde", "name"),
    **{name: ("sde", name) for name in sde_options()},
    "model": ("model", "name"),
    "hidden": ("model", "hidden"),
    "depth": ("model", "depth"),
    "parameterization": ("parameterization",),
    "loss": ("loss", "name"),
    "eps": ("loss", "eps"),
    "ncsn_levels": ("loss", "levels"),
    "teacher": ("loss", "teacher"),
    "label_dropout": ("loss", "label_dropout"),
    # What the run trains: --conditional and --classifier are compared with the run's kind.
    "conditional": ("kind",),
    "classifier": ("kind",),
    "seed": ("seed",),
    "steps": ("train", "steps"),
    "batch_size": ("batch_size",),
    "lr": ("train", "lr"),
    "weight_decay": ("train", "weight_decay"),
    "warmup": ("train", "warmup_steps"),
    "grad_clip": ("train", "grad_clip"),
    "ema_decay": ("train", "ema_decay"),
    "ema_rampup": ("train", "ema_rampup"),
    "log_every": ("train", "log_every"),
    "checkpoint_every": ("train", "checkpoint_every"),
    "grad_accumulation": ("train", "grad_accumulation"),
    "precision": ("train", "precision"),
    "compile": ("train", "compile"),
    "eval_every": ("eval", "every"),
    "n_eval": ("eval", "n"),
}
_MISSING = object()


def resumed_config(args: argparse.Namespace, out: Path) -> tuple[RunConfig, dict[str, list[Any]]]:
    """The run in ``out`` with the options given explicitly on the command line applied, and those
    changes ``{option: [old, new]}``; a change to a setting that defines the run is refused."""
    cfg = read_config(out)
    d = cfg.to_dict()
    refused, changed = [], {}
    for dest in sorted(set(getattr(args, "explicit", ())) & set(SETTINGS)):
        path = SETTINGS[dest]
        new, old = getattr(args, dest), _get(d, path)
        if dest == "model" and new == "auto":
            new = AUTO_MODEL[cfg.is_image]
        if dest == "teacher" and new is not None:
            new = str(Path(new).resolve())  # as recorded
        if dest in ("conditional", "classifier"):
            new, old = new, cfg.kind == dest  # the flag given, and whether the run is of that kind
        if new == old:
            continue
        option = "--" + dest.replace("_", "-")
        if not resumable(path):
            refused.append(f"{option} {new} (run: {'not set' if old is _MISSING else old})")
            continue
        changed[option] = [old, new]
        section = d
        for key in path[:-1]:
            section = section[key]
        section[path[-1]] = new
    if refused:
        raise UsageError(
            f"--resume cannot change the settings that define the run in {out}: {', '.join(refused)}; "
            f"drop them to continue it, or start a new run with another --out"
        )
    d["train"]["progress"] = not args.no_progress
    return RunConfig.from_dict(d, source=repr(str(out / CONFIG))), changed


def _get(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return _MISSING
        d = d[key]
    return d


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.resume and args.preset:
        raise UsageError(f"--resume continues the run in {out} with its own settings; drop --preset")
    if args.config is not None:
        if args.resume:
            raise UsageError(
                f"--resume continues the run in {out} with its own config.json; drop --config {args.config}"
            )
        if args.preset:
            raise UsageError("--config and --preset both give the run's settings; choose one")
        apply_config_file(args, Path(args.config), SETTINGS, args.actions)
    logger = _logger(args.log, out)  # a missing package fails here, before any work
    device = resolve_device(args.device)
    world = distributed.init(device)
    device = world.device(device)

    def settings() -> tuple[RunConfig, dict[str, list[Any]]]:
        if args.resume:
            return resumed_config(args, out)
        if args.print_config:
            return config_from_args(args), {}
        if RunDirectory(out).holds_run() or (out / CONFIG).exists():
            raise UsageError(
                f"{out} already holds a run; pass --resume to continue it, or choose another --out"
            )
        return config_from_args(args), {}

    # Every process checks before any writes (agreeing on a refusal), so none sees another's files.
    cfg, changed = world.run(settings)
    say = print if world.is_main else _quiet
    if args.print_config:
        say(json.dumps(cfg.to_dict(), indent=2))
        return 0
    parts = world.size * cfg.train.grad_accumulation
    if cfg.batch_size % parts:
        raise UsageError(
            f"--batch-size {cfg.batch_size} must split evenly over {world.size} process(es) x "
            f"--grad-accumulation {cfg.train.grad_accumulation}; use a multiple of {parts}"
        )
    r = build_run(cfg, device, training=True)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    if r.kind == "score":
        held_out, held_labels = r.data.held_out(cfg.eval["n"], g), None
    else:
        held_out, held_labels = r.data.held_out_labelled(cfg.eval["n"], g)
    callbacks = [HeldOutLoss(held_out, every=cfg.eval["every"], y=held_labels)]
    callbacks += _report.evaluation_callbacks(
        cfg, r.data, held_out, out, eps=r.end_time(None), labels=held_labels
    )
    callbacks += [_report.TrainingCurves(out), *([logger] if logger is not None else [])]
    trainer = Trainer(
        r.model,
        r.loss,
        r.batches(),
        cfg.train,
        run_dir=RunDirectory(out),
        if_exists="resume" if args.resume else "error",
        callbacks=callbacks,
        device=device,
    )
    # Whatever would fail in the first step fails now, before `out` is claimed or written.
    trainer.preflight()
    # One writer from here on; nothing in `out` is written before the checkpoint has loaded.
    with trainer.locked():
        if args.resume:
            if trainer.checkpoint_path.is_file():
                metadata = world.run(lambda: load_checkpoint(trainer.checkpoint_path).get("metadata") or {})
                check_run_record(cfg, metadata, trainer.checkpoint_path)
                step = trainer.load_checkpoint()
            else:  # a run stopped before its first checkpoint starts again from step 0
                step = 0
                say(f"{out} has no checkpoint yet: its run starts from step 0")
            if step >= cfg.train.steps:
                say(f"{out} is already at step {step} >= --steps {cfg.train.steps}; nothing to do")
                return 0
            if changed:
                cfg = cfg.with_resumed(step, changed)
                summary = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
                say(f"resuming {out} at step {step} with changed settings: {summary}")
        trainer.metadata = {"config": cfg.to_dict()}
        world.run(lambda: write_json(out / CONFIG, cfg.to_dict()), where="main")
        n_params = sum(p.numel() for p in r.model.parameters())
        what = {"score": "", "conditional": "class-conditional ", "classifier": "classifier "}[r.kind]
        classes = "" if r.kind == "score" else f" ({r.data.n_classes} classes)"
        on = f" on {world.size} processes" if world.distributed else ""
        say(
            f"training {what}{cfg.model['name']} ({n_params:,} parameters) on {r.data.name}{classes} with "
            f"{r.loss!r}, {r.sde!r}{on}"
        )
        result = trainer.fit()
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step")
    say(f"step {result.step} in {result.wall_time:.1f} s: {summary}")
    say(f"run directory: {out} (config.json, checkpoints/last.pt, metrics.jsonl, figures/)")
    return 0


# The --log choices: loggers written beside metrics.jsonl.
LOGGERS = ("tensorboard",)


def _logger(name: str | None, out: Path):
    if name is None:
        return None
    with as_usage_error("--log tensorboard"):
        try:
            return TensorBoardLogger(out / "tensorboard")
        except ImportError as e:
            raise UsageError(f"--log tensorboard: {e}") from None


def _quiet(*args: object, **kwargs: object) -> None:
    """What processes other than 0 print: nothing (process 0 speaks for the run)."""
