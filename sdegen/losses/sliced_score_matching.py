"""Sliced score matching on the perturbed marginals (Song, Garg, Shi and Ermon 2019)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from sdegen import random
from sdegen._broadcast import expand_like
from sdegen._checks import check_steps
from sdegen.losses.base import Loss, Reduction, sum_over_data_dims
from sdegen.losses.denoising_score_matching import require_linear_sde
from sdegen.losses.weighting import TimeWeighting, check_eps, resolve_weighting
from sdegen.parameterization import ScoreModel, TransitionKernel

__all__ = ["SlicedScoreMatching"]

_PROJECTIONS = ("rademacher", "gaussian")


class SlicedScoreMatching(Loss):
    """E_t E_{x_t} E_v [ lambda(t) ( v^T grad_x s_theta(t, x_t) v + 1/2 (v^T s_theta(t, x_t))^2 ) ].

    Song, Garg, Shi and Ermon 2019, "Sliced score matching", eq. 7, applied to the marginals
    x_t ~ p_t of the SDE with the time weighting of Song et al. 2021 (eq. 7). For E[v v^T] = I the
    objective equals 1/2 E lambda(t) ||s_theta - grad log p_t||^2 up to a constant, so it is
    minimised by the true score without using the conditional score, which makes it usable when
    only samples of p_t are available. With ``variance_reduced=True`` the second term is
    replaced by its expectation over v, 1/2 ||s_theta||^2 (SSM-VR, their eq. 8).

    ``v`` has independent Rademacher (default) or standard normal entries; ``n_projections``
    projections per sample are averaged. The Jacobian term needs one extra backward pass
    (``create_graph`` while gradients are enabled, so the loss can be trained on).

    Args:
        weighting: time weighting and law of t (default :class:`SigmaSquaredWeighting`).
        projection: ``"rademacher"`` or ``"gaussian"``.
        n_projections: projections per sample.
        variance_reduced: use SSM-VR.
        eps: smallest time.
        reduction: see :class:`~sdegen.losses.base.Loss`.
    """

    def __init__(
        self,
        weighting: TimeWeighting | None = None,
        *,
        projection: Literal["rademacher", "gaussian"] = "rademacher",
        n_projections: int = 1,
        variance_reduced: bool = False,
        eps: float = 1e-5,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(reduction)
        weighting = resolve_weighting(weighting)
        if projection not in _PROJECTIONS:
            raise ValueError(f"projection must be one of {_PROJECTIONS}; got projection={projection!r}")
        self.weighting, self.projection, self.eps = weighting, projection, eps
        self.n_projections = check_steps("n_projections", n_projections)
        self.variance_reduced = bool(variance_reduced)

    def __repr__(self) -> str:
        return (
            f"SlicedScoreMatching(weighting={self.weighting!r}, projection={self.projection!r}, "
            f"n_projections={self.n_projections}, variance_reduced={self.variance_reduced}, eps={self.eps:g})"
        )

    def _projections(self, like: Tensor, generator: random.RandomSource) -> Tensor:
        # [P, B, ...]: the batch is dimension 1, so a per-row generator serves each sample its own.
        kw = dict(device=like.device, batch_dim=1)
        if self.projection == "gaussian":
            return random.randn(like.shape, generator, dtype=like.dtype, **kw)
        bits = random.randint(0, 2, like.shape, generator, **kw)
        return bits.to(like.dtype) * 2 - 1

    def per_sample(self, model: ScoreModel, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        sde = require_linear_sde(model, "SlicedScoreMatching")
        eps = check_eps(self.eps, sde.T)
        B, P = x0.shape[0], self.n_projections
        t, weight = self.weighting.sample(
            sde, B, eps=eps, generator=generator, device=x0.device, dtype=x0.dtype
        )
        noise = random.randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
        kernel = TransitionKernel.of(sde, t)
        x_t = expand_like(kernel.alpha, x0) * x0 + expand_like(kernel.sigma, x0) * noise
        # Each sample is repeated once per projection: [P * B, ...], projection-major.
        x_rep = x_t.detach().repeat((P,) + (1,) * (x0.ndim - 1))
        t_rep = t.repeat(P)
        v = self._projections(x_rep.view(P, *x0.shape), generator).reshape(x_rep.shape)
        training = torch.is_grad_enabled()
        with torch.enable_grad():
            x_rep.requires_grad_(True)
            score = model(t_rep, x_rep)
            v_score = sum_over_data_dims(score * v)
            (jvp,) = torch.autograd.grad(v_score.sum(), x_rep, create_graph=training)
            v_jac_v = sum_over_data_dims(jvp * v)
            if self.variance_reduced:
                second = 0.5 * sum_over_data_dims(score**2)
            else:
                second = 0.5 * v_score**2
            per = (v_jac_v + second).reshape(P, B).mean(dim=0)
        per = weight * per
        return per if training else per.detach()
