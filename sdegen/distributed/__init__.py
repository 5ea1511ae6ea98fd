"""Beyond one process: torchrun launches, fixed chunks of evaluation work, and agreement on failures.

* :func:`init`, :func:`current`, :class:`World`: which process this is among how many, and the few
  collectives sdegen needs (sums, gathers, agreeing on a failure).
* :func:`fixed_chunks`, :func:`map_chunks`: evaluation (likelihoods, samples) split across processes
  by the examples' global indices, with results that do not depend on the number of processes.

Training is data-parallel inside :class:`~sdegen.training.Trainer`, which uses these; per-example
random numbers come from :mod:`sdegen.random`.
"""

from sdegen.distributed.chunks import fixed_chunks, map_chunks
from sdegen.distributed.world import RankFailed, World, current, init, launched

__all__ = ["World", "init", "current", "launched", "RankFailed", "fixed_chunks", "map_chunks"]
