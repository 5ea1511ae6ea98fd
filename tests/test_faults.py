"""Faults: nothing is lost and nothing wrong is loaded.

kill -9 in the middle of a checkpoint write (a real subprocess), truncated, bit-flipped and foreign
checkpoints, read-only and full directories (simulated by a patched writer: a small tmpfs is not
available here, and root ignores permission bits), concurrent writers of one run directory, and
``--resume`` with changed settings.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _runs import write_run

import sdegen
from sdegen import data as D
from sdegen.cli import _report, main
from sdegen.losses import DenoisingScoreMatching, SlicedScoreMatching
from sdegen.nn import ScoreMLP
from sdegen.parameterization import DataPrediction, NoisePrediction, ScoreModel
from sdegen.samplers import ProbabilityFlowSampler
from sdegen.training import (
    CheckpointError,
    RunDirectory,
    RunDirectoryBusy,
    TrainConfig,
    Trainer,
    load_checkpoint,
)
from sdegen.training import files as files_module

ROOT = Path(__file__).resolve().parents[1]
RING = D.ring(4, radius=2.0, std=0.3)
TINY = [
    *("--steps 4 --hidden 16 --depth 1 --batch-size 32 --warmup 1 --log-every 2 --eval-every 4").split(),
    *("--n-eval 16 --checkpoint-every 2 --no-progress").split(),
]


def _trainer(run_dir=None, *, sde=None, loss=None, param=None, seed=0, hidden=16, checkpoint_every=2, **kw):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = ScoreMLP(2, hidden=hidden, depth=1, time_dim=8)
    model = ScoreModel(net, sde or sdegen.VPSDE(), param or NoisePrediction())
    config = TrainConfig(
        steps=4,
        lr=1e-2,
        warmup_steps=1,
        log_every=2,
        checkpoint_every=checkpoint_every,
        progress=False,
        seed=seed,
    )
    return Trainer(
        model,
        loss or DenoisingScoreMatching(),
        D.DistributionBatches(RING, 32),
        config,
        run_dir=run_dir,
        **kw,
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (but the lock files) and its bytes."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.startswith(".lock")
    }


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- kill -9 during a save, with a second writer knocking -----------------------------------------
# The child builds the same run as _trainer() with as few imports as possible (it is a fresh
# interpreter), completes a checkpoint, then dies in the middle of the next save.
CHILD = """
import sys, time
import torch
from sdegen import VPSDE, data as D
from sdegen.losses import DenoisingScoreMatching
from sdegen.nn import ScoreMLP
from sdegen.parameterization import NoisePrediction, ScoreModel
from sdegen.training import TrainConfig, Trainer, checkpoint

run, marker = sys.argv[1:]
torch.manual_seed(0)
model = ScoreModel(ScoreMLP(2, hidden=16, depth=1, time_dim=8), VPSDE(), NoisePrediction())
config = TrainConfig(steps=4, lr=1e-2, warmup_steps=1, log_every=2, checkpoint_every=2, progress=False)
trainer = Trainer(model, DenoisingScoreMatching(), D.DistributionBatches(D.ring(4, radius=2.0, std=0.3), 32), config, run_dir=run)
trainer.fit(2)  # a complete checkpoint at step 2

def slow_save(obj, f):  # part of a file, then wait, holding the run directory, to be killed
    f.write(b"x" * 100_000)
    f.flush()
    open(marker, "w").close()
    time.sleep(300)

checkpoint.torch.save = slow_save
trainer.train_step()
trainer.save_checkpoint()
"""


def test_kill_9_during_a_save_loses_nothing_and_a_second_writer_is_refused(tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "in-save"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run), str(marker)], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, "the child died before its save"
            assert time.monotonic() < deadline, "the child never reached its save"
            time.sleep(0.05)
        # While it writes, the run directory is the child's: other writers are refused at once.
        with pytest.raises(RunDirectoryBusy, match=f"in use by another writer \\(process {child.pid} on"):
            _trainer(run, if_exists="resume").fit()
        assert main(["demo", "--out", str(run), "--steps", "2", "--no-progress"]) == 2
        assert f"is in use by another writer (process {child.pid} on" in _one_line(capsys)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    ckpt = run / "checkpoints" / "last.pt"
    stale = list(ckpt.parent.glob(".last.pt.*.tmp"))
    assert len(stale) == 1 and stale[0].stat().st_size == 100_000  # the interrupted write
    assert load_checkpoint(ckpt)["step"] == 2  # the previous checkpoint, intact and verified
    # The kernel dropped the dead writer's lock: the run is resumed at once, and the next save
    # removes the interrupted write's temporary file.
    resumed = _trainer(run, if_exists="resume")
    resumed.fit(4)
    assert resumed.step == 4 and load_checkpoint(ckpt)["step"] == 4
    assert not list(ckpt.parent.glob("*.tmp"))


# -- damaged and foreign checkpoints ------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A run directory with a checkpoint at step 4, and that checkpoint's bytes."""
    run = tmp_path_factory.mktemp("faults") / "run"
    trainer = _trainer(run)
    trainer.fit()
    return run, trainer


def _copy(saved, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(saved[0], run)
    return run


def test_a_flipped_bit_in_a_weight_is_caught_by_the_checksum(saved, tmp_path):
    run = _copy(saved, tmp_path)
    ckpt = run / "checkpoints" / "last.pt"
    blob = bytearray(ckpt.read_bytes())
    weight = saved[1].model.state_dict()["net.layers.0.weight"].numpy().tobytes()
    at = blob.find(weight)
    assert at > 0
    blob[at + len(weight) // 2] ^= 0x40  # one bit of one float: a silently wrong weight without a checksum
    ckpt.write_bytes(bytes(blob))
    before = _snapshot(run)
    victim = _trainer(run, if_exists="resume")
    params = {k: v.clone() for k, v in victim.model.state_dict().items()}
    with pytest.raises(CheckpointError, match="do not match their SHA-256 checksum"):
        victim.load_checkpoint()
    assert _snapshot(run) == before  # every file as it was
    assert victim.step == 0 and all(torch.equal(params[k], v) for k, v in victim.model.state_dict().items())


def test_flips_and_truncations_anywhere_never_load_a_different_state(saved, tmp_path):
    good = (saved[0] / "checkpoints" / "last.pt").read_bytes()
    reference = load_checkpoint(saved[0] / "checkpoints" / "last.pt")
    path = tmp_path / "bad.pt"
    refused = loaded_same = 0
    positions = range(0, len(good), max(1, len(good) // 60))
    for at in positions:
        for blob in (good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :], good[:at]):
            path.write_bytes(blob)
            try:
                state = load_checkpoint(path)
            except CheckpointError:
                refused += 1
                continue
            # A flip in bytes that carry nothing (zip padding, a record's CRC): the same state.
            assert state["checksum"] == reference["checksum"]
            assert sdegen.training.checkpoint.checksum(state) == reference["checksum"]
            loaded_same += 1
    assert refused + loaded_same == 2 * len(positions) and refused > len(positions)


@pytest.mark.parametrize(
    "other, differs",
    [
        (
            {"sde": sdegen.VESDE()},
            "sde: checkpoint VPSDE(beta_min=0.1, beta_max=20, T=1) vs this model VESDE",
        ),
        ({"sde": sdegen.VPSDE(beta_max=10.0)}, "vs this model VPSDE(beta_min=0.1, beta_max=10"),
        ({"sde": sdegen.SubVPSDE()}, "vs this model SubVPSDE"),
        ({"loss": SlicedScoreMatching()}, "loss: checkpoint DenoisingScoreMatching"),
        (
            {"param": DataPrediction()},
            "parameterization: checkpoint NoisePrediction vs this model DataPrediction",
        ),
        ({"seed": 1}, "was trained with seed 0, this trainer has seed 1"),
        ({"hidden": 8}, "checkpoint model does not match this model (shape mismatch"),
    ],
    ids=["ve-into-vp", "beta-max", "subvp", "loss", "parameterization", "seed", "network"],
)
def test_a_foreign_checkpoint_is_refused_naming_what_differs(saved, tmp_path, other, differs):
    run = _copy(saved, tmp_path)
    before = _snapshot(run)
    victim = _trainer(run, if_exists="resume", **other)
    with pytest.raises(CheckpointError) as info:
        victim.fit()  # fit() resumes first: nothing is trained or written
    assert differs in str(info.value), info.value
    assert _snapshot(run) == before and victim.step == 0


def test_load_weights_refuses_a_checkpoint_of_another_sde(saved):
    from sdegen.training import load_weights

    model = ScoreModel(ScoreMLP(2, hidden=16, depth=1, time_dim=8), sdegen.VESDE(), NoisePrediction())
    with pytest.raises(CheckpointError, match=r"sde: checkpoint VPSDE\(.*\) vs this model VESDE"):
        load_weights(model, saved[0] / "checkpoints" / "last.pt")


def test_a_format_1_checkpoint_is_still_read_with_a_warning(saved, tmp_path):
    state = load_checkpoint(saved[0] / "checkpoints" / "last.pt")
    old = {k: v for k, v in state.items() if k not in ("checksum", "configuration")} | {"version": 1}
    torch.save(old, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="format version 1"):
        assert load_checkpoint(tmp_path / "old.pt")["step"] == 4


# -- full and read-only directories -------------------------------------------------------------------
class _FullDisk:
    """os.fdopen for files that accept ``budget`` bytes in all, then fail like a full disk."""

    def __init__(self, budget: int) -> None:
        self.budget, self.real = budget, os.fdopen

    def __call__(self, *args, **kw):
        return _LimitedFile(self.real(*args, **kw), self)


class _LimitedFile:
    def __init__(self, f, disk: _FullDisk) -> None:
        self.f, self.disk = f, disk

    def write(self, b) -> int:
        if len(b) > self.disk.budget:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.disk.budget -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path / "run")
    trainer.fit(2)  # last.pt at step 2
    good = trainer.checkpoint_path.read_bytes()
    monkeypatch.setattr(files_module.os, "fdopen", _FullDisk(budget=5_000))
    with pytest.raises(
        OSError, match=r"could not write '.*last\.pt': No space left on device; the previous file"
    ):
        trainer.fit(4)
    monkeypatch.undo()
    assert trainer.checkpoint_path.read_bytes() == good
    assert not list(trainer.checkpoint_path.parent.glob("*.tmp"))
    assert _trainer(tmp_path / "run", if_exists="resume").load_checkpoint() == 2


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A run directory as `sdegen train` writes it (4 steps, lr 1e-3, hidden 16)."""
    return write_run(tmp_path_factory.mktemp("cli-faults") / "run")


def test_nll_prints_its_result_before_a_failing_write(cli_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(files_module.os, "fdopen", _FullDisk(budget=10))
    argv = ["nll", str(cli_run), "--n", "8", "--rtol", "1e-2", "--atol", "1e-2", "--out", str(tmp_path)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "NLL " in captured.out and "nats" in captured.out  # the result survives on stdout
    assert captured.err.count("\n") == 1 and "No space left on device" in captured.err
    assert not (tmp_path / "nll.json").exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("command", ["train", "sample", "nll", "demo"])
def test_an_unwritable_output_is_reported_before_the_work(cli_run, tmp_path, capsys, monkeypatch, command):
    def read_only(*args, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    worked = []
    monkeypatch.setattr(files_module.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(Trainer, "train_step", lambda self: worked.append("train"))
    monkeypatch.setattr(sdegen, "sample", lambda *a, **k: worked.append("sample"))
    monkeypatch.setattr(sdegen, "log_likelihood", lambda *a, **k: worked.append("nll"))
    out = tmp_path / "out"
    argv = {
        "train": ["train", *TINY],
        "sample": ["sample", str(cli_run), "--n", "4"],
        "nll": ["nll", str(cli_run), "--n", "4"],
        "demo": ["demo", "--steps", "2", "--no-progress"],
    }[command]
    assert main([*argv, "--out", str(out)]) == 1
    err = _one_line(capsys)
    assert "cannot write to" in err and "Read-only file system" in err, err
    assert worked == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_directory_is_reported_before_the_work(cli_run, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["nll", str(cli_run), "--n", "4", "--out", str(out)]) == 1
        assert "cannot write to" in _one_line(capsys)
    finally:
        out.chmod(0o755)


# -- one writer per run directory (another process's lock: the kill -9 test above) -------------------
def test_two_trainers_on_one_directory_never_mix_their_runs(tmp_path):
    run = tmp_path / "run"
    first, second = _trainer(run), _trainer(run, seed=1)  # both see an empty directory
    first.fit()
    with pytest.raises(FileExistsError, match="now holds a run written by someone else"):
        second.fit()
    log = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert log == [2, 4] and load_checkpoint(run / "checkpoints" / "last.pt")["config"]["seed"] == 0
    with RunDirectory(run).lock(), pytest.raises(RunDirectoryBusy):
        first.save_checkpoint()


def test_the_python_api_refuses_an_existing_run_unless_told(saved, tmp_path):
    run = _copy(saved, tmp_path)
    before = _snapshot(run)
    with pytest.raises(FileExistsError, match="already holds a run .*if_exists='resume'.*'overwrite'"):
        _trainer(run)
    assert _snapshot(run) == before
    stepped = _trainer(run, if_exists="resume")
    stepped.train_step()  # steps taken before the resume would be thrown away by loading: refused
    with pytest.raises(FileExistsError, match="has taken 1 steps without loading it"):
        stepped.save_checkpoint()
    assert _snapshot(run) == before
    resumed = _trainer(run, if_exists="resume")
    assert resumed.fit(6).step == 6
    fresh = _trainer(run, if_exists="overwrite")
    fresh.fit(2)
    log = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert log == [2] and load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2


# -- resuming with other settings ---------------------------------------------------------------------
def test_resume_applies_and_records_a_changed_learning_rate(cli_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    assert (
        main(["train", "--out", str(run), "--resume", "--steps", "6", "--lr", "0.002", "--no-progress"]) == 0
    )
    assert "with changed settings: --lr 0.001 -> 0.002" in capsys.readouterr().out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["lr"] == 0.002 and cfg["train"]["steps"] == 6
    assert cfg["resumed"] == [{"step": 4, "changed": {"--steps": [4, 6], "--lr": [0.001, 0.002]}}]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["setting_changes"] == [{"step": 4, "changed": {"lr": [0.001, 0.002]}}]
    # The optimizer continued at the new rate (warm-up is over, so lr is the new peak).
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [0.002]


def test_resume_refuses_to_change_what_defines_the_run_and_writes_nothing(cli_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    before = _snapshot(run)
    argv = ["train", "--out", str(run), "--resume", "--sde", "ve", "--hidden", "64", "--loss", "ssm"]
    assert main(argv) == 2
    err = _one_line(capsys)
    for part in ("--hidden 64 (run: 16)", "--loss ssm (run: dsm)", "--sde ve (run: vp)"):
        assert part in err, err
    assert _snapshot(run) == before
    # A no-op resume (already at --steps) and a failed one (corrupt checkpoint) rewrite nothing.
    assert main(["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]) == 0
    assert _snapshot(run) == before
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    damaged = _snapshot(run)
    assert main(["train", "--out", str(run), "--resume", "--steps", "8", "--lr", "0.01"]) == 2
    assert "is corrupt" in _one_line(capsys) and _snapshot(run) == damaged


# -- solver limits: every solve is bounded and fails with the time it reached ---------------------------
def test_a_stiff_probability_flow_solve_stops_at_its_step_limit_with_the_time_reached():
    assert ProbabilityFlowSampler().max_steps == 10_000  # bounded by default
    sampler = ProbabilityFlowSampler(max_steps=30)
    with pytest.raises(
        sdegen.SolverError, match=r"solve failed at t = 0\.9\d+ .*max_num_steps exceeded.*raise max_steps"
    ):
        sdegen.sample(
            sdegen.VPSDE(), lambda t, x: -1e4 * x, (4, 2), sampler, generator=torch.Generator().manual_seed(0)
        )


def test_a_step_size_underflow_is_the_librarys_own_error_not_torchdiffeqs_assertion():
    with pytest.raises(
        sdegen.SolverError, match=r"solve failed at t = 1 .*underflow in dt.*too stiff"
    ) as info:
        sdegen.sample(
            sdegen.VPSDE(),
            lambda t, x: -1e16 * x,
            (4, 2),
            ProbabilityFlowSampler(),
            generator=torch.Generator().manual_seed(0),
            dtype=torch.float64,
        )
    assert isinstance(info.value.__cause__, AssertionError)  # torchdiffeq's, kept as the cause


def test_the_likelihood_solve_is_bounded_by_default():
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(sdegen.SolverError, match="max_num_steps exceeded"):
        sdegen.log_likelihood(
            x, sdegen.VPSDE(), lambda t, x: 1e16 * x, divergence=sdegen.ExactTrace(), max_steps=20
        )


def test_downloading_offline_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import urllib.error

    torchvision = pytest.importorskip("torchvision")

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    argv = ["train", "--data", "cifar10", "--data-root", str(tmp_path / "data"), "--download"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    err = _one_line(capsys)
    assert "could not download CIFAR-10 into" in err and "check the network connection" in err, err


# -- the run a checkpoint belongs to ----------------------------------------------------------------
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two runs that differ only in their data set (same network shapes): ring and moons."""
    base = tmp_path_factory.mktemp("two-runs")
    return write_run(base / "ring"), write_run(base / "moons", data="moons")


def _swap_checkpoint(two_runs, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    shutil.copy(two_runs[1] / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    return run


def _edit_data(two_runs, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(two_runs[0], run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["name"] = "moons"
    (run / "config.json").write_text(json.dumps(cfg))
    return run


@pytest.mark.parametrize(
    "make", [_swap_checkpoint, _edit_data], ids=["other-runs-checkpoint", "edited-config"]
)
@pytest.mark.parametrize("command", ["sample", "nll", "resume"])
def test_a_checkpoint_of_another_run_is_refused_naming_the_data(two_runs, tmp_path, capsys, make, command):
    run = make(two_runs, tmp_path)
    before = _snapshot(run)
    argv = {
        "sample": ["sample", str(run), "--n", "4", "--out", str(tmp_path / "out")],
        "nll": ["nll", str(run), "--n", "4", "--out", str(tmp_path / "out")],
        "resume": ["train", "--out", str(run), "--resume", "--steps", "6", "--no-progress"],
    }[command]
    assert main(argv) == 2
    err = _one_line(capsys)
    assert "was written by another run than the config.json beside it" in err, err
    assert "data.name: checkpoint 'moons' vs config.json 'ring'" in err or (
        "data.name: checkpoint 'ring' vs config.json 'moons'" in err
    ), err
    assert _snapshot(run) == before and not (tmp_path / "out").exists()


def test_a_checkpoint_without_a_run_record_still_loads(tmp_path):
    from sdegen.run import load_run

    old = write_run(tmp_path / "old", record=False)
    assert "config" not in load_checkpoint(old / "checkpoints" / "last.pt")["metadata"]
    assert load_run(old, torch.device("cpu")).model is not None  # trusted to its config.json, as before


# -- a deleted lock file -----------------------------------------------------------------------------
class _DeleteLockThenResume(sdegen.training.Callback):
    """At step 2 of the first trainer, someone deletes its lock file and a second trainer resumes
    the run (and finishes it), while the first is still in fit()."""

    def __init__(self, run: Path) -> None:
        super().__init__(every=2)
        self.run, self.second = run, None

    def __call__(self, trainer):
        if trainer.step == 2 and self.second is None:
            (self.run / ".lock").unlink()
            self.second = _trainer(self.run, if_exists="resume")
            self.second.fit(4)
        return {}


def test_a_deleted_lock_stops_the_first_writer_before_it_writes_and_the_log_has_no_duplicates(tmp_path):
    run = tmp_path / "run"
    intruder = _DeleteLockThenResume(run)
    first = _trainer(run, callbacks=[intruder])
    with pytest.raises(
        sdegen.training.RunDirectoryLost, match=r"lock file .* was removed or replaced.*at step 2"
    ):
        first.fit()
    # The second writer's run is whole: one record per step, its checkpoint at step 4.
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4 and intruder.second.step == 4


def test_the_metrics_log_is_idempotent_by_step(tmp_path):
    log = sdegen.training.MetricsLog(tmp_path / "metrics.jsonl")
    for step in (2, 4, 6):
        log.append({"step": step, "loss": float(step)})
    log.append({"step": 4, "loss": -4.0})  # a run redone from step 2: steps 4 and 6 are replaced
    assert log.read() == [{"step": 2, "loss": 2.0}, {"step": 4, "loss": -4.0}]
    with open(log.path, "a") as f:
        f.write('{"step": 6, "lo')  # a record cut short by a crash
    assert log.last_step() == 4
    log.append({"step": 6, "loss": 6.0})
    assert [r["step"] for r in log.read()] == [2, 4, 6] and log.path.read_text().count("\n") == 3


# -- a run that stops before its first checkpoint -----------------------------------------------------
def test_an_invalid_run_fails_before_its_directory_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--loss", "ddpm", "--sde", "ve", "--out", str(out)]) == 1
    assert "DDPMLoss needs an SDE" in _one_line(capsys)
    assert not out.exists()  # nothing claimed: the same command with a valid SDE starts afresh


def test_resume_of_a_run_without_a_checkpoint_starts_from_step_0(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def killed(self, steps=None):  # the process dies before its first checkpoint
        raise KeyboardInterrupt

    # Held-out NLL and figures are beside the point here (and the slowest part of a tiny run).
    monkeypatch.setattr(_report, "evaluation_callbacks", lambda *args, **kwargs: [])
    with monkeypatch.context() as m:
        m.setattr(Trainer, "fit", killed)
        assert main(["train", *TINY, "--out", str(out)]) == 130
    assert (out / "config.json").is_file() and not (out / "checkpoints").exists()
    capsys.readouterr()
    assert main(["train", *TINY, "--out", str(out)]) == 2
    assert "already holds a run; pass --resume" in _one_line(capsys)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "has no checkpoint yet: its run starts from step 0" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 4


class _SignalAt(sdegen.training.Callback):
    def __init__(self, step: int, signum: int | None) -> None:
        super().__init__()
        self.step, self.signum = step, signum

    def on_log(self, trainer, record):
        if record["step"] == self.step:
            if self.signum is None:
                trainer.stop()
            else:
                os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_and_the_resumed_run_is_the_uninterrupted_one(tmp_path, signum):
    straight = _trainer(tmp_path / "straight", checkpoint_every=0)
    straight.fit(6)
    before = signal.getsignal(signum)
    run = tmp_path / "run"
    interrupted = _trainer(run, checkpoint_every=0, callbacks=[_SignalAt(2, signum)])
    with pytest.raises(
        sdegen.training.TrainingInterrupted, match=rf"{signal.Signals(signum).name} at step 2"
    ):
        interrupted.fit(6)
    assert signal.getsignal(signum) is before  # the handler was fit()'s only
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2  # not lost: checkpoint_every=0
    resumed = _trainer(run, if_exists="resume", checkpoint_every=0)
    resumed.fit(6)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        assert torch.equal(a, b)  # bit for bit the run that was never interrupted
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_stop_from_a_callback_ends_fit_with_a_checkpoint(tmp_path):
    trainer = _trainer(tmp_path / "run", checkpoint_every=0, callbacks=[_SignalAt(2, None)])
    result = trainer.fit(6)
    assert result.step == 2 and load_checkpoint(trainer.checkpoint_path)["step"] == 2


def test_ctrl_c_on_sdegen_train_saves_a_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "run"
    argv = [
        *TINY,
        "--steps",
        "100000",
        "--checkpoint-every",
        "0",
        "--log-every",
        "1",
        "--eval-every",
        "100000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "sdegen", "train", *argv, "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    step = load_checkpoint(out / "checkpoints" / "last.pt")["step"]
    assert f"stopped by SIGINT at step {step}; a checkpoint was saved" in err and err.count("\n") == 1, err
    assert step >= 1
