"""Progress display: a labelled bar on a terminal, plain periodic lines in a log or pipe, nothing
when disabled; samplers, likelihoods and training all go through the one policy."""

import io

import pytest
import torch
from _oracle_data import SDES, gaussian_score

import sdegen
from sdegen._progress import progress
from sdegen.samplers import DDPMSampler


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(stream, clock, seconds_per_unit: float, total: int = 100, **kw) -> list[str]:
    bar = progress(total, label="work", stream=stream, clock=clock, **kw)
    for _ in range(total):
        clock.now += seconds_per_unit
        bar.update(1)
    bar.close()
    return stream.getvalue().splitlines()


def test_in_a_log_a_line_per_tenth_of_the_work_and_no_carriage_returns():
    stream, clock = io.StringIO(), Clock()
    lines = _run(stream, clock, seconds_per_unit=0.5)  # 50 s in all, a tenth every 5 s
    assert "\r" not in stream.getvalue()
    assert [line.split(":")[0] for line in lines] == ["work"] * 10
    assert [line.split()[1] for line in lines] == [f"{p}%" for p in range(10, 100, 10)] + ["100%"]
    assert lines[-1].endswith("50.0 s, done") and "(100/100)" in lines[-1]


def test_a_fast_loop_leaves_no_trace_in_a_log_and_a_slow_one_a_heartbeat():
    stream, clock = io.StringIO(), Clock()
    assert _run(stream, clock, seconds_per_unit=0.001) == []  # 0.1 s: nothing, not even "done"
    stream, clock = io.StringIO(), Clock()
    bar = progress(1000, label="slow", stream=stream, clock=clock, heartbeat=60.0)
    clock.now = 61.0
    bar.update(1)  # 0.1 %: no tenth reached, but a minute without a line
    bar.set_postfix_str("loss=0.5")
    clock.now = 62.0
    bar.update(1)  # too soon after the heartbeat
    assert stream.getvalue() == "slow:   0% (1/1000), 61.0 s\n"


def test_on_a_terminal_a_labelled_tqdm_bar_and_nothing_when_disabled():
    stream = Terminal()
    _run(stream, Clock(), seconds_per_unit=0.0, total=5, unit="step")
    assert "\r" in stream.getvalue() and "work" in stream.getvalue()
    stream = Terminal()
    assert _run(stream, Clock(), seconds_per_unit=1.0, enabled=False) == [] and stream.getvalue() == ""


def test_samplers_and_likelihoods_label_their_progress(monkeypatch):
    sde = SDES["VP"]
    score = gaussian_score(sde, 1.0, 0.5)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    sdegen.sample(sde, score, None, DDPMSampler(5), x_T=x, progress=True)
    assert "DDPMSampler" in stream.getvalue() and "nfe=5" in stream.getvalue()
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    result = sdegen.log_likelihood(x, sde, score, divergence=sdegen.ExactTrace(), progress=True)
    assert "nll: 100%" in stream.getvalue() and f"nfe={result.nfe}" in stream.getvalue()
    with pytest.raises(TypeError, match="progress must be a bool"):
        sdegen.log_likelihood(x, sde, score, progress="yes")
