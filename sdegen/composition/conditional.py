"""What a conditional model is: the call signatures, attributes and label conventions guidance relies on.

Two protocols, which trained networks (sdegen.nn) and the exact oracles
(:meth:`sdegen.analytic.GaussianMixture.conditional_score`, :meth:`~sdegen.analytic.GaussianMixture.classifier`)
both follow:

* a **conditional score model** ``model(t, x, y) -> score`` ``[B, ...]`` with ``t`` ``[B]``,
  ``x`` ``[B, ...]`` and int64 labels ``y`` ``[B]``, and the attributes ``n_classes`` (C; class
  labels are 0..C-1) and ``null_label`` (the label meaning "no label", conventionally C, the
  extra row of a label embedding with C + 1 rows). ``model(t, x, null_label)`` is the
  unconditional score; a model trained with label dropout (Ho and Salimans 2022, Alg. 1) learns both.
* a **noise-conditional classifier** ``classifier(t, x) -> logits`` ``[B, C]`` with the attribute
  ``n_classes``: log p_t(y | x) = log_softmax(logits)[y], trained on x_t of the same SDE.
"""

from __future__ import annotations

import inspect
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from sdegen._checks import check_class_labels

__all__ = ["ConditionalScoreModel", "NoiseConditionalClassifier", "check_label", "labels_like"]


@runtime_checkable
class ConditionalScoreModel(Protocol):
    """``model(t [B], x [B, ...], y [B] int64) -> [B, ...]``, the score of p_t(x | y); y = null_label: of p_t(x)."""

    n_classes: int
    null_label: int

    def __call__(self, t: Tensor, x: Tensor, y: Tensor) -> Tensor: ...


@runtime_checkable
class NoiseConditionalClassifier(Protocol):
    """``classifier(t [B], x [B, ...]) -> logits [B, C]`` with log p_t(y | x) = log_softmax(logits)[y]."""

    n_classes: int

    def __call__(self, t: Tensor, x: Tensor) -> Tensor: ...


def check_label(y: object, n_classes: int, name: str = "y") -> int | Tensor:
    """A class label ``y`` (an int, or an int ``[B]`` tensor) validated against 0..n_classes-1.

    Returns an int (for an int or a 0-d tensor) or an int64 ``[B]`` tensor on ``y``'s device, by
    ``sdegen._checks.check_class_labels``, the one label check.
    """
    labels = check_class_labels(name, y, None, n_classes)
    return int(labels) if labels.ndim == 0 else labels


def labels_like(y: int | Tensor, x: Tensor, name: str = "y") -> Tensor:
    """The label(s) ``y`` from :func:`check_label` as an int64 ``[B]`` tensor on ``x``'s device."""
    if isinstance(y, int):
        return torch.full((x.shape[0],), y, dtype=torch.int64, device=x.device)
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} holds {y.shape[0]} labels but x has {x.shape[0]} samples; pass one per sample"
        )
    return y.to(x.device)


def n_classes_of(model: object, n_classes: int | None, who: str, what: str) -> int:
    """``n_classes`` given explicitly, else the model's attribute; raise naming ``who`` if neither.

    A model whose ``n_classes`` attribute is None (an unconditional
    :class:`~sdegen.parameterization.ScoreModel`) is refused whatever is passed: it takes no label.
    """
    if hasattr(model, "n_classes") and model.n_classes is None:
        raise TypeError(
            f"{who} needs {what} to take class labels, but this {type(model).__name__} is unconditional "
            f"(n_classes=None): build its network with n_classes=C and train it on labelled data"
        )
    if n_classes is None:
        n_classes = getattr(model, "n_classes", None)
        if n_classes is None:
            raise TypeError(
                f"{who} needs the number of classes of {what}: give it an attribute n_classes or pass "
                f"n_classes=C"
            )
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive int; got n_classes={n_classes!r}")
    return n_classes


def positional_arity(fn: object) -> int | None:
    """How many positional arguments ``fn`` takes (None if unbounded or not inspectable)."""
    try:
        params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    count = 0
    for p in params:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def input_gradient(fn, x: Tensor, name: str = "the function") -> tuple[Tensor, Tensor]:
    """(value, grad_x value.sum()) of ``fn(x)``, inside or outside an autograd graph.

    Under ``torch.no_grad`` (samplers) x is detached and the gradient is plain; when x is part of
    a graph (the likelihood's divergence differentiates the score again) the gradient is taken
    with ``create_graph=True`` so that it stays differentiable. A value with no gradient path to x
    (``fn`` detaches x, or runs under ``torch.no_grad()``) raises ``ValueError`` naming ``name``.
    """
    outer = torch.is_grad_enabled() and x.requires_grad
    with torch.enable_grad():
        xg = x if outer else x.detach().requires_grad_(True)
        value = fn(xg)
        grad = None
        if torch.is_tensor(value) and value.requires_grad:
            (grad,) = torch.autograd.grad(value.sum(), xg, create_graph=outer, allow_unused=True)
    if grad is None:
        raise ValueError(
            f"{name} has no gradient path to x: it detaches x (x.detach(), .item(), numpy) or runs under "
            f"torch.no_grad(), so its gradient in x, which guidance adds to the score, cannot be taken. "
            f"Compute it from x with torch operations."
        )
    return value, grad
