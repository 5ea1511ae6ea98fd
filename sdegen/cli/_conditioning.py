"""What ``sdegen sample`` conditions on: classes (``--label``, ``--guidance``, ``--classifier``) and
observed pixels (``--inpaint``), turned into a score function and an observation -- checked against
the run before any sample is drawn.

Both are per sample (sample i's class, the image sample i fills in), and are served for the samples
``begin:end`` of a chunk (:meth:`Classes.score_fn`, :meth:`Inpaint.observation`), so that samples
drawn in fixed chunks, on any number of processes, are conditioned as in one batch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdegen.cli._common import UsageError
from sdegen.cli._report import class_labels
from sdegen.composition import ClassifierFreeGuidance, ClassifierGuidance
from sdegen.observations import Inpainting
from sdegen.run.config import Run, load_run, noised_data_difference
from sdegen.run.registry import MASKS
from sdegen.sde.base import ScoreFn

__all__ = ["Classes", "Inpaint", "classes", "inpaint"]


@dataclass
class Classes:
    """How to score the samples (``guided(labels)``, or the model itself for ``labels`` None) and the
    class of each sample (None: unconditional)."""

    guided: Callable[[Tensor | None], ScoreFn]
    labels: Tensor | None = None
    report: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    def score_fn(self, begin: int, end: int) -> ScoreFn:
        """The score function of the samples ``begin:end`` (guided to their own classes)."""
        return self.guided(None if self.labels is None else self.labels[begin:end])


def classes(
    args: argparse.Namespace, trained: Run, n: int, device: torch.device, own_labels: Tensor | None = None
) -> Classes:
    """The conditioning of ``--label``, ``--guidance``, ``--classifier`` and ``--classifier-scale``.

    A conditional run samples classifier-free guidance (1 + w) s(t, x, y) - w s(t, x, null) with w
    from ``--guidance`` (default 0: the conditional model); an unconditional run with a classifier
    run samples classifier guidance. Without ``--label`` each sample has its ``own_labels`` (those
    of the images it inpaints), or the samples cycle through the classes.
    """
    model, given = trained.model, vars(args)
    has_guidance, has_scale = "guidance" in given, "classifier_scale" in given
    if has_scale and args.classifier is None:
        raise UsageError("--classifier-scale is the scale of classifier guidance: add --classifier RUN")
    if trained.kind == "conditional":
        if args.classifier is not None:
            raise UsageError(
                f"--classifier guides an unconditional run; {args.run_dir} is class-conditional: guide it "
                f"with --guidance W (classifier-free guidance)"
            )
        w = args.guidance if has_guidance else 0.0
        labels = _labels(args, model.n_classes, n, args.run_dir, own_labels)

        def guided(y: Tensor) -> ScoreFn:
            return ClassifierFreeGuidance(model, y.to(device), w)

        guided(labels)  # checked now, before any sample is drawn
        report = {"labels": _label_report(args, own_labels), "guidance": w}
        what = "conditional model" if w == 0 else f"classifier-free guidance w = {w:g}"
        return Classes(guided, labels, report, what)
    if has_guidance:
        raise UsageError(
            f"--guidance is classifier-free guidance, which needs a class-conditional run (`sdegen train "
            f"--conditional`); {args.run_dir} is unconditional. Guide it with a classifier instead: "
            f"--label K --classifier RUN (from `sdegen train --classifier`)"
        )
    if args.classifier is None:
        if args.label is not None:
            raise UsageError(
                f"--label needs a class-conditional run (`sdegen train --conditional`) or a noise-conditional "
                f"classifier to guide this unconditional one (--classifier RUN from `sdegen train "
                f"--classifier`); {args.run_dir} is unconditional"
            )
        return Classes(lambda _: model)
    clf = _classifier_run(args.classifier, trained, device)
    scale = args.classifier_scale if has_scale else 1.0
    labels = _labels(args, clf.model.n_classes, n, args.classifier, own_labels)

    def guided(y: Tensor) -> ScoreFn:
        return ClassifierGuidance(model, clf.model, y.to(device), scale)

    guided(labels)  # checked now, before any sample is drawn
    report = {
        "labels": _label_report(args, own_labels),
        "classifier": str(args.classifier),
        "classifier_scale": scale,
    }
    return Classes(guided, labels, report, f"classifier guidance, scale {scale:g}")


def _labels(args: argparse.Namespace, n_classes: int, n: int, where: object, own: Tensor | None) -> Tensor:
    if args.label is None:
        if own is not None:
            if int(own.max()) >= n_classes:
                raise UsageError(
                    f"the images' labels go up to {int(own.max())}, but {where} has {n_classes} classes"
                )
            return own
        return class_labels(n_classes, n)
    if not 0 <= args.label < n_classes:
        raise UsageError(
            f"--label {args.label} is not a class of {where}: its classes are 0..{n_classes - 1}"
        )
    return torch.full((n,), args.label, dtype=torch.int64)


def _label_report(args: argparse.Namespace, own: Tensor | None) -> int | str:
    if args.label is not None:
        return args.label
    return "every class in turn" if own is None else "each inpainted image's own"


def _classifier_run(path: str, trained: Run, device: torch.device) -> Run:
    """The classifier run at ``path``, checked to classify the noised data of ``trained``."""
    clf = load_run(Path(path), device)
    if clf.kind != "classifier":
        raise UsageError(
            f"--classifier {path} is not a classifier run (it trains a {clf.kind} model); train one with "
            f"`sdegen train --classifier`"
        )
    diff = noised_data_difference(clf.config, trained.config)
    if diff is not None:
        part, theirs, ours = diff
        raise UsageError(
            f"--classifier {path} was trained with the {part} {theirs}, the run has {ours}: p_t(y | x) "
            f"depends on the SDE and the data; train the classifier with the run's --data and --sde options"
        )
    return clf


@dataclass
class Inpaint:
    """Inpainting of test images: the mask, the ``n_images`` original images (sample i fills in image
    i mod ``n_images``) and the label of each sample's image (None for unlabelled images)."""

    mask: Tensor
    originals: Tensor
    n_images: int
    name: str
    labels: Tensor | None

    def observation(self, begin: int, end: int) -> Inpainting:
        """What the samples ``begin:end`` observe: their images where the mask is True."""
        which = torch.arange(begin, end) % self.n_images
        return Inpainting(self.mask, self.originals[which])


def inpaint(args: argparse.Namespace, trained: Run, n: int) -> Inpaint | None:
    """``--inpaint MASK``: the first ``--images`` test images, observed where the mask is True.

    MASK is a name of :data:`~sdegen.run.registry.MASKS` or a ``.pt`` file holding a bool tensor of
    the image shape ``(C, H, W)`` (or ``(H, W)``, for every channel). Sample i fills in image i mod K.
    """
    if args.inpaint is None:
        if args.images is not None:
            raise UsageError("--images sets how many test images --inpaint fills in: add --inpaint MASK")
        return None
    bundle = trained.data
    if not bundle.is_image:
        raise UsageError(f"--inpaint fills in images; {args.run_dir} models 2-D data ({bundle.name})")
    shape = tuple(bundle.event_shape)
    if args.inpaint in MASKS:
        mask, name = MASKS[args.inpaint].factory(shape), args.inpaint
    else:
        mask, name = _mask_file(Path(args.inpaint), shape), Path(args.inpaint).stem
    if bool(mask.all()):
        raise UsageError(f"--inpaint {args.inpaint} observes every pixel: nothing is left to fill in")
    if not bool(mask.any()):
        raise UsageError(f"--inpaint {args.inpaint} observes no pixel: sample without --inpaint instead")
    k = min(args.images or 8, n, len(bundle.test))
    pixels = bundle.test.pixels[:k]
    # The observed values are the pixels' bin centres in model space, as sampling ends there.
    originals = bundle.test.to_model(pixels, dequantize=False)
    which = torch.arange(n) % k
    labels = None if bundle.test.labels is None else bundle.test.labels[:k][which]
    fill = Inpaint(mask, originals, k, name, labels)
    fill.observation(0, n)  # checked now, before any sample is drawn
    return fill


def _mask_file(path: Path, shape: tuple[int, ...]) -> Tensor:
    if not path.is_file():
        raise UsageError(
            f"--inpaint {path}: not one of the masks {sorted(MASKS)} and no such file; give a name or a .pt "
            f"file holding a bool tensor of the image shape {shape}"
        )
    try:
        mask = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, ... by cause
        raise UsageError(f"--inpaint {path} is not a torch tensor file ({type(e).__name__})") from None
    if not torch.is_tensor(mask) or mask.dtype != torch.bool:
        got = f"a {mask.dtype} tensor" if torch.is_tensor(mask) else type(mask).__name__
        raise UsageError(f"--inpaint {path} must hold a bool tensor (True where observed); got {got}")
    if tuple(mask.shape) == shape[-2:]:
        mask = mask.expand(shape)
    if tuple(mask.shape) != shape:
        raise UsageError(
            f"--inpaint {path} holds a mask of shape {tuple(mask.shape)}, but the run's images have shape "
            f"{shape}: give a bool tensor of shape {shape} or {shape[-2:]}"
        )
    return mask.clone()
