"""`sdegen fit-grid` and `sdegen sample --grid fitted|FILE`: a grid fitted to a run, saved in it, and
sampled with bit for bit as from its file."""

import json

import pytest
import torch
from _runs import write_run
from test_cli import _fails_cleanly

from sdegen.cli import main
from sdegen.samplers import FittedGrid


@pytest.fixture(scope="module")
def vp_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("fit") / "run", steps=4)


@pytest.fixture(scope="module")
def fitted(vp_run):
    argv = ["fit-grid", str(vp_run), "--sampler", "dpmpp-2m", "--steps", "4", "--n", "32", "--rtol", "1e-4"]
    assert main([*argv, "--max-evaluations", "8"]) == 0
    return vp_run / "grids" / "dpmpp-2m-4.json"


def test_fit_grid_writes_the_grid_and_its_cost_into_the_run(fitted, capsys):
    grid = FittedGrid.load(fitted)
    assert grid.steps == 4 and grid.calibration_size == 32 and grid.evaluations <= 8
    assert grid.error <= grid.initial_error
    report = json.loads(fitted.with_suffix(".report.json").read_text())
    assert report["nfe_per_calibration_sample"] == grid.nfe == grid.reference_nfe + 4 * grid.evaluations


def test_sample_with_the_fitted_grid_or_its_file_gives_the_same_samples(vp_run, fitted, tmp_path):
    base = ["sample", str(vp_run), "--sampler", "dpmpp-2m", "--steps", "4", "--n", "8"]
    assert main([*base, "--grid", "fitted", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--grid", str(fitted), "--out", str(tmp_path / "b")]) == 0
    a = torch.load(tmp_path / "a" / "samples.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "samples.pt", weights_only=True)
    assert torch.equal(a, b)
    report = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert report["nfe"] == 4 and "CustomGrid" in report["repr"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["sample", "{run}", "--sampler", "ddim", "--steps", "4", "--grid", "fitted"], "sdegen fit-grid"),
        (["sample", "{run}", "--sampler", "ddim", "--grid", "{run}/nothing.json"], "nor a file"),
        (["sample", "{run}", "--grid", "fitted"], "needs --sampler"),
        (["sample", "{run}", "--sampler", "ddim", "--grid", "{run}/config.json"], "not a fitted-grid file"),
        (["fit-grid", "{run}", "--sampler", "ddpm", "--steps", "4"], "stochastic"),
        (["fit-grid", "{run}", "--sampler", "ddim", "--steps", "1"], "no interior time"),
    ],
)
def test_bad_grid_arguments_are_usage_errors(vp_run, capsys, argv, match):
    _fails_cleanly(capsys, [a.replace("{run}", str(vp_run)) for a in argv], match)
