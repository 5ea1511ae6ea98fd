"""Training: exact resumption, checkpoint safety, the EMA and warm-up laws, and that training learns."""

import json
import math

import pytest
import torch

import sdegen
from sdegen import VPSDE
from sdegen import data as D
from sdegen.losses import DDPMLoss, DenoisingScoreMatching, LikelihoodWeighting, SlicedScoreMatching
from sdegen.nn import ScoreMLP
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.training import CheckpointError, HeldOutLoss, HeldOutNLL, TrainConfig, Trainer
from sdegen.training import checkpoint as checkpoint_module

RING = D.ring(4, radius=2.0, std=0.3)


def _model(seed=0, hidden=32):
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # parameter initialisation only; training never touches global RNG
        return ScoreModel(ScoreMLP(2, hidden=hidden, depth=2, time_dim=16), VPSDE(), NoisePrediction())


def _trainer(model=None, loss=None, data=None, run_dir=None, if_exists="error", **cfg):
    config = TrainConfig(
        **{
            "steps": 12,
            "lr": 1e-2,
            "warmup_steps": 5,
            "ema_decay": 0.9,
            "log_every": 4,
            "checkpoint_every": 0,
            "progress": False,
            "seed": 3,
            **cfg,
        }
    )
    return Trainer(
        model or _model(),
        loss or DenoisingScoreMatching(),
        data or D.DistributionBatches(RING, 64),
        config,
        run_dir=run_dir,
        if_exists=if_exists,
    )


def _assert_same_state(a: Trainer, b: Trainer):
    for name in ("model", "ema"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k} differs"
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for i in oa:
        for k in oa[i]:
            assert torch.equal(oa[i][k], ob[i][k]), f"optimizer state {i}.{k} differs"
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert a.scheduler.get_last_lr() == b.scheduler.get_last_lr() and a.step == b.step


@pytest.mark.parametrize(
    "loss, data",
    [
        (DenoisingScoreMatching(), None),
        (DenoisingScoreMatching(LikelihoodWeighting(importance_sampling=True)), "tensor"),
        (SlicedScoreMatching(), None),
        (DDPMLoss(steps=100), "tensor"),
    ],
    ids=["dsm", "dsm-is-dataset", "ssm", "ddpm-dataset"],
)
def test_resume_is_bitwise_identical_to_a_straight_run(tmp_path, loss, data):
    def source():
        if data == "tensor":
            return D.DatasetBatches(RING.sample(200, torch.Generator().manual_seed(0)), 32, seed=5)
        return D.DistributionBatches(RING, 64)

    straight = _trainer(loss=loss, data=source())
    straight.fit(12)
    first = _trainer(loss=loss, data=source(), run_dir=tmp_path)
    first.fit(7)  # 7 is not a multiple of log_every: the resumed run must not depend on that
    first.save_checkpoint()
    # A fresh process: a differently initialised model, a new trainer, then the checkpoint.
    resumed = _trainer(model=_model(seed=99), loss=loss, data=source(), run_dir=tmp_path, if_exists="resume")
    assert resumed.load_checkpoint() == 7
    resumed.fit(12)
    _assert_same_state(straight, resumed)


def test_resumed_run_log_has_each_step_once(tmp_path):
    trainer = _trainer(run_dir=tmp_path, checkpoint_every=8)
    trainer.fit(8)
    at_8 = trainer.checkpoint_path.read_bytes()
    trainer.fit(12)
    # A crash before the step-12 checkpoint: the log has a record for 12, last.pt is still step 8.
    trainer.checkpoint_path.write_bytes(at_8)
    redo = _trainer(run_dir=tmp_path, if_exists="resume")
    assert redo.load_checkpoint() == 8
    redo.fit(12)
    log = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [4, 8, 12]
    assert [r["step"] for r in redo.history] == [4, 8, 12]


def test_ema_and_warmup_follow_their_formulas():
    trainer = _trainer(ema_decay=0.9, ema_rampup=0.0, warmup_steps=4)
    snapshots, lrs = [], []
    for _ in range(6):
        trainer.train_step()
        snapshots.append(torch.nn.utils.parameters_to_vector(trainer.model.parameters()).clone())
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    # The EMA starts at the first iterate, then ema_k = 0.9 ema_{k-1} + 0.1 theta_k.
    ema = snapshots[0]
    for theta in snapshots[1:]:
        ema = 0.9 * ema + 0.1 * theta
    got = torch.nn.utils.parameters_to_vector(trainer.ema_model.parameters())
    torch.testing.assert_close(got, ema, rtol=1e-5, atol=1e-7)
    # lr used at step k (1-based) is lr * min(1, k / warmup); lrs[k-1] is the lr for step k + 1.
    assert lrs == pytest.approx([1e-2 * min(1, (k + 1) / 4) for k in range(1, 7)])


def test_training_lowers_the_held_out_nll_towards_the_truth():
    # Exact NLL by the probability-flow ODE (exact divergence in 2-D) of 300 fresh points, before and
    # after 600 steps, beside the true NLL of the same points under the mixture.
    held = RING.sample(300, torch.Generator().manual_seed(7))
    true_nll = -float(RING.log_prob(held.double()).mean())
    trainer = _trainer(
        _model(hidden=64),
        steps=600,
        lr=5e-3,
        warmup_steps=20,
        ema_decay=0.9,
        data=D.DistributionBatches(RING, 256),
    )
    nll = HeldOutNLL(held, every=400, divergence=sdegen.ExactTrace(), rtol=1e-4, atol=1e-4)
    before = nll(trainer)["held_out_nll"]
    trainer.fit()
    after = nll(trainer)["held_out_nll"]
    # The untrained model is far off (10 nats: its score is ~0, so p_eps is about the prior pulled
    # back by the drift); 600 steps bring it within 0.25 nats of the truth (0.09 measured), and a
    # model cannot beat the truth by more than the sampling error of 300 points.
    assert before - true_nll > 5.0, (before, true_nll)
    assert -0.1 < after - true_nll < 0.25, (after, true_nll)


def test_gradients_are_clipped_to_grad_clip_and_the_raw_norm_is_logged():
    trainer = _trainer(grad_clip=0.01, log_every=1)
    trainer.fit(1)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.model.parameters()]))
    assert float(clipped) <= 0.01 * (1 + 1e-5)
    assert trainer.history[-1]["grad_norm"] > 0.1  # the norm before clipping


def test_held_out_loss_callback_and_log(tmp_path):
    held = RING.sample(300, torch.Generator().manual_seed(1))
    trainer = Trainer(
        _model(),
        DenoisingScoreMatching(),
        D.DistributionBatches(RING, 64),
        TrainConfig(steps=6, log_every=3, progress=False),
        run_dir=tmp_path,
        callbacks=[HeldOutLoss(held, every=3)],
    )
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6]
    assert all({"loss", "lr", "grad_norm", "held_out_loss"} <= r.keys() for r in records)
    # Callbacks use their own generator: the same EMA model gets the same held-out loss twice.
    cb = trainer.callbacks[0]
    assert cb(trainer)["held_out_loss"] == cb(trainer)["held_out_loss"]


def _params(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_corrupt_checkpoint_is_refused_and_changes_nothing(tmp_path):
    good = _trainer(run_dir=tmp_path)
    good.fit(4)
    path = good.save_checkpoint()
    blob = path.read_bytes()
    victim = _trainer(model=_model(seed=1))
    before = _params(victim)
    for i, bad in enumerate([blob[: len(blob) // 2], b"not a checkpoint at all", blob[:100] + b"\0" * 500]):
        p = tmp_path / f"bad{i}.pt"
        p.write_bytes(bad)
        with pytest.raises(CheckpointError, match="is corrupt or not a weights-only torch file"):
            victim.load_checkpoint(p)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="is not an sdegen checkpoint"):
        victim.load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        victim.load_checkpoint(tmp_path / "missing.pt")
    assert all(torch.equal(before[k], v) for k, v in victim.model.state_dict().items())
    assert victim.step == 0


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_checkpoints_are_loaded_weights_only(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": "sdegen-checkpoint", "version": 1, "payload": _Evil()}, p)
    with pytest.raises(CheckpointError, match="weights-only"):
        checkpoint_module.load_checkpoint(p)


def test_mismatched_checkpoint_is_refused_and_changes_nothing(tmp_path):
    _trainer(run_dir=tmp_path).fit(2)
    small = _trainer(model=_model(hidden=16), run_dir=tmp_path, if_exists="resume")
    before = _params(small)
    with pytest.raises(CheckpointError, match=r"checkpoint model does not match this model \(shape mismatch"):
        small.load_checkpoint()
    assert all(torch.equal(before[k], v) for k, v in small.model.state_dict().items())


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    trainer = _trainer(run_dir=tmp_path)
    trainer.fit(4)  # saves last.pt at its last step
    path = trainer.checkpoint_path
    good = path.read_bytes()
    trainer.train_step()

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint()
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temporary file left
    assert _trainer(run_dir=tmp_path, if_exists="resume").load_checkpoint() == 4


def test_nan_loss_raises_with_the_steps():
    class NaNLoss(DenoisingScoreMatching):
        def per_sample(self, model, x0, generator):
            return super().per_sample(model, x0, generator) * math.nan

    with pytest.raises(FloatingPointError, match=r"training loss is nan over steps 1\.\.4"):
        _trainer(loss=NaNLoss()).fit(4)


def test_training_argument_errors():
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        TrainConfig(lr=0.0)
    with pytest.raises(ValueError, match=r"ema_decay must lie in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="grad_clip must be > 0 or None"):
        TrainConfig(grad_clip=-1.0)
    with pytest.raises(TypeError, match="steps must be an int"):
        TrainConfig(steps=1.5)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="betas must be two numbers"):
        TrainConfig(betas=(0.9, 1.5))
    with pytest.raises(TypeError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"step": 3})
    assert TrainConfig.from_dict(TrainConfig(steps=7).to_dict()) == TrainConfig(steps=7)
    with pytest.raises(TypeError, match="model must be a ScoreModel"):
        Trainer(_model().net, DenoisingScoreMatching(), D.DistributionBatches(RING, 4))
    with pytest.raises(TypeError, match="loss must be an sdegen.losses.Loss"):
        Trainer(_model(), lambda m, x: 0, D.DistributionBatches(RING, 4))
    with pytest.raises(TypeError, match="data must be a BatchSource"):
        Trainer(_model(), DenoisingScoreMatching(), RING)
    with pytest.raises(ValueError, match="save_checkpoint needs a path"):
        _trainer().save_checkpoint()
    trainer = _trainer()
    trainer.fit(3)
    with pytest.raises(ValueError, match="is before the current step 3"):
        trainer.fit(2)


def test_the_ema_ramps_up_like_edms_so_its_half_life_is_a_fraction_of_the_run():
    trainer = _trainer(ema_decay=0.999, ema_rampup=0.05)
    snapshots = []
    for _ in range(6):
        trainer.train_step()
        snapshots.append(torch.nn.utils.parameters_to_vector(trainer.model.parameters()).clone())
    # The EMA starts at the first iterate; update k uses decay min(0.999, 0.5 ** (1 / (0.05 k))).
    ema = snapshots[0]
    for k, theta in enumerate(snapshots[1:], start=2):
        decay = min(0.999, 0.5 ** (1 / (0.05 * k)))
        ema = decay * ema + (1 - decay) * theta
    got = torch.nn.utils.parameters_to_vector(trainer.ema_model.parameters())
    torch.testing.assert_close(got, ema, rtol=1e-5, atol=1e-7)
    config = trainer.config
    # Half-life 0.05 k steps until the configured decay's own half-life (693 steps) is reached.
    assert config.ema_decay_at(1000) == pytest.approx(0.5 ** (1 / 50))
    assert config.ema_decay_at(20_000) == 0.999


@pytest.mark.parametrize("rampup", [0.0, 0.05])
def test_a_short_run_with_a_slow_ema_evaluates_its_training_not_its_initialisation(rampup):
    held = RING.sample(512, torch.Generator().manual_seed(1))
    trainer = _trainer(steps=150, lr=1e-2, warmup_steps=10, ema_decay=0.999, ema_rampup=rampup, log_every=150)
    loss = HeldOutLoss(held, every=150, seed=2)
    initial = loss(trainer)["held_out_loss"]
    trainer.fit()
    ema = loss(trainer)["held_out_loss"]
    with torch.no_grad():
        raw = float(DenoisingScoreMatching()(trainer.model, held, generator=torch.Generator().manual_seed(2)))
    # Measured: initial 2.18; without the ramp-up the EMA scores 1.87, with it 0.64; the weights 0.66.
    if rampup == 0.0:  # the constant-decay EMA is still mostly the initial weights: the old trap
        assert ema - raw > 0.5 * (initial - raw)
    else:  # with the ramp-up the EMA averages the last ~5% of the run: as good as the weights
        assert abs(ema - raw) < 0.1 * (initial - raw)
