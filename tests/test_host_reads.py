"""sdegen's own sampling loops never read device values back to the host while they step.

Each host read (``Tensor.item``, ``float``, ``int``, ``bool``, ``tolist``) of a GPU tensor is a
synchronisation that stalls the launch queue. The count of such reads during a sampling run must not
grow with the number of steps: the score's finiteness is checked on the device and read once.
"""

import pytest
import torch
from _oracle_data import SDES, gaussian_score
from _samplers import registered

import sdegen
from sdegen import (
    DDIMSampler,
    DDPMSampler,
    EDMStochasticSampler,
    PredictorCorrectorSampler,
    ProbabilityFlowSampler,
)
from sdegen.random import PerSampleGenerator
from sdegen.samplers import LangevinCorrector, ReverseDiffusion

_READS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")


@pytest.fixture
def count_host_reads(monkeypatch):
    counter = {"n": 0}
    for name in _READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counter["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counter


# sdegen's own loops (torchsde's and torchdiffeq's read their state back every step anyway): every
# registered one, and variants beside them (the probability-flow ODE's fixed-grid Runge-Kutta).
OWN_LOOPS = registered(
    lambda sampler: sampler.check_finite_every is None,
    extra={
        "pc-langevin-2": lambda steps: PredictorCorrectorSampler(
            ReverseDiffusion(), LangevinCorrector(n_steps=2), steps
        ),
        "ddim-eta": lambda steps: DDIMSampler(steps, eta=0.5),
        "edm-churn-10": lambda steps: EDMStochasticSampler(steps, s_churn=10.0),
        "ode-rk4": lambda steps: ProbabilityFlowSampler("rk4", steps=steps),
        "ode-heun3": lambda steps: ProbabilityFlowSampler("heun3", steps=steps),
    },
)


@pytest.mark.parametrize("make", list(OWN_LOOPS.values()), ids=list(OWN_LOOPS))
@pytest.mark.parametrize("per_sample", [False, True], ids=["generator", "per-sample-seeds"])
def test_host_reads_per_run_do_not_grow_with_the_number_of_steps(make, per_sample, count_host_reads):
    sde = SDES["VP"]
    score = gaussian_score(sde, 1.0, 0.5)  # reads nothing back itself (the oracle's score checks t)
    counts = []
    for steps in (5, 40):
        x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
        generator = PerSampleGenerator(range(16)) if per_sample else torch.Generator().manual_seed(1)
        count_host_reads["n"] = 0
        out = sdegen.sample(sde, score, None, make(steps=steps), x_T=x_T, generator=generator)
        counts.append(count_host_reads["n"])
        assert out.nfe >= steps
    assert counts[0] == counts[1], counts
    assert counts[1] < 40, (
        counts
    )  # the grid set-up: one or two CoefficientGrids (2S and EDM churn tabulate their stages)


def test_checking_every_evaluation_is_available_and_reads_once_per_evaluation(count_host_reads):
    sde = SDES["VP"]
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    counts = []
    for every in (None, 1):
        count_host_reads["n"] = 0
        sdegen.sample(
            sde, gaussian_score(sde, 1.0, 0.5), None, DDPMSampler(30), x_T=x_T, check_finite_every=every
        )
        counts.append(count_host_reads["n"])
    assert counts[1] - counts[0] >= 29  # one read per evaluation instead of one at the end


def test_the_progress_bar_reads_no_times_back(count_host_reads):
    sde = SDES["VP"]
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    counts = []
    for steps in (5, 40):
        count_host_reads["n"] = 0
        sdegen.sample(sde, gaussian_score(sde, 1.0, 0.5), None, DDPMSampler(steps), x_T=x_T, progress=True)
        counts.append(count_host_reads["n"])
    assert counts[0] == counts[1], counts
