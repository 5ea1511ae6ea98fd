"""Gaussian mixtures: a closed-form density and score at every time t of any linear SDE.

For data p_0 = sum_k w_k N(mu_k, Sigma_k) and a transition kernel N(alpha(t) x0, sigma(t)^2 I), the
marginal at time t is again a mixture (Sarkka and Solin 2019, sec. 6.1):

    p_t = sum_k w_k N(alpha(t) mu_k, alpha(t)^2 Sigma_k + sigma(t)^2 I),

and its score is the posterior-weighted sum of the component scores,

    grad log p_t(x) = sum_k r_k(x) C_k(t)^{-1} (alpha(t) mu_k - x),   r_k = w_k N_k(x) / p_t(x).

With Sigma_k = U_k diag(lambda_k) U_k^T computed once, C_k(t) = U_k diag(alpha^2 lambda_k + sigma^2)
U_k^T, so both are exact and cost O(K d^2) per sample for a different t in every row.

Components may carry class labels. Then, with r_k(x) the posterior component probabilities of p_t,

    p_t(y | x) = sum_{k: label_k = y} r_k(x),       grad log p_t(x | y) = sum_k r_k(x | y) C_k^{-1} (alpha mu_k - x),

with r_k(x | y) the same probabilities among the components of class y: the exact noisy classifier
and the exact class-conditional score at every t. Conditioning on a linear Gaussian observation
(:meth:`GaussianMixture.condition`) and the product of two mixtures (:meth:`GaussianMixture.product`)
are again mixtures, in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sdegen._checks import (
    check_batch_shape,
    check_class_labels,
    check_linear_sde,
    check_positive,
    check_real,
    check_steps,
    check_time,
    check_whole_batch_draw,
)
from sdegen.sde.base import LinearSDE, ScoreFn

if TYPE_CHECKING:
    from sdegen.observations.base import Observation

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
        labels: ``[K]`` class labels of the components, ints in 0..C-1 with every class present,
            or None (unlabelled). A labelled mixture is the joint p(x, y) = sum_{k: label_k = y} w_k N_k(x).

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
        labels: Tensor | Sequence[int] | None = None,
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
        #: ``[K]`` int64 class labels of the components, or None
        self.labels = None if labels is None else _check_labels(labels, K)
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

    @property
    def n_classes(self) -> int | None:
        """C, the number of classes of a labelled mixture (labels 0..C-1), else None."""
        return None if self.labels is None else int(self.labels.max()) + 1

    def __repr__(self) -> str:
        classes = "" if self.labels is None else f", classes={self.n_classes}"
        return (
            f"GaussianMixture(K={self.n_components}, d={self.dim}, event_shape={self.event_shape}{classes})"
        )

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

    def _components(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """log w_k N(x; alpha mu_k, C_k) ``[B, K]`` and C_k^{-1} (x - alpha mu_k) in the eigenbasis of
        Sigma_k ``[B, K, d]``, for ``x`` [B, d] and float64 ``alpha``, ``sigma`` of shape [B] (or 0-d)."""
        log_w, mu, lam, _ = self._params(x.device)
        a = alpha.reshape(-1, 1, 1)
        s = sigma.reshape(-1, 1, 1)
        diff = x[:, None, :] - a * mu[None]  # [B, K, d]
        y = torch.einsum("bkd,kde->bke", diff, self._params(x.device)[3])  # eigenbasis coordinates
        var = a * a * lam[None] + s * s  # [B, K, d]
        log_comp = -0.5 * ((y * y / var).sum(-1) + var.log().sum(-1) + self.dim * math.log(2 * math.pi))
        return log_w[None] + log_comp, y / var

    def _score(self, log_joint: Tensor, whitened: Tensor, x: Tensor) -> Tensor:
        """sum_k r_k C_k^{-1} (alpha mu_k - x) with r = softmax(log_joint) over the components."""
        resp = torch.softmax(log_joint, dim=1)  # posterior component probabilities r_k(x)
        return -torch.einsum("bke,kde,bk->bd", whitened, self._params(x.device)[3], resp)

    def _log_prob_and_score(
        self, x: Tensor, alpha: Tensor, sigma: Tensor, want_score: bool
    ) -> tuple[Tensor, Tensor | None]:
        """log p and grad log p of sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I) at ``x`` [B, d]."""
        log_joint, whitened = self._components(x, alpha, sigma)
        log_p = torch.logsumexp(log_joint, dim=1)
        return log_p, (self._score(log_joint, whitened, x) if want_score else None)

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

    def responsibilities(self, x: Tensor) -> Tensor:
        """r_k(x) = w_k N_k(x) / p(x), the posterior probability of each component, float64 ``[B, K]``.

        Averaged over samples, an estimate of the component weights the samples were drawn with.
        """
        flat = self._flatten(x)
        one = torch.ones((), dtype=torch.float64, device=x.device)
        return torch.softmax(self._components(flat, one, 0 * one)[0], dim=1)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """``n`` independent samples, shape ``[n, *event_shape]``: pick k ~ w, then mu_k + U_k lambda_k^(1/2) z."""
        return self._draw(n, generator, device)[0].to(dtype)

    def sample_labelled(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> tuple[Tensor, Tensor]:
        """``n`` draws of the joint p(x, y) of a labelled mixture: samples ``[n, *event_shape]`` and
        their classes (int64 ``[n]``, the labels of the components drawn); the samples are those
        :meth:`sample` draws from an equally seeded generator."""
        labels = self._require_labels("sample_labelled(n)")
        x, k = self._draw(n, generator, device)
        return x.to(dtype), labels.to(k.device)[k]

    def _draw(
        self, n: int, generator: torch.Generator | None, device: torch.device | str | None
    ) -> tuple[Tensor, Tensor]:
        """Pick k ~ w, then mu_k + U_k lambda_k^(1/2) z: float64 samples and their components ``[n]``."""
        n, device = check_whole_batch_draw(n, generator, device)
        log_w, mu, lam, U = self._params(device)
        k = torch.multinomial(log_w.exp(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=torch.float64)
        x = mu[k] + torch.einsum("nde,ne->nd", U[k], lam[k].sqrt() * z)
        return x.reshape((n,) + self.event_shape), k

    # -- marginals of a linear SDE --------------------------------------------------------------
    def marginal(self, sde: LinearSDE, t: float) -> GaussianMixture:
        """The exact marginal p_t = sum_k w_k N(alpha(t) mu_k, alpha(t)^2 Sigma_k + sigma(t)^2 I)."""
        _check_linear(sde)
        t = check_real("t", t)
        check_time(t, sde.T)
        tt = torch.tensor(t, dtype=torch.float64)
        a, s = sde.alpha(tt), sde.sigma(tt)
        cov = a**2 * self.covariances + s**2 * torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(
            self.weights, a * self.means, cov, event_shape=self.event_shape, labels=self.labels
        )

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

        score_fn.sde = sde  # the SDE it is the score of, checked where it is used (sdegen._checks)
        return score_fn

    def marginal_log_prob(self, sde: LinearSDE) -> Callable[[float | Tensor, Tensor], Tensor]:
        """The exact ``(t, x) -> log p_t(x)`` of the marginals under ``sde``, shape ``[B]``."""
        _check_linear(sde)

        def log_prob_fn(t: float | Tensor, x: Tensor) -> Tensor:
            flat = self._flatten(x)
            a, s = self._coefficients(sde, t, x)
            return self._log_prob_and_score(flat, a, s, want_score=False)[0].to(x.dtype)

        log_prob_fn.sde = sde
        return log_prob_fn

    # -- classes --------------------------------------------------------------------------------
    def _require_labels(self, who: str) -> Tensor:
        if self.labels is None:
            raise ValueError(
                f"{who} needs a labelled mixture; build it with GaussianMixture(..., labels=[...]) "
                f"giving each component's class"
            )
        return self.labels

    def class_prior(self) -> Tensor:
        """p(y) = sum_{k: label_k = y} w_k, float64 ``[C]``."""
        labels = self._require_labels("class_prior()")
        return torch.zeros(self.n_classes, dtype=torch.float64).index_add_(0, labels, self.weights)

    def class_conditional(self, y: int) -> GaussianMixture:
        """p(x | y): the components of class ``y`` with their weights renormalised."""
        labels = self._require_labels("class_conditional(y)")
        y = int(check_class_labels("y", y, 1, self.n_classes)[0])
        keep = labels == y
        w = self.weights[keep]
        return GaussianMixture(
            w / w.sum(),
            self.means[keep],
            self.covariances[keep],
            event_shape=self.event_shape,
            labels=torch.zeros(int(keep.sum()), dtype=torch.int64),
        )

    def classifier(self, sde: LinearSDE) -> MixtureClassifier:
        """The exact noisy classifier ``(t, x) -> log p_t(y | x)``, ``[B, C]``, under ``sde``.

        log p_t(y | x) = logsumexp_{k: label_k = y} log w_k N_k,t(x) - log p_t(x) (Bayes' rule on the
        marginals): normalised log-probabilities, i.e. logits whose softmax is p_t(y | x). The
        result is differentiable in x, so grad_x log p_t(y | x) is exact by autograd; it has
        ``n_classes``, as :class:`~sdegen.composition.ClassifierGuidance` expects of a classifier.
        """
        self._require_labels("classifier(sde)")
        _check_linear(sde)
        return MixtureClassifier(self, sde)

    def conditional_score(self, sde: LinearSDE) -> MixtureConditionalScore:
        """The exact class-conditional score ``(t, x, y) -> grad_x log p_t(x | y)`` under ``sde``.

        ``y`` is an int or an int64 ``[B]`` tensor of labels in 0..C; the null label C
        (``.null_label``) gives the unconditional score grad_x log p_t(x). This is the conditional
        score model :class:`~sdegen.composition.ClassifierFreeGuidance` takes, made exact.
        """
        self._require_labels("conditional_score(sde)")
        _check_linear(sde)
        return MixtureConditionalScore(self, sde)

    def _class_log_joint(self, flat: Tensor, alpha: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log w_k N_k [B, K], whitened [B, K, d], log of the class indicator [K, C])."""
        log_joint, whitened = self._components(flat, alpha, sigma)
        onehot = torch.nn.functional.one_hot(self.labels, self.n_classes).to(flat.device, torch.float64)
        return log_joint, whitened, onehot.log()

    # -- conditionals and products --------------------------------------------------------------
    def condition(self, observation: Observation) -> GaussianMixture:
        """The exact conditional of the data given one linear Gaussian observation y = A x + s n.

        In the observation's orthonormal coordinates (u = V^T x + s_j n', see
        :class:`~sdegen.observations.Observation`) each component is updated by the Gaussian
        conditioning formulas (the Schur complement; Bishop 2006, eq. 2.113-2.117):

            S_k = V^T Sigma_k V + diag(s_j^2),   K_k = Sigma_k V S_k^{-1},
            mu_k | u = mu_k + K_k (u - V^T mu_k),   Sigma_k | u = Sigma_k - K_k V^T Sigma_k,
            w_k | u  propto  w_k N(u; V^T mu_k, S_k).

        The result is the law of the *free coordinates* F x (``observation.free_coordinates(x)``):
        for an exact observation the coordinates it leaves unobserved (the missing entries of an
        inpainting), for a noisy one all of x. Labels are kept.
        """
        from sdegen.observations.base import Observation

        if not isinstance(observation, Observation):
            raise TypeError(
                f"observation must be an sdegen.observations.Observation (Inpainting, Colorization, "
                f"LinearObservation); got {type(observation).__name__}"
            )
        if observation.dim != self.dim:
            raise ValueError(
                f"observation observes data of shape {observation.event_shape} ({observation.dim} "
                f"elements) but this mixture has d = {self.dim}"
            )
        V = observation.basis()  # [r, d]
        u = observation.observed_values()  # [r]
        s2 = observation.coordinate_std**2
        F = observation.free_basis()  # [f, d]
        SigV = self.covariances @ V.T  # [K, d, r]
        S = V @ SigV + torch.diag_embed(s2).expand(self.n_components, -1, -1)  # [K, r, r]
        L = torch.linalg.cholesky(S)
        resid = u[None] - self.means @ V.T  # [K, r]
        gain_t = torch.cholesky_solve(SigV.transpose(-1, -2), L)  # S^{-1} V^T Sigma: [K, r, d]
        means = self.means + torch.einsum("krd,kr->kd", gain_t, resid)
        covs = self.covariances - SigV @ gain_t
        white = torch.linalg.solve_triangular(L, resid[..., None], upper=False)[..., 0]
        log_norm = (
            -0.5 * (white * white).sum(-1)
            - L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
            - 0.5 * V.shape[0] * math.log(2 * math.pi)
        )
        weights = torch.softmax(self.weights.log() + log_norm, dim=0)
        free_cov = F @ covs @ F.T
        return GaussianMixture(
            weights,
            means @ F.T,
            0.5 * (free_cov + free_cov.transpose(-1, -2)),
            labels=self.labels,
        )

    def product(self, other: GaussianMixture) -> GaussianMixture:
        """The normalised product p(x) q(x) / Z of two mixtures on the same space, a mixture of K1 K2 components.

        N(mu_i, Sigma_i) N(m_j, T_j) = N(mu_i; m_j, Sigma_i + T_j) N(c_ij, C_ij) with
        C_ij = Sigma_i - Sigma_i (Sigma_i + T_j)^{-1} Sigma_i and
        c_ij = mu_i + Sigma_i (Sigma_i + T_j)^{-1} (m_j - mu_i) (Petersen and Pedersen, "The Matrix
        Cookbook", sec. 8.1.8), so the weights are w_i v_j N(mu_i; m_j, Sigma_i + T_j) / Z. This
        is the target of a product of experts (Hinton 2002; Du et al. 2023, sec. 3).
        """
        if not isinstance(other, GaussianMixture):
            raise TypeError(f"other must be a GaussianMixture; got {type(other).__name__}")
        if other.event_shape != self.event_shape:
            raise ValueError(
                f"the mixtures must live on the same space; got event shapes {self.event_shape} and "
                f"{other.event_shape}"
            )
        K1, K2, d = self.n_components, other.n_components, self.dim
        Sig = self.covariances[:, None].expand(K1, K2, d, d)
        total = Sig + other.covariances[None]
        L = torch.linalg.cholesky(total)
        diff = other.means[None] - self.means[:, None]  # m_j - mu_i: [K1, K2, d]
        solved = torch.cholesky_solve(diff[..., None], L)[..., 0]  # (Sigma_i + T_j)^{-1} (m_j - mu_i)
        means = self.means[:, None] + torch.einsum("ijde,ije->ijd", Sig, solved)
        covs = Sig - Sig @ torch.cholesky_solve(Sig, L)
        white = torch.linalg.solve_triangular(L, diff[..., None], upper=False)[..., 0]
        log_norm = (
            -0.5 * (white * white).sum(-1)
            - L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
            - 0.5 * d * math.log(2 * math.pi)
        )
        log_w = self.weights.log()[:, None] + other.weights.log()[None] + log_norm
        weights = torch.softmax(log_w.reshape(-1), dim=0)
        covs = covs.reshape(K1 * K2, d, d)
        return GaussianMixture(
            weights,
            means.reshape(K1 * K2, d),
            0.5 * (covs + covs.transpose(-1, -2)),
            event_shape=self.event_shape,
        )


class MixtureClassifier:
    """The exact noisy classifier of a labelled :class:`GaussianMixture`: ``(t, x) -> log p_t(y | x)`` ``[B, C]``."""

    def __init__(self, mixture: GaussianMixture, sde: LinearSDE) -> None:
        self.mixture, self.sde = mixture, sde
        #: C, the number of classes
        self.n_classes: int = mixture.n_classes

    def __repr__(self) -> str:
        return f"MixtureClassifier({self.mixture!r}, {self.sde!r})"

    def __call__(self, t: float | Tensor, x: Tensor) -> Tensor:
        m = self.mixture
        flat = m._flatten(x)
        a, s = m._coefficients(self.sde, t, x)
        log_joint, _, log_onehot = m._class_log_joint(flat, a, s)
        log_class = torch.logsumexp(log_joint[:, :, None] + log_onehot[None], dim=1)  # [B, C]
        return (log_class - torch.logsumexp(log_joint, dim=1, keepdim=True)).to(x.dtype)

    def log_prob_gradient(self, t: float | Tensor, x: Tensor, y: int | Tensor) -> Tensor:
        """grad_x log p_t(y | x) in closed form, shaped like ``x``.

        sum_k (r_k(x | y) - r_k(x)) C_k^{-1} (alpha mu_k - x): the class-conditional score minus the
        unconditional one (Bayes' rule), with the posterior component probabilities r.
        """
        m = self.mixture
        flat = m._flatten(x)
        labels = check_class_labels("y", y, x.shape[0], self.n_classes, device=x.device)
        a, s = m._coefficients(self.sde, t, x)
        log_joint, whitened, log_onehot = m._class_log_joint(flat, a, s)
        mask = log_onehot.T[labels]  # [B, K]: 0 for the components of class y_b, -inf otherwise
        out = m._score(log_joint + mask, whitened, flat) - m._score(log_joint, whitened, flat)
        return out.reshape(x.shape).to(x.dtype)


class MixtureConditionalScore:
    """The exact class-conditional score of a labelled :class:`GaussianMixture`: ``(t, x, y) -> grad log p_t(x | y)``.

    Labels run over 0..C-1; the null label C stands for "no label" and gives the unconditional score.
    """

    def __init__(self, mixture: GaussianMixture, sde: LinearSDE) -> None:
        self.mixture, self.sde = mixture, sde
        #: C, the number of classes
        self.n_classes: int = mixture.n_classes
        #: the label meaning "unconditional"
        self.null_label: int = mixture.n_classes

    def __repr__(self) -> str:
        return f"MixtureConditionalScore({self.mixture!r}, {self.sde!r})"

    def __call__(self, t: float | Tensor, x: Tensor, y: int | Tensor) -> Tensor:
        m = self.mixture
        flat = m._flatten(x)
        labels = check_class_labels("y", y, x.shape[0], self.n_classes + 1, device=x.device)
        a, s = m._coefficients(self.sde, t, x)
        log_joint, whitened, log_onehot = m._class_log_joint(flat, a, s)
        # log 1[label_k = y_b] [B, K], with every component allowed for the null label (row C)
        no_label = torch.zeros(1, m.n_components, dtype=torch.float64, device=x.device)
        mask = torch.cat([log_onehot.T, no_label])[labels]
        return m._score(log_joint + mask, whitened, flat).reshape(x.shape).to(x.dtype)


def _check_labels(labels: object, K: int) -> Tensor:
    """The component-to-class map: one class label >= 0 per component, using every class 0..C-1."""
    out = check_class_labels("labels", labels, None, None).cpu()
    if out.shape != (K,):
        raise ValueError(
            f"labels must have shape [K] = [{K}] (one per component); got shape {tuple(out.shape)}"
        )
    missing = sorted(set(range(int(out.max()) + 1)) - set(out.tolist()))
    if missing:
        raise ValueError(
            f"labels must use every class 0..C-1; class(es) {missing} have no component in labels={out.tolist()}"
        )
    return out


def _check_linear(sde: object) -> None:
    check_linear_sde(sde, "the exact marginals of a GaussianMixture (sde=...)")
