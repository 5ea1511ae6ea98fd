"""A brought model (``--model SPEC`` of ``sdegen sample`` and ``sdegen nll``) as the run-like object
those commands use: its data, SDE and score model, like a run directory's :class:`~sdegen.run.Run`.

Two forms of SPEC:

* ``diffusers:DIR``: a diffusers pipeline saved by ``save_pretrained`` (``unet/`` and ``scheduler/``),
  or a model directory with ``--scheduler DIR``; loaded offline by :func:`sdegen.models.from_pretrained`.
* ``python:MODULE:FUNCTION``: ``FUNCTION()`` of an importable Python module returns the score model,
  e.g. ``sdegen.models.from_denoiser(...)`` around a k-diffusion or EDM denoiser. This is how a
  k-diffusion model is brought: k-diffusion saves state dicts that only its own model classes can
  rebuild, and a ``torch.save``'d module is a pickle, which ``torch.load(weights_only=True)`` refuses
  and which would run arbitrary code on loading, so the CLI takes no such file.

The images are the data set ``--data`` (``--data-root``), scaled to [-1, 1] like the training data
of diffusers and k-diffusion models; ``sdegen sample`` without ``--inpaint`` needs only their shape,
which a diffusers model's config gives.
"""

from __future__ import annotations

import argparse
import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from sdegen.cli._common import UsageError, as_usage_error
from sdegen.data import ImageData
from sdegen.parameterization import ScoreModel
from sdegen.run.config import Run, load_run
from sdegen.run.datasets import DataBundle
from sdegen.run.registry import DATASETS, lookup
from sdegen.sde import LinearSDE

__all__ = ["BroughtRun", "add_model_arguments", "load_model", "load_brought", "describe_space"]

FORMS = ("diffusers", "python")


@dataclass
class BroughtRun:
    """A model that sdegen did not train, with what ``sample`` and ``nll`` read from a run."""

    spec: str
    data: DataBundle
    sde: LinearSDE
    model: ScoreModel

    @property
    def kind(self) -> str:
        return "conditional" if self.model.is_conditional else "score"

    levels = None  # no NCSN levels

    def end_time(self, eps: float | None) -> float:
        """``eps`` if given, else where the network's training starts: the SDE's ``likelihood_eps``
        (step 0 of a discrete model) or its ``sampling_eps``, whichever is later."""
        if eps is not None:
            return eps
        return max(self.sde.sampling_eps, self.sde.likelihood_eps)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model SPEC`` and the options of a brought model."""
    g = p.add_argument_group("a brought model (instead of RUN)")
    g.add_argument(
        "--model",
        default=None,
        metavar="SPEC",
        help="a model sdegen did not train: diffusers:DIR (a pipeline saved by save_pretrained, loaded "
        "offline) or python:MODULE:FUNCTION (FUNCTION() returns an sdegen ScoreModel, e.g. "
        "sdegen.models.from_denoiser around a k-diffusion denoiser)",
    )
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="DIR",
        help="with diffusers:DIR of a model directory: its scheduler",
    )
    g.add_argument(
        "--data",
        default=None,
        choices=[name for name, spec in DATASETS.items() if spec.images],
        help="the brought model's images, in [-1, 1] (needed by nll and --inpaint)",
    )
    g.add_argument("--data-root", default=None, metavar="DIR", help="where --data lives")
    g.add_argument(
        "--n-classes",
        type=int,
        default=None,
        help="classes of a class-conditional diffusers model: its label count less one if its last label "
        "is the null label of classifier-free guidance [default: its num_class_embeds, no null label]",
    )


def load_model(
    args: argparse.Namespace, device: torch.device, *, needs_data: bool
) -> tuple[Run | BroughtRun, Path]:
    """The run directory RUN (its EMA weights unless ``--no-ema``), or the brought ``--model``, and
    where to write: ``--out``, by default RUN (a brought model has no directory of its own)."""
    brought_options = ("scheduler", "data", "data_root", "n_classes")
    if args.model is None:
        if args.run_dir is None:
            raise UsageError("give a run directory RUN, or a brought model with --model SPEC")
        given = [f"--{o.replace('_', '-')}" for o in brought_options if getattr(args, o) is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)} apply to a brought model (--model SPEC), not to a run directory"
            )
        trained = load_run(Path(args.run_dir), device, ema=not args.no_ema)
        return trained, Path(args.out) if args.out else Path(args.run_dir)
    if args.run_dir is not None:
        raise UsageError(
            f"give a run directory RUN or --model SPEC, not both; got {args.run_dir} and --model {args.model}"
        )
    if args.no_ema:
        raise UsageError("--no-ema chooses the weights of a run directory; a brought model has its own")
    if args.out is None:
        raise UsageError(f"--model {args.model} has no run directory to write into: give --out DIR")
    brought = load_brought(args, device, needs_data=needs_data)
    args.run_dir = args.model  # how the messages about the model name it
    return brought, Path(args.out)


def load_brought(args: argparse.Namespace, device: torch.device, *, needs_data: bool) -> BroughtRun:
    """The model of ``--model SPEC`` on ``device`` (in eval mode) and its data."""
    spec = args.model
    form, _, rest = spec.partition(":")
    if form not in FORMS or not rest:
        raise UsageError(f"--model {spec}: expected diffusers:DIR or python:MODULE:FUNCTION")
    if form != "diffusers" and (args.scheduler is not None or args.n_classes is not None):
        raise UsageError("--scheduler and --n-classes apply to --model diffusers:DIR")
    if form == "diffusers":
        from sdegen.models import from_pretrained

        with as_usage_error(f"--model {spec}"):
            model = from_pretrained(rest, scheduler=args.scheduler, device=device, n_classes=args.n_classes)
    else:
        model = _from_python(spec, rest)
        model = model.to(device).eval()
    data = _data(args, model, needs_data)
    return BroughtRun(spec, data, model.sde, model)


def _from_python(spec: str, path: str) -> ScoreModel:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--model {spec}: expected python:MODULE:FUNCTION")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UsageError(f"--model {spec}: cannot import {module_name!r} ({e})") from None
    build = getattr(module, attr, None)
    if not callable(build):
        raise UsageError(f"--model {spec}: {module_name} has no function {attr!r}")
    model = build()
    if not isinstance(model, ScoreModel) or not isinstance(model.sde, LinearSDE):
        raise UsageError(
            f"--model {spec}: {attr}() must return an sdegen ScoreModel on a LinearSDE (e.g. from "
            f"sdegen.models); got {type(model).__name__}"
        )
    return model


def _data(args: argparse.Namespace, model: ScoreModel, needs_data: bool) -> DataBundle:
    """The images of ``--data``, or for sampling without them, an empty set of the model's shape."""
    if args.data is None:
        if needs_data:
            raise UsageError(f"--model {args.model}: give its images with --data NAME (and --data-root DIR)")
        shape = _model_shape(model)
        if shape is None:
            raise UsageError(
                f"--model {args.model} does not say its image shape (a diffusers config's in_channels and "
                f"sample_size): give its data set with --data NAME"
            )
        empty = ImageData(torch.zeros((0, *shape), dtype=torch.uint8), name="model")
        return DataBundle(args.model, shape, train=empty, test=empty)
    spec = lookup(DATASETS, args.data, "data set")
    config = {"name": args.data, "root": args.data_root, "download": False}
    shape = _model_shape(model)
    if shape is not None:  # what a folder of images is resized to
        config.update(channels=shape[0], image_size=shape[1])
    if "image_size" in spec.options and shape is None:
        raise UsageError(
            f"--data {args.data} needs the model's image size, which --model {args.model} does not say"
        )
    with as_usage_error(f"--data {args.data}"):
        bundle = spec.factory(config)
    channels = getattr(model.net, "in_channels", None)
    if isinstance(channels, int) and bundle.event_shape[0] != channels:
        raise UsageError(
            f"--data {args.data} has images of shape {bundle.event_shape}, but the model takes {channels} channel(s)"
        )
    if len(bundle.test) == 0:
        raise UsageError(f"--data {args.data} holds no test images")
    return bundle


def _model_shape(model: ScoreModel) -> tuple[int, int, int] | None:
    """(C, H, W) from a diffusers model's config (in_channels, square or (H, W) sample_size), or None."""
    config = getattr(getattr(model.net, "module", None), "config", None) or {}
    size, channels = config.get("sample_size"), config.get("in_channels")
    if isinstance(size, int):
        size = (size, size)
    if not isinstance(channels, int) or not isinstance(size, (tuple, list)) or len(size) != 2:
        return None
    return (channels, int(size[0]), int(size[1]))


def describe_space(bundle: DataBundle) -> str:
    """What the nats of ``nll`` are of: model-space x in [-1, 1]^D for images, the data's own space
    for 2-D sets."""
    if bundle.is_image:
        return (
            f"x = 2 (k + u) / 256 - 1 in [-1, 1]^{math.prod(bundle.event_shape)} (pixels k, dequantized by u)"
        )
    return f"x in R^{math.prod(bundle.event_shape)}, the data's own space"
