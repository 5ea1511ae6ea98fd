"""Hypothesis strategies for SDEs, times, Gaussian-mixture oracles, data shapes and batches.

Every strategy draws from ranges where the objects are well conditioned, and shrinks towards the
defaults of Song et al. (2021), so a failing property reports a readable counterexample such as
``VPSDE(beta_min=0.1, beta_max=20, T=1)`` and ``t=0.5``.

Requires hypothesis (``pip install sdegen[test]``); ``import sdegen`` never imports it.
"""

from __future__ import annotations

import math

try:
    from hypothesis import strategies as st
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sdegen.testing.strategies needs hypothesis; install it with `pip install sdegen[test]`"
    ) from e

import torch

from sdegen.analytic import GaussianMixture
from sdegen.sde import EDMVESDE, SDE, VESDE, VPSDE, CosineVPSDE, DiscreteVPSDE, LinearSDE, SubVPSDE

__all__ = [
    "vp_sdes",
    "subvp_sdes",
    "ve_sdes",
    "cosine_vp_sdes",
    "edm_ve_sdes",
    "discrete_vp_sdes",
    "linear_sdes",
    "times",
    "gaussian_mixtures",
    "data_shapes",
    "batches",
]


def _beta_pairs() -> st.SearchStrategy[tuple[float, float]]:
    # Shrinks to (0.1, 20.0): the first listed value of a sampled_from/one_of is the simplest.
    return st.one_of(
        st.just((0.1, 20.0)),
        st.tuples(st.floats(0.0, 2.0), st.floats(1.0, 30.0)).map(lambda p: (p[0], p[0] + p[1])),
    )


def _terminal_times() -> st.SearchStrategy[float]:
    return st.one_of(st.just(1.0), st.floats(0.25, 4.0))


def vp_sdes() -> st.SearchStrategy[VPSDE]:
    """VP SDEs with 0 <= beta_min < beta_max <= 32 and T in [0.25, 4]."""
    return st.builds(lambda b, T: VPSDE(b[0], b[1], T=T), _beta_pairs(), _terminal_times())


def subvp_sdes() -> st.SearchStrategy[SubVPSDE]:
    """Sub-VP SDEs with the same parameter ranges as :func:`vp_sdes`."""
    return st.builds(lambda b, T: SubVPSDE(b[0], b[1], T=T), _beta_pairs(), _terminal_times())


def ve_sdes() -> st.SearchStrategy[VESDE]:
    """VE SDEs with sigma_min in [1e-3, 1] and sigma_max / sigma_min in [2, 1e4]."""
    pairs = st.one_of(
        st.just((0.01, 50.0)),
        st.tuples(st.floats(1e-3, 1.0), st.floats(math.log(2.0), math.log(1e4))).map(
            lambda p: (p[0], p[0] * math.exp(p[1]))
        ),
    )
    return st.builds(lambda s, T: VESDE(s[0], s[1], T=T), pairs, _terminal_times())


def cosine_vp_sdes() -> st.SearchStrategy[CosineVPSDE]:
    """Cosine VP SDEs with s in [1e-3, 0.1], T in [0.25, 4] and beta_max T in [50, 5000] (or the default)."""
    return st.builds(
        lambda s, b, T: CosineVPSDE(s, None if b is None else b / T, T=T),
        st.one_of(st.just(0.008), st.floats(1e-3, 0.1)),
        st.one_of(st.none(), st.floats(50.0, 5000.0)),
        _terminal_times(),
    )


def edm_ve_sdes() -> st.SearchStrategy[EDMVESDE]:
    """EDM's sigma(t) = t VE SDEs with sigma_max = T in [1, 200]: EDM's 80, 10, or any."""
    # Two preset values, not one: shrinking prefers the shortest choice sequence, and a single preset
    # would make EDMVESDE(80) shorter than VPSDE(0.1, 20), the counterexample linear_sdes() shrinks to.
    return st.builds(EDMVESDE, st.one_of(st.sampled_from([80.0, 10.0]), st.floats(1.0, 200.0)))


def discrete_vp_sdes() -> st.SearchStrategy[DiscreteVPSDE]:
    """Discrete tables of diffusers' beta schedules with N in {1000, 100}: linear and scaled_linear
    with 0 < beta_start < beta_end and N beta_end in [1, 30] (the VP SDE's range of rates), or
    squaredcos_cap_v2 (whose last beta is clipped at 0.999)."""

    def build(name: str, N: int, start: float, spread: float) -> DiscreteVPSDE:
        if name == "squaredcos_cap_v2":
            return DiscreteVPSDE.from_beta_schedule(name, N)
        return DiscreteVPSDE.from_beta_schedule(name, N, start / N, (start + spread) / N)

    return st.builds(
        build,
        st.sampled_from(["linear", "scaled_linear", "squaredcos_cap_v2"]),
        st.sampled_from([1000, 100]),
        st.one_of(st.just(0.1), st.floats(0.01, 2.0)),
        st.one_of(st.just(19.9), st.floats(1.0, 28.0)),
    )


def linear_sdes() -> st.SearchStrategy[LinearSDE]:
    """Any built-in linear SDE: the three of Song et al. (2021), the cosine VP, EDM's VE and discrete
    VP tables."""
    return st.one_of(vp_sdes(), subvp_sdes(), ve_sdes(), cosine_vp_sdes(), edm_ve_sdes(), discrete_vp_sdes())


def times(sde: SDE, eps: float = 0.0) -> st.SearchStrategy[float]:
    """Times in [eps, T] for ``sde``, including both end points."""
    return st.one_of(st.sampled_from([sde.T, eps]), st.floats(eps, sde.T))


@st.composite
def gaussian_mixtures(
    draw: st.DrawFn,
    dim: int | st.SearchStrategy[int] | None = None,
    max_components: int = 4,
    event_shape: tuple[int, ...] | None = None,
) -> GaussianMixture:
    """Well-conditioned Gaussian mixtures: weights on the simplex bounded away from 0, means in
    [-3, 3]^d, covariances with eigenvalues in [0.05, 2] and random orientation.

    ``dim`` may be fixed, a strategy, or None (drawn from 1..4).
    """
    if dim is None:
        dim = st.integers(1, 4)
    d = draw(dim) if isinstance(dim, st.SearchStrategy) else int(dim)
    K = draw(st.integers(1, max_components))
    raw_w = draw(st.lists(st.floats(0.2, 1.0), min_size=K, max_size=K))
    w = torch.tensor(raw_w, dtype=torch.float64)
    w = w / w.sum()
    means = torch.tensor(
        draw(st.lists(st.floats(-3.0, 3.0), min_size=K * d, max_size=K * d)), dtype=torch.float64
    ).reshape(K, d)
    evals = torch.tensor(
        draw(st.lists(st.floats(0.05, 2.0), min_size=K * d, max_size=K * d)), dtype=torch.float64
    ).reshape(K, d)
    # A random orthogonal basis per component, from a seed hypothesis controls (and shrinks to 0).
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(K, d, d, generator=g, dtype=torch.float64))
    cov = q @ torch.diag_embed(evals) @ q.transpose(-1, -2)
    return GaussianMixture(w, means, 0.5 * (cov + cov.transpose(-1, -2)), event_shape=event_shape)


def data_shapes(max_batch: int = 8) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes ``[B]``, ``[B, d]`` and ``[B, C, H, W]`` with small sizes."""
    B = st.integers(1, max_batch)
    return st.one_of(
        st.tuples(B, st.integers(1, 4)),
        st.tuples(B),
        st.tuples(B, st.integers(1, 3), st.integers(1, 5), st.integers(1, 5)),
    )


def batches(
    shape: tuple[int, ...] | None = None,
    dtype: torch.dtype = torch.float64,
    scale: float = 3.0,
) -> st.SearchStrategy[torch.Tensor]:
    """States of the given (or a drawn) shape with entries in [-scale, scale]."""
    shapes = st.just(shape) if shape is not None else data_shapes()

    @st.composite
    def _draw(draw: st.DrawFn) -> torch.Tensor:
        s = draw(shapes)
        seed = draw(st.integers(0, 2**16))
        g = torch.Generator().manual_seed(seed)
        return (2 * torch.rand(s, generator=g, dtype=torch.float64) - 1).mul(scale).to(dtype)

    return _draw()
