"""``sdegen.sample``: one entry point for every sampler, a thin front for ``Sampler.__call__``
(it chooses the default sampler and the start, the prior or ``x_T``; the sampler checks the rest)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sdegen._checks import check_device, check_sampling_dtype, check_shape_tuple, check_tensor
from sdegen.observations.base import Observation
from sdegen.random import RandomSource
from sdegen.samplers.base import PriorDraw, Sampler, SampleResult
from sdegen.samplers.callback import SamplingCallback
from sdegen.samplers.reverse_sde import ReverseSDESampler
from sdegen.sde.base import SDE, ScoreFn

__all__ = ["sample"]


def sample(
    sde: SDE,
    score_fn: ScoreFn,
    shape: Sequence[int] | None,
    sampler: Sampler | None = None,
    *,
    x_T: Tensor | None = None,
    eps: float | None = None,
    generator: RandomSource = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
    denoise: bool = False,
    check_finite_every: int | None = None,
    observation: Observation | None = None,
    callback: SamplingCallback | None = None,
) -> SampleResult:
    """Draw samples by running ``sampler`` from the prior p_T (or from ``x_T``) down to t = eps.

    Example::

        data = GaussianMixture.ring()
        sde = VPSDE()
        out = sdegen.sample(sde, data.score(sde), (1000, 2), ProbabilityFlowSampler(),
                            generator=torch.Generator().manual_seed(0))
        out.x, out.nfe

    Args:
        sde: the forward SDE.
        score_fn: ``(t [B], x [B, ...]) -> [B, ...]``, e.g. a trained network wrapper or
            ``GaussianMixture.score(sde)``.
        shape: ``(B, ...)`` of the samples; may be None when ``x_T`` is given.
        sampler: any :class:`~sdegen.samplers.base.Sampler`; default
            ``ReverseSDESampler("euler", steps=1000)``.
        x_T: initial states at the sampler's first time (T) instead of prior samples; the samples
            follow its device and dtype.
        eps: end time; default ``sde.sampling_eps`` (1e-3 for VP and sub-VP, 1e-5 for VE).
        generator: the source of all randomness, prior included: a ``torch.Generator``, or a
            :class:`~sdegen.random.PerSampleGenerator` with one seed per sample, so that sample i
            depends only on seed i (and not on the batch size or the other seeds), for every
            stochastic sampler (torchsde's adaptive stepping and log_ode refuse it).
        device: of prior samples (default: the generator's device); ``x_T`` is moved to it when given.
        dtype: of prior samples (default: torch's default dtype); ``x_T`` is cast to it when given.
        return_trajectory: also return the states along the sampler's time grid.
        progress: show progress (off by default): a tqdm bar labelled with the sampler's class on a
            terminal, plain periodic lines in a log or pipe.
        denoise: finish with Tweedie's formula E[x_0 | x_eps] (one more score evaluation).
        check_finite_every: read the score's finiteness back to the host every this many evaluations
            (default: the sampler's own; once at the end for sdegen's own loops).
        observation: an :class:`~sdegen.observations.Observation` (e.g. ``Inpainting(mask, values)``)
            to condition on by projection at every step of a grid sampler (see
            :class:`~sdegen.samplers.base.Sampler`); other samplers refuse it before any work.
        callback: ``callback(info)`` after every step of a grid sampler, with a
            :class:`~sdegen.samplers.callback.StepInfo` (step, t, x, x0_hat); returning
            :data:`~sdegen.StopSampling` ends sampling at that state (see
            :mod:`sdegen.samplers.callback`). Adaptive solvers refuse it before any work.

    Returns:
        :class:`~sdegen.samplers.base.SampleResult` with ``x``, ``nfe``, ``trajectory``, ``ts``.
    """
    if sampler is None:
        sampler = ReverseSDESampler()
    if not isinstance(sampler, Sampler):
        raise TypeError(
            f"sampler must be an sdegen Sampler such as ReverseSDESampler(); got {type(sampler).__name__}"
        )
    dtype = check_sampling_dtype("dtype", dtype)
    device = check_device("device", device)
    if x_T is None:
        if shape is None:
            raise ValueError("pass the sample shape (B, ...) or an initial state x_T")
        start: Tensor | PriorDraw = PriorDraw(check_shape_tuple("shape", shape), device, dtype)
    else:
        check_tensor("x_T", x_T)
        if shape is not None and tuple(check_shape_tuple("shape", shape)) != tuple(x_T.shape):
            raise ValueError(
                f"shape {tuple(shape)} does not match x_T's shape {tuple(x_T.shape)}; pass shape=None "
                f"with x_T"
            )
        start = x_T if device is None and dtype is None else x_T.to(device=device, dtype=dtype)
    # The sampler checks the rest, and draws the prior (a PriorDraw) once its grid is known.
    return sampler(
        sde,
        score_fn,
        start,
        eps=eps,
        generator=generator,
        return_trajectory=return_trajectory,
        progress=progress,
        denoise=denoise,
        check_finite_every=check_finite_every,
        observation=observation,
        callback=callback,
    )
