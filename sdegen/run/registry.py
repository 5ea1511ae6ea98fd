"""Every name the ``sdegen`` command accepts, mapped to what it builds: the only place where strings
become library objects.

Each registry is a dict from the name used on the command line and in ``config.json`` to a small
frozen spec: the factory that builds the object, the titles printed in reports and figures, and
what else the command needs to know about it. Adding a data set, an SDE, a network, a
parameterisation or a loss is one entry here; the parsers' choices, ``--help``, ``config.json``
and the reports all follow from it. Samplers are registered in the library, in
:mod:`sdegen.samplers.registry` (one line each), and :data:`SAMPLERS` is generated from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from sdegen import data as D
from sdegen import samplers as S
from sdegen.classifier import MLPClassifier, NoisyClassifierLoss, UNetClassifier
from sdegen.likelihood import Hutchinson
from sdegen.losses import (
    DDPMLoss,
    DenoisingScoreMatching,
    ExplicitScoreMatching,
    ImplicitScoreMatching,
    LikelihoodWeighting,
    Loss,
    NCSNLoss,
    SlicedScoreMatching,
)
from sdegen.nn import UNET_SIZES, ScoreMLP, UNet
from sdegen.parameterization import (
    DataPrediction,
    EDMPreconditioning,
    NoisePrediction,
    Parameterization,
    ScorePrediction,
    VPrediction,
)
from sdegen.run import datasets as _data
from sdegen.run.datasets import DataBundle
from sdegen.run.errors import SettingsError
from sdegen.samplers.registry import SAMPLERS as SAMPLER_REGISTRY
from sdegen.samplers.registry import SamplerEntry
from sdegen.sde import EDMVESDE, VESDE, VPSDE, CosineVPSDE, LinearSDE, SubVPSDE

__all__ = [
    "Option",
    "DataSpec",
    "SDESpec",
    "ModelSpec",
    "ParameterizationSpec",
    "LossOptions",
    "LossSpec",
    "SamplerOptions",
    "SamplerSpec",
    "GridSpec",
    "DATASETS",
    "SDES",
    "MODELS",
    "PARAMETERIZATIONS",
    "LOSSES",
    "SAMPLERS",
    "PresetSpec",
    "PRESETS",
    "KINDS",
    "MaskSpec",
    "MASKS",
    "GRIDS",
    "lookup",
    "sde_options",
    "DATA_OPTION_FLAGS",
    "LOSS_OPTION_FLAGS",
    "Belongs",
    "option_owners",
    "check_options_apply",
]


@dataclass(frozen=True)
class Option:
    """A numeric parameter of an entry: ``--<name>`` on ``sdegen train``, a key in ``config.json``
    and a keyword of the entry's factory. Entries sharing a name share the option and its default."""

    name: str
    default: float
    help: str


# -- data sets ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """A data set: ``factory(data section of config.json)`` loads it.

    ``options`` names the data options of ``sdegen train`` it reads (``root``, ``download``,
    ``image_size``, ``channels``); they are stored in its section of ``config.json``. ``labelled``:
    its examples carry class labels (a class per mixture component, per moon, per digit, per
    sub-folder), so ``sdegen train --conditional`` and ``--classifier`` take it.
    """

    factory: Callable[[Mapping[str, Any]], DataBundle]
    title: str
    images: bool = False
    options: tuple[str, ...] = ()
    labelled: bool = False


DATASETS: dict[str, DataSpec] = {
    "ring": DataSpec(
        _data.toy(lambda: D.ring(8, radius=4.0, std=0.5)),
        "ring of 8 Gaussians (radius 4, std 0.5)",
        labelled=True,
    ),
    "grid": DataSpec(
        _data.toy(lambda: D.grid(5, spacing=2.0, std=0.3)), "5 x 5 grid of Gaussians", labelled=True
    ),
    "moons": DataSpec(_data.toy(D.Moons), "two moons", labelled=True),
    "swissroll": DataSpec(_data.toy(D.SwissRoll), "Swiss roll"),
    "checkerboard": DataSpec(_data.toy(D.Checkerboard), "checkerboard"),
    "digits": DataSpec(_data.digits, "scikit-learn's 8x8 digits", images=True, labelled=True),
    "mnist": DataSpec(
        _data.vision(D.load_mnist), "MNIST", images=True, options=("root", "download"), labelled=True
    ),
    "cifar10": DataSpec(
        _data.vision(D.load_cifar10), "CIFAR-10", images=True, options=("root", "download"), labelled=True
    ),
    "folder": DataSpec(
        _data.image_folder,
        "a folder of images",
        images=True,
        options=("root", "download", "image_size", "channels"),
        labelled=True,
    ),
}


# -- forward SDEs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SDESpec:
    """A forward SDE: ``factory(**{option.name: value})``."""

    factory: Callable[..., LinearSDE]
    title: str
    options: tuple[Option, ...] = ()


_BETA = (Option("beta_min", 0.1, "beta(0)"), Option("beta_max", 20.0, "beta(T)"))
_SIGMA_MAX = Option("sigma_max", 50.0, "sigma_max (for edm also the end time T)")
SDES: dict[str, SDESpec] = {
    "vp": SDESpec(VPSDE, "variance-preserving SDE", _BETA),
    "subvp": SDESpec(SubVPSDE, "sub-variance-preserving SDE", _BETA),
    "ve": SDESpec(VESDE, "variance-exploding SDE", (Option("sigma_min", 0.01, "sigma_min"), _SIGMA_MAX)),
    # The cosine schedule keeps its clip at beta = 999 / T (improved DDPM's); its own beta_max would
    # collide with the linear schedules' option of that name.
    "cosine": SDESpec(
        lambda cosine_s: CosineVPSDE(s=cosine_s),
        "cosine VP SDE (improved DDPM)",
        (Option("cosine_s", 0.008, "offset s of the cosine schedule"),),
    ),
    "edm": SDESpec(EDMVESDE, "EDM's VE SDE, sigma(t) = t", (_SIGMA_MAX,)),
}


# -- networks ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A network: ``factory(model section of config.json, event_shape, n_classes)`` builds the score
    network (class-conditional for ``n_classes`` not None); ``classifier(section, event_shape,
    n_classes)`` the noise-conditional classifier of the same family; ``images``: needs images."""

    factory: Callable[[Mapping[str, Any], tuple[int, ...], int | None], nn.Module]
    title: str
    images: bool = False
    classifier: Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module] | None = None
    #: the options of ``sdegen train`` that its factory reads (its keys in config.json's model section)
    options: tuple[str, ...] = ()


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(
        lambda c, shape, k: ScoreMLP(shape, hidden=c["hidden"], depth=c["depth"], n_classes=k),
        "ScoreMLP",
        classifier=lambda c, shape, k: MLPClassifier(shape, k, hidden=c["hidden"], depth=c["depth"]),
        options=("hidden", "depth"),
    ),
    **{
        f"unet-{size}": ModelSpec(
            lambda c, shape, k, size=size: UNet.from_size(size, in_channels=shape[0], n_classes=k),
            f"U-Net ({size})",
            True,
            classifier=lambda c, shape, k, size=size: UNetClassifier.from_size(size, shape[0], k),
        )
        for size in UNET_SIZES
    },
}

#: What a run trains: an unconditional score model, a class-conditional one (``--conditional``), or
#: a noise-conditional classifier (``--classifier``).
KINDS = ("score", "conditional", "classifier")
AUTO_MODEL = {False: "mlp", True: "unet-small"}  # what `--model auto` means for 2-D data / images


# -- what the network predicts -----------------------------------------------------------------------
@dataclass(frozen=True)
class ParameterizationSpec:
    factory: Callable[[], Parameterization]
    title: str


PARAMETERIZATIONS: dict[str, ParameterizationSpec] = {
    "data": ParameterizationSpec(DataPrediction, "data prediction"),
    "noise": ParameterizationSpec(NoisePrediction, "noise prediction"),
    "score": ParameterizationSpec(ScorePrediction, "score prediction"),
    "v": ParameterizationSpec(VPrediction, "v-prediction (Salimans and Ho 2022)"),
    # sigma_data = 0.5: EDM's value for images in [-1, 1], which is what sdegen's images are.
    "edm": ParameterizationSpec(
        lambda: EDMPreconditioning(sigma_data=0.5),
        "EDM preconditioning (Karras et al. 2022), sigma_data = 0.5",
    ),
}


# -- training objectives -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LossOptions:
    """What a loss factory may read: the smallest training time, the run's SDE and data, the
    loss section of ``config.json`` (whose extra keys are ``LossSpec.options``), and the score of
    the run's distillation teacher (``--teacher``), loaded only for training."""

    eps: float
    sde: LinearSDE
    data: DataBundle
    settings: Mapping[str, Any]
    teacher: Callable[..., Tensor] | None = None


@dataclass(frozen=True)
class LossSpec:
    """A training objective: ``factory(LossOptions)``; ``options`` names the keys of its
    ``config.json`` section beyond ``eps``, each an option of ``sdegen train``; ``classifier``: it
    trains a noise-conditional classifier (``sdegen train --classifier``), not a score model;
    ``defaults``: the values of options that the configs of runs written before them lack."""

    factory: Callable[[LossOptions], Loss]
    title: str
    options: tuple[str, ...] = ()
    classifier: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _esm_target(o: LossOptions):
    """The score ESM regresses onto: the teacher's (``--teacher RUN``), else the data's exact score."""
    teacher = o.settings.get("teacher")
    if teacher is not None:
        return o.teacher if o.teacher is not None else _unloaded_teacher(teacher)
    mixture = getattr(o.data.distribution, "mixture", None)
    if mixture is None:
        raise SettingsError(
            f"--loss esm regresses onto the exact score, known only for the Gaussian-mixture data sets "
            f"(ring, grid); {o.data.name} has none. Distil a trained run with --teacher RUN, or use "
            f"--loss dsm or ism."
        )
    return mixture.score(o.sde)


def _unloaded_teacher(path: str) -> Callable[..., Tensor]:
    # Sampling from or evaluating a distilled run needs its network only, not its teacher (which may
    # since have moved); the teacher is loaded when the run is built for training.
    def teacher(t: Tensor, x: Tensor, *y: Tensor) -> Tensor:
        raise RuntimeError(
            f"the distillation teacher {path!r} is not loaded; build the run with build_run(..., training=True)"
        )

    return teacher


def _ncsn(o: LossOptions) -> NCSNLoss:
    loss = NCSNLoss(o.settings["levels"])
    loss.levels.of(o.sde)  # refuses an SDE other than VE now, not at the first training step
    return loss


LOSSES: dict[str, LossSpec] = {
    "dsm": LossSpec(lambda o: DenoisingScoreMatching(eps=o.eps), "DSM with lambda = sigma^2"),
    "dsm-likelihood": LossSpec(
        lambda o: DenoisingScoreMatching(LikelihoodWeighting(), eps=o.eps), "DSM with lambda = g^2"
    ),
    "dsm-likelihood-is": LossSpec(
        lambda o: DenoisingScoreMatching(LikelihoodWeighting(importance_sampling=True), eps=o.eps),
        "DSM with lambda = g^2, importance-sampled times",
    ),
    "ssm": LossSpec(lambda o: SlicedScoreMatching(eps=o.eps), "sliced score matching"),
    "ssm-vr": LossSpec(
        lambda o: SlicedScoreMatching(variance_reduced=True, eps=o.eps), "sliced score matching (VR)"
    ),
    "esm": LossSpec(
        lambda o: ExplicitScoreMatching(_esm_target(o), eps=o.eps),
        "explicit score matching against the data's exact score, or a teacher's (distillation)",
        options=("teacher",),
        defaults={"teacher": None},
    ),
    "ism": LossSpec(lambda o: ImplicitScoreMatching(eps=o.eps), "implicit score matching, exact divergence"),
    "ism-hutchinson": LossSpec(
        lambda o: ImplicitScoreMatching(divergence=Hutchinson(), eps=o.eps),
        "implicit score matching, Hutchinson divergence",
    ),
    "ncsn": LossSpec(
        _ncsn,
        "NCSN: sigma_i^2-weighted DSM on geometric VE levels",
        options=("levels",),
    ),
    "cross-entropy": LossSpec(
        lambda o: NoisyClassifierLoss(eps=o.eps),
        "cross-entropy of the noise-conditional classifier at t ~ U[eps, T]",
        classifier=True,
    ),
    "ddpm": LossSpec(lambda o: DDPMLoss(steps=1000), "DDPM L_simple, 1000 steps"),
}


# -- time grids --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridSpec:
    """A kind of time grid: ``factory(steps)``; ``None`` means each sampler's own default kind."""

    factory: Callable[[int], S.TimeGrid] | None
    title: str


GRIDS: dict[str, GridSpec] = {
    "default": GridSpec(None, "the sampler's default grid"),
    "uniform": GridSpec(S.UniformGrid, "uniform in t"),
    "logsnr": GridSpec(S.LogSNRGrid, "uniform in log-SNR lambda"),
    "karras": GridSpec(S.KarrasGrid, "Karras et al. (rho = 7)"),
}


# -- samplers ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplerOptions:
    """The sampler settings of ``sdegen sample``, passed to every sampler factory: ``steps`` steps of
    the grid named ``grid`` (a key of :data:`GRIDS`); ``steps=None`` with the default grid: the
    sampler's own number (its class's ``default_steps``)."""

    steps: int | None = None
    snr: float = 0.16
    #: Langevin steps per noise level of annealed Langevin dynamics
    n_steps_each: int = 100
    #: a decreasing time grid of the run (NCSN's noise levels) for samplers that step through levels
    ts: Tensor | None = None
    grid: str = "default"
    #: a grid of its own (a fitted grid, ``--grid fitted`` or ``--grid FILE``) instead of ``grid``
    custom_grid: S.TimeGrid | None = None

    def grid_arguments(self) -> dict[str, Any]:
        """The run's own times ``ts=`` when given; else ``steps=`` for the sampler's default kind of
        grid, or ``grid=`` with that many steps."""
        if self.ts is not None:
            return {"ts": self.ts}
        if self.custom_grid is not None:
            return {"grid": self.custom_grid}
        factory = lookup(GRIDS, self.grid, "grid").factory
        if factory is None:
            return {} if self.steps is None else {"steps": self.steps}
        if self.steps is None:
            raise ValueError(f"the grid {self.grid!r} needs a number of steps")
        return {"grid": factory(self.steps)}


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler: ``factory(SamplerOptions)``; ``title`` for reports, ``short_title`` for figure
    panels; ``fixed_steps``: it takes ``--steps`` and ``--grid`` (an adaptive solver does not);
    ``snr``: its default ``--snr``."""

    factory: Callable[[SamplerOptions], S.Sampler]
    title: str
    short_title: str
    fixed_steps: bool = True
    snr: float = 0.16
    #: the options of ``sdegen sample`` its factory reads besides ``--steps`` and ``--grid`` (which
    #: every fixed-step sampler reads): ``snr`` for samplers with Langevin steps, ``n_steps_each``
    options: tuple[str, ...] = ()

    @property
    def reads(self) -> tuple[str, ...]:
        """Every option of ``sdegen sample`` that this sampler reads."""
        return (("steps", "grid", "preview_every") if self.fixed_steps else ()) + self.options

    @property
    def default_steps(self) -> int | None:
        """The sampler's own number of steps, its class's ``default_steps`` (None: adaptive)."""
        return self.factory(SamplerOptions()).steps


def _sampler_spec(entry: SamplerEntry) -> SamplerSpec:
    """The command line's view of a registered sampler: built from the run's sampler settings,
    the grid arguments only for a sampler that takes steps, and the options it declares."""

    def factory(o: SamplerOptions) -> S.Sampler:
        grid = o.grid_arguments() if entry.takes_steps else {}
        return entry.build(**grid, **{name: getattr(o, name) for name in entry.options})

    return SamplerSpec(
        factory,
        entry.title,
        entry.short_title,
        entry.takes_steps,
        entry.options.get("snr", SamplerOptions.snr),
        tuple(entry.options),
    )


#: Generated from :data:`sdegen.samplers.registry.SAMPLERS`: a sampler is registered there, once.
SAMPLERS: dict[str, SamplerSpec] = {name: _sampler_spec(entry) for name, entry in SAMPLER_REGISTRY.items()}


# -- presets of `sdegen train` -----------------------------------------------------------------------
@dataclass(frozen=True)
class PresetSpec:
    """Values of ``sdegen train`` options (by their argparse names) that ``--preset`` applies to
    every such option not given on the command line."""

    settings: Mapping[str, Any]
    title: str


PRESETS: dict[str, PresetSpec] = {
    # Song and Ermon 2019: L = 10 geometric levels, the largest about the largest distance between
    # data points (Song and Ermon 2020, technique 1: about 10 for the 2-D sets, 17 for the digits).
    # `sdegen sample` then defaults to annealed Langevin on the run's levels, and `sample` and `nll`
    # stop at the smallest level.
    "ncsn": PresetSpec(
        {"sde": "ve", "sigma_min": 0.01, "sigma_max": 10.0, "loss": "ncsn", "ncsn_levels": 10},
        "NCSN: VE SDE, 10 geometric levels from 10 to 0.01, annealed Langevin",
    ),
}


# -- inpainting masks of `sdegen sample --inpaint` ------------------------------------------------------
@dataclass(frozen=True)
class MaskSpec:
    """A mask for images of shape ``(C, H, W)``: ``factory(shape)`` is a bool tensor of that shape,
    True where the pixel is observed (kept), False where it is filled in."""

    factory: Callable[[tuple[int, ...]], Tensor]
    title: str


def _rows_cols(shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    h, w = shape[-2:]
    return torch.arange(h)[:, None].expand(h, w), torch.arange(w)[None, :].expand(h, w)


def _mask(rule: Callable[[Tensor, Tensor, int, int], Tensor]) -> Callable[[tuple[int, ...]], Tensor]:
    def factory(shape: tuple[int, ...]) -> Tensor:
        r, c = _rows_cols(shape)
        return rule(r, c, shape[-2], shape[-1]).expand(shape).clone()

    return factory


MASKS: dict[str, MaskSpec] = {
    "left": MaskSpec(_mask(lambda r, c, h, w: c < w // 2), "the left half observed, the right filled in"),
    "right": MaskSpec(_mask(lambda r, c, h, w: c >= w // 2), "the right half observed, the left filled in"),
    "top": MaskSpec(_mask(lambda r, c, h, w: r < h // 2), "the top half observed, the bottom filled in"),
    "bottom": MaskSpec(_mask(lambda r, c, h, w: r >= h // 2), "the bottom half observed, the top filled in"),
    "center": MaskSpec(
        _mask(lambda r, c, h, w: ~((r >= h // 4) & (r < h - h // 4) & (c >= w // 4) & (c < w - w // 4))),
        "the border observed, the central square (half the side) filled in",
    ),
    "checkerboard": MaskSpec(
        _mask(lambda r, c, h, w: (r + c) % 2 == 0), "every other pixel observed, the rest filled in"
    ),
}


# -- helpers -----------------------------------------------------------------------------------------
_Spec = TypeVar("_Spec")


def lookup(registry: Mapping[str, _Spec], name: str, what: str) -> _Spec:
    """The entry ``name`` of ``registry``, or a :class:`SettingsError` listing the choices."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise SettingsError(f"unknown {what} {name!r}; choose from {sorted(registry)}") from None


def sde_options() -> dict[str, tuple[Option, list[str]]]:
    """Every SDE option once, with the SDEs that take it; entries sharing a name must agree."""
    options: dict[str, tuple[Option, list[str]]] = {}
    for name, spec in SDES.items():
        for opt in spec.options:
            if opt.name in options and options[opt.name][0] != opt:
                raise RuntimeError(f"SDE option {opt.name!r} is declared differently by {name!r}")
            options.setdefault(opt.name, (opt, []))[1].append(name)
    return options


# -- which option belongs to which choice -----------------------------------------------------------
#: The option of ``sdegen train`` behind each key a data set reads from its section of config.json.
DATA_OPTION_FLAGS = {
    "root": "data_root",
    "download": "download",
    "image_size": "image_size",
    "channels": "channels",
}
#: The option of ``sdegen train`` behind each key a loss reads from its section of config.json.
LOSS_OPTION_FLAGS = {"levels": "ncsn_levels", "teacher": "teacher"}


@dataclass(frozen=True)
class Belongs:
    """An option read only by some entries of a registry: those named ``takers`` of the option
    ``choice`` (e.g. ``--sigma-max`` belongs to ``--sde ve`` and ``--sde edm``)."""

    choice: str
    takers: tuple[str, ...]


def option_owners(command: str) -> dict[str, Belongs]:
    """The one table of which option of ``sdegen <command>`` belongs to which choice.

    It is read off the registries above -- the options each SDE, data set, network, loss and
    sampler declares -- so that adding an entry with its options updates it. An option given
    explicitly for a choice that does not read it is a usage error (:func:`check_options_apply`),
    never silently ignored. Options absent from the table apply to every choice.
    """
    table: dict[str, Belongs] = {}

    def add(dest: str, choice: str, registry: Mapping[str, Any], reads: Callable[[Any], bool]) -> None:
        table[dest] = Belongs(choice, tuple(name for name, spec in registry.items() if reads(spec)))

    if command == "train":
        for name in sde_options():
            add(name, "sde", SDES, lambda spec, name=name: any(o.name == name for o in spec.options))
        for key, dest in DATA_OPTION_FLAGS.items():
            add(dest, "data", DATASETS, lambda spec, key=key: key in spec.options)
        for key, dest in LOSS_OPTION_FLAGS.items():
            add(dest, "loss", LOSSES, lambda spec, key=key: key in spec.options)
        for key in ("hidden", "depth"):
            add(key, "model", MODELS, lambda spec, key=key: key in spec.options)
    elif command == "sample":
        for dest in ("steps", "grid", "preview_every", "snr", "n_steps_each"):
            add(dest, "sampler", SAMPLERS, lambda spec, dest=dest: dest in spec.reads)
    elif command == "nll":
        add("split", "data", DATASETS, lambda spec: spec.images)  # 2-D sets draw fresh points
    return table


def check_options_apply(command: str, explicit: set[str] | frozenset[str], chosen: Mapping[str, str]) -> None:
    """Raise :class:`SettingsError` for an option given on the command line (``explicit``, argparse
    dests) that the choices made (``chosen``: e.g. ``{"sde": "vp", "data": "ring"}``) do not read."""
    for dest, owner in option_owners(command).items():
        if dest not in explicit or owner.choice not in chosen:
            continue
        name = chosen[owner.choice]
        if name in owner.takers:
            continue
        option, choice = "--" + dest.replace("_", "-"), "--" + owner.choice.replace("_", "-")
        names = list(owner.takers)
        takers = f"{choice} " + (f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0])
        doing = {"train": "this run trains with", "sample": "this command samples with"}.get(
            command, "this run has"
        )
        raise SettingsError(
            f"{option} is an option of {takers}; {doing} {choice} {name}, which does not read it"
        )
