"""Solvers fitted to a model (sdegen.samplers.fit_solver): the read-off coefficients are the
sampler's own, the fit lowers the endpoint error on fresh x_T at the same NFE, is exact where the
flow is affine (Gaussian data), reports its cost, saves and loads exactly, and refuses bad input
before any work."""

import json

import pytest
import torch

from sdegen import VESDE, VPSDE, DDIMSampler, DPMSolverMultistepSampler, ProbabilityFlowSampler
from sdegen.analytic import GaussianMixture
from sdegen.samplers import (
    DPMSolverSinglestepSampler,
    EDMHeunSampler,
    FittedGrid,
    FittedSolver,
    SolverFit,
    UniPCSampler,
    fit_solver,
)

F64 = torch.float64


def _mixture(sde):
    """A mixture of unequal scales and weights (not a problem the benchmarks were measured on)."""
    cov = torch.stack([torch.eye(2, dtype=F64) * s**2 for s in (1.0, 0.1, 0.3)])
    mixture = GaussianMixture([0.5, 0.3, 0.2], [[-2.0, 0.0], [2.0, 1.0], [1.0, -3.0]], cov)
    return mixture.score(sde), mixture.marginal(sde, sde.T)


def _error(x, exact):
    return float((x - exact).norm(dim=1).mean())


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["VP", "VE"])
@pytest.mark.parametrize(
    "sampler",
    [
        DDIMSampler(4),
        DPMSolverMultistepSampler(5, order=2),
        DPMSolverMultistepSampler(6, order=3),
        DPMSolverMultistepSampler(6, order=3, second_order="taylor"),
        UniPCSampler(5, variant="bh1"),
        UniPCSampler(6, order=3),
    ],
    ids=repr,
)
def test_the_read_off_coefficients_reproduce_the_sampler(sde, sampler):
    # x_{k+1} = a_k x_k + sum_j b_kj D_j holds exactly for every one-evaluation multistep sampler
    score, prior = _mixture(sde)
    x_T = prior.sample(200, generator=torch.Generator().manual_seed(0))
    own = FittedSolver.from_sampler(sampler, sde)
    assert own.times == tuple(sampler.time_grid(sde, sde.sampling_eps).tolist())
    a, b = sampler(sde, score, x_T), own(sde, score, x_T)
    assert a.nfe == b.nfe == sampler.steps
    torch.testing.assert_close(b.x, a.x, rtol=0.0, atol=1e-10)


def test_ddim_reads_off_as_the_exponential_step():
    # DDIM: a_k = sigma_{k+1} / sigma_k and b_kk = alpha_{k+1} - alpha_k sigma_{k+1} / sigma_k, the rest 0
    sde = VPSDE()
    own = FittedSolver.from_sampler(DDIMSampler(3), sde)
    t = torch.tensor(own.times, dtype=F64)
    alpha, sigma = sde.alpha(t), sde.sigma(t)
    for k, (a, *b) in enumerate(own.coefficients):
        ratio = float(sigma[k + 1] / sigma[k])
        assert a == pytest.approx(ratio, rel=1e-12)
        assert b[-1] == pytest.approx(float(alpha[k + 1] - alpha[k] * ratio), rel=1e-10)
        assert all(abs(v) < 1e-12 for v in b[:-1])


@pytest.fixture(scope="module")
def fitted_vp():
    sde = VPSDE()
    score, prior = _mixture(sde)
    x_cal = prior.sample(512, generator=torch.Generator().manual_seed(0))
    sampler = UniPCSampler(5, variant="bh1")
    return sde, score, prior, sampler, fit_solver(sampler, sde, score, x_cal, max_evaluations=60)


def test_the_fitted_solver_lowers_the_endpoint_error_on_fresh_x_T(fitted_vp):
    sde, score, prior, sampler, solver = fitted_vp
    x_T = prior.sample(1000, generator=torch.Generator().manual_seed(1))
    exact = ProbabilityFlowSampler("dopri5", rtol=1e-8, atol=1e-8)(sde, score, x_T).x
    own, fitted = sampler(sde, score, x_T), solver(sde, score, x_T)
    assert own.nfe == fitted.nfe == 5
    err_own, err_fitted = _error(own.x, exact), _error(fitted.x, exact)
    # measured: 1.04 -> 0.149 (60 runs)
    assert err_fitted < 0.25 * err_own, (err_own, err_fitted)
    fit = solver.fit
    assert fit.error < 0.25 * fit.initial_error
    assert fit.validation_error < 0.25 * fit.initial_validation_error
    # the error on fresh x_T is about what the held-out quarter of the calibration batch (128 x_T)
    # predicted (measured 0.149 against 0.115; 20 coefficients fitted on 384 x_T)
    assert err_fitted < 1.5 * fit.validation_error, (fit.validation_error, err_fitted)


def test_the_cost_of_the_fit_is_the_reference_solve_plus_the_solver_runs(fitted_vp):
    sde, *_, solver = fitted_vp
    fit = solver.fit
    assert fit.evaluations <= 61 and fit.calibration_size == 512 and fit.validation_size == 128
    assert fit.reference_nfe > 0
    assert fit.nfe == fit.reference_nfe + 5 * fit.evaluations
    assert fit.sde == repr(sde) and fit.sampler.startswith("UniPCSampler(")


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["VP", "VE"])
def test_on_gaussian_data_the_fit_is_exact(sde):
    # For Gaussian data x0_hat is affine in x and the flow map x_T -> x_eps is affine, fixed per
    # covariance eigenvalue by two numbers; 3 steps have 9 coefficients against the 4 of a 2-D
    # Gaussian, and the fit reaches the reference's accuracy on fresh x_T, where the sampler's own
    # coefficients are 0.37-0.42 off.
    gauss = GaussianMixture([1.0], [[1.0, -0.5]], torch.diag(torch.tensor([0.3**2, 0.8**2], dtype=F64))[None])
    score, prior = gauss.score(sde), gauss.marginal(sde, sde.T)
    x_cal = prior.sample(64, generator=torch.Generator().manual_seed(0))
    x_T = prior.sample(500, generator=torch.Generator().manual_seed(1))
    exact = ProbabilityFlowSampler("dopri5", rtol=1e-10, atol=1e-10)(sde, score, x_T).x
    sampler = DPMSolverMultistepSampler(3)
    solver = fit_solver(sampler, sde, score, x_cal, max_evaluations=100)
    assert _error(sampler(sde, score, x_T).x, exact) > 0.3
    # measured: 1e-6 to 3e-6, the calibration reference's tolerance (rtol = 1e-6)
    assert _error(solver(sde, score, x_T).x, exact) < 2e-5


def test_a_saved_and_loaded_solver_gives_bit_identical_samples(fitted_vp, tmp_path):
    sde, score, prior, _, solver = fitted_vp
    solver.save(tmp_path / "solver.json")
    loaded = FittedSolver.load(tmp_path / "solver.json")
    assert loaded.times == solver.times and loaded.coefficients == solver.coefficients
    assert loaded.fit == solver.fit and loaded.sde == solver.sde
    x_T = prior.sample(64, generator=torch.Generator().manual_seed(2))
    assert torch.equal(solver(sde, score, x_T).x, loaded(sde, score, x_T).x)


def test_a_fitted_solver_can_be_refitted_and_a_reference_replaces_the_solve(fitted_vp):
    sde, score, prior, _, solver = fitted_vp
    x_T = prior.sample(64, generator=torch.Generator().manual_seed(3))
    reference = ProbabilityFlowSampler("dopri5", rtol=1e-6, atol=1e-6)(sde, score, x_T).x
    refit = fit_solver(solver, sde, score, x_T, reference=reference, max_evaluations=5, validation=0.0)
    assert refit.fit.reference_nfe == 0 and refit.fit.nfe == 5 * refit.fit.evaluations
    assert refit.fit.error <= refit.fit.initial_error and refit.times == solver.times
    assert refit.fit.validation_error is None and refit.fit.validation_size == 0


def test_the_held_out_states_choose_the_iterate():
    # Early stopping: of the iterates, the one of least error on the held-out states is returned,
    # never one worse there than the sampler's own coefficients, whatever the fit does on the rest.
    sde = VESDE()
    score, prior = _mixture(sde)
    x_T = prior.sample(48, generator=torch.Generator().manual_seed(5))
    solver = fit_solver(
        DPMSolverMultistepSampler(8, order=3), sde, score, x_T, max_evaluations=40, validation=0.5
    )
    fit = solver.fit
    assert fit.validation_size == 24
    assert fit.validation_error <= fit.initial_validation_error
    reference = ProbabilityFlowSampler("dopri5", rtol=1e-6, atol=1e-6)(sde, score, x_T[24:]).x
    assert _error(solver(sde, score, x_T[24:]).x, reference) == pytest.approx(fit.validation_error, rel=1e-6)


class _Clipped(DDIMSampler):
    """DDIM with its states clipped: not linear in (x, x0_hat)."""

    def _step(self, grid, i, x, D, generator):
        return super()._step(grid, i, x, D, generator).clamp(-0.5, 0.5)


@pytest.mark.parametrize(
    ("sampler", "match"),
    [
        (DDIMSampler(4, eta=1.0), "stochastic"),
        (ProbabilityFlowSampler("dopri5"), "no grid"),
        (DPMSolverSinglestepSampler(3), "evaluates the model at 6 times for 3 steps"),
        (EDMHeunSampler(3), "one evaluation at each grid time"),
        (_Clipped(4), "not linear"),
    ],
    ids=["stochastic", "adaptive", "2S", "Heun", "nonlinear"],
)
def test_samplers_that_are_not_linear_multistep_are_refused(sampler, match):
    with pytest.raises(TypeError, match=match):
        FittedSolver.from_sampler(sampler, VPSDE())


def test_bad_arguments_are_refused_before_any_work():
    sde = VPSDE()
    score, prior = _mixture(sde)
    x_T = prior.sample(16, generator=torch.Generator().manual_seed(4))
    sampler = DDIMSampler(3)
    with pytest.raises(ValueError, match="reference must be the endpoints of x_T"):
        fit_solver(sampler, sde, score, x_T, reference=x_T[:8])
    with pytest.raises(ValueError, match="max_evaluations"):
        fit_solver(sampler, sde, score, x_T, max_evaluations=0)
    for validation in (1.0, -0.1, 0.05):  # 0.05 of 16 holds out no state
        with pytest.raises(ValueError, match=f"validation must be a fraction.*got validation={validation:g}"):
            fit_solver(sampler, sde, score, x_T, validation=validation)
    with pytest.raises(ValueError, match="no gradient path to x"):
        fit_solver(sampler, sde, lambda t, x: score(t, x).detach() + 0 * x.detach(), x_T)
    with pytest.raises(TypeError, match="sampler must be an sdegen Sampler"):
        fit_solver("ddim", sde, score, x_T)


def test_a_solver_is_refused_on_another_sde_and_with_malformed_coefficients(fitted_vp):
    _, score, _, _, solver = fitted_vp
    ve = VESDE()
    with pytest.raises(ValueError, match="fitted on VPSDE"):
        solver(ve, _mixture(ve)[0], torch.zeros(4, 2, dtype=F64))
    times = [1.0, 0.5, 1e-3]
    with pytest.raises(ValueError, match="one row per step, 2 for 3 times"):
        FittedSolver(times, [[1.0, 0.0]])
    with pytest.raises(ValueError, match=r"coefficients\[1\] must be the 3 numbers"):
        FittedSolver(times, [[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="finite numbers"):
        FittedSolver(times, [[1.0, float("nan")], [1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="strictly decreasing"):
        FittedSolver([1.0, 1.0, 1e-3], [[1.0, 0.0], [1.0, 0.0, 0.0]])
    with pytest.raises(TypeError, match="fit must be a SolverFit"):
        FittedSolver(times, [[1.0, 0.0], [1.0, 0.0, 0.0]], fit={"error": 0.1})


def test_load_names_the_file_that_is_not_a_fitted_solver(tmp_path):
    grid_file = tmp_path / "grid.json"
    FittedGrid((1.0, 0.5, 1e-3), False, "s", "sde", 0.1, 0.2, 10, 5, 1, 4).save(grid_file)
    with pytest.raises(ValueError, match="grid.json is not a fitted-solver file"):
        FittedSolver.load(grid_file)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="bad.json is not a fitted-solver JSON file"):
        FittedSolver.load(bad)
    with pytest.raises(FileNotFoundError, match="fit one with sdegen.samplers.fit_solver"):
        FittedSolver.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    record = {
        "format": 1,
        "kind": "fitted-solver",
        "times": [1.0, 1e-3],
        "coefficients": [[1.0]],
        "sde": None,
    }
    broken.write_text(json.dumps(record | {"fit": None}))
    with pytest.raises(ValueError, match="broken.json holds no valid fitted solver"):
        FittedSolver.load(broken)
    assert SolverFit.__dataclass_fields__.keys() >= {"error", "nfe"}
