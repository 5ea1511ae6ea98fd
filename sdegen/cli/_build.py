"""The only place where strings become library objects: data sets, SDEs, networks, losses, samplers.

A run's ``config.json`` stores these names and numbers; :func:`build_model` and friends rebuild the
same objects from it, so ``sdegen sample`` and ``sdegen nll`` work on any run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdegen import data as D
from sdegen.losses import (
    DDPMLoss,
    DenoisingScoreMatching,
    LikelihoodWeighting,
    Loss,
    SlicedScoreMatching,
)
from sdegen.nn import UNET_SIZES, ScoreMLP, UNet
from sdegen.parameterization import DataPrediction, NoisePrediction, ScoreModel, ScorePrediction
from sdegen.sde import VESDE, VPSDE, LinearSDE, SubVPSDE

__all__ = [
    "UsageError",
    "DATA_2D",
    "DATA_IMAGES",
    "SDES",
    "PARAMETERIZATIONS",
    "LOSSES",
    "MODELS",
    "SAMPLERS",
    "DataBundle",
    "build_data",
    "build_sde",
    "build_model",
    "build_loss",
    "build_sampler",
]


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr with exit code 2."""


DATA_2D = {
    "ring": lambda: D.ring(8, radius=4.0, std=0.5),
    "grid": lambda: D.grid(5, spacing=2.0, std=0.3),
    "moons": lambda: D.Moons(),
    "swissroll": lambda: D.SwissRoll(),
    "checkerboard": lambda: D.Checkerboard(),
}
DATA_IMAGES = ("digits", "mnist", "cifar10", "folder")
SDES = ("vp", "subvp", "ve")
PARAMETERIZATIONS = {"score": ScorePrediction, "noise": NoisePrediction, "data": DataPrediction}
LOSSES = ("dsm", "dsm-likelihood", "dsm-likelihood-is", "ssm", "ssm-vr", "ddpm")
MODELS = ("auto", "mlp", *(f"unet-{size}" for size in UNET_SIZES))
SAMPLERS = ("reverse-sde", "ode", "pc", "ddpm")


@dataclass
class DataBundle:
    """A data set as the CLI uses it: 2-D distribution or image splits, and how to batch it."""

    name: str
    event_shape: tuple[int, ...]
    distribution: D.ToyDistribution | None = None
    train: D.ImageData | None = None
    test: D.ImageData | None = None

    @property
    def is_image(self) -> bool:
        return self.distribution is None

    def batches(self, batch_size: int, seed: int) -> D.BatchSource:
        if self.distribution is not None:
            return D.DistributionBatches(self.distribution, batch_size)
        if batch_size > len(self.train):
            raise UsageError(f"--batch-size {batch_size} exceeds the {len(self.train)} training images")
        return D.DatasetBatches(self.train, batch_size, seed=seed)

    def held_out(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """``n`` held-out points: fresh samples (2-D) or dequantized test images (first ``n``)."""
        if self.distribution is not None:
            return self.distribution.sample(n, generator, dtype=dtype)
        pixels = self.test.pixels[: min(n, len(self.test))]
        return self.test.to_model(pixels, generator, dtype=dtype)


def build_data(cfg: dict[str, Any]) -> DataBundle:
    name = cfg["name"]
    if name in DATA_2D:
        return DataBundle(name, (2,), distribution=DATA_2D[name]())
    if name == "digits":
        return DataBundle(name, (1, 8, 8), train=D.load_digits("train"), test=D.load_digits("test"))
    root = cfg.get("root")
    if root is None:
        raise UsageError(f"--data {name} needs --data-root DIR")
    if name == "folder":
        images = D.load_image_folder(root, image_size=cfg["image_size"], channels=cfg["channels"])
        if len(images) < 2:
            raise UsageError(f"--data-root {root} holds {len(images)} image(s); need at least 2")
        train, test = images.split(0.1, seed=0)
        return DataBundle(name, images.event_shape, train=train, test=test)
    loader = {"mnist": D.load_mnist, "cifar10": D.load_cifar10}.get(name)
    if loader is None:
        raise UsageError(f"unknown data set {name!r}; choose from {sorted(DATA_2D) + list(DATA_IMAGES)}")
    train = loader(root, "train", download=bool(cfg.get("download")))
    test = loader(root, "test", download=bool(cfg.get("download")))
    return DataBundle(name, train.event_shape, train=train, test=test)


def build_sde(cfg: dict[str, Any]) -> LinearSDE:
    name = cfg["name"]
    if name == "vp":
        return VPSDE(cfg["beta_min"], cfg["beta_max"])
    if name == "subvp":
        return SubVPSDE(cfg["beta_min"], cfg["beta_max"])
    if name == "ve":
        return VESDE(cfg["sigma_min"], cfg["sigma_max"])
    raise UsageError(f"unknown SDE {name!r}; choose from {list(SDES)}")


def resolve_model_name(name: str, bundle: DataBundle) -> str:
    if name == "auto":
        return "unet-small" if bundle.is_image else "mlp"
    if name.startswith("unet") and not bundle.is_image:
        raise UsageError(f"--model {name} needs image data; {bundle.name} is 2-D, use --model mlp")
    return name


def build_model(cfg: dict[str, Any], event_shape: tuple[int, ...], sde: LinearSDE) -> ScoreModel:
    name, param = cfg["model"]["name"], cfg["parameterization"]
    if param not in PARAMETERIZATIONS:
        raise UsageError(f"unknown parameterization {param!r}; choose from {sorted(PARAMETERIZATIONS)}")
    if name == "mlp":
        net = ScoreMLP(event_shape, hidden=cfg["model"]["hidden"], depth=cfg["model"]["depth"])
    elif name.startswith("unet-") and name.removeprefix("unet-") in UNET_SIZES:
        net = UNet.from_size(name.removeprefix("unet-"), in_channels=event_shape[0])
    else:
        raise UsageError(f"unknown model {name!r}; choose from {list(MODELS)}")
    return ScoreModel(net, sde, PARAMETERIZATIONS[param]())


def build_loss(cfg: dict[str, Any]) -> Loss:
    name, eps = cfg["name"], cfg["eps"]
    if name == "dsm":
        return DenoisingScoreMatching(eps=eps)
    if name == "dsm-likelihood":
        return DenoisingScoreMatching(LikelihoodWeighting(), eps=eps)
    if name == "dsm-likelihood-is":
        return DenoisingScoreMatching(LikelihoodWeighting(importance_sampling=True), eps=eps)
    if name in ("ssm", "ssm-vr"):
        return SlicedScoreMatching(variance_reduced=name == "ssm-vr", eps=eps)
    if name == "ddpm":
        return DDPMLoss(steps=cfg.get("ddpm_steps", 1000))
    raise UsageError(f"unknown loss {name!r}; choose from {list(LOSSES)}")


def build_sampler(name: str, steps: int, snr: float = 0.16):
    import sdegen.samplers as S

    if name == "reverse-sde":
        return S.ReverseSDESampler(method="euler", steps=steps)
    if name == "ode":
        return S.ProbabilityFlowSampler()
    if name == "pc":
        return S.PredictorCorrectorSampler(S.ReverseDiffusion(), S.LangevinCorrector(snr=snr), steps=steps)
    if name == "ddpm":
        return S.DDPMSampler(steps=steps)
    raise UsageError(f"unknown sampler {name!r}; choose from {list(SAMPLERS)}")


SAMPLER_SHORT_TITLES = {
    "reverse-sde": "reverse SDE",
    "ode": "probability-flow ODE",
    "pc": "predictor-corrector",
    "ddpm": "DDPM",
}
SAMPLER_TITLES = {
    "reverse-sde": "reverse SDE (Euler-Maruyama)",
    "ode": "probability-flow ODE (dopri5)",
    "pc": "predictor-corrector (RD + Langevin)",
    "ddpm": "DDPM ancestral",
}


def read_json(path: Path) -> dict[str, Any]:
    import json

    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist; is {str(path.parent)!r} a run directory made by `sdegen train`?"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{str(path)!r} is not valid JSON ({e})") from None
