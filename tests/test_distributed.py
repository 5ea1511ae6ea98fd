"""Several processes (gloo on CPU, 2 processes) give one process's results.

One launch of the command line on 2 processes (start-up costs seconds) runs ``sdegen nll`` and
``sdegen sample`` of a small run, then ``sdegen train``, whose process 1 is killed mid-run. Against
one process in this one:

* evaluation: per-example log-likelihoods and samples are bit-identical;
* training: the 2-process run equals the 1-process run with the same global batch to float32
  round-off (the gradient sums differ in order), and its random stream bit for bit; the killed
  process stops the run with a one-line error, leaves the last checkpoint intact and the run
  resumable, on 1 process.

The same launch trains a class-conditional run with label dropout (its dropped labels are draws of
the global batch like the noise) and evaluates it: trained on 2 processes it equals 1 process, and
its conditional ``nll`` and classifier-free guided ``sample`` are bit-identical.

Gradient accumulation and autocast are checked in this process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _runs import write_run
from _torchrun import launch

from sdegen.cli import main
from sdegen.cli.nll import PER_EXAMPLE
from sdegen.run.config import build_run, read_config
from sdegen.training import RunDirectory, TrainConfig, Trainer, load_checkpoint
from sdegen.training.files import stale_temporaries

TRAIN = [
    "train",
    "--data",
    "ring",
    "--hidden",
    "32",
    "--depth",
    "2",
    "--batch-size",
    "32",
    "--steps",
    "6",
    "--warmup",
    "1",
    "--log-every",
    "1",
    "--eval-every",
    "100",
    "--checkpoint-every",
    "3",
    "--n-eval",
    "16",
    "--no-progress",
]
KILLED_AT = 4  # process 1 dies before its 5th step, after the checkpoint of step 3
NLL = ["nll", "RUN", "--n", "12", "--repeats", "2", "--batch-size", "5", "--rtol", "1e-4", "--atol", "1e-4"]
SAMPLE = ["sample", "RUN", "--n", "10", "--batch-size", "4", "--sampler", "pc", "--steps", "20"]
# A class-conditional run of 3 steps (before process 1's kill step), half its labels dropped.
TRAIN_CONDITIONAL = [*TRAIN, "--conditional", "--label-dropout", "0.5", "--steps", "3"]
# Without --label the samples cycle through the classes: each chunk is guided to its own samples' classes.
# (DDPM: a sample depends on its seed alone, where pc's Langevin step size is averaged over a batch.)
SAMPLE_GUIDED = [*SAMPLE, "--sampler", "ddpm", "--guidance", "1"]
BUSY, KILLED = 5, 6  # the commands that train into busy/ and killed/


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """On 2 processes: `sdegen nll` and `sdegen sample` of a small run into ``two/``; a conditional
    `sdegen train` into ``cond/`` and its `nll` and guided `sample` into ``cond-two/``; then a
    6-step `sdegen train` into ``killed/`` whose process 1 is killed after step 4."""
    root = tmp_path_factory.mktemp("launched")
    write_run(root / "run")
    # Another writer (this process) holds "busy": process 0 cannot lock it, process 1 must not wait.
    with RunDirectory(root / "busy").lock():
        statuses, outputs = launch(
            [*_on(NLL, root), "--out", root / "two"],
            [*_on(SAMPLE, root), "--out", root / "two"],
            [*TRAIN_CONDITIONAL, "--out", root / "cond"],
            [*_on(NLL, root, "cond"), "--out", root / "cond-two"],
            [*_on(SAMPLE_GUIDED, root, "cond"), "--out", root / "cond-two"],
            [*TRAIN, "--out", root / "busy"],
            [*TRAIN, "--out", root / "killed"],
            env={"SDEGEN_TEST_KILL_RANK": "1", "SDEGEN_TEST_KILL_STEP": str(KILLED_AT)},
        )
    return root, statuses, outputs


def _on(command: list[str], root: Path, run: str = "run") -> list[str]:
    return [str(root / run) if a == "RUN" else a for a in command]


@pytest.fixture(scope="module")
def killed_run(launched):
    root, statuses, outputs = launched
    return root / "killed", statuses, outputs


def _one_process_trainer(config_dir: Path, **kwargs) -> Trainer:
    """The run of ``config_dir/config.json`` in this process, without evaluation callbacks (they draw
    from their own generators and do not change training)."""
    config = read_config(config_dir)
    run = build_run(config, torch.device("cpu"))
    return Trainer(run.model, run.loss, run.batches(), config.train, **kwargs)


def _assert_round_off_equal(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if torch.is_floating_point(a[k]):
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=f"{what}.{k} differs")
        else:
            assert torch.equal(a[k], b[k]), f"{what}.{k} differs"


def test_a_failure_on_one_process_stops_every_process(launched):
    """Process 0 cannot take the run directory's lock: it reports that, and process 1, which would
    otherwise wait for it in the next collective, stops with its error."""
    root, _, outputs = launched
    assert f"command {BUSY} exited with 2" in outputs[0], outputs[0]
    assert "is in use by another writer" in outputs[0]
    assert f"command {BUSY} exited with 1" in outputs[1], outputs[1]
    assert "RankFailed: process 0 of 2 failed: RunDirectoryBusy" in outputs[1]
    assert not (root / "busy" / "checkpoints").exists()


def test_a_killed_process_stops_the_run_and_leaves_its_checkpoint_intact(killed_run):
    out, statuses, outputs = killed_run
    assert statuses[1] == -9, outputs[1]
    # Process 0 fails with the command's one-line error instead of hanging in a collective.
    assert f"command {KILLED} exited with 1" in outputs[0], outputs[0]
    assert (
        "sdegen train: failed: RankFailed: another process of the run stopped while this one was at step 4"
        in outputs[0]
    )
    assert "the last checkpoint (step 3) is intact" in outputs[0]
    state = load_checkpoint(out / "checkpoints" / "last.pt")  # verifies the checksum
    assert state["step"] == 3 and state["world_size"] == 2
    assert not stale_temporaries(out / "checkpoints" / "last.pt")
    with RunDirectory(out).lock():  # the dead processes hold no lock
        pass


def test_two_processes_train_like_one_with_the_same_global_batch(killed_run):
    out, _, _ = killed_run
    two = load_checkpoint(out / "checkpoints" / "last.pt")
    one = _one_process_trainer(out)
    one.fit(3)
    _assert_round_off_equal(one.model.state_dict(), two["model"], "model")
    _assert_round_off_equal(one.ema.state_dict(), two["ema"], "ema")
    # Every process drew the global batch's random numbers from the one stream: it advanced alike.
    assert torch.equal(one.generator.get_state(), two["generator"])
    # The logged loss is the global batch's mean, and the gradient norm the global gradient's.
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for mine, theirs in zip(one.history, logged[:3], strict=True):
        assert mine["step"] == theirs["step"]
        for key in ("loss", "grad_norm", "lr"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key


def test_a_two_process_checkpoint_resumes_on_one_process(killed_run, tmp_path):
    out, _, _ = killed_run
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(out, resumed_dir)
    resumed = _one_process_trainer(resumed_dir, run_dir=resumed_dir, if_exists="resume")
    resumed.fit(6)
    straight = _one_process_trainer(out)
    straight.fit(6)
    _assert_round_off_equal(straight.model.state_dict(), resumed.model.state_dict(), "model")
    _assert_round_off_equal(straight.ema.state_dict(), resumed.ema.state_dict(), "ema")
    steps = [r["step"] for r in resumed.history]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # the killed run's step 4 was dropped


@pytest.mark.parametrize("accumulation", [2, 4])
def test_gradient_accumulation_takes_the_undivided_step(accumulation, tmp_path):
    write_run(tmp_path / "run", steps=1)
    plain = _one_process_trainer(tmp_path / "run")
    plain.fit(3)
    config = read_config(tmp_path / "run")
    run = build_run(config, torch.device("cpu"))
    train = TrainConfig(**{**config.train.to_dict(), "grad_accumulation": accumulation})
    split = Trainer(run.model, run.loss, run.data.batches(config.batch_size, config.seed), train)
    split.fit(3)
    _assert_round_off_equal(plain.model.state_dict(), split.model.state_dict(), "model")
    assert torch.equal(plain.generator.get_state(), split.generator.get_state())


def test_bad_distributed_settings_are_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="half")
    with pytest.raises(ValueError, match="grad_accumulation must be >= 1"):
        TrainConfig(grad_accumulation=0)
    with pytest.raises(TypeError, match="compile must be a bool"):
        TrainConfig(compile="yes")


def test_the_global_batch_must_split_evenly_over_micro_batches(tmp_path):
    write_run(tmp_path / "run", steps=1)
    config = read_config(tmp_path / "run")
    run = build_run(config, torch.device("cpu"))
    train = TrainConfig(**{**config.train.to_dict(), "grad_accumulation": 5})
    with pytest.raises(ValueError, match="global batch of 32 examples.*grad_accumulation=5"):
        Trainer(run.model, run.loss, run.data.batches(config.batch_size, config.seed), train)


@pytest.mark.parametrize("kind", ["score", "conditional", "classifier"])
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_half_precision_autocast_trains_near_float32_and_resumes(precision, kind, tmp_path):
    """Also for a class-conditional network net(t, x, y) and a classifier: the output is cast back
    to the dtype of x (not of the labels)."""
    write_run(tmp_path / "run", steps=1, kind=kind)
    reference = _one_process_trainer(tmp_path / "run")
    reference.fit(4)
    config = read_config(tmp_path / "run")
    train = TrainConfig(**{**config.train.to_dict(), "precision": precision, "steps": 4})
    run = build_run(config, torch.device("cpu"))
    half = Trainer(
        run.model,
        run.loss,
        run.batches(),
        train,
        run_dir=tmp_path / "half",
    )
    result = half.fit(2)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    state = load_checkpoint(tmp_path / "half" / "checkpoints" / "last.pt")
    assert ("grad_scaler" in state) == (precision == "float16")
    run = build_run(config, torch.device("cpu"))
    half = Trainer(
        run.model,
        run.loss,
        run.batches(),
        train,
        run_dir=tmp_path / "half",
        if_exists="resume",
    )
    half.fit(4)
    # The network runs in half precision, the weights and the optimizer in float32: after 4 steps
    # the weights differ from float32 training by a fraction of how far training moved them.
    start = build_run(config, torch.device("cpu")).model.state_dict()
    ref, got = reference.model.state_dict(), half.model.state_dict()
    moved = sum(float((ref[k] - start[k]).square().sum()) for k in ref) ** 0.5
    apart = sum(float((got[k] - ref[k]).square().sum()) for k in ref) ** 0.5
    assert 0 < apart < 0.2 * moved


@pytest.fixture(scope="module")
def evaluated(launched):
    """`sdegen nll` and `sdegen sample` of the same run on 1 process, into ``one/``."""
    root, statuses, outputs = launched
    for k in (0, 1):
        assert "command 0 exited with 0" in outputs[k] and "command 1 exited with 0" in outputs[k], outputs[k]
    for command in (NLL, SAMPLE):
        assert main([*_on(command, root), "--out", str(root / "one")]) == 0
    return root


def test_two_process_nll_is_bit_identical_to_one_process_per_example(evaluated):
    one = torch.load(evaluated / "one" / PER_EXAMPLE, weights_only=True)["logp"]
    two = torch.load(evaluated / "two" / PER_EXAMPLE, weights_only=True)["logp"]
    assert one.shape == (2, 12)
    assert torch.equal(one, two)
    assert not torch.equal(one[0], one[1])  # repeats draw their own probes


def test_two_process_samples_are_bit_identical_to_one_process(evaluated):
    one = torch.load(evaluated / "one" / "samples.pt", weights_only=True)
    two = torch.load(evaluated / "two" / "samples.pt", weights_only=True)
    assert one.shape == (10, 2)
    assert torch.equal(one, two)


@pytest.fixture(scope="module")
def conditional(launched):
    """The conditional run trained on 2 processes, and its `nll` and guided `sample` on 1 process into
    ``cond-one/`` (and the samples in one chunk into ``cond-whole/``)."""
    root, statuses, outputs = launched
    for k in (0, 1):
        for c in (2, 3, 4):
            assert f"command {c} exited with 0" in outputs[k], outputs[k]
    for command in (NLL, SAMPLE_GUIDED):
        assert main([*_on(command, root, "cond"), "--out", str(root / "cond-one")]) == 0
    whole = [*_on(SAMPLE_GUIDED, root, "cond"), "--batch-size", "10", "--out", str(root / "cond-whole")]
    assert main(whole) == 0
    return root


def test_two_processes_train_a_conditional_model_with_label_dropout_like_one(conditional):
    out = conditional / "cond"
    two = load_checkpoint(out / "checkpoints" / "last.pt")
    assert two["step"] == 3 and two["world_size"] == 2
    assert json.loads((out / "config.json").read_text())["kind"] == "conditional"
    one = _one_process_trainer(out)
    assert one.model.is_conditional and one.data.n_classes == 8
    one.fit(3)
    _assert_round_off_equal(one.model.state_dict(), two["model"], "model")
    _assert_round_off_equal(one.ema.state_dict(), two["ema"], "ema")
    assert torch.equal(one.generator.get_state(), two["generator"])  # the dropout mask included


def test_two_process_conditional_nll_and_guided_samples_are_bit_identical_to_one_process(conditional):
    one = torch.load(conditional / "cond-one" / PER_EXAMPLE, weights_only=True)["logp"]
    two = torch.load(conditional / "cond-two" / PER_EXAMPLE, weights_only=True)["logp"]
    assert one.shape == (2, 12) and torch.equal(one, two)
    report = json.loads((conditional / "cond-two" / "nll.json").read_text())
    assert report["of"].startswith("-log p(x | y)") and report["processes"] == 2
    one = torch.load(conditional / "cond-one" / "samples.pt", weights_only=True)
    two = torch.load(conditional / "cond-two" / "samples.pt", weights_only=True)
    assert one.shape == (10, 2) and torch.equal(one, two)
    report = json.loads((conditional / "cond-two" / "samples.json").read_text())
    assert report["guidance"] == 1.0 and report["labels"] == "every class in turn"
    # In one chunk instead of chunks of 4, each sample keeps its seed and its class: the same samples
    # to round-off (a chunk guided to another chunk's classes would move its samples by far more).
    whole = torch.load(conditional / "cond-whole" / "samples.pt", weights_only=True)
    torch.testing.assert_close(whole, one, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_compiled_network_samples_and_trains_like_the_eager_one(tmp_path, monkeypatch):
    """torch.compile (off by default; slow to compile, so not in the default suite) changes nothing
    but round-off: in sampling, in the likelihood's forward + VJP, and in training."""
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "1")
    import sdegen
    from sdegen.random import PerSampleGenerator

    write_run(tmp_path / "run", steps=1)
    eager = _one_process_trainer(tmp_path / "run")
    eager.fit(3)
    config = read_config(tmp_path / "run")
    run = build_run(config, torch.device("cpu"))
    train = TrainConfig(**{**config.train.to_dict(), "compile": True})
    compiled = Trainer(run.model, run.loss, run.data.batches(config.batch_size, config.seed), train)
    compiled.fit(3)
    _assert_round_off_equal(eager.model.state_dict(), compiled.model.state_dict(), "model")
    model = eager.model.eval()
    sde = model.sde
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    out = {}
    for name in ("eager", "compiled"):
        if name == "compiled":
            model.net.compile()
        out[name] = (
            sdegen.sample(
                sde, model, (64, 2), sdegen.DDPMSampler(20), generator=PerSampleGenerator(range(64))
            ).x,
            sdegen.log_likelihood(x, sde, model, generator=PerSampleGenerator(range(64))).logp,
        )
    for a, b in zip(out["eager"], out["compiled"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
