"""``sdegen train``: fit a score model and write a run directory.

The run directory holds ``config.json`` (every setting, resolved), ``checkpoints/last.pt``,
``metrics.jsonl`` (one JSON record per log step) and ``figures/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sdegen.cli import _report
from sdegen.cli._common import (
    UsageError,
    add_common_arguments,
    as_usage_error,
    nonnegative_int,
    positive_float,
    positive_int,
    resolve_device,
    write_json,
)
from sdegen.cli.registry import DATASETS, LOSSES, MODELS, PARAMETERIZATIONS, PRESETS, SDES, sde_options
from sdegen.cli.run import CHECKPOINT, CONFIG, RunConfig, build_run, read_config
from sdegen.training import HeldOutLoss, TrainConfig, Trainer

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
    # Options a preset may set have no argparse default: absent means "the preset's, else the
    # default named in the help" (_setting).
    g.add_argument("--sde", default=argparse.SUPPRESS, choices=SDES, help="forward SDE (default: vp)")
    for opt, sdes in sde_options().values():
        g.add_argument(
            "--" + opt.name.replace("_", "-"),
            type=float,
            default=argparse.SUPPRESS,
            help=f"{opt.help} of {'/'.join(sdes)} (default: {opt.default:g})",
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
    g.add_argument(
        "--loss", default=argparse.SUPPRESS, choices=LOSSES, help="training objective (default: dsm)"
    )
    g.add_argument(
        "--ncsn-levels",
        type=positive_int,
        default=argparse.SUPPRESS,
        help=f"noise levels L of --loss ncsn (default: {_DEFAULTS['ncsn_levels']})",
    )
    g.add_argument("--eps", type=positive_float, default=1e-5, help="smallest training time")
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="total steps [default: 5000, or the run's on --resume]",
    )
    g.add_argument("--batch-size", type=positive_int, default=256, help="examples per step")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="peak AdamW learning rate")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay")
    g.add_argument("--warmup", type=nonnegative_int, default=200, help="linear warm-up steps")
    g.add_argument("--grad-clip", type=positive_float, default=1.0, help="global gradient-norm clip")
    g.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the weights")
    g.add_argument("--log-every", type=positive_int, default=100, help="steps between log records")
    g.add_argument("--eval-every", type=positive_int, default=1000, help="steps between evaluations")
    g.add_argument("--checkpoint-every", type=nonnegative_int, default=1000, help="steps between checkpoints")
    g.add_argument("--n-eval", type=positive_int, default=500, help="held-out points for loss and NLL")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run)


# The defaults of the options a preset may set.
_DEFAULTS = {
    "sde": "vp",
    "loss": "dsm",
    "ncsn_levels": 10,
    **{opt.name: opt.default for opt, _ in sde_options().values()},
}


def _setting(args: argparse.Namespace, name: str):
    """An option as given on the command line, else as the ``--preset`` sets it, else its default."""
    if name in vars(args):
        return getattr(args, name)
    preset = PRESETS[args.preset].settings if args.preset else {}
    return preset.get(name, _DEFAULTS[name])


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The resolved settings of a new run, as stored in ``config.json``."""
    sde_name = _setting(args, "sde")
    sde = {"name": sde_name, **{opt.name: _setting(args, opt.name) for opt in SDES[sde_name].options}}
    data = {
        "name": args.data,
        **{key: getattr(args, _DATA_OPTIONS[key]) for key in DATASETS[args.data].options},
    }
    loss = _setting(args, "loss")
    with as_usage_error("training settings"):
        train = TrainConfig(
            steps=args.steps or 5000,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup,
            grad_clip=args.grad_clip,
            ema_decay=args.ema_decay,
            seed=args.seed,
            log_every=args.log_every,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
        )
    return RunConfig(
        data=data,
        sde=sde,
        model={"name": args.model, "hidden": args.hidden, "depth": args.depth},
        parameterization=args.parameterization,
        loss={
            "name": loss,
            "eps": args.eps,
            **{key: _setting(args, _LOSS_OPTIONS[key]) for key in LOSSES[loss].options},
        },
        batch_size=args.batch_size,
        train=train,
        eval={"every": args.eval_every, "n": args.n_eval},
        seed=args.seed,
    )


# The option behind each key a loss may read from its section.
_LOSS_OPTIONS = {"levels": "ncsn_levels"}

# The attribute of the parsed arguments behind each data option a data set may read.
_DATA_OPTIONS = {
    "root": "data_root",
    "download": "download",
    "image_size": "image_size",
    "channels": "channels",
}


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    out = Path(args.out)
    if args.resume:
        cfg = read_config(out)
        changes = {"progress": not args.no_progress}
        if args.steps is not None:
            changes["steps"] = args.steps
        cfg = cfg.with_train(**changes)
    else:
        if (out / CHECKPOINT).exists():
            raise UsageError(
                f"{out} already holds a run; pass --resume to continue it, or choose another --out"
            )
        cfg = config_from_args(args)
    r = build_run(cfg, device)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    held_out = r.data.held_out(cfg.eval["n"], g)
    callbacks = [HeldOutLoss(held_out, every=cfg.eval["every"])]
    callbacks += _report.evaluation_callbacks(cfg, r.data, held_out, out, eps=r.end_time(None))
    trainer = Trainer(
        r.model,
        r.loss,
        r.data.batches(cfg.batch_size, cfg.seed),
        cfg.train,
        run_dir=out,
        callbacks=callbacks,
        device=device,
        metadata={"config": cfg.to_dict()},
    )
    write_json(out / CONFIG, cfg.to_dict())
    if args.resume:
        step = trainer.load_checkpoint()
        if step >= cfg.train.steps:
            print(f"{out} is already at step {step} >= --steps {cfg.train.steps}; nothing to do")
            return 0
    n_params = sum(p.numel() for p in r.model.parameters())
    print(
        f"training {cfg.model['name']} ({n_params:,} parameters) on {r.data.name} with {r.loss!r}, {r.sde!r}"
    )
    result = trainer.fit()
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step")
    print(f"step {result.step} in {result.wall_time:.1f} s: {summary}")
    print(f"run directory: {out} (config.json, checkpoints/last.pt, metrics.jsonl, figures/)")
    return 0
