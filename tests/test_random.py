"""Per-sample seeds: sample i depends on seed i only, for every stochastic sampler and the likelihood's
probes; a global batch's draws served by rows equal the undivided draws; fixed chunks make evaluation
independent of the number of processes."""

from __future__ import annotations

import pytest
import torch
from _oracle_data import MIXTURE, SDES, gaussian_score

import sdegen
from sdegen import (
    VPSDE,
    AnnealedLangevinSampler,
    DDIMSampler,
    DDPMSampler,
    DPMSolverSDESampler,
    EDMStochasticSampler,
    ExactTrace,
    Hutchinson,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseSDESampler,
)
from sdegen import random as R
from sdegen.distributed import World, fixed_chunks, map_chunks
from sdegen.losses import DenoisingScoreMatching, LabelDropout
from sdegen.nn import ScoreMLP
from sdegen.parameterization import ScoreModel
from sdegen.samplers import (
    AncestralSampling,
    AnnealedLangevinCorrector,
    EulerMaruyama,
    LangevinCorrector,
    MALACorrector,
    NoneCorrector,
    ReverseDiffusion,
)

SEEDS = list(range(1000, 1012))


def _gaussian_log_density(mean: float = 1.0, std: float = 0.5):
    """log p_t(x) up to a constant for data N(mean, std^2 I) under the VP SDE (MALA's target)."""
    sde = SDES["VP"]

    def log_density(t, x):
        alpha, sigma = sde.alpha(t.double()).to(x)[:, None], sde.sigma(t.double()).to(x)[:, None]
        return -((x - alpha * mean) ** 2 / (2 * (alpha**2 * std**2 + sigma**2))).sum(1)

    return log_density


STOCHASTIC = [
    ("ddpm", lambda: DDPMSampler(20)),
    (
        "pc-rd-annealed",
        lambda: PredictorCorrectorSampler(ReverseDiffusion(), AnnealedLangevinCorrector(), 10),
    ),
    (
        "pc-em-langevin",
        lambda: PredictorCorrectorSampler(EulerMaruyama(), LangevinCorrector(per_sample_step=True), 10),
    ),
    ("pc-ancestral", lambda: PredictorCorrectorSampler(AncestralSampling(), NoneCorrector(), 10)),
    ("annealed-langevin", lambda: AnnealedLangevinSampler(5, n_steps_each=2)),
    (
        "pc-mala",
        lambda: PredictorCorrectorSampler(ReverseDiffusion(), MALACorrector(_gaussian_log_density()), 10),
    ),
    ("ddim-eta", lambda: DDIMSampler(10, eta=0.5)),
    ("dpm-solver-sde", lambda: DPMSolverSDESampler(10)),
    ("edm-churn", lambda: EDMStochasticSampler(10, s_churn=10.0)),
    *[
        (f"reverse-sde-{m}", lambda m=m: ReverseSDESampler(m, 10))
        for m in ReverseSDESampler.METHODS
        if m != "log_ode"
    ],
]


@pytest.mark.parametrize("make", [m for _, m in STOCHASTIC], ids=[i for i, _ in STOCHASTIC])
def test_a_sample_depends_only_on_its_seed(make, device):
    """The same seeds in another batch -- fewer of them, in another order -- give the same samples,
    bit for bit (the score here is elementwise, so nothing else couples the batch)."""
    sde = SDES["VP"]
    score = gaussian_score(sde, 1.0, 0.5)
    sampler = make()
    full = sdegen.sample(sde, score, (12, 2), sampler, generator=R.PerSampleGenerator(SEEDS, device)).x
    picked = [7, 2, 9]
    part = sdegen.sample(
        sde, score, (3, 2), sampler, generator=R.PerSampleGenerator([SEEDS[i] for i in picked], device)
    ).x
    assert full.device.type == device.type
    assert torch.equal(full[picked], part)
    assert not torch.equal(full[0], full[1])  # and different seeds give different samples


def test_per_sample_seeds_sample_the_right_law():
    """Per-sample streams are independent standard normal streams: the oracle's law is reproduced."""
    from _oracle_data import null

    from sdegen.testing import check_samples

    sde = SDES["VP"]
    n = 1000
    out = sdegen.sample(
        sde, MIXTURE.score(sde), (n, 2), DDPMSampler(100), generator=R.PerSampleGenerator(range(n))
    )
    report = check_samples(
        out.x.double(), MIXTURE.marginal(sde, sde.sampling_eps), null=null("VP", n), seed=0
    )
    assert report, report


def test_the_batch_averaged_langevin_step_couples_the_batch():
    """score_sde's LangevinCorrector averages norms over the batch (per_sample_step=False): then, and
    only then, a sample depends on the others."""
    sde = SDES["VP"]
    score = gaussian_score(sde, 1.0, 0.5)
    results = {}
    for per_sample in (False, True):
        sampler = PredictorCorrectorSampler(
            ReverseDiffusion(), LangevinCorrector(per_sample_step=per_sample), 10
        )
        full = sdegen.sample(sde, score, (12, 2), sampler, generator=R.PerSampleGenerator(SEEDS)).x
        part = sdegen.sample(sde, score, (2, 2), sampler, generator=R.PerSampleGenerator(SEEDS[:2])).x
        results[per_sample] = torch.equal(full[:2], part)
    assert results == {False: False, True: True}


@pytest.mark.parametrize(
    "sampler, match",
    [
        (
            ReverseSDESampler("euler", 10, adaptive=True),
            "adaptive stepping needs torchsde's BrownianInterval",
        ),
        (ReverseSDESampler("log_ode", 10), "log_ode needs torchsde's BrownianInterval"),
    ],
)
def test_torchsde_brownian_interval_refuses_per_sample_seeds(sampler, match):
    sde = SDES["VP"]
    with pytest.raises(ValueError, match=match):
        sdegen.sample(
            sde, gaussian_score(sde, 1.0, 0.5), (4, 2), sampler, generator=R.PerSampleGenerator(range(4))
        )


def test_a_per_sample_generator_must_have_one_seed_per_sample():
    sde = SDES["VP"]
    x_T = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="generator draws for 4 samples but x_T holds 5"):
        sdegen.sample(
            sde,
            gaussian_score(sde, 1.0, 0.5),
            None,
            DDPMSampler(5),
            x_T=x_T,
            generator=R.PerSampleGenerator(range(4)),
        )
    with pytest.raises(ValueError, match="seeds must be integers in"):
        R.PerSampleGenerator([1, -2])
    with pytest.raises(ValueError, match="at least one seed"):
        R.PerSampleGenerator([])
    with pytest.raises(TypeError, match="seeds must be a sequence of ints"):
        R.PerSampleGenerator("123")
    # Data sets and oracles draw a whole set from one stream, and say so.
    with pytest.raises(TypeError, match="per-sample seeds apply to samplers, likelihoods and losses"):
        MIXTURE.sample(4, generator=R.PerSampleGenerator(range(4)))


def test_per_sample_draws_are_each_seeds_own_stream():
    """Row i of every draw comes from seed i's stream alone, whatever the batch; each kind of draw
    has the right law."""
    g_full, g_one = R.PerSampleGenerator([5, 6, 7]), R.PerSampleGenerator([6])
    for _ in range(300):  # across block refills of the normal numbers
        assert torch.equal(R.randn((3, 4), g_full)[1], R.randn((1, 4), g_one)[0])
    assert torch.equal(R.rand((3, 2), g_full)[1], R.rand((1, 2), g_one)[0])
    v = R.randint(0, 2, (2, 3, 5), g_full, batch_dim=1)
    assert torch.equal(v[:, 1], R.randint(0, 2, (2, 1, 5), g_one, batch_dim=1)[:, 0])
    z = R.randn((20000, 3), R.PerSampleGenerator(range(20000)))
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    # Streams of different seeds are uncorrelated.
    assert abs(float(torch.corrcoef(z[:, :2].T)[0, 1])) < 0.03


def test_global_batch_rows_equal_the_undivided_draws_and_advance_the_stream_alike():
    whole = torch.Generator().manual_seed(3)
    expected = (torch.rand(8, generator=whole), torch.randn(8, 3, generator=whole))
    g = torch.Generator().manual_seed(3)
    draws = R.GlobalBatchGenerator(g, 8)
    parts = [draws.rows(0, 2), draws.rows(2, 5), draws.rows(5, 8)]
    t = torch.cat([R.rand((p.batch_size,), p) for p in parts])
    z = torch.cat([R.randn((p.batch_size, 3), p) for p in parts])
    assert torch.equal(t, expected[0]) and torch.equal(z, expected[1])
    assert torch.equal(g.get_state(), whole.get_state())
    other = draws.rows(0, 2)
    with pytest.raises(RuntimeError, match="same sequence of draws"):
        R.randn((2, 5), other)  # its first draw was a rand of shape (8,)
    with pytest.raises(ValueError, match="rows must satisfy"):
        draws.rows(3, 9)


def test_derived_seeds_are_distinct_and_deterministic():
    seeds = {R.derive_seed(0, r, i) for r in range(4) for i in range(1000)}
    assert len(seeds) == 4000 and all(0 <= s < 2**63 for s in seeds)
    assert R.derive_seed(7, 1, 2) == R.derive_seed(7, 1, 2) != R.derive_seed(7, 2, 1)


def test_per_sample_probes_make_a_likelihood_independent_of_its_companions_up_to_the_steps(device):
    """Sample i's probes depend on seed i only; the solve's shared steps leave an O(tolerance) effect,
    and a fixed chunk computed anywhere is bit-identical."""
    sde = SDES["VP"]
    x = MIXTURE.marginal(sde, 1e-5).sample(6, generator=torch.Generator().manual_seed(1)).to(device)
    score = MIXTURE.score(sde)

    def logp(rows):
        g = R.PerSampleGenerator([SEEDS[i] for i in rows], device)
        return sdegen.log_likelihood(x[rows], sde, score, divergence=Hutchinson(), generator=g).logp

    full, again = logp([0, 1, 2, 3, 4, 5]), logp([0, 1, 2, 3, 4, 5])
    part = logp([4, 1])
    assert torch.equal(full, again)
    torch.testing.assert_close(part, full[[4, 1]], rtol=0, atol=1e-4)
    probes = Hutchinson().draw(x, R.PerSampleGenerator(SEEDS[:6], device))
    assert torch.equal(
        probes[:, [4, 1]], Hutchinson().draw(x[[4, 1]], R.PerSampleGenerator([SEEDS[4], SEEDS[1]], device))
    )


def test_fixed_chunks_share_the_examples_out_exactly_once():
    for n, size, processes in [(10, 3, 2), (7, 7, 3), (1, 4, 2), (100, 8, 5)]:
        owned = [fixed_chunks(n, size, World(r, processes)) for r in range(processes)]
        covered = sorted(i for chunks in owned for a, b in chunks for i in range(a, b))
        assert covered == list(range(n))
        assert all(b - a <= size for chunks in owned for a, b in chunks)


def test_chunked_likelihoods_do_not_depend_on_the_number_of_processes():
    """What each of 2 processes computes, merged, is bit-identical to 1 process (run here one after
    the other; the 2-process launch is in test_distributed)."""
    sde = SDES["VE"]
    x = MIXTURE.marginal(sde, 1e-5).sample(7, generator=torch.Generator().manual_seed(2), dtype=torch.float32)
    score = MIXTURE.score(sde)

    def solve(a, b):
        g = R.PerSampleGenerator([R.derive_seed(0, i) for i in range(a, b)])
        res = sdegen.log_likelihood(
            x[a:b], sde, score, divergence=ExactTrace(), generator=g, rtol=1e-4, atol=1e-4
        )
        return {"logp": res.logp, "nfe": res.nfe}

    one = map_chunks(solve, 7, 3, world=World())
    merged = {}
    for rank in range(2):
        for a, b in fixed_chunks(7, 3, World(rank, 2)):
            merged[a] = solve(a, b)["logp"]
    assert torch.equal(one["logp"], torch.cat([merged[a] for a in sorted(merged)]))
    assert one["nfe"] > 0


def test_deterministic_samplers_accept_per_sample_generators():
    sde = SDES["VP"]
    out = sdegen.sample(
        sde,
        gaussian_score(sde, 1.0, 0.5),
        (3, 2),
        ProbabilityFlowSampler("euler", steps=5),
        generator=R.PerSampleGenerator(range(3)),
    )
    ref = sdegen.sample(
        sde,
        gaussian_score(sde, 1.0, 0.5),
        None,
        ProbabilityFlowSampler("euler", steps=5),
        x_T=R.randn((3, 2), R.PerSampleGenerator(range(3))),
    )
    assert torch.equal(out.x, ref.x)


@pytest.mark.parametrize("labelled", [False, True])
@pytest.mark.parametrize("source", ["distribution", "images"])
def test_the_rows_of_a_global_batch_are_those_of_the_undivided_batch(source, labelled):
    """What process r of N trains on is rows r G/N .. (r+1) G/N of the one-process batch, dequantization
    noise and labels included, and the trainer's stream advances alike."""
    from sdegen import data as D

    if source == "distribution":
        batches = D.DistributionBatches(D.ring(), 8, labels=labelled)
    else:
        g = torch.Generator().manual_seed(0)
        pixels = torch.randint(0, 256, (20, 1, 4, 4), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, 3, (20,), generator=g) if labelled else None
        batches = D.DatasetBatches(D.ImageData(pixels), 8, seed=1, labels=labels)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    whole = batches.batch(3, g1)
    parts = []
    for rows in [(0, 4), (4, 8)]:
        g = torch.Generator().manual_seed(5)
        parts.append(batches.batch(3, g, rows=rows))
        g2 = g
    if labelled:
        assert isinstance(whole, D.LabelledBatch) and all(isinstance(p, D.LabelledBatch) for p in parts)
        assert torch.equal(torch.cat([p.y for p in parts]), whole.y)
        assert len(whole.y.unique()) > 1  # the rows' labels are not all alike by chance
        whole, parts = whole.x, [p.x for p in parts]
    assert torch.equal(torch.cat(parts), whole)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_label_dropout_drops_the_same_labels_however_the_batch_is_split():
    """LabelDropout's mask is a draw of the global batch like the noise: each part of a split batch
    drops exactly the labels the undivided batch drops, and the loss per example is the same."""
    torch.manual_seed(0)
    model = ScoreModel(ScoreMLP(2, hidden=16, depth=1, n_classes=4), VPSDE())
    loss = LabelDropout(DenoisingScoreMatching(reduction="none"), p_uncond=0.5)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 2, generator=g), torch.randint(0, 4, (8,), generator=g)
    whole = R.GlobalBatchGenerator(torch.Generator().manual_seed(2), 8)
    dropped = loss.drop(y, model.null_label, whole.rows(0, 8))
    assert 0 < int((dropped == model.null_label).sum()) < 8
    parts = R.GlobalBatchGenerator(torch.Generator().manual_seed(2), 8)
    assert torch.equal(
        torch.cat([loss.drop(y[a:b], model.null_label, parts.rows(a, b)) for a, b in [(0, 3), (3, 8)]]),
        dropped,
    )
    with torch.no_grad():
        one = loss(
            model, x, y, generator=R.GlobalBatchGenerator(torch.Generator().manual_seed(3), 8).rows(0, 8)
        )
        split = R.GlobalBatchGenerator(torch.Generator().manual_seed(3), 8)
        two = torch.cat(
            [loss(model, x[a:b], y[a:b], generator=split.rows(a, b)) for a, b in [(0, 5), (5, 8)]]
        )
    torch.testing.assert_close(two, one, rtol=1e-6, atol=0)
