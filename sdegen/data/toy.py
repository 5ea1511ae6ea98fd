"""Two-dimensional distributions for quick experiments, some with a known density.

Every distribution draws with ``sample(n, generator=...)`` from torch's random streams only, so a
seeded generator gives the same points on every run. ``has_density`` says whether ``log_prob``
is available: the Gaussian mixtures and the checkerboard have closed-form densities, against which
a model's exact likelihood can be compared; the moons and the swiss roll do not.

Some carry class labels (``n_classes`` is not None): each component of a Gaussian-mixture set is a
class (:func:`ring`, :func:`grid`), and each moon of :class:`Moons`. ``sample_labelled`` draws
points with their labels from the same random stream as ``sample``, so the points are the same.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import torch
from torch import Tensor

from sdegen._checks import check_batch_shape, check_positive, check_real, check_steps, check_whole_batch_draw
from sdegen.analytic import GaussianMixture

__all__ = [
    "ToyDistribution",
    "GaussianMixtureData",
    "ring",
    "grid",
    "Moons",
    "SwissRoll",
    "Checkerboard",
]


class ToyDistribution(abc.ABC):
    """A distribution on R^2 that can be sampled with a generator, and perhaps evaluated and labelled."""

    has_density: ClassVar[bool] = False
    event_shape: ClassVar[tuple[int, ...]] = (2,)

    @property
    def n_classes(self) -> int | None:
        """The number of classes of a labelled distribution (labels 0..n_classes-1), else None."""
        return None

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` independent samples, shape ``[n, 2]``."""
        n, device = check_whole_batch_draw(n, generator, device)
        return self._sample(n, generator, device).to(dtype)

    @abc.abstractmethod
    def _sample(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """``n`` samples in float64 on ``device``."""

    def sample_labelled(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """``n`` samples ``[n, 2]`` and their class labels (int64 ``[n]``), for a labelled distribution.

        The points are those ``sample`` draws from an equally seeded generator.
        """
        if self.n_classes is None:
            raise TypeError(
                f"{self!r} has no class labels; the Gaussian mixtures (ring, grid: a class per "
                f"component) and the moons are labelled"
            )
        n, device = check_whole_batch_draw(n, generator, device)
        x, y = self._sample_labelled(n, generator, device)
        return x.to(dtype), y

    def _sample_labelled(
        self, n: int, generator: torch.Generator | None, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """``n`` samples in float64 and their labels, on ``device`` (labelled distributions)."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x), shape ``[B]``, where ``has_density`` is true."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form density (has_density = False); use a Gaussian "
            f"mixture (ring, grid) or the checkerboard to compare likelihoods with the truth"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GaussianMixtureData(ToyDistribution):
    """A 2-D :class:`~sdegen.analytic.GaussianMixture` as a data set; ``mixture`` is the oracle.

    A labelled mixture (``GaussianMixture(..., labels=...)``) makes a labelled data set whose
    classes are the mixture's: p(x | y) is ``mixture.class_conditional(y)`` and the noisy
    classifier p_t(y | x) is ``mixture.classifier(sde)``, exactly.
    """

    has_density = True

    def __init__(self, mixture: GaussianMixture) -> None:
        if not isinstance(mixture, GaussianMixture) or mixture.event_shape != (2,):
            raise TypeError(f"mixture must be a GaussianMixture in R^2; got {mixture!r}")
        self.mixture = mixture

    def __repr__(self) -> str:
        return f"GaussianMixtureData({self.mixture!r})"

    @property
    def n_classes(self) -> int | None:
        return self.mixture.n_classes

    def _sample(self, n, generator, device):
        return self.mixture.sample(n, generator=generator, device=device)

    def _sample_labelled(self, n, generator, device):
        return self.mixture.sample_labelled(n, generator=generator, device=device)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.mixture.log_prob(x)


def _component_classes(mixture: GaussianMixture) -> GaussianMixture:
    """``mixture`` with each component its own class, labels 0..K-1 in the components' order."""
    labels = torch.arange(mixture.n_components)
    return GaussianMixture(mixture.weights, mixture.means, mixture.covariances, labels=labels)


def ring(n: int = 8, radius: float = 4.0, std: float = 0.5) -> GaussianMixtureData:
    """``n`` equal Gaussians N(mu_k, std^2 I) on a circle of ``radius`` (the "8 Gaussians" set).

    Component k, at angle 2 pi k / n, is class k.
    """
    return GaussianMixtureData(_component_classes(GaussianMixture.ring(n, radius, std)))


def grid(n: int = 5, spacing: float = 2.0, std: float = 0.3) -> GaussianMixtureData:
    """``n x n`` equal Gaussians on a centred square grid (the "25 Gaussians" set).

    Each component is a class, numbered as the rows of ``torch.cartesian_prod`` of the ticks.
    """
    return GaussianMixtureData(_component_classes(GaussianMixture.grid(n, spacing, std)))


class Moons(ToyDistribution):
    """Two interleaving half circles with Gaussian noise, scaled by 2 and centred.

    As scikit-learn's ``make_moons`` (outer arc (cos a, sin a), inner arc (1 - cos a, 1/2 - sin a),
    a ~ U[0, pi]), mapped by x -> 2 (x - (1/2, 1/4)) so the set spans about [-3, 3] x [-2, 2].
    Labelled as scikit-learn labels them: 0 for the outer moon, 1 for the inner one.
    """

    def __init__(self, noise: float = 0.1) -> None:
        self.noise = check_real("noise", noise)
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0; got noise={self.noise:.6g}")

    def __repr__(self) -> str:
        return f"Moons(noise={self.noise:g})"

    @property
    def n_classes(self) -> int:
        return 2

    def _sample(self, n, generator, device):
        return self._sample_labelled(n, generator, device)[0]

    def _sample_labelled(self, n, generator, device):
        kw = dict(generator=generator, device=device, dtype=torch.float64)
        a = math.pi * torch.rand(n, **kw)
        inner = torch.rand(n, **kw) < 0.5
        x = torch.where(inner, 1 - a.cos(), a.cos())
        y = torch.where(inner, 0.5 - a.sin(), a.sin())
        points = torch.stack([x, y], dim=1) + self.noise * torch.randn(n, 2, **kw)
        return 2 * (points - torch.tensor([0.5, 0.25], dtype=torch.float64, device=device)), inner.long()


class SwissRoll(ToyDistribution):
    """The 2-D swiss roll (r cos r, r sin r) / 3 with r ~ U[1.5 pi, 4.5 pi] and Gaussian noise.

    As scikit-learn's ``make_swiss_roll`` projected on its (x, z) plane, scaled to about [-4, 4]^2.
    """

    def __init__(self, noise: float = 0.25) -> None:
        self.noise = check_real("noise", noise)
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0; got noise={self.noise:.6g}")

    def __repr__(self) -> str:
        return f"SwissRoll(noise={self.noise:g})"

    def _sample(self, n, generator, device):
        kw = dict(generator=generator, device=device, dtype=torch.float64)
        r = 1.5 * math.pi * (1 + 2 * torch.rand(n, **kw))
        points = torch.stack([r * r.cos(), r * r.sin()], dim=1) / 3
        return points + self.noise * torch.randn(n, 2, **kw)


class Checkerboard(ToyDistribution):
    """The uniform density on the dark squares of a ``squares x squares`` board of side ``size``.

    p(x) = 2 / size^2 on the dark squares (those with floor(x_1 / w) + floor(x_2 / w) even,
    w = size / squares, on the board centred at 0) and 0 elsewhere, so log p = -inf off them.
    The default is the 4 x 4 board on [-4, 4]^2 of FFJORD (Grathwohl et al. 2019).
    """

    has_density = True

    def __init__(self, squares: int = 4, size: float = 8.0) -> None:
        self.squares = check_steps("squares", squares, minimum=2)
        if self.squares % 2:
            raise ValueError(f"squares must be even so that half the board is dark; got squares={squares}")
        self.size = check_positive("size", size)

    def __repr__(self) -> str:
        return f"Checkerboard(squares={self.squares}, size={self.size:g})"

    def _sample(self, n, generator, device):
        kw = dict(generator=generator, device=device)
        k = self.squares
        row = torch.randint(0, k, (n,), **kw)
        # A dark square in each row is column 2 j + (row mod 2), j uniform.
        col = 2 * torch.randint(0, k // 2, (n,), **kw) + row % 2
        cell = torch.stack([col, row], dim=1).to(torch.float64)
        u = torch.rand(n, 2, dtype=torch.float64, **kw)
        w = self.size / k
        return (cell + u) * w - self.size / 2

    def log_prob(self, x: Tensor) -> Tensor:
        check_batch_shape("x", x)
        if tuple(x.shape[1:]) != (2,):
            raise ValueError(f"x must have shape [B, 2]; got shape {tuple(x.shape)}")
        w = self.size / self.squares
        idx = torch.floor((x.double() + self.size / 2) / w)
        inside = ((idx >= 0) & (idx < self.squares)).all(dim=1)
        dark = idx.sum(dim=1).remainder(2) == 0
        log_p = torch.full((x.shape[0],), math.log(2 / self.size**2), dtype=torch.float64, device=x.device)
        return torch.where(inside & dark, log_p, torch.full_like(log_p, -math.inf)).to(x.dtype)
