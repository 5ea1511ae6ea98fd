"""What `sdegen` does when an option is left out: each sampler's own number of steps, help texts
that state each default once, and progress that can be turned off on every command."""

import argparse
import io
import json
import re

import pytest
from _runs import write_run

from sdegen.cli import build_parser, main
from sdegen.cli._common import HelpFormatter
from sdegen.run.registry import SAMPLERS, SamplerOptions

COMMANDS = ("train", "sample", "nll", "demo")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("defaults") / "ring", steps=2)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_sampler_defaults_to_its_classes_steps():
    for name, spec in SAMPLERS.items():
        sampler = spec.factory(SamplerOptions())
        assert sampler.steps == type(sampler).default_steps == spec.default_steps, name
        assert (sampler.steps is None) == (not spec.fixed_steps), name
    # few-step samplers take a few-step budget, the SDE and PC samplers their classic 1000
    assert SAMPLERS["dpmpp-2m"].default_steps == SAMPLERS["unipc"].default_steps == 20
    assert SAMPLERS["pc"].default_steps == SAMPLERS["reverse-sde"].default_steps == 1000


def test_sample_without_steps_runs_the_samplers_default(run_dir, tmp_path, capsys):
    argv = ["sample", str(run_dir), "--sampler", "dpmpp-2m", "--n", "16", "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads((tmp_path / "samples.json").read_text())
    assert report["nfe"] == 20 and "steps=20" in report["repr"]
    # a named grid without --steps takes the sampler's number of steps too
    assert main([*argv, "--grid", "uniform", "--sampler", "edm-heun"]) == 0
    report = json.loads((tmp_path / "samples.json").read_text())
    assert report["nfe"] == 2 * 18 and "UniformGrid(steps=18)" in report["repr"], report["repr"]
    help_text = " ".join(_subparsers()["sample"].format_help().split())
    assert "20 for dpmpp-2m, dpmpp-3m, dpmpp-2m-sde, unipc" in help_text


@pytest.mark.parametrize(
    "extra, match",
    [
        (
            ["--sampler", "ode", "--steps", "5"],
            "--steps 5 applies to fixed-step samplers; --sampler ode is adaptive",
        ),
        (["--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
        (["--no-progress", "yes"], "unrecognized arguments: yes"),
    ],
)
def test_bad_steps_and_progress_flags_are_usage_errors(run_dir, capsys, extra, match):
    assert main(["sample", str(run_dir), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err


@pytest.mark.parametrize("command", COMMANDS)
def test_help_states_each_default_once_and_never_none(command):
    parser = _subparsers()[command]
    formatter = HelpFormatter(command)
    for action in parser._actions:
        text = formatter._expand_help(action) if action.help else ""
        # a help that states its default itself gets no second one appended
        if re.search(r"[(\[]default\b", action.help or ""):
            assert formatter._get_help_string(action) == action.help, (command, action.dest, text)
        assert "(default: None)" not in text and "(default: False)" not in text, (command, action.dest)
    assert "--no-progress" in parser.format_help()


def test_progress_on_a_terminal_is_labelled_and_no_progress_silences_it(run_dir, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    argv = ["sample", str(run_dir), "--sampler", "ddim", "--steps", "3", "--n", "8", "--out", str(tmp_path)]
    for flags, shown in (([], True), (["--no-progress"], False)):
        stream = Terminal()
        monkeypatch.setattr("sys.stderr", stream)
        assert main([*argv, *flags]) == 0
        assert ("DDIMSampler" in stream.getvalue()) == shown, stream.getvalue()
