"""Grids fitted to a model (sdegen.samplers.fit_grid): lower endpoint error than the sampler's own
grid at the same NFE on fresh x_T, an honest cost, exact save/load, and refusals before any work."""

import json

import pytest
import torch

import sdegen
from sdegen import VESDE, VPSDE, DDIMSampler, DPMSolverMultistepSampler, ProbabilityFlowSampler
from sdegen.analytic import GaussianMixture
from sdegen.samplers import FittedGrid, KarrasGrid, LogSNRGrid, UniformGrid, fit_grid

F64 = torch.float64


def _problem(sde):
    """A mixture of unequal scales and weights (not a problem the defaults were measured on)."""
    cov = torch.stack([torch.eye(2, dtype=F64) * s**2 for s in (1.0, 0.1, 0.3)])
    mixture = GaussianMixture([0.5, 0.3, 0.2], [[-2.0, 0.0], [2.0, 1.0], [1.0, -3.0]], cov)
    prior = mixture.marginal(sde, sde.T)
    return mixture.score(sde), prior


@pytest.fixture(scope="module")
def fitted_vp():
    sde = VPSDE()
    score, prior = _problem(sde)
    x_cal = prior.sample(128, generator=torch.Generator().manual_seed(0))
    sampler = DPMSolverMultistepSampler(6)
    return sde, score, prior, sampler, fit_grid(sampler, sde, score, x_cal, max_evaluations=80)


def test_the_fitted_grid_lowers_the_endpoint_error_on_fresh_x_T(fitted_vp):
    sde, score, prior, sampler, fit = fitted_vp
    x_T = prior.sample(500, generator=torch.Generator().manual_seed(1))
    exact = ProbabilityFlowSampler("dopri5", rtol=1e-8, atol=1e-8)(sde, score, x_T).x
    default = sampler(sde, score, x_T)
    fitted = DPMSolverMultistepSampler(grid=fit.grid)(sde, score, x_T)
    assert default.nfe == fitted.nfe == 6
    err_default = float((default.x - exact).norm(dim=1).mean())
    err_fitted = float((fitted.x - exact).norm(dim=1).mean())
    # measured: 0.32 -> 0.12 (calibration batch 0.27 -> 0.10, 80 runs)
    assert err_fitted < 0.6 * err_default, (err_default, err_fitted)
    assert fit.error < fit.initial_error
    assert fit.times[0] == sde.T and fit.times[-1] == sde.sampling_eps and fit.steps == 6


def test_the_cost_of_the_fit_is_the_reference_solve_plus_the_sampler_runs(fitted_vp):
    *_, fit = fitted_vp
    assert fit.evaluations <= 80 and fit.calibration_size == 128
    assert fit.nfe == fit.reference_nfe + 6 * fit.evaluations
    assert fit.reference_nfe > 0


def test_a_saved_and_loaded_grid_gives_bit_identical_samples(fitted_vp, tmp_path):
    sde, score, prior, _, fit = fitted_vp
    fit.save(tmp_path / "grid.json")
    loaded = FittedGrid.load(tmp_path / "grid.json")
    assert loaded == fit
    x_T = prior.sample(64, generator=torch.Generator().manual_seed(2))
    a = DPMSolverMultistepSampler(grid=fit.grid)(sde, score, x_T).x
    b = DPMSolverMultistepSampler(grid=loaded.grid)(sde, score, x_T).x
    assert torch.equal(a, b)


def test_a_given_reference_replaces_the_solve():
    sde = VESDE()
    score, prior = _problem(sde)
    x_T = prior.sample(32, generator=torch.Generator().manual_seed(3))
    reference = ProbabilityFlowSampler("dopri5", rtol=1e-6, atol=1e-6)(sde, score, x_T).x
    sampler = DDIMSampler(3)
    fit = fit_grid(sampler, sde, score, x_T, reference=reference, max_evaluations=10, starts=[sampler.grid])
    assert fit.reference_nfe == 0 and fit.nfe == 3 * fit.evaluations and fit.evaluations <= 10
    # VE's default grid stops at sigma_min before its denoising step; the fitted grid keeps that step
    assert sampler.grid.denoising_final_step(sde, sde.sampling_eps)
    assert fit.denoising_final_step and fit.grid.denoising_final_step(sde, sde.sampling_eps)


def test_the_search_starts_from_the_best_of_the_built_in_grids():
    """With a budget of exactly one run per start, the fit is the start of least calibration error,
    with its structure (denoising final step or not)."""
    sde = VESDE()
    score, prior = _problem(sde)
    x_T = prior.sample(64, generator=torch.Generator().manual_seed(4))
    reference = ProbabilityFlowSampler("dopri5", rtol=1e-8, atol=1e-8)(sde, score, x_T).x
    sampler = DPMSolverMultistepSampler(5)
    starts = [
        UniformGrid(5),
        LogSNRGrid(5),
        LogSNRGrid(5, floor=True),
        KarrasGrid(5),
        KarrasGrid(5, floor=True),
    ]
    errors = [
        float((DPMSolverMultistepSampler(grid=g)(sde, score, x_T).x - reference).norm(dim=1).mean())
        for g in starts
    ]
    # the sampler's own grid is the floored log-SNR one: five distinct starts, one run each
    fit = fit_grid(sampler, sde, score, x_T, reference=reference, max_evaluations=5)
    best = starts[errors.index(min(errors))]
    assert fit.evaluations == 5 and fit.error == pytest.approx(min(errors), rel=1e-12)
    assert fit.initial_error == pytest.approx(errors[2], rel=1e-12)  # the sampler's own: floored log-SNR
    assert torch.allclose(torch.tensor(fit.times, dtype=F64), best.times(sde, sde.sampling_eps), rtol=1e-12)
    assert fit.denoising_final_step == best.denoising_final_step(sde, sde.sampling_eps)
    # more runs search on from there and can only lower the calibration error
    assert fit_grid(sampler, sde, score, x_T, reference=reference, max_evaluations=40).error <= fit.error


@pytest.mark.parametrize(
    "sampler, kwargs, error, match",
    [
        (DDIMSampler(4, eta=1.0), {}, TypeError, "stochastic"),
        (ProbabilityFlowSampler(), {}, TypeError, "no grid to fit"),
        (DDIMSampler(1), {}, ValueError, "no interior time"),
        ("ddim", {}, TypeError, "sampler must be"),
        (DDIMSampler(4), {"max_evaluations": 0}, ValueError, "max_evaluations"),
        (DDIMSampler(4), {"rtol": -1.0}, ValueError, "rtol"),
        (DDIMSampler(4), {"reference": torch.zeros(3, 2)}, ValueError, "reference must be"),
        (DDIMSampler(grid=[0.5, 0.1, 0.001]), {}, ValueError, "start at T"),
        (
            DDIMSampler(4),
            {"starts": [UniformGrid(5)]},
            TypeError,
            "starts must be TimeGrids of the sampler's 4",
        ),
        (DDIMSampler(4), {"starts": ["uniform"]}, TypeError, "starts must be"),
        (DDIMSampler(4), {"starts": []}, ValueError, "starts is empty"),
        (
            DDIMSampler(grid=[1.0, 0.5, 0.1, 0.01]),
            {"starts": [UniformGrid(3)]},
            ValueError,
            "starts must span",
        ),
    ],
)
def test_bad_inputs_are_refused_before_any_work(sampler, kwargs, error, match):
    sde = VPSDE()
    calls = []

    def score(t, x):
        calls.append(1)
        return -x

    with pytest.raises(error, match=match):
        fit_grid(sampler, sde, score, torch.zeros(4, 2), **kwargs)
    assert not calls


def test_loading_something_else_is_a_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"times": [1.0, 0.5]}))
    with pytest.raises(ValueError, match="not a fitted-grid file"):
        FittedGrid.load(tmp_path / "bad.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(ValueError, match="not a fitted-grid JSON"):
        FittedGrid.load(tmp_path / "text.json")
    with pytest.raises(FileNotFoundError, match="no fitted grid"):
        FittedGrid.load(tmp_path / "missing.json")


def test_fitted_grids_are_exported():
    assert sdegen.samplers.fit_grid is fit_grid
