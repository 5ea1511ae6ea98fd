"""``sdegen train``: fit a score model and write a run directory.

The run directory holds ``config.json`` (every setting, resolved), ``checkpoints/last.pt``,
``metrics.jsonl`` (one JSON record per log step) and ``figures/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import sdegen
from sdegen.cli import _report
from sdegen.cli._build import (
    DATA_2D,
    DATA_IMAGES,
    LOSSES,
    MODELS,
    PARAMETERIZATIONS,
    SDES,
    UsageError,
    build_data,
    build_loss,
    build_model,
    build_sde,
    read_json,
    resolve_model_name,
)
from sdegen.cli._common import (
    add_common_arguments,
    nonnegative_int,
    positive_float,
    positive_int,
    resolve_device,
    write_json,
)
from sdegen.training import HeldOutLoss, TrainConfig, Trainer

__all__ = ["add_parser", "run", "config_from_args", "load_run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a score model",
        description="Train a time-conditioned score network by score matching and write a run directory "
        "(config.json, checkpoints/last.pt, metrics.jsonl, figures/).",
    )
    add_common_arguments(p, out="runs/train", out_help="run directory to create (or continue with --resume)")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="ring", choices=[*DATA_2D, *DATA_IMAGES], help="data set")
    g.add_argument("--data-root", default=None, metavar="DIR", help="where mnist/cifar10/folder data live")
    g.add_argument(
        "--download", action="store_true", help="download mnist/cifar10 into --data-root if missing"
    )
    g.add_argument("--image-size", type=positive_int, default=32, help="side of folder images after resizing")
    g.add_argument("--channels", type=int, choices=(1, 3), default=3, help="channels of folder images")
    g = p.add_argument_group("model")
    g.add_argument("--sde", default="vp", choices=SDES, help="forward SDE")
    g.add_argument("--beta-min", type=float, default=0.1, help="beta(0) of vp/subvp")
    g.add_argument("--beta-max", type=float, default=20.0, help="beta(T) of vp/subvp")
    g.add_argument("--sigma-min", type=positive_float, default=0.01, help="sigma_min of ve")
    g.add_argument("--sigma-max", type=positive_float, default=50.0, help="sigma_max of ve")
    g.add_argument(
        "--model", default="auto", choices=MODELS, help="network (auto: mlp for 2-D, unet-small for images)"
    )
    g.add_argument("--hidden", type=positive_int, default=256, help="mlp width")
    g.add_argument("--depth", type=positive_int, default=3, help="mlp hidden layers")
    g.add_argument(
        "--parameterization",
        default="noise",
        choices=sorted(PARAMETERIZATIONS),
        help="what the network predicts",
    )
    g = p.add_argument_group("objective")
    g.add_argument("--loss", default="dsm", choices=LOSSES, help="training objective")
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


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The resolved settings of a new run, as stored in ``config.json``."""
    sde: dict[str, Any] = {"name": args.sde}
    if args.sde == "ve":
        sde.update(sigma_min=args.sigma_min, sigma_max=args.sigma_max)
    else:
        sde.update(beta_min=args.beta_min, beta_max=args.beta_max)
    data: dict[str, Any] = {"name": args.data}
    if args.data in ("mnist", "cifar10", "folder"):
        data.update(root=args.data_root, download=args.download)
    if args.data == "folder":
        data.update(image_size=args.image_size, channels=args.channels)
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
    return {
        "sdegen_version": sdegen.__version__,
        "data": data,
        "sde": sde,
        "model": {"name": args.model, "hidden": args.hidden, "depth": args.depth},
        "parameterization": args.parameterization,
        "loss": {"name": args.loss, "eps": args.eps},
        "batch_size": args.batch_size,
        "train": train.to_dict(),
        "eval": {"every": args.eval_every, "n": args.n_eval},
        "seed": args.seed,
    }


def build_run(cfg: dict[str, Any], device: torch.device):
    """Data, SDE and a freshly initialised model (seeded by the run's seed) for ``cfg``."""
    bundle = build_data(cfg["data"])
    cfg["model"]["name"] = resolve_model_name(cfg["model"]["name"], bundle)
    sde = build_sde(cfg["sde"])
    # Parameter initialisation draws from torch's global generator; fork it so the caller's
    # random state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        model = build_model(cfg, bundle.event_shape, sde)
    return bundle, sde, model.to(device)


def load_run(run_dir: Path, device: torch.device, *, ema: bool = True):
    """The config, data and trained model (EMA weights by default) of an existing run directory."""
    from sdegen.training import load_weights

    cfg = read_json(run_dir / "config.json")
    bundle, sde, model = build_run(cfg, device)
    ckpt = run_dir / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(
            f"{str(ckpt)!r} does not exist; has `sdegen train --out {run_dir}` finished a checkpoint?"
        )
    load_weights(model, ckpt, ema=ema)
    model.eval()
    return cfg, bundle, model


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    out = Path(args.out)
    if args.resume:
        cfg = read_json(out / "config.json")
        if args.steps is not None:
            cfg["train"]["steps"] = args.steps
        cfg["train"]["progress"] = not args.no_progress
    else:
        if (out / "checkpoints" / "last.pt").exists():
            raise UsageError(
                f"{out} already holds a run; pass --resume to continue it, or choose another --out"
            )
        cfg = config_from_args(args)
    bundle, sde, model = build_run(cfg, device)
    loss = build_loss(cfg["loss"])
    config = TrainConfig.from_dict(cfg["train"])
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    held_out = bundle.held_out(cfg["eval"]["n"], g)
    callbacks = [HeldOutLoss(held_out, every=cfg["eval"]["every"])]
    callbacks += _report.evaluation_callbacks(cfg, bundle, sde, held_out, out)
    trainer = Trainer(
        model,
        loss,
        bundle.batches(cfg["batch_size"], cfg["seed"]),
        config,
        run_dir=out,
        callbacks=callbacks,
        device=device,
        metadata={"config": cfg},
    )
    write_json(out / "config.json", cfg)
    if args.resume:
        step = trainer.load_checkpoint()
        if step >= config.steps:
            print(f"{out} is already at step {step} >= --steps {config.steps}; nothing to do")
            return 0
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"training {cfg['model']['name']} ({n_params:,} parameters) on {bundle.name} with {loss!r}, {sde!r}"
    )
    result = trainer.fit()
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step")
    print(f"step {result.step} in {result.wall_time:.1f} s: {summary}")
    print(f"run directory: {out} (config.json, checkpoints/last.pt, metrics.jsonl, figures/)")
    return 0
