"""Training callbacks as a user writes them (hooks, stop), the TensorBoard writer and the learning
curves figure."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import sdegen
from sdegen import data as D
from sdegen.cli import main
from sdegen.losses import DenoisingScoreMatching
from sdegen.nn import ScoreMLP
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.training import Callback, HeldOutLoss, TrainConfig, Trainer

RING = D.ring(4, radius=2.0, std=0.3)


def _trainer(run_dir=None, callbacks=(), **kw):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ScoreModel(ScoreMLP(2, hidden=16, depth=1, time_dim=8), sdegen.VPSDE(), NoisePrediction())
    config = TrainConfig(steps=6, lr=1e-2, warmup_steps=1, log_every=2, checkpoint_every=2, progress=False)
    return Trainer(
        model,
        DenoisingScoreMatching(),
        D.DistributionBatches(RING, 32),
        config,
        run_dir=run_dir,
        callbacks=callbacks,
        **kw,
    )


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append(("start", trainer.step))

    def on_log(self, trainer, record):
        self.events.append(("log", dict(record)))

    def on_fit_end(self, trainer):
        self.events.append(("end", trainer.step))


def test_hooks_see_every_logged_record_in_order_and_a_resumed_start(tmp_path):
    held_out = RING.sample(64, torch.Generator().manual_seed(1))
    recorder = Recorder()
    trainer = _trainer(tmp_path / "run", [recorder, HeldOutLoss(held_out, every=3)])
    trainer.fit(4)
    logged = [e[1] for e in recorder.events if e[0] == "log"]
    assert recorder.events[0] == ("start", 0) and recorder.events[-1] == ("end", 4)
    assert logged == trainer.history and [r["step"] for r in logged] == [2, 3, 4]
    assert "held_out_loss" in logged[1] and "loss" not in logged[1]  # an evaluation step between logs
    assert recorder.every is None  # a watcher is never evaluated: no metrics of its own
    again = Recorder()
    _trainer(tmp_path / "run", [again], if_exists="resume").fit(6)
    assert again.events[0] == ("start", 4) and [e[1]["step"] for e in again.events if e[0] == "log"] == [6]


def test_the_end_hook_runs_when_training_fails(tmp_path):
    class Failing(Recorder):
        def on_log(self, trainer, record):
            raise RuntimeError("a callback failed")

    failing = Failing()
    with pytest.raises(RuntimeError, match="a callback failed"):
        _trainer(tmp_path / "run", [failing]).fit()
    assert failing.events == [("start", 0), ("end", 2)]


def test_callback_arguments_are_checked():
    with pytest.raises(ValueError, match="every"):
        Callback(every=0)
    with pytest.raises(TypeError, match="callbacks must be Callback instances"):
        _trainer(callbacks=[lambda trainer: {}])


def test_tensorboard_logger_writes_each_record_as_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from sdegen.training.tensorboard import TensorBoardLogger

    held_out = RING.sample(64, torch.Generator().manual_seed(1))
    trainer = _trainer(tmp_path / "run", [TensorBoardLogger(), HeldOutLoss(held_out, every=3)])
    trainer.fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/grad_norm", "eval/held_out_loss"} <= set(tags)
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    expected = [(r["step"], r["loss"]) for r in trainer.history if "loss" in r]
    assert [s for s, _ in loss] == [2, 4, 6]
    assert all(v == pytest.approx(w, rel=1e-6) for (_, v), (_, w) in zip(loss, expected, strict=True))


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from sdegen.training.tensorboard import TensorBoardLogger

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install sdegen\[tensorboard\]"):
        TensorBoardLogger(tmp_path)
    assert main(["train", "--log", "tensorboard", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--log tensorboard" in err and "pip install sdegen[tensorboard]" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_training_curves_draw_loss_and_held_out_panels(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    history = [{"step": k, "loss": 1.0 / k} for k in range(1, 11)]
    history[4]["held_out_loss"], history[9]["held_out_loss"] = 0.3, 0.2
    one = sdegen.figures.training_curves(history, tmp_path / "one.png")
    history[9]["held_out_nll"] = 2.5
    two = sdegen.figures.training_curves(history, tmp_path / "two.png")
    h1, w1, _ = image.imread(one).shape
    h2, w2, _ = image.imread(two).shape
    assert h1 == h2 and w2 == 2 * w1  # the NLL gets its own panel


def test_sdegen_train_logs_to_tensorboard_and_draws_its_curves(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    argv = (
        "--steps 4 --hidden 16 --depth 1 --batch-size 32 --warmup 1 --log-every 2 --eval-every 4 --n-eval 16"
    )
    assert main(["train", *argv.split(), "--no-progress", "--log", "tensorboard", "--out", str(out)]) == 0
    assert (out / "figures" / "curves.png").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]  # metrics.jsonl stays
