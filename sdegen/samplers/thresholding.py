"""Clipping and dynamic thresholding of x0_hat (Saharia et al. 2022), as a score function.

Pixel-space samplers of Imagen and diffusers bound the denoised estimate x0_hat to the data's range
at every step, which keeps a model evaluated off its training distribution (large guidance weights,
few steps) from overshooting:

* **clipping** (Ho et al. 2020's reference code; diffusers' ``clip_sample``): x0_c = clamp(x0_hat, -r, r);
* **dynamic thresholding** (Saharia et al. 2022, "Photorealistic text-to-image diffusion models with
  deep language understanding", sec. 2.3; diffusers' ``thresholding``): per sample, s = the
  ``percentile`` quantile of |x0_hat| clamped to [1, ``max_value``], and x0_c = clamp(x0_hat, -s, s) / s.

:class:`Thresholded` wraps a score function so that every sampler sees the model whose denoiser is
x0_c: the denoiser samplers (DDIM, DPM-Solver++, UniPC, EDM) read x0_c directly, the others the score
(alpha x0_c - x) / sigma^2 and noise (x - alpha x0_c) / sigma that go with it.

**It is not exact.** x0_c is no longer E[x_0 | x_t] of any process, and the vector field it defines
is not the probability-flow ODE of any density (it is not even continuous in x where the clamp
engages), so :func:`sdegen.log_likelihood` refuses a thresholded model, and samples no longer follow
the model's p_0. Off by default everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from sdegen._broadcast import batch_time, expand_like
from sdegen._checks import check_linear_sde, check_positive, check_real, check_score_fn
from sdegen.sde.base import SDE

__all__ = ["Thresholded"]


class Thresholded:
    """A score function whose denoiser x0_hat is clipped to [-clip, clip] or dynamically thresholded.

    Exactly one of ``clip`` and ``percentile`` is given. With ``percentile`` = p, per sample
    s = clamp(quantile_p(|x0_hat|), 1, max_value) and x0_c = clamp(x0_hat, -s, s) / s (Saharia et
    al. 2022, sec. 2.3, with diffusers' upper bound ``sample_max_value``); with ``clip`` = r,
    x0_c = clamp(x0_hat, -r, r). x0_hat comes from ``score_fn.data_prediction`` when it has one,
    else from its ``noise_prediction``, else from its score by Tweedie's formula.

    A thresholded model is not the probability-flow ODE of any density: ``log_likelihood`` refuses it
    (see the module docstring).

    Args:
        score_fn: the model, a score function ``(t, x)`` (e.g. a ScoreModel, or guidance built on one).
        sde: its :class:`~sdegen.sde.LinearSDE`.
        clip: r > 0 of static clipping (diffusers' ``clip_sample_range``, 1 for data in [-1, 1]).
        percentile: p in (0, 1] of dynamic thresholding (Imagen's 0.995; diffusers' ``dynamic_thresholding_ratio``).
        max_value: the largest threshold s >= 1 (diffusers' ``sample_max_value``; Saharia et al. leave it unbounded).
    """

    #: Not the score of a density: ``log_likelihood`` refuses score functions that say so.
    is_density_score: ClassVar[bool] = False

    def __init__(
        self,
        score_fn: Callable[[Tensor, Tensor], Tensor],
        sde: SDE,
        *,
        clip: float | None = None,
        percentile: float | None = None,
        max_value: float = 1.0,
    ) -> None:
        check_score_fn(score_fn)
        check_linear_sde(sde, "Thresholded")
        if (clip is None) == (percentile is None):
            raise ValueError(
                "give exactly one of clip=r (clamp x0_hat to [-r, r]) and percentile=p (dynamic "
                f"thresholding); got clip={clip!r}, percentile={percentile!r}"
            )
        if clip is not None:
            clip = check_positive("clip", clip)
        else:
            percentile = check_real("percentile", percentile)
            if not 0.0 < percentile <= 1.0:
                raise ValueError(f"percentile must lie in (0, 1], e.g. 0.995; got percentile={percentile!r}")
        max_value = check_real("max_value", max_value)
        if max_value < 1.0:
            raise ValueError(
                f"max_value must be >= 1 (the threshold s is clamped to [1, max_value]); got {max_value!r}"
            )
        self.score_fn, self.sde = score_fn, sde
        self.clip, self.percentile, self.max_value = clip, percentile, max_value
        self._data = _method(score_fn, "data_prediction")
        self._noise = _method(score_fn, "noise_prediction")

    def __repr__(self) -> str:
        rule = (
            f"clip={self.clip:g}"
            if self.clip is not None
            else (f"percentile={self.percentile:g}, max_value={self.max_value:g}")
        )
        return f"Thresholded({type(self.score_fn).__name__}, {rule})"

    def threshold(self, x0: Tensor) -> Tensor:
        """x0_c: x0 clipped to [-clip, clip], or dynamically thresholded per sample."""
        if self.clip is not None:
            return x0.clamp(-self.clip, self.clip)
        # torch.quantile needs float32 or float64 (as diffusers upcasts half precision).
        flat = x0.reshape(x0.shape[0], -1).abs()
        wide = flat if flat.dtype in (torch.float32, torch.float64) else flat.float()
        s = torch.quantile(wide, self.percentile, dim=1).clamp(1.0, self.max_value).to(x0.dtype)
        s = expand_like(s, x0)
        return torch.maximum(torch.minimum(x0, s), -s) / s

    def _kernel(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        return expand_like(self.sde.alpha(t), x), expand_like(self.sde.sigma(t), x)

    def data_prediction(self, t: float | Tensor, x: Tensor) -> Tensor:
        """x0_c(t, x), the thresholded denoiser."""
        tb = batch_time(t, x)
        if self._data is not None:
            x0 = self._data(tb, x)
        else:
            a, s = self._kernel(tb, x)
            if self._noise is not None:
                x0 = (x - s * self._noise(tb, x)) / a
            else:
                x0 = (x + s * s * self.score_fn(tb, x)) / a
        return self.threshold(x0)

    def noise_prediction(self, t: float | Tensor, x: Tensor) -> Tensor:
        """(x - alpha x0_c) / sigma."""
        tb = batch_time(t, x)
        a, s = self._kernel(tb, x)
        return (x - a * self.data_prediction(tb, x)) / s

    def __call__(self, t: float | Tensor, x: Tensor) -> Tensor:
        """The score (alpha x0_c - x) / sigma^2 of the thresholded denoiser."""
        tb = batch_time(t, x)
        a, s = self._kernel(tb, x)
        return (a * self.data_prediction(tb, x) - x) / (s * s)


def _method(score_fn: object, name: str) -> Callable[[Tensor, Tensor], Tensor] | None:
    method = getattr(score_fn, name, None)
    return method if callable(method) else None
