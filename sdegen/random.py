"""Random numbers: every draw that sdegen's samplers, likelihoods, losses and data make goes through here.

A draw takes ``generator=``, which is one of

* ``None``: torch's global generator;
* a ``torch.Generator``: the whole batch from one stream, the fastest, but what sample i receives
  depends on how many samples were drawn before it;
* a :class:`BatchGenerator`, which serves a batch row by row, so that what a row receives does not
  depend on how the batch was composed or split across processes:

  - :class:`PerSampleGenerator`: one stream per sample, seeded by that sample's own seed, like
    EDM's ``StackedRandomGenerator`` (Karras et al. 2022, ``generate.py``): sample i depends only
    on seed i, whatever batch or process it is drawn in;
  - :class:`GlobalBatchGenerator`: draws made for a whole (global) batch from one shared stream, of
    which each process, or each accumulated micro-batch, takes its rows (:meth:`~GlobalBatchGenerator.rows`):
    the draws of row i are those of the undivided batch, and the stream advances the same way
    whatever the split, so training is the same on one process or several.

The functions :func:`randn`, :func:`rand`, :func:`randint` and :func:`normal_` take any of these.
A draw's ``batch_dim`` names the dimension that indexes samples (0 by default; Hutchinson probes
``[K, B, ...]`` use 1).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "BatchGenerator",
    "PerSampleGenerator",
    "GlobalBatchGenerator",
    "RandomSource",
    "randn",
    "rand",
    "randint",
    "normal_",
    "derive_seed",
    "generator_device",
    "check_generator",
    "check_whole_batch_generator",
]


class BatchGenerator(abc.ABC):
    """A source of random numbers for a batch of ``batch_size`` samples, drawn row by row."""

    batch_size: int
    device: torch.device

    @abc.abstractmethod
    def _draw(self, draw: _Draw, shape: tuple[int, ...], batch_dim: int) -> Tensor:
        """The draw of ``shape`` (with ``shape[batch_dim] == batch_size``)."""

    def _check(self, shape: tuple[int, ...], batch_dim: int) -> None:
        if not -len(shape) <= batch_dim < len(shape) or shape[batch_dim] != self.batch_size:
            raise ValueError(
                f"a {type(self).__name__} for {self.batch_size} samples was asked for a draw of shape "
                f"{shape} whose batch dimension {batch_dim} is not {self.batch_size}; pass a generator "
                f"with one entry per sample"
            )


RandomSource = torch.Generator | BatchGenerator | None
"""What ``generator=`` accepts throughout sdegen."""


class _Draw:
    """One kind of draw: ``make(shape, generator)``, with a key that identifies it (kind, dtype, range)."""

    def __init__(self, key: tuple, make: Callable[[tuple[int, ...], torch.Generator | None], Tensor]):
        self.key, self.make = key, make


def _drawn(draw: _Draw, shape: Sequence[int], generator: RandomSource, batch_dim: int) -> Tensor:
    """``draw.make(shape, generator)`` from a ``torch.Generator`` (or the global one), or the same
    draw served row by row by a :class:`BatchGenerator`: the one path of :func:`randn`,
    :func:`rand` and :func:`randint`."""
    shape = tuple(int(s) for s in shape)
    if isinstance(generator, BatchGenerator):
        return generator._draw(draw, shape, batch_dim)
    return draw.make(shape, generator)


def randn(
    shape: Sequence[int],
    generator: RandomSource = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    batch_dim: int = 0,
) -> Tensor:
    """Standard normal numbers of ``shape``, as ``torch.randn``, from any :data:`RandomSource`."""
    device, dtype = _device(device, generator), dtype or torch.get_default_dtype()
    draw = _Draw(("normal", dtype), lambda s, g: torch.randn(s, generator=g, device=device, dtype=dtype))
    return _drawn(draw, shape, generator, batch_dim)


def rand(
    shape: Sequence[int],
    generator: RandomSource = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    batch_dim: int = 0,
) -> Tensor:
    """Uniform numbers on [0, 1) of ``shape``, as ``torch.rand``, from any :data:`RandomSource`."""
    device, dtype = _device(device, generator), dtype or torch.get_default_dtype()
    draw = _Draw(("uniform", dtype), lambda s, g: torch.rand(s, generator=g, device=device, dtype=dtype))
    return _drawn(draw, shape, generator, batch_dim)


def randint(
    low: int,
    high: int,
    shape: Sequence[int],
    generator: RandomSource = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.int64,
    batch_dim: int = 0,
) -> Tensor:
    """Integers uniform on {low, ..., high - 1} of ``shape``, as ``torch.randint``."""
    device = _device(device, generator)
    draw = _Draw(
        ("integer", low, high, dtype),
        lambda s, g: torch.randint(low, high, s, generator=g, device=device, dtype=dtype),
    )
    return _drawn(draw, shape, generator, batch_dim)


def normal_(out: Tensor, generator: RandomSource = None, *, std: float = 1.0, batch_dim: int = 0) -> Tensor:
    """Fill ``out`` in place with N(0, std^2) numbers (a reused buffer: no allocation for a
    ``torch.Generator``); returns ``out``."""
    if isinstance(generator, BatchGenerator):
        z = randn(out.shape, generator, device=out.device, dtype=out.dtype, batch_dim=batch_dim)
        return out.copy_(z).mul_(std) if std != 1.0 else out.copy_(z)
    return out.normal_(0.0, std, generator=generator)


def _device(device: torch.device | str | None, generator: RandomSource) -> torch.device | None:
    if device is not None:
        return torch.device(device)
    return generator_device(generator)


def generator_device(generator: RandomSource) -> torch.device | None:
    """The device ``generator`` draws on (None for torch's global generator)."""
    if generator is None:
        return None
    return generator.device


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed determined by ``seed`` and the integers ``keys`` (e.g. a repeat and an example's
    global index), well mixed so that nearby keys give unrelated streams.

    SplitMix64's finaliser (Steele, Lea and Flood 2014, "Fast splittable pseudorandom number
    generators") applied to each key in turn: a pure function of its arguments, identical on every
    process and platform.
    """
    mask = (1 << 64) - 1
    h = int(seed) & mask
    for k in keys:
        h = (h ^ (int(k) & mask)) + 0x9E3779B97F4A7C15 & mask
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & mask
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & mask
        h ^= h >> 31
    return h >> 1


# -- one stream per sample ------------------------------------------------------------------------
# Normal numbers are drawn per sample in blocks and served from them, so that a sampler step costs
# one slice instead of one generator call per sample. The k-th block of a dtype holds 2^k draws (a
# short-lived generator wastes little), at most 256 draws or 65,536 numbers (but at least one
# draw): a function of the sequence of draw sizes alone, never of the batch, so that a sample's
# numbers do not depend on the batch it is drawn in.
_BLOCK_NUMBERS = 1 << 16
_BLOCK_DRAWS = 256


class PerSampleGenerator(BatchGenerator):
    """One ``torch.Generator`` per sample, seeded by that sample's seed: sample i's random numbers
    depend only on ``seeds[i]`` and on the sequence of draws (EDM's ``StackedRandomGenerator``).

    A draw of shape ``[B, ...]`` gives row i from generator i, so the results of a sampler or a
    likelihood that draws through this generator do not depend on which other samples share the
    batch, nor on how a set of seeds is split into batches or across processes. Normal numbers are
    drawn per sample in blocks that double from one draw up to 256 draws or 65,536 numbers, so a
    long run's draw costs one slice rather than ``B`` generator calls: a sample's numbers are then
    those of its own stream in blocks, which depend on the sizes of the draws, never on the batch.

    Args:
        seeds: one non-negative integer seed per sample (e.g. ``range(n)``, or
            :func:`derive_seed` of a run seed and each example's global index).
        device: where the numbers are drawn (CPU by default).
    """

    def __init__(self, seeds: Sequence[int] | Tensor, device: torch.device | str | None = None) -> None:
        if torch.is_tensor(seeds):
            if seeds.is_floating_point() or seeds.ndim != 1:
                raise TypeError(f"seeds must be a 1-D integer tensor or a sequence of ints; got {seeds!r}")
            seeds = seeds.tolist()
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence | range):
            raise TypeError(f"seeds must be a sequence of ints; got {type(seeds).__name__}")
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must hold at least one seed (one per sample)")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**64:
                raise ValueError(f"seeds must be integers in [0, 2**64); got {s!r}")
        self.seeds = tuple(seeds)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = len(seeds)
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in seeds]
        # Per dtype: a [B, K] block of normal numbers, how many of its columns were served, and how
        # many blocks were drawn.
        self._blocks: dict[torch.dtype, list] = {}

    def __repr__(self) -> str:
        return f"PerSampleGenerator(<{self.batch_size} seeds>, device={str(self.device)!r})"

    def __len__(self) -> int:
        return self.batch_size

    def _draw(self, draw: _Draw, shape: tuple[int, ...], batch_dim: int) -> Tensor:
        self._check(shape, batch_dim)
        batch_dim %= len(shape)
        one = shape[:batch_dim] + shape[batch_dim + 1 :]
        if draw.key[0] == "normal":
            n = math.prod(one)
            flat = self._normals(draw, n)
            return flat.reshape((self.batch_size, *one)).movedim(0, batch_dim)
        return torch.stack([draw.make(one, g) for g in self.generators], dim=batch_dim)

    def _normals(self, draw: _Draw, n: int) -> Tensor:
        dtype = draw.key[1]
        block = self._blocks.get(dtype)
        if block is None or block[1] + n > block[0].shape[1]:
            k = 0 if block is None else block[2] + 1
            draws = min(2**k, _BLOCK_DRAWS, max(1, _BLOCK_NUMBERS // max(n, 1)))
            block = [torch.stack([draw.make((n * draws,), g) for g in self.generators]), 0, k]
            self._blocks[dtype] = block
        out = block[0][:, block[1] : block[1] + n]
        block[1] += n
        return out


# -- one shared stream, sliced ----------------------------------------------------------------------
class GlobalBatchGenerator:
    """Random numbers for a global batch of ``batch_size`` samples from one shared stream, served
    to the parts of the batch (processes, accumulated micro-batches) by rows.

    The k-th draw of every part is the k-th draw of the whole batch, made once (the first part to
    ask makes it; the others take their rows of the same tensor), so each row receives exactly what
    it would in the undivided batch and ``generator`` advances the same way however the batch is
    split. Every process draws the whole batch: the price is the random numbers of the global batch
    per process, against those of its own rows.

    Example::

        draws = GlobalBatchGenerator(generator, global_batch)
        for start, stop in my_micro_batches:
            loss(model, x[start:stop], generator=draws.rows(start, stop))

    Use one object per training step; every part must make the same sequence of draws.
    """

    def __init__(self, generator: torch.Generator | None, batch_size: int) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got batch_size={batch_size!r}")
        self.generator, self.batch_size = generator, batch_size
        self.device = generator.device if generator is not None else torch.device("cpu")
        self._draws: list[tuple[tuple, Tensor]] = []

    def __repr__(self) -> str:
        return f"GlobalBatchGenerator(batch_size={self.batch_size}, device={str(self.device)!r})"

    def rows(self, start: int, stop: int) -> BatchGenerator:
        """The rows ``start:stop`` of the batch, as a generator for a batch of ``stop - start``."""
        if not 0 <= start < stop <= self.batch_size:
            raise ValueError(
                f"rows must satisfy 0 <= start < stop <= batch_size = {self.batch_size}; got "
                f"start={start}, stop={stop}"
            )
        return _Rows(self, start, stop)


class _Rows(BatchGenerator):
    def __init__(self, parent: GlobalBatchGenerator, start: int, stop: int) -> None:
        self.parent, self.start, self.stop = parent, start, stop
        self.batch_size, self.device = stop - start, parent.device
        self._k = 0  # draws made so far

    def __repr__(self) -> str:
        return f"{self.parent!r}.rows({self.start}, {self.stop})"

    def _draw(self, draw: _Draw, shape: tuple[int, ...], batch_dim: int) -> Tensor:
        self._check(shape, batch_dim)
        batch_dim %= len(shape)
        full_shape = shape[:batch_dim] + (self.parent.batch_size,) + shape[batch_dim + 1 :]
        key = (*draw.key, batch_dim, full_shape)
        draws, k = self.parent._draws, self._k
        self._k += 1
        if k == len(draws):
            draws.append((key, draw.make(full_shape, self.parent.generator)))
        made, full = draws[k]
        if made != key:
            raise RuntimeError(
                f"rows {self.start}:{self.stop} asked for draw {k + 1} as {key}, but the global batch's "
                f"draw {k + 1} was {made}: every part of a batch must make the same sequence of draws"
            )
        return full.narrow(batch_dim, self.start, self.batch_size)


def check_whole_batch_generator(generator: object) -> None:
    """Raise ``TypeError`` unless ``generator`` is None or a ``torch.Generator``: for what draws a whole
    set at once (data sets, oracles), where per-sample streams do not apply."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None; got {type(generator).__name__}. Data sets and "
            f"oracles draw a whole set from one stream; per-sample seeds apply to samplers, likelihoods "
            f"and losses"
        )


def check_generator(generator: object, like: Tensor | None = None, like_name: str = "") -> None:
    """Raise unless ``generator`` is a :data:`RandomSource` (on the device of ``like``, and for a
    :class:`BatchGenerator` with one entry per sample of ``like``, if given)."""
    if generator is None:
        return
    if not isinstance(generator, (torch.Generator, BatchGenerator)):
        raise TypeError(
            f"generator must be a torch.Generator or None; got {type(generator).__name__} (for per-sample "
            f"seeds pass an sdegen.random.PerSampleGenerator)"
        )
    if like is None:
        return
    if generator.device.type != like.device.type:
        raise ValueError(
            f"generator is on {generator.device} but {like_name} is on {like.device}; create it on "
            f"{str(like.device)!r}, e.g. torch.Generator(device={str(like.device)!r})"
        )
    if isinstance(generator, BatchGenerator) and like.ndim >= 1 and generator.batch_size != like.shape[0]:
        raise ValueError(
            f"generator draws for {generator.batch_size} samples but {like_name} holds {like.shape[0]} "
            f"(shape {tuple(like.shape)}); pass one seed per sample"
        )
