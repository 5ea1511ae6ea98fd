"""The samplers the tests run, generated from the registry (sdegen.samplers.registry): a sampler
registered there is run by every test that takes "every sampler", with no list to update."""

from collections.abc import Callable, Mapping

from sdegen.samplers import Sampler
from sdegen.samplers.registry import SAMPLERS

#: Options that keep the tests fast (the test is about the loop, not the Langevin chain's length).
FAST_OPTIONS = {"n_steps_each": 2}


def registered(
    keep: Callable[[Sampler], bool] = lambda sampler: True,
    extra: Mapping[str, Callable[..., Sampler]] | None = None,
    steps: int | None = None,
) -> dict[str, Callable[..., Sampler]]:
    """``name -> make(**grid_arguments)`` for every registered sampler whose default instance
    passes ``keep``, then the ``extra`` variants (settings a registration does not cover).
    ``steps``: what ``make()`` without grid arguments builds on (default: each sampler's own)."""
    makers: dict[str, Callable[..., Sampler]] = {}
    for name, entry in SAMPLERS.items():
        options = {k: v for k, v in FAST_OPTIONS.items() if k in entry.options}
        if keep(entry.build(**options)):
            makers[name] = lambda entry=entry, options=options, **grid: entry.build(
                **options, **(grid or ({} if steps is None else {"steps": steps}))
            )
    return {**makers, **(extra or {})}


def takes_steps(sampler: Sampler) -> bool:
    """Steps through a grid of its own (not an adaptive solver)."""
    return sampler.grid is not None
