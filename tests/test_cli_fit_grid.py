"""`sdegen fit-grid` and `sdegen sample --grid fitted|FILE`: a grid fitted to a run, saved in it, and
sampled with bit for bit as from its file."""

import json

import pytest
import torch
from _runs import write_run
from test_cli import _fails_cleanly

from sdegen.cli import main
from sdegen.samplers import FittedGrid, FittedSolver


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


@pytest.fixture(scope="module")
def fitted_solver(vp_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("solver") / "unipc-4.json"
    argv = ["fit-grid", str(vp_run), "--sampler", "unipc", "--steps", "4", "--n", "32", "--rtol", "1e-4"]
    assert main([*argv, "--max-evaluations", "8", "--coefficients", "--out", str(out)]) == 0
    return out.with_suffix(".solver.json")


def test_fit_grid_with_coefficients_writes_a_solver_on_the_fitted_grid(fitted_solver):
    solver = FittedSolver.load(fitted_solver)
    grid = FittedGrid.load(fitted_solver.with_name("unipc-4.json"))
    assert solver.times == grid.times and solver.steps == 4
    fit = solver.fit
    assert fit.calibration_size == 32 and fit.validation_size == 8 and fit.evaluations <= 9
    assert fit.validation_error <= fit.initial_validation_error
    # it starts from the fitted grid's sampler: over the fitted and the held-out states its initial
    # error is the grid's fitted error
    initial = (24 * fit.initial_error + 8 * fit.initial_validation_error) / 32
    assert initial == pytest.approx(grid.error, rel=1e-4)


def test_sample_with_a_fitted_solver_file_is_reproducible(vp_run, fitted_solver, tmp_path):
    base = ["sample", str(vp_run), "--grid", str(fitted_solver), "--n", "8"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--steps", "4", "--out", str(tmp_path / "b")]) == 0
    a = torch.load(tmp_path / "a" / "samples.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "samples.pt", weights_only=True)
    assert torch.equal(a, b)
    report = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert report["nfe"] == 4 and "FittedSolver" in report["repr"]


def test_bad_solver_arguments_are_usage_errors(vp_run, fitted_solver, capsys):
    _fails_cleanly(
        capsys, ["sample", str(vp_run), "--grid", str(fitted_solver), "--steps", "5"], "drop --steps 5"
    )
    argv = ["fit-grid", str(vp_run), "--sampler", "dpmpp-2s", "--steps", "2", "--n", "8", "--coefficients"]
    _fails_cleanly(
        capsys, [*argv, "--max-evaluations", "2", "--rtol", "1e-3"], "one evaluation at each grid time"
    )
