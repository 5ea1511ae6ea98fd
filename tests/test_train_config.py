"""`sdegen train --config FILE` and `--print-config`: a run described by a file with the schema of
config.json, explicit options over it, and every bad key or value of the file a one-line usage error
naming it."""

from __future__ import annotations

import json

import pytest
from _runs import write_run

from sdegen.cli import main

TINY = "--steps 4 --hidden 16 --depth 1 --batch-size 32 --warmup 1 --log-every 2 --eval-every 4 --n-eval 16".split()


def _printed(capsys, argv) -> dict:
    assert main([*argv, "--print-config"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "", captured.err
    return json.loads(captured.out)


def _fails(capsys, argv, match) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err


def test_print_config_resolves_the_flags_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = _printed(capsys, ["train", *TINY, "--sde", "ve", "--sigma-max", "5", "--out", str(out)])
    assert cfg["sde"] == {"name": "ve", "sigma_min": 0.01, "sigma_max": 5.0}
    assert cfg["model"] == {"name": "mlp", "hidden": 16, "depth": 1} and cfg["train"]["steps"] == 4
    assert not out.exists()


def test_a_config_file_round_trips_and_explicit_options_override_it(tmp_path, capsys):
    first = _printed(capsys, ["train", *TINY, "--sde", "subvp", "--conditional", "--label-dropout", "0.3"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(first))
    assert _printed(capsys, ["train", "--config", str(path)]) == first
    changed = _printed(capsys, ["train", "--config", str(path), "--lr", "0.01", "--hidden", "8"])
    assert changed["train"]["lr"] == 0.01 and changed["model"]["hidden"] == 8
    changed["train"]["lr"], changed["model"]["hidden"] = first["train"]["lr"], first["model"]["hidden"]
    assert changed == first  # nothing else moved


def test_a_runs_own_config_json_starts_a_run_like_it(tmp_path, capsys):
    run = write_run(tmp_path / "run", data="moons", kind="conditional")
    cfg = json.loads((run / "config.json").read_text())
    again = _printed(capsys, ["train", "--config", str(run / "config.json"), "--out", str(tmp_path / "new")])
    for record in ("resumed", "sdegen_version"):
        cfg.pop(record), again.pop(record)
    assert again == cfg


def _config_with(tmp_path, **changes) -> str:
    cfg = json.loads(json.dumps(_BASE))
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            cfg[section][key] = value
        elif value is _DELETE:
            del cfg[section]
        else:
            cfg[section] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


_DELETE = object()
_BASE = {
    "data": {"name": "ring"},
    "sde": {"name": "vp", "beta_min": 0.1, "beta_max": 20.0},
    "model": {"name": "mlp", "hidden": 16, "depth": 1},
    "parameterization": "noise",
    "loss": {"name": "dsm", "eps": 1e-5},
    "batch_size": 32,
    "train": {"steps": 4, "lr": 1e-3},
    "eval": {"every": 4, "n": 16},
    "seed": 0,
}


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"optimizer": "adam"}, "unknown setting 'optimizer'"),
        (
            {"sde__sigma_max": 5.0},
            "unknown setting 'sde.sigma_max' ('sde' here holds ['name', 'beta_min', 'beta_max'])",
        ),
        ({"data__image_size": 32}, "unknown setting 'data.image_size'"),
        ({"model__width": 8}, "unknown setting 'model.width'"),
        ({"train__lr2": 0.1}, "unknown setting 'train.lr2'"),
        ({"batch_size": "big"}, "setting 'batch_size' (--batch-size)"),
        ({"batch_size": 2.5}, "setting 'batch_size' (--batch-size)"),
        ({"batch_size": True}, "setting 'batch_size' (--batch-size) must be"),
        ({"model__hidden": 0}, "setting 'model.hidden' (--hidden)"),
        ({"train__lr": -1.0}, "setting 'train.lr' (--lr)"),
        ({"train__ema_decay": 1.5}, "ema_decay must lie in [0, 1)"),
        ({"parameterization": "velocity"}, "setting 'parameterization' (--parameterization) must be one of"),
        ({"sde__name": "vq"}, "setting 'sde.name'"),
        ({"data": "ring"}, "setting 'data' must be a JSON object"),
        ({"loss__name": None}, "setting 'loss.name'"),
        ({"kind": "gan"}, "setting 'kind' must be one of"),
        ({"train__seed": 3}, "settings 'seed' (0) and 'train.seed' (3) differ"),
        ({"train__betas": [0.5, 0.9]}, "setting 'train.betas' must be [0.9, 0.999]"),
        ({"train__progress": "yes"}, "setting 'train.progress' must be true or false"),
        ({"data__download": 1}, "setting 'data.download'"),
    ],
    ids=lambda v: str(v)[:30] if isinstance(v, dict) else None,
)
def test_a_bad_key_or_value_in_the_config_file_is_named(tmp_path, capsys, changes, match):
    _fails(capsys, ["train", "--config", _config_with(tmp_path, **changes), "--print-config"], match)


def test_config_file_and_option_misuse_are_usage_errors(tmp_path, capsys):
    good = _config_with(tmp_path)
    _fails(capsys, ["train", "--config", str(tmp_path / "none.json")], "the file does not exist")
    (tmp_path / "bad.json").write_text("{data: ring}")
    _fails(capsys, ["train", "--config", str(tmp_path / "bad.json")], "not valid JSON")
    (tmp_path / "list.json").write_text("[1, 2]")
    _fails(capsys, ["train", "--config", str(tmp_path / "list.json")], "must hold a JSON object")
    _fails(capsys, ["train", "--config", good, "--resume"], "drop --config")
    _fails(capsys, ["train", "--config", good, "--preset", "ncsn"], "--config and --preset")
    _fails(capsys, ["train", "--log", "wandb"], "argument --log: invalid choice: 'wandb'")
