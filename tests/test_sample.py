"""sdegen.sample and the Sampler protocol: inputs, outputs, bookkeeping, and every error path."""

import importlib
import math
import re

import pytest
import torch
from _oracle_data import (
    F64,
    MIXTURE,
    SDES,
    null,
)
from _samplers import registered, takes_steps
from test_reverse_sde import _NonLinearOU

import sdegen
from sdegen import (
    AnnealedLangevinSampler,
    DDPMSampler,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
    ReverseSDESampler,
    SampleResult,
)
from sdegen.samplers import (
    AncestralSampling,
    AnnealedLangevinCorrector,
    EulerMaruyama,
    LangevinCorrector,
    NoneCorrector,
    NonePredictor,
    ReverseDiffusion,
)
from sdegen.testing.oracle import check_samples

VP, VE = SDES["VP"], SDES["VE"]
SCORE = MIXTURE.score(VP)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# Every registered sampler that steps through a grid, and variants beside them.
ALL = [
    *(make() for make in registered(takes_steps, steps=6).values()),
    ReverseSDESampler("euler", 20),
    ProbabilityFlowSampler("rk4", steps=5),
    PredictorCorrectorSampler(ReverseDiffusion(), LangevinCorrector(n_steps=2), 10),
    DDPMSampler(20),
    AnnealedLangevinSampler(5, n_steps_each=2),
]


@pytest.mark.parametrize("sampler", ALL, ids=repr)
def test_prior_samples_shape_dtype_and_determinism(sampler):
    a = sdegen.sample(VP, SCORE, (8, 2), sampler, generator=_gen(1))
    b = sdegen.sample(VP, SCORE, (8, 2), sampler, generator=_gen(1))
    c = sdegen.sample(VP, SCORE, (8, 2), sampler, generator=_gen(2))
    assert isinstance(a, SampleResult) and a.trajectory is None and a.ts is None
    assert a.x.shape == (8, 2) and a.x.dtype == torch.get_default_dtype()
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=0)
    assert not torch.equal(a.x, c.x)
    assert a.nfe == sampler.steps * sampler.nfe_per_step


def test_dtype_and_device_follow_the_inputs():
    x64 = MIXTURE.marginal(VP, 1.0).sample(4, generator=_gen())
    assert sdegen.sample(VP, SCORE, None, ReverseSDESampler("euler", 5), x_T=x64).x.dtype == F64
    assert sdegen.sample(VP, SCORE, None, DDPMSampler(5), x_T=x64.float()).x.dtype == torch.float32
    assert sdegen.sample(VP, SCORE, (4, 2), DDPMSampler(5), dtype=F64).x.dtype == F64
    assert (
        sdegen.sample(VP, SCORE, (4, 2), DDPMSampler(5), x_T=x64, dtype=torch.float32).x.dtype
        == torch.float32
    )
    assert sdegen.sample(VP, SCORE, (4, 2), DDPMSampler(5), device="cpu").x.device.type == "cpu"


@pytest.mark.parametrize(
    "sampler, points",
    [
        (ReverseSDESampler("heun", 10), 11),
        (ProbabilityFlowSampler("midpoint", steps=10), 11),
        (ProbabilityFlowSampler(), 101),
        (PredictorCorrectorSampler(EulerMaruyama(), AnnealedLangevinCorrector(), 10), 11),
    ],
    ids=repr,
)
@pytest.mark.parametrize("sde", [VP, VE], ids=["VP", "VE"])
def test_trajectory_runs_from_x_T_at_T_to_the_samples_at_the_default_eps(sampler, points, sde):
    x_T = MIXTURE.marginal(sde, sde.T).sample(6, generator=_gen())
    out = sdegen.sample(
        sde, MIXTURE.score(sde), None, sampler, x_T=x_T, generator=_gen(), return_trajectory=True
    )
    assert out.trajectory.shape == (points, 6, 2) and out.ts.shape == (points,)
    assert out.ts.dtype == F64 and float(out.ts[0]) == sde.T
    assert float(out.ts[-1]) == pytest.approx(1e-3 if sde is VP else 1e-5, rel=1e-12)
    assert bool((out.ts[1:] < out.ts[:-1]).all())
    torch.testing.assert_close(out.trajectory[0], x_T)
    torch.testing.assert_close(out.trajectory[-1], out.x)


def test_eps_sets_the_end_time():
    out = sdegen.sample(VP, SCORE, (3, 2), DDPMSampler(4), eps=0.25, return_trajectory=True)
    assert float(out.ts[-1]) == 0.25


def test_nfe_counts_every_score_evaluation():
    calls = []

    def score(t, x):
        calls.append(1)
        return SCORE(t, x)

    sampler = PredictorCorrectorSampler(EulerMaruyama(), LangevinCorrector(n_steps=3), 7)
    out = sdegen.sample(VP, score, (2, 2), sampler, denoise=True)
    assert out.nfe == len(calls) == 7 * 4 + 1
    out = sdegen.sample(VP, score, (2, 2), ReverseSDESampler("srk", 5))
    assert out.nfe == 10
    out = sdegen.sample(VP, score, (2, 2), ProbabilityFlowSampler("explicit_adams", steps=10))
    assert out.nfe == 10 + 2 * 3  # two rk4 steps start the 4-step Adams-Bashforth method


def test_capabilities_are_attributes():
    assert EulerMaruyama.order == 1.0 and EulerMaruyama.stochastic and EulerMaruyama.nfe_per_step == 1
    assert NonePredictor.nfe_per_step == 0 and not NonePredictor.stochastic
    assert not ProbabilityFlowSampler.stochastic and ReverseSDESampler.stochastic
    assert ProbabilityFlowSampler("rk4", steps=3).order == 4.0
    assert ProbabilityFlowSampler().nfe_per_step is None
    assert ReverseSDESampler("srk").nfe_per_step == 2 and ReverseSDESampler("srk").order == 1.5
    assert ReverseSDESampler("euler", adaptive=True).nfe_per_step is None
    pc = PredictorCorrectorSampler(ReverseDiffusion(), LangevinCorrector(n_steps=2))
    assert pc.nfe_per_step == 3 and pc.order == 1.0 and pc.stochastic
    assert AnnealedLangevinSampler(n_steps_each=7).nfe_per_step == 7
    assert DDPMSampler().nfe_per_step == 1 and DDPMSampler().steps == 1000


def test_a_custom_time_grid():
    """Quadratically spaced steps (dense near eps) for the PC loop and a fixed-grid ODE method."""
    eps = 1e-3
    ts = eps + (1 - eps) * torch.linspace(1, 0, 201, dtype=F64) ** 2
    g = _gen(3)
    x_T = MIXTURE.marginal(VP, 1.0).sample(1000, generator=g)
    oracle = MIXTURE.marginal(VP, eps)
    for sampler in [DDPMSampler(ts=ts), ProbabilityFlowSampler("rk4", ts=ts[::4])]:
        out = sdegen.sample(VP, SCORE, None, sampler, x_T=x_T, generator=g, return_trajectory=True)
        torch.testing.assert_close(out.ts, ts if isinstance(sampler, DDPMSampler) else ts[::4])
        report = check_samples(out.x, oracle, null=null("VP", 1000), z_tolerance=4.5)
        assert report, report
    # A grid that starts below T needs x_T, the state at its first time.
    late = sdegen.sample(VP, SCORE, None, DDPMSampler(ts=[0.5, 0.1]), x_T=x_T[:4])
    assert late.nfe == 1
    with pytest.raises(ValueError, match=r"starts at ts\[0\]=0.5 < T=1.*pass x_T"):
        sdegen.sample(VP, SCORE, (4, 2), DDPMSampler(ts=[0.5, 0.1]))


# -- numerical failure ------------------------------------------------------------------------


def _nan_below_half(t, x):
    out = SCORE(t, x)
    return out * float("nan") if float(t[0]) < 0.5 else out


@pytest.mark.parametrize(
    "sampler, match",
    [
        (DDPMSampler(10), r"non-finite value\(s\) at t=0.4\d* \(step 6, score evaluation 7\)"),
        (ReverseSDESampler("euler", 10), r"non-finite value\(s\) at t=0.4\d* \(step 6, score evaluation 7\)"),
        (ReverseSDESampler("srk", 10), r"8 non-finite value\(s\) at t=0.4\d* \(score evaluation 12\)"),
        (ProbabilityFlowSampler("euler", steps=10), r"non-finite value\(s\) at t=0.4\d*"),
        (ProbabilityFlowSampler(), r"non-finite value\(s\) at t=0.4\d*"),
        # levels geometric in sigma/alpha: t_7 = 0.409 is the first below 0.5, reached in step 6
        (AnnealedLangevinSampler(10, 2), r"non-finite value\(s\) at t=0.4\d* \(step 6"),
    ],
    ids=repr,
)
def test_a_nan_score_stops_sampling_and_names_the_time(sampler, match):
    with pytest.raises(FloatingPointError, match=match):
        sdegen.sample(VP, _nan_below_half, (4, 2), sampler, eps=0.1, generator=_gen())


def test_an_infinite_score_and_a_diverging_solver_raise():
    infinite = lambda t, x: torch.where(x[:1] == x[:1], x, x) * 0 + torch.tensor([[math.inf, 0]])  # noqa: E731
    # checked on the host at every evaluation: the bad values are counted
    with pytest.raises(FloatingPointError, match=r"1 non-finite value\(s\) at t=1"):
        sdegen.sample(VP, infinite, (1, 2), check_finite_every=1)
    # sdegen's loops check on the device and read once at the end: the first bad evaluation is named
    with pytest.raises(
        FloatingPointError, match=r"non-finite value\(s\) at t=1 \(step 0, score evaluation 1\)"
    ):
        sdegen.sample(VP, infinite, (1, 2))
    huge = lambda t, x: torch.full_like(x, 1e307)  # noqa: E731 - finite, but the state overflows
    with pytest.raises(
        FloatingPointError, match=r"the sampled x has 4 non-finite value\(s\) after DDPMSampler"
    ):
        sdegen.sample(VP, huge, (2, 2), DDPMSampler(50), dtype=F64)


# -- invalid input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(shape=(3, 2), x_T=torch.zeros(4, 2)),
            ValueError,
            r"shape \(3, 2\) does not match x_T's shape \(4, 2\)",
        ),
        (dict(shape=None), ValueError, r"pass the sample shape \(B, \.\.\.\) or an initial state x_T"),
        (dict(shape=(0, 2)), ValueError, "shape must be a non-empty sequence of positive ints"),
        (
            dict(shape=None, x_T=torch.zeros(4, 2, dtype=torch.long)),
            TypeError,
            "x_T must be a floating-point tensor",
        ),
        (dict(shape=None, x_T=[[0.0, 1.0]]), TypeError, "x_T must be a torch.Tensor"),
        (dict(eps=0.0), ValueError, "eps must be > 0; got eps=0"),
        (dict(eps=1.0), ValueError, r"eps must be < T = 1; got eps=1"),
        (dict(sampler="euler"), TypeError, "sampler must be an sdegen Sampler such as ReverseSDESampler"),
        (dict(sde="VP"), TypeError, r"sde must be an sdegen.SDE \(e.g. VPSDE\(\)\); got str"),
        (dict(score_fn=None), TypeError, "score_fn must be callable as score_fn"),
        (dict(generator=0), TypeError, "generator must be a torch.Generator or None; got int"),
        (
            dict(score_fn=lambda t, x: x[:, :1]),
            ValueError,
            r"score_fn must return a tensor shaped and typed like x",
        ),
        (
            dict(score_fn=lambda t, x: x.double()),
            ValueError,
            r"dtype torch.float32\); got shape \(3, 2\), dtype torch.float64",
        ),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    args = dict(sde=VP, score_fn=SCORE, shape=(3, 2), sampler=DDPMSampler(3)) | kwargs
    with pytest.raises(error, match=match):
        sdegen.sample(args.pop("sde"), args.pop("score_fn"), args.pop("shape"), args.pop("sampler"), **args)


def test_a_time_grid_of_the_wrong_type():
    with pytest.raises(TypeError, match="ts must be a 1-D tensor or a sequence of floats; got 'abc'"):
        sdegen.sample(VP, SCORE, (2, 2), DDPMSampler(ts="abc"))
    with pytest.raises(TypeError, match="ts must be a floating-point tensor"):
        sdegen.sample(VP, SCORE, (2, 2), DDPMSampler(ts=torch.tensor([1, 0])))


def test_generator_on_another_device():
    x_T = torch.zeros(2, 2, device="meta")
    with pytest.raises(ValueError, match=r"generator is on cpu but x_T is on meta"):
        DDPMSampler(3)(VP, SCORE, x_T, generator=_gen())


@pytest.mark.parametrize(
    "ts, match",
    [
        ([1.0, 0.5, 0.6, 0.1], r"ts must be strictly decreasing .*got ts\[1\]=0.5 <= ts\[2\]=0.6"),
        ([1.0, 0.5, 0.5], r"got ts\[1\]=0.5 <= ts\[2\]=0.5"),
        ([1.2, 0.5], r"ts must lie in \[0.001, 1\]; got a time 1.2"),
        ([1.0, 1e-4], r"ts must lie in \[0.001, 1\]; got a time 0.0001"),
        ([1.0, float("nan")], "ts must be finite"),
        ([[1.0, 0.5]], "ts must be a 1-D tensor of at least 2 times"),
        ([1.0], "ts must be a 1-D tensor of at least 2 times"),
    ],
)
@pytest.mark.parametrize(
    "make", [lambda ts: DDPMSampler(ts=ts), lambda ts: ProbabilityFlowSampler("rk4", ts=ts)]
)
def test_invalid_time_grids(make, ts, match):
    ts = torch.tensor(ts, dtype=F64) if isinstance(ts, list) and isinstance(ts[0], list) else ts
    with pytest.raises(ValueError, match=match):
        sdegen.sample(VP, SCORE, None, make(ts), x_T=torch.zeros(3, 2))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: ReverseSDESampler("rk4"),
            ValueError,
            r"method must be one of the torchsde methods .*'euler'.*got method='rk4'",
        ),
        (lambda: ReverseSDESampler("euler", 0), ValueError, "steps must be >= 1; got steps=0"),
        (lambda: ReverseSDESampler("euler", 10.0), TypeError, "steps must be an int"),
        (lambda: ReverseSDESampler("euler", rtol=-1.0), ValueError, "rtol must be > 0"),
        (lambda: ProbabilityFlowSampler("srk"), ValueError, "method must be one of the torchdiffeq methods"),
        (
            lambda: ProbabilityFlowSampler("rk4"),
            ValueError,
            r"method='rk4' is a fixed-grid method: pass steps=N",
        ),
        (lambda: ProbabilityFlowSampler(atol=0.0), ValueError, "atol must be > 0"),
        (
            lambda: PredictorCorrectorSampler(NonePredictor(), NoneCorrector()),
            ValueError,
            "nothing would move",
        ),
        (
            lambda: PredictorCorrectorSampler("em", NoneCorrector()),
            TypeError,
            "predictor must be a Predictor",
        ),
        (
            lambda: PredictorCorrectorSampler(EulerMaruyama(), "langevin"),
            TypeError,
            "corrector must be a Corrector",
        ),
        (lambda: LangevinCorrector(snr=-0.1), ValueError, "snr must be > 0"),
        (lambda: AnnealedLangevinCorrector(n_steps=0), ValueError, "n_steps must be >= 1"),
        (lambda: AnnealedLangevinSampler(n_steps_each=0), ValueError, "n_steps_each must be >= 1"),
        (lambda: AncestralSampling("yes"), TypeError, "posterior_variance must be a bool"),
    ],
)
def test_invalid_sampler_parameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_samplers_needing_a_gaussian_kernel_refuse_a_non_linear_sde_up_front():
    sde = _NonLinearOU()
    score = lambda t, x: -x  # noqa: E731 - the stationary N(0, I) score
    out = sdegen.sample(
        sde,
        score,
        (4000, 1),
        PredictorCorrectorSampler(EulerMaruyama(), LangevinCorrector(), 50),
        generator=_gen(),
    )
    assert abs(float(out.x.var()) - 1) < 0.1  # N(0, 1) is invariant
    calls = []
    for sampler in [
        DDPMSampler(5),
        AnnealedLangevinSampler(5),
        PredictorCorrectorSampler(EulerMaruyama(), AnnealedLangevinCorrector(), 5),
    ]:
        with pytest.raises(
            TypeError, match=r"needs the Gaussian transition kernel of a LinearSDE .*got _NonLinearOU"
        ):
            sdegen.sample(sde, lambda t, x: calls.append(1) or -x, (2, 1), sampler)
    assert calls == []
    with pytest.raises(TypeError, match="denoising .*needs the Gaussian transition kernel of a LinearSDE"):
        sdegen.sample(sde, score, (2, 1), ReverseSDESampler("euler", 3), denoise=True)


def test_public_names():
    for name in [
        "sample", "Sampler", "SampleResult", "ReverseSDESampler", "ProbabilityFlowSampler",
        "PredictorCorrectorSampler", "DDPMSampler", "AnnealedLangevinSampler",
        "ReverseTimeSDE", "ProbabilityFlowODE", "SequentialBrownian",
    ]:  # fmt: skip
        assert name in sdegen.__all__ and hasattr(sdegen, name)
    for name in [
        "EulerMaruyama",
        "ReverseDiffusion",
        "AncestralSampling",
        "NonePredictor",
        "LangevinCorrector",
        "AnnealedLangevinCorrector",
        "NoneCorrector",
    ]:  # fmt: skip  -- the predictor-corrector parts live in sdegen.samplers
        assert name in sdegen.samplers.__all__ and name not in sdegen.__all__
    assert VP.sampling_eps == 1e-3 and SDES["subVP"].sampling_eps == 1e-3 and VE.sampling_eps == 1e-5


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("sdegen.samplers.probability_flow", "sdegen.samplers.pf_ode", "ProbabilityFlowSampler"),
        ("sdegen.samplers.denoise", "sdegen.samplers.tweedie", "tweedie_denoise"),
    ],
)
def test_a_renamed_sampler_module_still_gives_the_same_object_with_a_warning(old, new, name) -> None:
    """The samplers' modules were renamed apart from sdegen.sde.probability_flow and from
    sdegen.samplers._denoiser; the old paths resolve to the new objects for one release."""
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)  # no warning yet
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(old)}\.{name} is deprecated.*{re.escape(new)}"):
        assert getattr(old_module, name) is getattr(new_module, name) is getattr(sdegen.samplers, name)
    with pytest.raises(AttributeError, match="has no attribute"):
        old_module.NoSuchName  # noqa: B018


def test_the_samplers_an_error_suggests_come_from_the_registry() -> None:
    """A deterministic sampler refuses a noisy observation and names the registered stochastic grid
    samplers, and only those; a sampler without a grid of its own names every grid sampler."""
    from sdegen.observations import Inpainting
    from sdegen.samplers.registry import SAMPLERS

    sde = SDES["VP"]
    built = [entry.build() for entry in SAMPLERS.values()]
    grid_samplers = {type(s).__name__ for s in built if s.supports_observation}
    stochastic = {type(s).__name__ for s in built if s.supports_observation and s.stochastic}
    noisy = Inpainting(torch.tensor([True, False]), torch.zeros(2), noise_std=0.1)
    with pytest.raises(TypeError, match=r"Use a stochastic sampler \(([^)]*)\)") as refused:
        sdegen.sample(sde, MIXTURE.score(sde), (4, 2), sdegen.UniPCSampler(5), observation=noisy)
    listed = re.search(r"Use a stochastic sampler \(([^)]*)\)", str(refused.value)).group(1).split(", ")
    assert set(listed) == stochastic and "DDPMSampler" in listed and "UniPCSampler" not in listed
    with pytest.raises(TypeError, match=r"Use a grid sampler \(([^)]*)\)") as refused:
        sdegen.sample(sde, MIXTURE.score(sde), (4, 2), ProbabilityFlowSampler(), callback=lambda info: None)
    listed = re.search(r"Use a grid sampler \(([^)]*)\)", str(refused.value)).group(1).split(", ")
    assert set(listed) == grid_samplers and "ProbabilityFlowSampler" not in listed
