"""Observations of the data, y = A x_0 + s n: what a sampler conditions on, and what the oracle conditions.

* :class:`Inpainting` -- the entries under a mask;
* :class:`Colorization` -- the mean over colour channels;
* :class:`LinearObservation` -- any matrix A;

all subclasses of :class:`Observation`, which holds them in orthonormal coordinates. Pass one to a
sampler (``sdegen.sample(..., observation=obs)``) to condition by projection, to
:class:`sdegen.composition.ReconstructionGuidance` to condition by guidance, and to
:meth:`sdegen.analytic.GaussianMixture.condition` for the exact conditional.
"""

from sdegen.observations.base import Observation
from sdegen.observations.colorization import Colorization
from sdegen.observations.inpainting import Inpainting
from sdegen.observations.linear import LinearObservation

__all__ = ["Observation", "Inpainting", "Colorization", "LinearObservation"]
