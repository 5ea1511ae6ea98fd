"""Classifier-free guidance (Ho and Salimans 2022): one conditional model, with and without its label."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen._broadcast import batch_time
from sdegen._checks import carried_sde, check_bool, check_real, check_score_fn, check_score_output
from sdegen.composition.conditional import (
    ConditionalScoreModel,
    check_label,
    labels_like,
    n_classes_of,
    positional_arity,
)

__all__ = ["ClassifierFreeGuidance"]


class ClassifierFreeGuidance:
    """The guided score (1 + w) s(t, x, y) - w s(t, x, null) (Ho and Salimans 2022, eq. 6).

    With exact scores this is grad_x log [p_t(x | y)^(1+w) p_t(x)^(-w)] = grad_x log [p_t(x)
    p_t(y | x)^(1+w)]: w = 0 is the conditional model, w = -1 the unconditional one, and w > 0
    the score of p_t(x) p_t(y | x)^(1+w), a tilted density at every t. That family is not the
    diffusion of the tilted data density p_0(x) p_0(y | x)^(1+w) / Z, so for w > 0 the samples
    follow neither p(x | y) nor the tilted target (measured in docs/benchmarks/conditional.md).
    (k-diffusion and diffusers write the same combination as s_u + g (s_c - s_u) with g = 1 + w.)

    The two evaluations are one call of the model on the concatenated batch [x, x] with labels
    [y, null] (``concatenate=False``: two calls); at w = 0 and w = -1 only the needed half is
    evaluated. The object is itself a score function ``(t, x)``.

    Args:
        model: a conditional score model ``model(t, x, y)`` with ``n_classes`` and ``null_label``
            (see :mod:`sdegen.composition.conditional`).
        y: the class, an int or an int ``[B]`` tensor, in 0..C-1.
        guidance: w, any real number.
        n_classes: C, when the model has no attribute ``n_classes``.
        null_label: the label meaning "no label", when the model has no attribute ``null_label``.
        concatenate: evaluate both halves in one call of batch 2B.
    """

    def __init__(
        self,
        model: ConditionalScoreModel,
        y: int | Tensor,
        guidance: float,
        *,
        n_classes: int | None = None,
        null_label: int | None = None,
        concatenate: bool = True,
    ) -> None:
        check_score_fn(model, "model", "(t, x, y)")
        arity = positional_arity(model)
        if arity is not None and arity < 3:
            raise TypeError(
                f"ClassifierFreeGuidance needs a conditional model called as model(t, x, y) with a null "
                f"label; got {type(model).__name__} taking {arity} positional arguments, an unconditional "
                f"score. Train a class-conditional model with label dropout, or guide this one with a "
                f"classifier (ClassifierGuidance)."
            )
        self.model = model
        self.n_classes = n_classes_of(model, n_classes, "ClassifierFreeGuidance", "the conditional model")
        if null_label is None:
            null_label = getattr(model, "null_label", None)
            if null_label is None:
                raise TypeError(
                    "ClassifierFreeGuidance needs the model's null label (the label meaning 'no label'): "
                    "give the model an attribute null_label or pass null_label=..."
                )
        if (
            isinstance(null_label, bool)
            or not isinstance(null_label, int)
            or 0 <= null_label < self.n_classes
        ):
            raise ValueError(
                f"null_label must be an int outside the class labels 0..{self.n_classes - 1} "
                f"(conventionally n_classes = {self.n_classes}); got null_label={null_label!r}"
            )
        self.null_label = null_label
        self.y = check_label(y, self.n_classes)
        self.guidance = check_real("guidance", guidance)
        self.concatenate = check_bool("concatenate", concatenate)
        #: the SDE the model was built for (None if it does not say)
        self.sde = carried_sde(model)

    def __repr__(self) -> str:
        y = self.y if isinstance(self.y, int) else f"<{self.y.shape[0]} labels>"
        return f"ClassifierFreeGuidance(y={y}, guidance={self.guidance:g}, null_label={self.null_label})"

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        w = self.guidance
        y = labels_like(self.y, x)
        null = torch.full_like(y, self.null_label)
        if w == 0.0:
            return self._checked(self.model(t, x, y), x)
        if w == -1.0:
            return self._checked(self.model(t, x, null), x)
        if self.concatenate:
            tb = batch_time(t, x)
            both = self.model(torch.cat([tb, tb]), torch.cat([x, x]), torch.cat([y, null]))
            check_score_output(both, torch.cat([x, x]), "model")
            cond, uncond = both.chunk(2)
        else:
            cond = self._checked(self.model(t, x, y), x)
            uncond = self._checked(self.model(t, x, null), x)
        return torch.add(cond * (1.0 + w), uncond, alpha=-w)

    @staticmethod
    def _checked(out: Tensor, x: Tensor) -> Tensor:
        check_score_output(out, x, "model")
        return out
