"""The parts of one oracle check draw from independent random streams (sdegen.testing.seeds).

check_samples used to seed its parts seed, seed + 1, ...: the energy test's reference sample and
the local-MMD null's first pair both came from seed + 2, so the two statistics shared their draws.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from sdegen.analytic import GaussianMixture
from sdegen.testing import calibrate, check_samples
from sdegen.testing.seeds import derived_seed, stream


def _record_draws(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[torch.Tensor]]:
    """Patch GaussianMixture.sample to record every draw, keyed by its generator's seed."""
    draws: dict[int, list[torch.Tensor]] = {}
    original = GaussianMixture.sample

    def recording(self, n, generator=None, **kwargs):
        x = original(self, n, generator, **kwargs)
        draws.setdefault(generator.initial_seed(), []).append(x.reshape(-1))
        return x

    monkeypatch.setattr(GaussianMixture, "sample", recording)
    return draws


def test_check_samples_draws_each_part_from_an_independent_stream(monkeypatch):
    target = GaussianMixture.ring(n=4, radius=2.0, std=0.5)
    samples = target.sample(200, generator=torch.Generator().manual_seed(99))
    draws = _record_draws(monkeypatch)
    check_samples(samples, target, seed=0)

    # Five parts, five streams: the moments' reference, the energy and local-MMD nulls, and the
    # reference sample of each two-sample statistic.
    streams = {s: torch.cat(values) for s, values in draws.items()}
    assert len(streams) == 5, f"{len(streams)} distinct streams for five parts"
    for (s1, x1), (s2, x2) in itertools.combinations(streams.items(), 2):
        # No draw is shared: exact coincidences of float64 normals have probability zero.
        shared = set(x1.tolist()) & set(x2.tolist())
        assert not shared, f"streams {s1} and {s2} share {len(shared)} values"
        # and the streams are uncorrelated: |r| of N pairs is about N(0, 1/N).
        m = min(x1.numel(), x2.numel(), 4000)
        r = torch.corrcoef(torch.stack([x1[:m], x2[:m]]))[0, 1]
        assert abs(float(r)) < 5 / m**0.5, f"streams {s1} and {s2} correlate: r = {float(r):.3f}"


def test_check_samples_calibrates_the_null_calibrate_gives():
    target = GaussianMixture.ring(n=4, radius=2.0, std=0.5)
    samples = target.sample(200, generator=torch.Generator().manual_seed(7))
    own = check_samples(samples, target, seed=3)
    given = check_samples(samples, target, seed=3, null=calibrate(target, 200, seed=3))
    assert [c.statistic for c in own.parts] == [c.statistic for c in given.parts]


def test_derived_seeds_depend_on_seed_and_purpose_only():
    assert derived_seed(0, "energy null") == derived_seed(0, "energy null")
    seeds = {derived_seed(s, p) for s in range(3) for p in ("a", "b", "moments", "local MMD null")}
    assert len(seeds) == 12
    a, b = stream(5, "x"), stream(5, "x")
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        derived_seed(-1, "x")
