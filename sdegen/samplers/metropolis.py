"""Metropolis-adjusted correctors: MCMC steps that leave exp(log_density(t_i, .)) exactly invariant."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from sdegen._checks import check_positive, check_score_fn, check_steps
from sdegen.samplers.correctors import Corrector, Noise
from sdegen.sde.base import ScoreFn
from sdegen.sde.coefficients import CoefficientGrid

__all__ = ["MALACorrector", "HMCCorrector"]

LogDensityFn = Callable[[Tensor, Tensor], Tensor]


class _MetropolisCorrector(Corrector):
    """What MALA and HMC share: the energy, its checks, and the accept/reject of one proposal."""

    requires_linear_sde = True

    def __init__(self, log_density: LogDensityFn, snr: float, n_steps: int) -> None:
        check_score_fn(
            log_density, "log_density", "(t, x) -> [B] (log of the target density at time t up to a constant)"
        )
        self.log_density = log_density
        self.snr = check_positive("snr", snr)
        self.n_steps = check_steps("n_steps", n_steps)

    def _energy(self, t: Tensor, x: Tensor) -> Tensor:
        out = self.log_density(t, x)
        if not torch.is_tensor(out) or out.shape != (x.shape[0],):
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"log_density must return shape [B] = [{x.shape[0]}]; got {got}")
        return out.to(x.dtype)

    @staticmethod
    def _accept(log_ratio: Tensor, noise: Noise) -> Tensor:
        """Per-sample acceptance: log U < log_ratio with U uniform, U = Phi(z) for a normal z of the stream."""
        z = noise().reshape(log_ratio.shape[0], -1)[:, 0]
        return torch.special.log_ndtr(z) < log_ratio

    @staticmethod
    def _where(accept: Tensor, new: Tensor, old: Tensor) -> Tensor:
        return torch.where(accept.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

    def _step_size(self, grid: CoefficientGrid, i: int) -> float:
        # The step of AnnealedLangevinCorrector: eps = 2 alpha_i (snr sigma(t_i))^2.
        return 2.0 * self._langevin_alpha(grid, i) * (self.snr * grid.sigma[i]) ** 2


class MALACorrector(_MetropolisCorrector):
    """The Metropolis-adjusted Langevin algorithm at t_i (Roberts and Tweedie 1996), per sample.

    With energy E(x) = log_density(t_i, x), s = score(t_i, x) and step eps as in
    :class:`AnnealedLangevinCorrector` (eps = 2 alpha_i (snr sigma(t_i))^2), each of ``n_steps``
    steps proposes x' = x + eps s(x) + sqrt(2 eps) z and accepts it with probability

        min(1, exp(E(x') - E(x) + log q(x | x') - log q(x' | x))),   log q(b | a) = -|b - a - eps s(a)|^2 / (4 eps),

    so p_{t_i} propto exp(E) is left exactly invariant whatever the step (the unadjusted Langevin
    step has a bias of order eps). The score only shapes the proposal: any ``score`` gives a valid
    chain for the density exp(E). Du et al. (2023, sec. 4) show such corrections are needed to
    sample a composition of diffusion models (:class:`~sdegen.composition.ProductOfExperts`).

    Cost per time step: ``n_steps + 1`` score evaluations (counted in ``nfe``) and as many
    log-density evaluations (not counted).

    Args:
        log_density: ``(t [B], x) -> [B]``, log of the target at time t up to a constant in x
            (e.g. :meth:`ProductOfExperts.log_density`, or a mixture's ``marginal_log_prob(sde)``).
        snr: sets the step size, as in :class:`AnnealedLangevinCorrector`.
        n_steps: Metropolis-Hastings steps per time step.
    """

    def __init__(self, log_density: LogDensityFn, snr: float = 0.16, n_steps: int = 1) -> None:
        super().__init__(log_density, snr, n_steps)

    def __repr__(self) -> str:
        return f"MALACorrector(snr={self.snr:g}, n_steps={self.n_steps})"

    @property
    def nfe_per_step(self) -> int:
        return self.n_steps + 1

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, noise: Noise) -> Tensor:
        eps = self._step_size(grid, i)
        t = grid.batch_time(i, x)
        s, e = score(t, x), self._energy(t, x)
        for _ in range(self.n_steps):
            mean = torch.add(x, s, alpha=eps)
            proposal = torch.add(mean, noise(), alpha=math.sqrt(2.0 * eps))
            s_new, e_new = score(t, proposal), self._energy(t, proposal)
            forward = _sq_norm(proposal - mean)
            backward = _sq_norm(x - torch.add(proposal, s_new, alpha=eps))
            accept = self._accept(e_new - e + (forward - backward) / (4.0 * eps), noise)
            x, s = self._where(accept, proposal, x), self._where(accept, s_new, s)
            e = torch.where(accept, e_new, e)
        return x


class HMCCorrector(_MetropolisCorrector):
    """Hamiltonian Monte Carlo at t_i (Duane et al. 1987; Neal 2011, "MCMC using Hamiltonian dynamics").

    Each of ``n_steps`` iterations draws a momentum p ~ N(0, I), runs ``leapfrog_steps`` leapfrog
    steps of size h = sqrt(2 eps) (eps as in :class:`MALACorrector`, so one leapfrog step is MALA's
    proposal) with the force ``score(t_i, .)``, and accepts the end point with probability
    min(1, exp(H(x, p) - H(x', p'))), H = -E(x) + |p|^2 / 2. Leapfrog with any position-dependent
    force is volume-preserving and reversible, so the chain leaves exp(E) exactly invariant.

    Cost per time step: ``n_steps * leapfrog_steps + 1`` score evaluations (counted) and
    ``n_steps + 1`` log-density evaluations (not counted).

    Args:
        log_density: ``(t [B], x) -> [B]`` as for :class:`MALACorrector`.
        snr: sets the step size.
        n_steps: HMC iterations per time step.
        leapfrog_steps: L, leapfrog steps per iteration.
    """

    def __init__(
        self, log_density: LogDensityFn, snr: float = 0.16, n_steps: int = 1, leapfrog_steps: int = 5
    ) -> None:
        super().__init__(log_density, snr, n_steps)
        self.leapfrog_steps = check_steps("leapfrog_steps", leapfrog_steps)

    def __repr__(self) -> str:
        return f"HMCCorrector(snr={self.snr:g}, n_steps={self.n_steps}, leapfrog_steps={self.leapfrog_steps})"

    @property
    def nfe_per_step(self) -> int:
        return self.n_steps * self.leapfrog_steps + 1

    def update(self, grid: CoefficientGrid, i: int, x: Tensor, score: ScoreFn, noise: Noise) -> Tensor:
        h = math.sqrt(2.0 * self._step_size(grid, i))
        t = grid.batch_time(i, x)
        s, e = score(t, x), self._energy(t, x)
        for _ in range(self.n_steps):
            p = noise().clone()
            kinetic = 0.5 * _sq_norm(p)
            x_new, s_new = x, s
            for _ in range(self.leapfrog_steps):
                p = torch.add(p, s_new, alpha=0.5 * h)
                x_new = torch.add(x_new, p, alpha=h)
                s_new = score(t, x_new)
                p = torch.add(p, s_new, alpha=0.5 * h)
            e_new = self._energy(t, x_new)
            accept = self._accept(e_new - e + kinetic - 0.5 * _sq_norm(p), noise)
            x, s = self._where(accept, x_new, x), self._where(accept, s_new, s)
            e = torch.where(accept, e_new, e)
        return x


def _sq_norm(v: Tensor) -> Tensor:
    return v.reshape(v.shape[0], -1).pow(2).sum(dim=1)
