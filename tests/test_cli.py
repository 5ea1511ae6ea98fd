"""The sdegen command: help for every subcommand, a tiny train/resume round trip, and one-line
errors with exit code 2 for bad arguments and missing files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdegen.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--steps",
    "30",
    "--hidden",
    "32",
    "--depth",
    "2",
    "--batch-size",
    "64",
    "--warmup",
    "5",
    "--log-every",
    "10",
    "--eval-every",
    "15",
    "--n-eval",
    "64",
    "--no-progress",
]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _fails_cleanly(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err


@pytest.mark.parametrize("command", ["train", "sample", "nll", "demo"])
def test_every_subcommand_has_help_with_defaults(capsys, command):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--device", "--seed", "--out"):
        assert option in text
    assert "(default: cpu)" in text and "(default: 0)" in text


def test_train_writes_a_run_directory_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["data"]["name"] == "ring" and cfg["model"]["name"] == "mlp" and cfg["train"]["steps"] == 30
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 15, 20, 30]
    assert "held_out_loss" in records[1] and "loss" in records[0]
    assert (out / "checkpoints" / "last.pt").is_file()
    _fails_cleanly(capsys, ["train", "--out", str(out), *TINY], "already holds a run; pass --resume")
    assert main(["train", "--out", str(out), "--resume", "--steps", "40", "--no-progress"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 15, 20, 30, 40]
    assert main(["train", "--out", str(out), "--resume", "--steps", "40", "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--steps", "-3"], "argument --steps: expected a positive integer, got '-3'"),
        (["train", "--lr", "abc"], "argument --lr: expected a positive number, got 'abc'"),
        (["train", "--data", "imagenet"], "argument --data: invalid choice: 'imagenet'"),
        (["train", "--data", "mnist"], "--data mnist needs --data-root DIR"),
        (["train", "--data", "mnist", "--data-root", "{tmp}/nowhere"], "MNIST not found under"),
        (["train", "--data", "folder", "--data-root", "{tmp}/nowhere"], "does not exist"),
        (["train", "--model", "unet-tiny"], "--model unet-tiny needs image data"),
        (
            ["train", "--device", "cuda:7"]
            if not torch.cuda.is_available()
            else ["train", "--device", "tpu"],
            "--device",
        ),
        (["train", "--device", "gpu0"], "--device 'gpu0' is not a torch device"),
        (["train", "--resume", "--out", "{tmp}/none"], "config.json' does not exist"),
        (["sample", "{tmp}/none"], "config.json' does not exist"),
        (["nll", "{tmp}/none"], "config.json' does not exist"),
        (["sample"], "the following arguments are required: RUN"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, argv, match):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[:1] == ["train"] and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    _fails_cleanly(capsys, argv, match)


def test_missing_or_corrupt_checkpoint_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    ckpt = out / "checkpoints" / "last.pt"
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 3])
    _fails_cleanly(capsys, ["train", "--out", str(out), "--resume", "--steps", "40"], "is corrupt")
    assert ckpt.read_bytes() == good[: len(good) // 3]  # nothing was written over it
    ckpt.unlink()
    _fails_cleanly(capsys, ["sample", str(out)], "last.pt' does not exist")


def test_python_dash_m_runs_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "sdegen", "train", "--steps", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "positive integer" in proc.stderr
