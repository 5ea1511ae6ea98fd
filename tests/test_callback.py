"""sample(..., callback=): called after every step of every registered grid sampler at the grid's
times, with x0_hat equal to the data prediction at the state shown; StopSampling ends the run with
the state a truncated run reaches; bad callbacks and adaptive solvers are refused before any work."""

import pytest
import torch

import sdegen
from sdegen import VESDE, VPSDE, GaussianKernel, StepInfo, StopSampling, SubVPSDE
from sdegen.analytic import GaussianMixture
from sdegen.observations import Inpainting
from sdegen.samplers import (
    CustomGrid,
    DDIMSampler,
    DPMSolverMultistepSampler,
    DPMSolverSinglestepSampler,
    EDMHeunSampler,
    LangevinCorrector,
    LogSNRGrid,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseDiffusion,
    ReverseSDESampler,
)
from sdegen.samplers.registry import SAMPLERS

F64 = torch.float64
MIXTURE = GaussianMixture.ring(4, radius=2.0, std=0.3)
GRID_SAMPLERS = [name for name, entry in SAMPLERS.items() if entry.takes_steps]


def _x_T(sde, n=16, seed=0):
    return MIXTURE.marginal(sde, sde.T).sample(n, generator=torch.Generator().manual_seed(seed))


class Recorder:
    def __init__(self, stop_after=None):
        self.infos, self.stop_after = [], stop_after

    def __call__(self, info):
        assert isinstance(info, StepInfo)
        self.infos.append(StepInfo(info.step, info.t, info.x.clone(), info.x0_hat))
        if info.step == self.stop_after:
            return StopSampling
        return None


def _build(name, steps):
    # snr options and n_steps_each small: the test is about the loop, not the Langevin steps
    options = {"n_steps_each": 2} if "n_steps_each" in SAMPLERS[name].options else {}
    return SAMPLERS[name].build(steps=steps, **options)


@pytest.mark.parametrize("name", GRID_SAMPLERS)
def test_the_callback_sees_every_step_at_the_grid_times_with_the_data_prediction_there(name):
    sde = SubVPSDE()
    sampler = _build(name, 5)
    seen = Recorder()
    out = sdegen.sample(
        sde, MIXTURE.score(sde), None, sampler, x_T=_x_T(sde), generator=torch.Generator().manual_seed(1),
        return_trajectory=True, callback=seen,
    )  # fmt: skip
    assert [i.step for i in seen.infos] == [1, 2, 3, 4, 5]
    assert [i.t for i in seen.infos] == out.ts[1:].tolist()  # the grid's own floats, exactly
    for info, state in zip(seen.infos, out.trajectory[1:], strict=True):
        torch.testing.assert_close(info.x, state, rtol=0, atol=0)
        if info.x0_hat is not None:
            t = torch.full((info.x.shape[0],), info.t, dtype=F64)
            tweedie = GaussianKernel.of(sde, t).data_from_score(info.x, MIXTURE.score(sde)(t, info.x))
            torch.testing.assert_close(info.x0_hat, tweedie, rtol=1e-9, atol=1e-9)
    # the samplers that evaluate x0_hat at the state they reach show it, at every step but the last
    reported = [i.x0_hat is not None for i in seen.infos]
    assert reported == [sampler.reports_x0_hat] * 4 + [False] or name == "edm-churn"


TRUNCATABLE = {
    "ddim": lambda grid: DDIMSampler(grid=grid),
    "ddim-eta": lambda grid: DDIMSampler(grid=grid, eta=0.7),
    "dpm-2m": lambda grid: DPMSolverMultistepSampler(grid=grid, lower_order_final=False),
    "dpm-3m": lambda grid: DPMSolverMultistepSampler(grid=grid, order=3, lower_order_final=False),
    "dpm-2s": lambda grid: DPMSolverSinglestepSampler(grid=grid),
    "edm-heun": lambda grid: EDMHeunSampler(grid=grid),
    "pc": lambda grid: PredictorCorrectorSampler(ReverseDiffusion(), LangevinCorrector(), grid=grid),
    "sde-euler": lambda grid: ReverseSDESampler("euler", grid=grid),
    "ode-rk4": lambda grid: ProbabilityFlowSampler("rk4", grid=grid),
}


@pytest.mark.parametrize("make", list(TRUNCATABLE.values()), ids=list(TRUNCATABLE))
@pytest.mark.parametrize("denoise", [False, True])
def test_stopping_after_k_steps_returns_the_k_step_truncated_run(make, denoise):
    """Stopped after step k of an 8-step grid: the same x (and the same noise, drawn in the same
    order) as the run whose grid is the first k + 1 of those times."""
    sde, k = VPSDE(), 3
    ts = LogSNRGrid(8).times(sde, sde.sampling_eps)
    run = dict(x_T=_x_T(sde), return_trajectory=True, denoise=denoise)
    seen = Recorder(stop_after=k)
    stopped = sdegen.sample(
        sde, MIXTURE.score(sde), None, make(CustomGrid(ts)), generator=torch.Generator().manual_seed(2),
        callback=seen, **run,
    )  # fmt: skip
    short = sdegen.sample(
        sde, MIXTURE.score(sde), None, make(CustomGrid(ts[: k + 1])),
        generator=torch.Generator().manual_seed(2), **run,
    )  # fmt: skip
    assert [i.step for i in seen.infos] == [1, 2, 3]
    torch.testing.assert_close(stopped.x, short.x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stopped.trajectory, short.trajectory, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(stopped.ts, ts[: k + 1], rtol=0, atol=0)
    # the evaluations made, no more: the x0_hat shown to the callback at t_k is counted (and reused
    # as the denoised result), the steps after it are not taken
    extra = 1 if seen.infos[-1].x0_hat is not None and not denoise else 0
    assert stopped.nfe == short.nfe + extra


def test_the_callback_sees_the_state_with_the_observation_imposed():
    sde = VESDE(0.01, 50.0)
    mask = torch.tensor([True, False])
    seen = Recorder()
    sdegen.sample(
        sde, MIXTURE.score(sde), (8, 2), DDIMSampler(6, eta=1.0), generator=torch.Generator().manual_seed(3),
        observation=Inpainting(mask, torch.tensor([1.5, 0.0])), callback=seen,
    )  # fmt: skip
    # the observed coordinate is a draw of the observation noised to t: 1.5 + sigma(t) z
    sigma = [float(sde.sigma(torch.tensor(i.t, dtype=F64))) for i in seen.infos]
    spread = [float((i.x[:, 0] - 1.5).abs().max()) / s for i, s in zip(seen.infos, sigma, strict=True)]
    assert max(spread) < 5.0


def test_an_adaptive_solver_refuses_a_callback_before_any_work():
    sde = VPSDE()
    calls = []

    def score(t, x):
        calls.append(t)
        return MIXTURE.score(sde)(t, x)

    for sampler in (ProbabilityFlowSampler(), ReverseSDESampler("euler", adaptive=True)):
        with pytest.raises(TypeError, match="cannot call back after every step"):
            sdegen.sample(sde, score, (4, 2), sampler, callback=lambda info: None)
    with pytest.raises(TypeError, match="cannot call back"):
        ProbabilityFlowSampler("explicit_adams", steps=4)(sde, score, _x_T(sde), callback=print)
    assert calls == []


@pytest.mark.parametrize("bad", [1, "stop", [print]])
def test_a_callback_that_is_not_callable_is_a_type_error(bad):
    sde = VPSDE()
    with pytest.raises(TypeError, match="callback must be callable"):
        sdegen.sample(sde, MIXTURE.score(sde), (4, 2), DDIMSampler(3), callback=bad)
    with pytest.raises(TypeError, match="callback must be callable"):
        DDIMSampler(3)(sde, MIXTURE.score(sde), _x_T(sde), callback=bad)


def test_a_callback_that_returns_anything_but_none_or_stop_sampling_is_an_error():
    sde = VPSDE()
    with pytest.raises(TypeError, match=r"callback returned True after step 1.*sdegen.StopSampling"):
        sdegen.sample(sde, MIXTURE.score(sde), (4, 2), DDIMSampler(3), callback=lambda info: True)


def test_stop_sampling_is_one_named_object():
    assert sdegen.StopSampling is StopSampling is sdegen.samplers.StopSampling
    assert repr(StopSampling) == "StopSampling"
    assert type(StopSampling)() is StopSampling
