"""Reconstruction guidance: the likelihood of an observation at the denoised estimate (DPS)."""

from __future__ import annotations

import torch
from torch import Tensor

from sdegen._broadcast import batch_time
from sdegen._checks import check_linear_sde, check_real, check_same_sde, check_score_fn, check_score_output
from sdegen.composition.conditional import input_gradient
from sdegen.observations.base import Observation
from sdegen.sde.base import LinearSDE, ScoreFn
from sdegen.sde.kernel import GaussianKernel

__all__ = ["ReconstructionGuidance"]


class ReconstructionGuidance:
    """Diffusion posterior sampling: ``score(t, x) + scale * grad_x log N(y; A x0_hat(t, x), s^2 I)``.

    The posterior score is grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x), and
    p_t(y | x_t) = int p(y | x_0) p(x_0 | x_t) dx_0 is replaced by the likelihood at the posterior
    mean, p(y | x_0 = x0_hat(t, x_t)), with Tweedie's x0_hat = (x + sigma(t)^2 score(t, x)) / alpha(t)
    (Chung et al. 2023, "Diffusion posterior sampling for general noisy inverse problems", eq. 11
    and Thm. 1). The gradient goes through the score model by autograd: one forward and one
    backward pass per evaluation.

    ``scale=1`` is that approximation as stated (a Gaussian log-likelihood -|y - A x0_hat|^2 / (2 s^2));
    Chung et al.'s eq. 16 writes 1 / s^2 (``scale=2``), and their Alg. 1 instead rescales every
    step by zeta / |y - A x0_hat|, a discrete step-size rule that a score function cannot express.
    The approximation drops the spread of p(x_0 | x_t): it is exact only as t -> 0, and biased
    (measured against the exact conditional in docs/benchmarks/conditional.md).

    The object is a score function ``(t, x)``, usable with every sampler, the likelihood,
    torchsde and torchdiffeq.

    Args:
        score_fn: the unconditional score, differentiable in x.
        sde: the forward :class:`~sdegen.sde.LinearSDE` (its alpha(t), sigma(t) give x0_hat).
        observation: a noisy :class:`~sdegen.observations.Observation` (noise_std > 0).
        scale: the guidance scale.
    """

    def __init__(
        self, score_fn: ScoreFn, sde: LinearSDE, observation: Observation, scale: float = 1.0
    ) -> None:
        check_score_fn(score_fn)
        check_linear_sde(sde, "ReconstructionGuidance (Tweedie's x0_hat)")
        check_same_sde(sde, score_fn, "score_fn", "of ReconstructionGuidance")
        if not isinstance(observation, Observation):
            raise TypeError(
                f"observation must be an sdegen.observations.Observation (Inpainting, Colorization, "
                f"LinearObservation); got {type(observation).__name__}"
            )
        if observation.noise_std == 0.0:
            raise ValueError(
                f"ReconstructionGuidance needs a noisy observation: its guidance is the Gaussian "
                f"likelihood N(y; A x0_hat, s^2 I), a point mass for {observation!r}. Build the "
                f"observation with noise_std > 0 (DPS uses the measurement noise, or a small value for "
                f"exact data), or condition by projection (observation= of a grid sampler)."
            )
        self.score_fn, self.sde, self.observation = score_fn, sde, observation
        self.scale = check_real("scale", scale)
        # Whether score_fn has been seen to have a gradient path to x (checked at the first call).
        self._differentiable = False

    def __repr__(self) -> str:
        return f"ReconstructionGuidance({self.observation!r}, scale={self.scale:g})"

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        self.observation.check(x, "x")
        # The kernel in float64, then in the data's dtype (a float32 time is off by ~1e-6 for VE).
        kernel = GaussianKernel.of(self.sde, batch_time(t, x).double()).to(x.dtype)
        scores = []

        def log_likelihood(xg: Tensor) -> Tensor:
            s = self.score_fn(t, xg)
            check_score_output(s, xg)
            if not self._differentiable:
                self._check_differentiable(s, xg)
            scores.append(s)
            return self.observation.log_likelihood(kernel.data_from_score(xg, s))

        _, grad = input_gradient(log_likelihood, x)
        score = scores[0]
        if not score.requires_grad or not x.requires_grad:
            score = score.detach()
        return score + self.scale * grad

    def _check_differentiable(self, score: Tensor, xg: Tensor) -> None:
        """Refuse a score without a gradient path to x: x0_hat would still depend on x through x
        itself, and the guidance would be silently biased (the score's Jacobian dropped)."""
        grad = None
        if score.requires_grad:
            (grad,) = torch.autograd.grad(score.sum(), xg, retain_graph=True, allow_unused=True)
        if grad is None:
            raise ValueError(
                "score_fn's output has no gradient path to x: it detaches x (x.detach(), .item(), numpy) "
                "or runs under torch.no_grad(), but ReconstructionGuidance differentiates x0_hat(t, x) = "
                "(x + sigma^2 score(t, x)) / alpha through the score, so its guidance would be silently "
                "biased. Pass a score computed from x with torch operations."
            )
        self._differentiable = True
