"""Gaussian mixtures: a closed-form density and score at every time t of any linear SDE.

For data p_0 = sum_k w_k N(mu_k, Sigma_k) and a transition kernel N(alpha(t) x0, sigma(t)^2 I), the
marginal at time t is again a mixture (Sarkka and Solin 2019, sec. 6.1):

    p_t = sum_k w_k N(alpha(t) mu_k, alpha(t)^2 Sigma_k + sigma(t)^2 I),

and its score is the posterior-weighted sum of the component scores,

    grad log p_t(x) = sum_k r_k(x) C_k(t)^{-1} (alpha(t) mu_k - x),   r_k = w_k N_k(x) / p_t(x).

With Sigma_k = U_k diag(lambda_k) U_k^T computed once, C_k(t) = U_k diag(alpha^2 lambda_k + sigma^2)
U_k^T, so both are exact and cost O(K d^2) per sample for a different t in every row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdegen._checks import (
    check_batch_shape,
    check_linear_sde,
    check_positive,
    check_real,
    check_steps,
    check_time,
)
from sdegen.sde.base import LinearSDE, ScoreFn

__all__ = ["GaussianMixture"]


def _as_float64(name: str, value: object) -> Tensor:
    try:
        out = torch.as_tensor(value, dtype=torch.float64, device="cpu")
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor or nested sequence of numbers; got {value!r}") from None
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite; got {name}={out.tolist()}")
    return out


class GaussianMixture:
    """A mixture sum_k w_k N(mu_k, Sigma_k) in R^d with exact density, samples, marginals and scores.

    Args:
        weights: ``[K]`` non-negative, summing to 1.
        means: ``[K, d]``.
        covariances: ``[K, d, d]`` (full, symmetric positive definite), ``[K, d]`` (diagonal),
            ``[K]`` (isotropic variance per component) or a single float (shared isotropic variance).
        event_shape: the shape of one sample, ``(d,)`` by default; any shape with ``d`` elements,
            e.g. ``(1, 4, 4)``, so that the oracle can stand in for image data.

    All parameters are stored in float64; inputs of any floating dtype are evaluated in float64 and
    returned in their own dtype (float64 in, float64 out).
    """

    def __init__(
        self,
        weights: Tensor | Sequence[float],
        means: Tensor | Sequence[Sequence[float]],
        covariances: Tensor | Sequence | float,
        *,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        w = _as_float64("weights", weights)
        mu = _as_float64("means", means)
        if w.ndim != 1 or w.numel() == 0:
            raise ValueError(f"weights must have shape [K]; got shape {tuple(w.shape)}")
        if bool((w < 0).any()):
            raise ValueError(f"weights must be non-negative; got weights={w.tolist()}")
        if abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError(
                f"weights must sum to 1; got sum={float(w.sum()):.8g}. Pass weights / weights.sum()."
            )
        K = w.shape[0]
        if mu.ndim != 2 or mu.shape[0] != K:
            raise ValueError(f"means must have shape [K, d] = [{K}, d]; got shape {tuple(mu.shape)}")
        d = mu.shape[1]
        cov = self._full_covariances(covariances, K, d)
        sym_err = float((cov - cov.transpose(-1, -2)).abs().max())
        if sym_err > 1e-8 * max(1.0, float(cov.abs().max())):
            raise ValueError(f"covariances must be symmetric; max |Sigma - Sigma^T| = {sym_err:.3g}")
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
        if bool((evals <= 0).any()):
            k = int((evals <= 0).any(dim=1).nonzero()[0])
            raise ValueError(
                f"covariances must be positive definite; component {k} has eigenvalue "
                f"{float(evals[k].min()):.3g}"
            )
        if event_shape is None:
            event_shape = (d,)
        event_shape = tuple(int(s) for s in event_shape)
        if math.prod(event_shape) != d:
            raise ValueError(
                f"event_shape must have d = {d} elements; got event_shape={event_shape} "
                f"with {math.prod(event_shape)}"
            )
        self.weights, self.means, self.covariances = w, mu, cov
        self.event_shape = event_shape
        self._evals, self._evecs = evals, evecs
        self._on_device: dict[torch.device, tuple[Tensor, ...]] = {}

    @staticmethod
    def _full_covariances(covariances: object, K: int, d: int) -> Tensor:
        if isinstance(covariances, (int, float)) and not isinstance(covariances, bool):
            var = check_positive("covariances", covariances)
            return var * torch.eye(d, dtype=torch.float64).expand(K, d, d).clone()
        cov = _as_float64("covariances", covariances)
        if cov.shape == (K,):
            if bool((cov <= 0).any()):
                raise ValueError(f"isotropic covariances must be > 0; got {cov.tolist()}")
            return cov[:, None, None] * torch.eye(d, dtype=torch.float64)
        if cov.shape == (K, d):
            if bool((cov <= 0).any()):
                raise ValueError(f"diagonal covariances must be > 0; got {cov.tolist()}")
            return torch.diag_embed(cov)
        if cov.shape == (K, d, d):
            return cov.clone()
        raise ValueError(
            f"covariances must have shape [K, d, d], [K, d], [K] or be a float, with K={K}, d={d}; "
            f"got shape {tuple(cov.shape)}"
        )

    # -- construction helpers -------------------------------------------------------------------
    @classmethod
    def ring(cls, n: int = 8, radius: float = 4.0, std: float = 0.5) -> GaussianMixture:
        """``n`` equally weighted isotropic components on a circle of ``radius`` in R^2."""
        n = check_steps("n", n)
        radius = check_positive("radius", radius)
        std = check_positive("std", std)
        angle = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
        means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
        return cls(torch.full((n,), 1.0 / n, dtype=torch.float64), means, std**2)

    @classmethod
    def grid(cls, n: int = 5, spacing: float = 2.0, std: float = 0.3) -> GaussianMixture:
        """``n x n`` equally weighted isotropic components on a centred square grid in R^2."""
        n = check_steps("n", n)
        spacing = check_positive("spacing", spacing)
        std = check_positive("std", std)
        ticks = spacing * (torch.arange(n, dtype=torch.float64) - (n - 1) / 2)
        means = torch.cartesian_prod(ticks, ticks)
        return cls(torch.full((n * n,), 1.0 / n**2, dtype=torch.float64), means, std**2)

    # -- properties -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """The dimension d."""
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        """The number of components K."""
        return self.means.shape[0]

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, d={self.dim}, event_shape={self.event_shape})"

    def mean(self) -> Tensor:
        """E[x] = sum_k w_k mu_k, shape ``event_shape``."""
        return (self.weights @ self.means).reshape(self.event_shape)

    def covariance(self) -> Tensor:
        """Cov[x] = sum_k w_k (Sigma_k + mu_k mu_k^T) - E[x] E[x]^T, shape ``[d, d]``."""
        m = self.weights @ self.means
        second = torch.einsum(
            "k,kij->ij", self.weights, self.covariances + self.means[:, :, None] * self.means[:, None, :]
        )
        return second - torch.outer(m, m)

    # -- the density ----------------------------------------------------------------------------
    def _params(self, device: torch.device) -> tuple[Tensor, ...]:
        if device not in self._on_device:
            self._on_device[device] = tuple(
                v.to(device) for v in (self.weights.log(), self.means, self._evals, self._evecs)
            )
        return self._on_device[device]

    def _flatten(self, x: Tensor) -> Tensor:
        check_batch_shape("x", x)
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"x must have shape [B, {', '.join(map(str, self.event_shape))}] for this mixture; "
                f"got shape {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], -1).double()

    def _log_prob_and_score(
        self, x: Tensor, alpha: Tensor, sigma: Tensor, want_score: bool
    ) -> tuple[Tensor, Tensor | None]:
        """log p and grad log p of sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I) at ``x`` [B, d].

        ``alpha`` and ``sigma`` are float64 tensors of shape ``[B]`` (or 0-d).
        """
        log_w, mu, lam, U = self._params(x.device)
        a = alpha.reshape(-1, 1, 1)
        s = sigma.reshape(-1, 1, 1)
        diff = x[:, None, :] - a * mu[None]  # [B, K, d]
        y = torch.einsum("bkd,kde->bke", diff, U)  # coordinates in each component's eigenbasis
        var = a * a * lam[None] + s * s  # [B, K, d]
        log_comp = -0.5 * ((y * y / var).sum(-1) + var.log().sum(-1) + self.dim * math.log(2 * math.pi))
        log_joint = log_w[None] + log_comp
        log_p = torch.logsumexp(log_joint, dim=1)
        if not want_score:
            return log_p, None
        resp = torch.softmax(log_joint, dim=1)  # posterior component probabilities r_k(x)
        score = -torch.einsum("bke,kde,bk->bd", y / var, U, resp)
        return log_p, score

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) for ``x`` of shape ``[B, *event_shape]``: shape ``[B]``, in ``x``'s dtype."""
        flat = self._flatten(x)
        one = torch.ones((), dtype=torch.float64, device=x.device)
        return self._log_prob_and_score(flat, one, 0 * one, want_score=False)[0].to(x.dtype)

    def score_at_zero(self, x: Tensor) -> Tensor:
        """grad_x log p(x), shaped like ``x``."""
        flat = self._flatten(x)
        one = torch.ones((), dtype=torch.float64, device=x.device)
        return self._log_prob_and_score(flat, one, 0 * one, want_score=True)[1].reshape(x.shape).to(x.dtype)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """``n`` independent samples, shape ``[n, *event_shape]``: pick k ~ w, then mu_k + U_k lambda_k^(1/2) z."""
        n = check_steps("n", n)
        if generator is not None and device is None:
            device = generator.device
        device = torch.device(device) if device is not None else torch.device("cpu")
        log_w, mu, lam, U = self._params(device)
        k = torch.multinomial(log_w.exp(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=torch.float64)
        x = mu[k] + torch.einsum("nde,ne->nd", U[k], lam[k].sqrt() * z)
        return x.reshape((n,) + self.event_shape).to(dtype)

    # -- marginals of a linear SDE --------------------------------------------------------------
    def marginal(self, sde: LinearSDE, t: float) -> GaussianMixture:
        """The exact marginal p_t = sum_k w_k N(alpha(t) mu_k, alpha(t)^2 Sigma_k + sigma(t)^2 I)."""
        _check_linear(sde)
        t = check_real("t", t)
        check_time(t, sde.T)
        tt = torch.tensor(t, dtype=torch.float64)
        a, s = sde.alpha(tt), sde.sigma(tt)
        cov = a**2 * self.covariances + s**2 * torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(self.weights, a * self.means, cov, event_shape=self.event_shape)

    def _coefficients(self, sde: LinearSDE, t: float | Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        check_time(t, sde.T, x.shape[0])
        tt = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        return sde.alpha(tt), sde.sigma(tt)

    def score(self, sde: LinearSDE) -> ScoreFn:
        """The exact score function ``(t, x) -> grad_x log p_t(x)`` of the marginals under ``sde``.

        ``t`` is a float or a ``[B]`` tensor (a different time per sample); the result is shaped
        and typed like ``x``.
        """
        _check_linear(sde)

        def score_fn(t: float | Tensor, x: Tensor) -> Tensor:
            flat = self._flatten(x)
            a, s = self._coefficients(sde, t, x)
            _, g = self._log_prob_and_score(flat, a, s, want_score=True)
            return g.reshape(x.shape).to(x.dtype)

        return score_fn

    def marginal_log_prob(self, sde: LinearSDE) -> Callable[[float | Tensor, Tensor], Tensor]:
        """The exact ``(t, x) -> log p_t(x)`` of the marginals under ``sde``, shape ``[B]``."""
        _check_linear(sde)

        def log_prob_fn(t: float | Tensor, x: Tensor) -> Tensor:
            flat = self._flatten(x)
            a, s = self._coefficients(sde, t, x)
            return self._log_prob_and_score(flat, a, s, want_score=False)[0].to(x.dtype)

        return log_prob_fn


def _check_linear(sde: object) -> None:
    check_linear_sde(sde, "the exact marginals of a GaussianMixture (sde=...)")
