"""Figures and evaluation callbacks of a run: samples, densities, trajectories, image grids, NLL."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

import sdegen
from sdegen import figures
from sdegen.classifier import HeldOutAccuracy
from sdegen.likelihood import ExactTrace, Hutchinson
from sdegen.run.datasets import DataBundle
from sdegen.run.registry import SAMPLERS, SamplerOptions
from sdegen.sde import LinearSDE
from sdegen.training import Callback, HeldOutNLL, Trainer

if TYPE_CHECKING:
    from sdegen.run.config import RunConfig

__all__ = [
    "scatter_figure",
    "trajectory_figure",
    "density_figure",
    "image_figure",
    "model_density",
    "evaluation_callbacks",
    "RunFigures",
    "TrainingCurves",
]

Limits = tuple[float, float, float, float]
#: points per side of a run's density heat maps (one probability-flow solve for all of them)
DENSITY_RESOLUTION = 64


def scatter_figure(
    panels: Mapping[str, Tensor],
    path: Path,
    *,
    limits: Limits | None = None,
    labels: Mapping[str, Tensor] | None = None,
) -> Path:
    return figures.scatter_panels(panels, path, limits=limits, labels=labels)


def trajectory_figure(
    panels: Mapping[str, Tensor | None], path: Path, *, limits: Limits | None = None
) -> Path:
    return figures.trajectory_panels({k: v for k, v in panels.items() if v is not None}, path, limits=limits)


def density_figure(panels: Mapping[str, Tensor], limits: Limits, path: Path) -> Path:
    return figures.density_panels(panels, limits, path)


def image_figure(
    bundle: DataBundle, x: Tensor, path: Path, *, nrow: int | None = None, row_labels: list[str] | None = None
) -> Path:
    return figures.image_grid(bundle.train.to_unit_interval(x), path, nrow=nrow, row_labels=row_labels)


def class_labels(n_classes: int, n: int) -> Tensor:
    """``n`` labels cycling through the classes 0, 1, ..., C-1, 0, 1, ...: in a grid of C columns,
    each column is one class."""
    return torch.arange(n) % n_classes


def model_density(
    sde: LinearSDE, score_fn, limits: Limits, resolution: int, device: torch.device, eps: float = 1e-5
) -> Tensor:
    """log p_eps of the model on a grid, by the probability-flow ODE with the exact divergence.

    rtol = atol = 1e-4: a picture needs less accuracy than a reported NLL (1e-5 there).
    """
    return figures.density_on_grid(
        lambda p: (
            sdegen.log_likelihood(
                p, sde, score_fn, divergence=ExactTrace(), rtol=1e-4, atol=1e-4, eps=eps
            ).logp
        ),
        limits,
        resolution,
        device=device,
    )


class RunFigures(Callback):
    """Samples of the EMA model as PNG: a scatter plot and trajectories (2-D) or an image grid,
    written to ``out/figures/samples_<step>.png``; at the last step also ``samples.png`` and, for
    2-D data, the model's density heat map ``density.png`` beside the true one where it is known.

    A class-conditional model is sampled class by class (labels cycling through the classes: the
    points coloured by class, or one class per column of the image grid) and its density is that
    of its unconditional half (the null label)."""

    def __init__(
        self,
        every: int,
        bundle: DataBundle,
        out: Path,
        *,
        n: int,
        sampler_name: str,
        seed: int,
        eps: float | None = None,
    ) -> None:
        super().__init__(every)
        self.bundle, self.out, self.n, self.seed, self.eps = bundle, out, n, seed, eps
        self.sampler = SAMPLERS[sampler_name].factory(SamplerOptions(steps=500))

    def __call__(self, trainer: Trainer) -> dict[str, float]:
        model, bundle = trainer.ema_model, self.bundle
        g = torch.Generator(trainer.device).manual_seed(self.seed)
        labels, score_fn, unconditional, nrow = None, model, model, None
        if model.is_conditional:
            nrow = model.n_classes if bundle.is_image else None
            n = self.n if not bundle.is_image else model.n_classes * max(1, self.n // model.n_classes)
            labels = class_labels(model.n_classes, n)
            score_fn = model.given(labels.to(trainer.device))
            unconditional = model.given(model.null_label)
        result = sdegen.sample(
            model.sde,
            score_fn,
            (self.n if labels is None else labels.shape[0], *bundle.event_shape),
            self.sampler,
            eps=self.eps,
            generator=g,
            device=trainer.device,
            dtype=trainer.dtype,
            return_trajectory=not bundle.is_image,
        )
        x = result.x.detach().cpu()
        fig_dir = self.out / "figures"
        last = trainer.step >= trainer.config.steps
        names = [f"samples_{trainer.step:07d}.png"] + (["samples.png"] if last else [])
        if bundle.is_image:
            for name in names:
                image_figure(bundle, x, fig_dir / name, nrow=nrow)
            return {}
        title = f"samples, step {trainer.step}"
        if labels is None:
            data, colours = bundle.distribution.sample(self.n, torch.Generator().manual_seed(self.seed)), None
        else:
            data, data_labels = bundle.distribution.sample_labelled(
                self.n, torch.Generator().manual_seed(self.seed)
            )
            title = f"samples by class, step {trainer.step}"
            colours = {"data": data_labels, title: labels}
        limits = figures.limits_of([data])
        for name in names:
            scatter_figure({"data": data, title: x}, fig_dir / name, limits=limits, labels=colours)
        trajectory_figure(
            {"probability-flow ODE": result.trajectory}, fig_dir / "trajectories.png", limits=limits
        )
        if last:
            eps = 1e-5 if self.eps is None else self.eps
            density = "model density" if labels is None else "unconditional model density"
            panels = {
                density: model_density(
                    model.sde, unconditional, limits, DENSITY_RESOLUTION, trainer.device, eps
                )
            }
            if bundle.distribution.has_density:
                panels = {
                    "true density": figures.density_on_grid(
                        bundle.distribution.log_prob, limits, DENSITY_RESOLUTION
                    ),
                    **panels,
                }
            density_figure(panels, limits, fig_dir / "density.png")
        return {}


class TrainingCurves(Callback):
    """The run's learning curves (:func:`sdegen.figures.training_curves`) in ``out/figures/curves.png``,
    redrawn after every evaluation and at the last step, from the trainer's log records."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.path = out / "figures" / "curves.png"

    def on_log(self, trainer: Trainer, record: dict[str, float]) -> None:
        if record["step"] >= trainer.config.steps or any(name.startswith("held_out") for name in record):
            figures.training_curves(trainer.history, self.path)


def evaluation_callbacks(
    cfg: RunConfig,
    bundle: DataBundle,
    held_out: Tensor,
    out: Path,
    *,
    eps: float | None = None,
    labels: Tensor | None = None,
) -> list[Callback]:
    """Held-out NLL (exact divergence for d <= 16, Hutchinson otherwise; bits/dim for images) and
    figures, every ``cfg.eval["every"]`` steps, at ``eps`` (default: 1e-5 for the NLL, the SDE's
    sampling_eps for the figures).

    For a conditional run the NLL is -log p(x | y) of the held-out ``labels``; a classifier run is
    evaluated by its held-out accuracy on nearly clean data (t = 1e-3) instead."""
    every = cfg.eval["every"]
    if cfg.kind == "classifier":
        return [HeldOutAccuracy(held_out, labels, every, t=1e-3, seed=cfg.seed)]
    d = math.prod(bundle.event_shape)
    nll = HeldOutNLL(
        held_out,
        every,
        divergence=ExactTrace() if d <= 16 else Hutchinson(),
        bits_per_dim=bundle.test.bits_per_dim if bundle.is_image else None,
        seed=cfg.seed,
        eps=1e-5 if eps is None else eps,
        y=labels,
    )
    n = 64 if bundle.is_image else 1000
    return [nll, RunFigures(every, bundle, out, n=n, sampler_name="ode", seed=cfg.seed, eps=eps)]
