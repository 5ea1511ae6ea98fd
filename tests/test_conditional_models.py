"""Class-conditional models and noise-conditional classifiers without training: the networks' label
path, the one conditional path of every loss (checked against the oracle's conditional score),
label dropout's rate, labelled data and batches, and the trainer's invariants with labels."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import sdegen
from sdegen import VESDE, VPSDE
from sdegen import data as D
from sdegen.analytic import GaussianMixture
from sdegen.classifier import MLPClassifier, NoisyClassifier, NoisyClassifierLoss, UNetClassifier
from sdegen.losses import (
    DDPMLoss,
    DenoisingScoreMatching,
    ExplicitScoreMatching,
    ImplicitScoreMatching,
    LabelDropout,
    LikelihoodWeighting,
    NCSNLoss,
    SlicedScoreMatching,
)
from sdegen.nn import ScoreMLP, UNet
from sdegen.parameterization import DataPrediction, NoisePrediction, ScoreModel, ScorePrediction
from sdegen.testing import check_moments
from sdegen.training import CheckpointError, HeldOutLoss, TrainConfig, Trainer, load_weights

VP = VPSDE()
# Three classes over five components: classes 0 and 2 are two-component mixtures.
ANGLES = torch.arange(5, dtype=torch.float64) * 2 * math.pi / 5
MIX = GaussianMixture(
    [0.2, 0.1, 0.3, 0.15, 0.25],
    2.5 * torch.stack([ANGLES.cos(), ANGLES.sin()], 1),
    0.35**2,
    labels=[0, 0, 1, 2, 2],
)
DATA = D.GaussianMixtureData(MIX)


def _net(seed=0, **kw):
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # parameter initialisation only
        return ScoreMLP(2, hidden=16, depth=2, time_dim=16, **kw)


def _model(seed=0, parameterization=None, sde=VP, n_classes=3):
    return ScoreModel(_net(seed, n_classes=n_classes), sde, parameterization or NoisePrediction())


class OracleNet(nn.Module):
    """The exact conditional score of MIX as a score-predicting network ``net(t, x, y)``."""

    n_classes = 3

    def __init__(self, sde):
        super().__init__()
        self.score = MIX.conditional_score(sde)
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # the model's dtype

    def forward(self, t, x, y):
        return self.score(t, x, y) + 0.0 * self.dummy


# -- networks ------------------------------------------------------------------------------------------
def test_unconditional_networks_are_unchanged_by_the_label_path():
    # Same parameters, same names as before: unconditional checkpoints still load.
    mlp, unet = ScoreMLP(2, hidden=16, depth=2), UNet.from_size("tiny", 1)
    assert not any("label" in k for k in {**mlp.state_dict(), **unet.state_dict()})
    assert mlp.n_classes is None and unet.n_classes is None and unet.null_label is None
    cond = ScoreMLP(2, hidden=16, depth=2, n_classes=4)
    # One embedding row per class and one for the null label, as wide as the time embedding.
    assert cond.label_embed.table.weight.shape == (5, 64) and cond.null_label == 4
    extra = sum(p.numel() for p in cond.parameters()) - sum(p.numel() for p in mlp.parameters())
    assert extra == 5 * 64


@pytest.mark.parametrize(
    "net, x",
    [
        (ScoreMLP(2, hidden=16, depth=2, n_classes=3), torch.randn(6, 2)),
        (UNet.from_size("tiny", 1, n_classes=3), torch.randn(6, 1, 8, 8)),
    ],
    ids=["mlp", "unet"],
)
def test_the_label_changes_the_output_and_trains_its_embedding(net, x):
    t = torch.full((6,), 0.3)
    outs = [net(t, x, torch.full((6,), k)) for k in range(4)]  # 3 classes and the null label
    assert all(o.shape == x.shape for o in outs)
    for i in range(4):
        for j in range(i):
            assert (outs[i] - outs[j]).abs().max() > 1e-5
    # Each example's label selects its row: a batch of mixed labels equals the per-label batches.
    mixed = torch.tensor([0, 1, 2, 3, 0, 3])
    expected = torch.stack([outs[k][i] for i, k in enumerate(mixed.tolist())])
    torch.testing.assert_close(net(t, x, mixed), expected)
    net(t, x, mixed).square().sum().backward()
    grad = net.label_embed.table.weight.grad
    assert grad.abs().sum(1).gt(0).tolist() == [True, True, True, True]


def test_classifier_networks_give_logits():
    clf = NoisyClassifier(MLPClassifier(2, 3, hidden=16, depth=2), VP)
    assert clf.n_classes == 3 and clf(0.5, torch.randn(7, 2)).shape == (7, 3)
    img = NoisyClassifier(UNetClassifier.from_size("tiny", 1, 10), VP)
    assert img(torch.rand(4), torch.randn(4, 1, 8, 8)).shape == (4, 10)
    # log p_t(y | x) is a normalised log-probability over the classes.
    x = torch.randn(5, 2)
    total = torch.stack([clf.log_prob(0.2, x, k).exp() for k in range(3)]).sum(0)
    torch.testing.assert_close(total, torch.ones(5))


# -- ScoreModel.given ----------------------------------------------------------------------------------
def test_given_binds_the_label_and_shares_the_network():
    model = _model()
    x, t = torch.randn(6, 2), torch.rand(6)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    assert model.is_conditional and model.n_classes == 3 and model.null_label == 3
    torch.testing.assert_close(model.given(y)(t, x), model(t, x, y), rtol=0, atol=0)
    torch.testing.assert_close(model.given(2)(t, x), model(t, x, torch.full((6,), 2)), rtol=0, atol=0)
    bound = model.given(1)
    assert not bound.is_conditional  # a score_fn(t, x) for every sampler
    assert {id(p) for p in bound.parameters()} == {id(p) for p in model.parameters()}
    for name in ("data_prediction", "noise_prediction"):
        torch.testing.assert_close(getattr(bound, name)(t, x), getattr(model, name)(t, x, 1), rtol=0, atol=0)
    # The null label is the unconditional model, and samplers take the bound model unchanged.
    out = sdegen.sample(VP, model.given(model.null_label), (5, 2), sdegen.DDIMSampler(3))
    assert out.x.shape == (5, 2) and out.nfe == 3


# -- the conditional path of the losses -------------------------------------------------------------
LOSSES = {
    "dsm": lambda: DenoisingScoreMatching(),
    "dsm-likelihood-is": lambda: DenoisingScoreMatching(LikelihoodWeighting(importance_sampling=True)),
    "ssm": lambda: SlicedScoreMatching(),
    "ism": lambda: ImplicitScoreMatching(),
    "ddpm": lambda: DDPMLoss(steps=50),
    "esm": lambda: ExplicitScoreMatching(MIX.conditional_score(VP)),
    "ncsn": lambda: NCSNLoss(levels=5),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_trains_a_conditional_model_through_the_model_with_its_labels_bound(name):
    loss = LOSSES[name]()
    sde = VESDE(0.01, 10.0) if name == "ncsn" else VP
    param = DataPrediction() if name == "ncsn" else NoisePrediction()
    model = _model(sde=sde, parameterization=param)
    x0, y = MIX.sample_labelled(32, torch.Generator().manual_seed(1), dtype=torch.float32)
    conditional = loss(model, x0, y, generator=torch.Generator().manual_seed(2))
    if name == "esm":
        bound_loss = ExplicitScoreMatching(lambda t, x: MIX.conditional_score(VP)(t, x, y))
    else:
        bound_loss = loss
    bound = bound_loss(model.given(y), x0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(conditional, bound, rtol=1e-6, atol=0)
    conditional.backward()
    assert model.net.label_embed.table.weight.grad.abs().sum() > 0


def test_the_conditional_dsm_of_the_exact_conditional_score_is_its_constant():
    # DSM - ESM = E lambda (d / sigma^2 - ||grad log p_t(x | y)||^2) at each t (Vincent 2011, eq.
    # 11-12, per class): with the exact conditional score ESM = 0, so DSM equals that constant, drawn
    # with the same t and x_t. The unconditional score (the null label) exceeds it by
    # E lambda ||grad log p_t(x | y) - grad log p_t(x)||^2 > 0: the labels reach the score.
    model = ScoreModel(OracleNet(VP), VP, ScorePrediction())
    x0, y = MIX.sample_labelled(20000, torch.Generator().manual_seed(3))
    loss = DenoisingScoreMatching(reduction="none")
    b = loss.noised(model, x0, torch.Generator().manual_seed(4))
    s_y = MIX.conditional_score(VP)(b.t, b.x_t, y)
    constant = b.weight * (2 / b.kernel.sigma**2 - (s_y**2).sum(1))
    for labels, expected_gap in ((y, "zero"), (torch.full_like(y, 3), "positive")):
        per = loss(model, x0, labels, generator=torch.Generator().manual_seed(4)).detach()
        diff = per - constant
        z = float(diff.mean() / (diff.std() / math.sqrt(diff.numel())))
        if expected_gap == "zero":
            assert abs(z) < 4, z
        else:
            assert z > 8, z


def test_explicit_score_matching_of_the_exact_conditional_score_is_zero():
    model = ScoreModel(OracleNet(VP), VP, ScorePrediction())
    x0, y = MIX.sample_labelled(64, torch.Generator().manual_seed(5))
    loss = ExplicitScoreMatching(MIX.conditional_score(VP))
    assert float(loss(model, x0, y, generator=torch.Generator().manual_seed(6)).detach()) == pytest.approx(
        0, abs=1e-20
    )


def test_label_dropout_replaces_labels_by_the_null_label_at_its_rate():
    y = torch.randint(0, 3, (40000,), generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(8)
    for p in (0.0, 0.1, 0.5, 1.0):
        dropped = LabelDropout(DenoisingScoreMatching(), p).drop(y, 3, g)
        is_null = dropped == 3
        assert torch.equal(dropped[~is_null], y[~is_null])  # kept labels are unchanged
        n, k = y.numel(), int(is_null.sum())
        if p in (0.0, 1.0):
            assert k == round(p * n)
        else:  # binomial(n, p): within 4 standard deviations
            assert abs(k - n * p) < 4 * math.sqrt(n * p * (1 - p)), (p, k)
    # A label already null (an unlabelled example) stays null.
    assert torch.equal(
        LabelDropout(DenoisingScoreMatching(), 0.5).drop(torch.full((9,), 3), 3, g), torch.full((9,), 3)
    )


class LabelSpy(nn.Module):
    """A conditional network that records the labels it is trained on (in training mode: the
    trainer's preflight check evaluates the objective once in eval mode, before the first step)."""

    n_classes = 3

    def __init__(self):
        super().__init__()
        self.net = _net(n_classes=3)
        self.seen: list[torch.Tensor] = []

    def forward(self, t, x, y):
        if self.training:
            self.seen.append(y.detach().clone())
        return self.net(t, x, y)


def test_label_dropout_rate_is_what_the_network_sees_in_training():
    spy = LabelSpy()
    trainer = Trainer(
        ScoreModel(spy, VP),
        LabelDropout(DenoisingScoreMatching(), 0.25),
        D.DistributionBatches(DATA, 500, labels=True),
        TrainConfig(steps=20, progress=False, log_every=20, checkpoint_every=0),
    )
    trainer.fit()
    seen = torch.cat(spy.seen)
    n, k = seen.numel(), int((seen == 3).sum())
    assert n == 20 * 500 and abs(k - 0.25 * n) < 4 * math.sqrt(n * 0.25 * 0.75), k
    # The labels kept are the data's: their class frequencies are the class prior p(y).
    kept = seen[seen != 3]
    freq = torch.bincount(kept, minlength=3).double() / kept.numel()
    se = (MIX.class_prior() * (1 - MIX.class_prior()) / kept.numel()).sqrt()
    assert ((freq - MIX.class_prior()).abs() / se).max() < 4.5


# -- labelled data -------------------------------------------------------------------------------------
def test_labelled_samples_are_the_joint_and_the_same_points():
    x, y = MIX.sample_labelled(20000, torch.Generator().manual_seed(9))
    assert torch.equal(x, MIX.sample(20000, torch.Generator().manual_seed(9)))
    # Labels are the classes of the components drawn: given y, x follows p(x | y).
    for k in range(3):
        cond = MIX.class_conditional(k)
        assert check_moments(x[y == k], cond).passed
    freq = torch.bincount(y, minlength=3).double() / y.numel()
    assert ((freq - MIX.class_prior()).abs() / (MIX.class_prior() / y.numel()).sqrt()).max() < 4.5
    ring = D.ring(8, std=0.1)  # far apart: every point lies nearest its own component's mean
    assert ring.n_classes == 8 and torch.equal(ring.mixture.labels, torch.arange(8))
    pts, lab = ring.sample_labelled(4000, torch.Generator().manual_seed(0))
    assert torch.equal(pts, ring.sample(4000, torch.Generator().manual_seed(0)))
    # Class k is the Gaussian at angle 2 pi k / 8: each point's nearest mean is its class's.
    assert torch.equal(torch.cdist(pts.double(), ring.mixture.means).argmin(1), lab)


def test_moons_are_labelled_by_moon():
    moons = D.Moons(noise=0.0)
    x, y = moons.sample_labelled(500, torch.Generator().manual_seed(0))
    assert torch.equal(x, moons.sample(500, torch.Generator().manual_seed(0)))
    # Outer moon (label 0): (cos a, sin a) mapped by 2 (. - (1/2, 1/4)); its points have y_2 >= -1/2.
    u = x.double() / 2 + torch.tensor([0.5, 0.25], dtype=torch.float64)
    outer = (u.pow(2).sum(1) - 1).abs() < 1e-5
    assert torch.equal(outer, y == 0)


def test_digits_carry_their_labels_through_the_split():
    train, test, full = D.load_digits("train"), D.load_digits("test"), D.load_digits("all")
    assert full.n_classes == 10 and torch.equal(
        torch.bincount(full.labels), torch.bincount(train.labels) + torch.bincount(test.labels)
    )
    # Each split's labels belong to its images: find every test image in the full set.
    flat = full.pixels.reshape(len(full), -1).int()
    for i in range(0, len(test), 37):
        j = int(((flat - test.pixels[i].reshape(-1).int()).abs().sum(1) == 0).nonzero()[0])
        assert int(full.labels[j]) == int(test.labels[i])


def test_labelled_batches_are_addressed_by_step():
    x = MIX.sample(40, torch.Generator().manual_seed(0))
    labels = torch.arange(40) % 3
    src = D.DatasetBatches(x, 8, seed=1, labels=labels)
    assert src.n_classes == 3
    for step in (0, 4, 5, 13):
        batch = src.batch(step)
        idx = src.indices(step)
        assert torch.equal(batch.x, x[idx].float()) and torch.equal(batch.y, labels[idx])
    digits = D.load_digits("test")
    b = D.DatasetBatches(digits, 16, labels=digits.labels).batch(3, torch.Generator().manual_seed(0))
    assert b.x.shape == (16, 1, 8, 8) and b.y.dtype == torch.int64 and int(b.y.max()) <= 9
    plain = D.DistributionBatches(DATA, 16).batch(0, torch.Generator().manual_seed(2))
    labelled = D.DistributionBatches(DATA, 16, labels=True).batch(0, torch.Generator().manual_seed(2))
    assert torch.equal(plain, labelled.x)


# -- the trainer's invariants with labels -------------------------------------------------------------
def _trainer(model, loss, data, run_dir=None, if_exists="error"):
    cfg = TrainConfig(
        steps=12,
        lr=1e-2,
        warmup_steps=3,
        ema_decay=0.9,
        log_every=4,
        checkpoint_every=0,
        seed=3,
        progress=False,
    )
    return Trainer(model, loss, data, cfg, run_dir=run_dir, if_exists=if_exists)


def _classifier(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return NoisyClassifier(MLPClassifier(2, 3, hidden=16, depth=2, time_dim=16), VP)


@pytest.mark.parametrize("kind", ["conditional", "conditional-dataset", "classifier"])
def test_a_resumed_labelled_run_is_bitwise_the_straight_run(tmp_path, kind):
    def parts(seed):
        if kind == "classifier":
            return _classifier(seed), NoisyClassifierLoss(), D.DistributionBatches(DATA, 64, labels=True)
        if kind == "conditional-dataset":
            x, y = MIX.sample_labelled(200, torch.Generator().manual_seed(0), dtype=torch.float32)
            return (
                _model(seed),
                LabelDropout(DenoisingScoreMatching(), 0.3),
                D.DatasetBatches(x, 32, seed=5, labels=y),
            )
        return (
            _model(seed),
            LabelDropout(DenoisingScoreMatching(), 0.3),
            D.DistributionBatches(DATA, 64, labels=True),
        )

    straight = _trainer(*parts(0))
    straight.fit(12)
    first = _trainer(*parts(0), run_dir=tmp_path)
    first.fit(7)
    first.save_checkpoint()
    resumed = _trainer(*parts(99), run_dir=tmp_path, if_exists="resume")
    assert resumed.load_checkpoint() == 7
    resumed.fit(12)
    for name in ("model", "ema"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(straight.generator.get_state(), resumed.generator.get_state())


def test_a_conditional_checkpoint_does_not_load_into_an_unconditional_model(tmp_path):
    trainer = _trainer(
        _model(),
        LabelDropout(DenoisingScoreMatching(), 0.1),
        D.DistributionBatches(DATA, 16, labels=True),
        run_dir=tmp_path,
    )
    trainer.fit(2)
    trainer.save_checkpoint()
    plain = ScoreModel(_net(), VP, NoisePrediction())
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    with pytest.raises(CheckpointError, match="unexpected net.label_embed.table.weight"):
        load_weights(plain, trainer.checkpoint_path)
    assert all(torch.equal(before[k], plain.state_dict()[k]) for k in before)


def test_held_out_loss_of_a_conditional_model_uses_the_labels():
    trainer = _trainer(_model(), DenoisingScoreMatching(), D.DistributionBatches(DATA, 16, labels=True))
    x, y = MIX.sample_labelled(50, torch.Generator().manual_seed(0), dtype=torch.float32)
    got = HeldOutLoss(x, every=1, y=y, seed=4)(trainer)["held_out_loss"]
    with torch.no_grad():
        want = float(
            DenoisingScoreMatching()(trainer.ema_model, x, y, generator=torch.Generator().manual_seed(4))
        )
    assert got == pytest.approx(want, rel=1e-6)


# -- bad input: clear errors before any work --------------------------------------------------------
X = torch.randn(4, 2)
Y = torch.tensor([0, 1, 2, 0])


def _bad_trainer(model, loss, data):
    return Trainer(model, loss, data, TrainConfig(progress=False))


BAD = [
    ("n_classes=0", lambda: ScoreMLP(2, n_classes=0), ValueError, "n_classes must be >= 1"),
    ("conditional net without y", lambda: _net(n_classes=3)(0.5, X), ValueError, "call it as net(t, x, y)"),
    ("unconditional net with y", lambda: _net()(0.5, X, Y), TypeError, "built without n_classes"),
    ("float labels to the net", lambda: _net(n_classes=3)(0.5, X, Y.float()), TypeError, "int64 tensor of shape [4]"),
    ("conditional model without y", lambda: _model()(0.5, X), ValueError, "model(t, x, y) with labels y in 0..2"),
    ("label out of range", lambda: _model().given(4), ValueError, "classes 0..2, or the null label 3"),
    ("negative label", lambda: _model()(0.5, X, torch.tensor([0, -1, 0, 0])), ValueError, "got y[1]=-1"),
    ("net label out of range", lambda: _net(n_classes=3)(0.5, X, torch.tensor([0, 4, 0, 0])), ValueError, "labels in 0..3 (classes 0..2 and the null label 3); got y[1]=4"),
    ("given on an unconditional model", lambda: ScoreModel(_net(), VP).given(0), TypeError, "unconditional"),
    ("loss without labels", lambda: DenoisingScoreMatching()(_model(), X), ValueError, "pass the labels of x0"),
    ("loss labels for an unconditional model", lambda: DenoisingScoreMatching()(ScoreModel(_net(), VP), X, Y), TypeError, "model is unconditional"),
    ("loss labels of the wrong shape", lambda: DenoisingScoreMatching()(_model(), X, Y[:3]), ValueError, "shape [4]; got shape (3,)"),
    ("loss float labels", lambda: DenoisingScoreMatching()(_model(), X, Y.float()), TypeError, "integer labels"),
    ("loss label out of range", lambda: DenoisingScoreMatching()(_model(), X, torch.tensor([0, 1, 4, 0])), ValueError, "got y[2]=4"),
    ("esm unconditional target", lambda: ExplicitScoreMatching(MIX.score(VP))(_model(), X, Y), TypeError, "needs a conditional target"),
    ("p_uncond above 1", lambda: LabelDropout(DenoisingScoreMatching(), 1.5), ValueError, "p_uncond must be a probability"),
    ("dropout of a classifier loss", lambda: LabelDropout(NoisyClassifierLoss()), TypeError, "score-matching Loss"),
    ("dropout on an unconditional model", lambda: LabelDropout(DenoisingScoreMatching())(ScoreModel(_net(), VP), X), TypeError, "has no n_classes"),
    ("classifier net without n_classes", lambda: NoisyClassifier(nn.Linear(2, 3), VP), ValueError, "attribute n_classes >= 2"),
    ("classifier loss without labels", lambda: NoisyClassifierLoss()(_classifier(), X), ValueError, "needs the class labels"),
    ("classifier label = null", lambda: NoisyClassifierLoss()(_classifier(), X, torch.tensor([0, 3, 1, 1])), ValueError, "labels in 0..2; got y[1]=3"),
    ("score loss on a classifier", lambda: DenoisingScoreMatching()(_classifier(), X), TypeError, "must be a ScoreModel"),
    ("classifier loss on a score model", lambda: NoisyClassifierLoss()(_model(), X, Y), TypeError, "must be a NoisyClassifier"),
    ("unlabelled distribution", lambda: D.DistributionBatches(D.SwissRoll(), 8, labels=True), ValueError, "needs a labelled distribution"),
    ("sample_labelled unlabelled", lambda: D.Checkerboard().sample_labelled(3), TypeError, "has no class labels"),
    ("dataset labels shape", lambda: D.DatasetBatches(X, 2, labels=Y[:3]), ValueError, "one label per example, shape [4]"),
    ("dataset float labels", lambda: D.DatasetBatches(X, 2, labels=Y.float()), TypeError, "labels must be integers: integer labels"),
    ("dataset n_classes too small", lambda: D.DatasetBatches(X, 2, labels=Y, n_classes=2), ValueError, "0..1; got a label 2"),
    ("trainer conditional, unlabelled", lambda: _bad_trainer(_model(), DenoisingScoreMatching(), D.DistributionBatches(DATA, 8)), ValueError, "yields no labels"),
    ("trainer unconditional, labelled", lambda: _bad_trainer(ScoreModel(_net(), VP), DenoisingScoreMatching(), D.DistributionBatches(DATA, 8, labels=True)), ValueError, "n_classes=3 to train a class-conditional"),
    ("trainer classes mismatch", lambda: _bad_trainer(_model(n_classes=8), DenoisingScoreMatching(), D.DistributionBatches(DATA, 8, labels=True)), ValueError, "data has 3 classes but the model has n_classes=8"),
    ("trainer classifier with dsm", lambda: _bad_trainer(_classifier(), DenoisingScoreMatching(), D.DistributionBatches(DATA, 8, labels=True)), TypeError, "must be a ScoreModel"),
    ("sampling a conditional model without a label", lambda: sdegen.sample(VP, _model(), (4, 2), sdegen.DDIMSampler(2)), TypeError, "pass model.given(y) for class y"),
    ("likelihood of a conditional model without a label", lambda: sdegen.log_likelihood(X, VP, _model()), TypeError, "called here as score_fn(t, x) without a label"),
    ("guidance of an unconditional model", lambda: sdegen.composition.ClassifierFreeGuidance(ScoreModel(_net(), VP), 0, 2.0), TypeError, "is unconditional (n_classes=None)"),
    ("guidance label out of range", lambda: sdegen.composition.ClassifierFreeGuidance(_model(), 3, 2.0), ValueError, "y must be a class label in 0..2; got y=3"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_refused_before_any_work(case):
    _, call, error, text = case
    with pytest.raises(error, match=_escape(text)):
        call()


def _escape(text: str) -> str:
    import re

    return re.escape(text)
