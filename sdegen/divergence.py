"""Divergence estimators: div_x f(x) = tr(df/dx) per sample, from vector-Jacobian products.

The instantaneous change of variables needs the divergence of the probability-flow drift at every
solver evaluation (Chen et al. 2018, "Neural ordinary differential equations", theorem 1). Two
estimators share one interface:

* :class:`Hutchinson`: tr(A) = E[v^T A v] for any probe v with E[v v^T] = I (Hutchinson 1989;
  FFJORD, Grathwohl et al. 2019, eq. 7). One vector-Jacobian product (VJP) per probe.
* :class:`ExactTrace`: tr(A) = sum_i e_i^T A e_i over the D basis vectors, as one VJP vectorized
  over the basis (``torch.autograd.grad(..., is_grads_batched=True)``, i.e. ``torch.vmap`` over the
  backward pass). D times the work and memory of one VJP, so it is meant for small D.

Both draw their vectors once per ODE solve (:meth:`DivergenceEstimator.draw`) and reuse them at
every evaluation: a probe redrawn per evaluation makes the vector field random, which breaks the
adaptive step-size control (score_sde_pytorch issue #10) and the meaning of the integral.

Both assume that samples do not interact, i.e. ``f(x)[b]`` depends on ``x[b]`` only (true for
score networks without batch statistics): the VJP of a probe batch then holds every sample's own
``v_b^T J_b`` at once.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import check_steps
from sdegen.random import RandomSource

__all__ = ["DivergenceEstimator", "Hutchinson", "ExactTrace"]


class DivergenceEstimator(abc.ABC):
    """Estimates tr(d out_b / d x_b) for every sample b from vector-Jacobian products.

    Subclasses declare ``exact`` (True when the estimate has no probe variance) and implement
    :meth:`draw` (the fixed vectors of one solve) and :meth:`trace`.
    """

    exact: ClassVar[bool]

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` if the estimator cannot be used on data shaped like ``x`` ``[B, ...]``.

        Cheap and free of side effects, so callers run it before drawing or computing anything.
        """
        return None  # usable at any size unless a subclass says otherwise

    @abc.abstractmethod
    def draw(self, x: Tensor, generator: RandomSource = None) -> Tensor:
        """The vectors held fixed for one solve at data ``x`` of shape ``[B, ...]``: ``[K, B, ...]``.

        Raises ``ValueError`` if the estimator cannot be used at this size (see :meth:`check`).
        """

    @abc.abstractmethod
    def trace(self, out: Tensor, x: Tensor, vectors: Tensor, *, create_graph: bool = False) -> Tensor:
        """tr(d out_b / d x_b) for every sample, shape ``[B]``.

        ``out`` must have been computed from ``x`` with autograd recording; ``vectors`` come from
        :meth:`draw`. With ``create_graph=True`` the result is itself differentiable (and the graph
        of ``out`` is kept).
        """


def _vjp(
    out: Tensor, x: Tensor, v: Tensor, *, retain_graph: bool, create_graph: bool, batched: bool
) -> Tensor:
    (g,) = torch.autograd.grad(
        out,
        x,
        v,
        retain_graph=retain_graph,
        create_graph=create_graph,
        allow_unused=True,
        is_grads_batched=batched,
    )
    # allow_unused: a function that ignores x (a constant score) has divergence 0, not an error.
    return torch.zeros_like(v) if g is None else g


class Hutchinson(DivergenceEstimator):
    """Hutchinson's unbiased trace estimator, averaged over ``n_probes`` probes per sample.

    tr(A) ~ (1/K) sum_k v_k^T A v_k with i.i.d. probes v_k, E[v v^T] = I (Hutchinson 1989, "A
    stochastic estimator of the trace of the influence matrix"; used for FFJORD likelihoods by
    Grathwohl et al. 2019, eq. 7, and by Song et al. 2021, appendix D.2).

    Args:
        probe: ``"rademacher"`` (entries +-1; variance 2 sum_{i != j} A_ij^2 for symmetric A, the
            minimum over probe distributions) or ``"gaussian"`` (N(0, I); variance 2 ||A||_F^2).
        n_probes: number of probes K averaged per sample; the standard error shrinks like
            1/sqrt(K) at the cost of one more VJP per probe per evaluation.
    """

    exact = False
    _PROBES = ("rademacher", "gaussian")

    def __init__(self, probe: str = "rademacher", n_probes: int = 1) -> None:
        if probe not in self._PROBES:
            raise ValueError(f"probe must be one of {self._PROBES}; got probe={probe!r}")
        self.probe = probe
        self.n_probes = check_steps("n_probes", n_probes)

    def __repr__(self) -> str:
        return f"Hutchinson(probe={self.probe!r}, n_probes={self.n_probes})"

    def draw(self, x: Tensor, generator: RandomSource = None) -> Tensor:
        # The one place where probes are drawn: the likelihood, sliced and implicit score matching
        # all take theirs from here.
        shape = (self.n_probes, *x.shape)
        if self.probe == "gaussian":
            return random.randn(shape, generator, device=x.device, dtype=x.dtype, batch_dim=1)
        v = random.randint(0, 2, shape, generator, device=x.device, dtype=x.dtype, batch_dim=1)
        return v.mul_(2).sub_(1)

    def trace(self, out: Tensor, x: Tensor, vectors: Tensor, *, create_graph: bool = False) -> Tensor:
        n = vectors.shape[0]
        estimate = None
        # A loop of VJPs on the retained graph is faster than one batched VJP: measured on 2 CPU
        # cores, each extra probe cost ~1.2-1.3x a forward pass this way, less than with
        # autograd.grad(is_grads_batched=True) or torch.func.vmap.
        for k in range(n):
            v = vectors[k]
            g = _vjp(
                out, x, v, retain_graph=create_graph or k < n - 1, create_graph=create_graph, batched=False
            )
            term = (g * v).flatten(1).sum(1)
            estimate = term if estimate is None else estimate + term
        return estimate if n == 1 else estimate / n


class ExactTrace(DivergenceEstimator):
    """The exact divergence sum_i e_i^T (d out / d x) e_i over the D = prod(x.shape[1:]) basis vectors.

    Computed as one VJP vectorized over the basis (``is_grads_batched=True``, a ``vmap`` over the
    backward pass): D times the work of one VJP and D times its memory, plus a ``[D, B, D]``
    result. It therefore refuses D > ``max_dim`` (default 128); raise ``max_dim`` to accept the cost,
    or use :class:`Hutchinson` for images.
    """

    exact = True

    def __init__(self, max_dim: int = 128) -> None:
        self.max_dim = check_steps("max_dim", max_dim)

    def __repr__(self) -> str:
        return f"ExactTrace(max_dim={self.max_dim})"

    def check(self, x: Tensor) -> None:
        D = math.prod(x.shape[1:])
        if D > self.max_dim:
            raise ValueError(
                f"ExactTrace costs one vector-Jacobian product per dimension and D times the memory of "
                f"one; got D = {D} > max_dim = {self.max_dim}. Use Hutchinson() for high dimensions, or "
                f"ExactTrace(max_dim={D}) to accept the cost."
            )

    def draw(self, x: Tensor, generator: RandomSource = None) -> Tensor:
        self.check(x)
        B, event = x.shape[0], tuple(x.shape[1:])
        D = math.prod(event)
        basis = torch.eye(D, device=x.device, dtype=x.dtype).reshape(D, 1, *event)
        return basis.expand(D, B, *event)

    def trace(self, out: Tensor, x: Tensor, vectors: Tensor, *, create_graph: bool = False) -> Tensor:
        D, B = vectors.shape[0], vectors.shape[1]
        rows = _vjp(out, x, vectors, retain_graph=create_graph, create_graph=create_graph, batched=True)
        # rows[i, b] = e_i^T J_b, so the diagonal entries are rows[i, b, i].
        return rows.reshape(D, B, D).diagonal(dim1=0, dim2=2).sum(-1)
