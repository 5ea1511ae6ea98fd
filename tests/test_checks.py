"""The shared argument checks of sdegen._checks where they decide something beyond a type: which SDEs
are the same process, and the grids and schedules they accept."""

from __future__ import annotations

import math

import pytest
import torch
from _sdes import OpaqueVP

import sdegen
from sdegen._checks import check_class_labels, check_end_time, check_output, check_whole_batch_draw, same_sde
from sdegen.random import PerSampleGenerator
from sdegen.samplers import KarrasGrid, LogSNRGrid


class _VPByKernel(sdegen.LinearSDE):
    """The linear VP SDE written through its kernel only: the same process as VPSDE()."""

    def alpha(self, t):
        return torch.exp(-0.25 * t**2 * 19.9 - 0.5 * t * 0.1)

    def sigma(self, t):
        return (1 - self.alpha(t) ** 2).sqrt()


def test_same_sde_is_the_same_kernel_whatever_the_class():
    vp = sdegen.VPSDE()
    assert same_sde(vp, sdegen.VPSDE(beta_min=0.1, beta_max=20.0))
    assert same_sde(vp, _VPByKernel())
    assert not same_sde(vp, sdegen.VPSDE(beta_max=20.1))  # 0.5% apart
    assert not same_sde(vp, sdegen.SubVPSDE())  # same alpha, another sigma
    assert not same_sde(vp, sdegen.VPSDE(T=2.0))
    assert not same_sde(sdegen.VESDE(sigma_max=50.0), sdegen.VESDE(sigma_max=51.0))


def test_karras_grid_is_finite_for_any_rho_and_tends_to_the_log_snr_grid():
    vp = sdegen.VPSDE()
    for rho in (1e-3, 0.5, 7.0, 1e4):
        ts = KarrasGrid(8, rho=rho).times(vp, 1e-3)
        assert torch.isfinite(ts).all() and bool((ts[:-1] > ts[1:]).all())
        assert ts[0] == 1.0 and math.isclose(float(ts[-1]), 1e-3)
    # s^(1/rho) -> 1 + log(s) / rho as rho -> infinity: interpolation uniform in log s (lambda).
    lam = vp.log_snr(KarrasGrid(8, rho=1e6).times(vp, 1e-3))
    assert torch.allclose(lam, vp.log_snr(LogSNRGrid(8).times(vp, 1e-3)), atol=1e-4)


def test_labels_follow_the_device_policy_and_keep_their_form():
    assert check_class_labels("y", 2, None, 3).ndim == 0
    assert check_class_labels("y", [0, 2, 1], None, 3).tolist() == [0, 2, 1]
    assert check_class_labels("y", torch.tensor(1), 4, 3).tolist() == [1, 1, 1, 1]
    y = check_class_labels("y", torch.tensor([0, 1], dtype=torch.int32), 2, 3, device="meta")
    assert y.device.type == "meta" and y.dtype == torch.int64


def test_a_general_sde_is_compared_by_its_drift_and_diffusion():
    assert same_sde(OpaqueVP(), sdegen.VPSDE())
    assert not same_sde(OpaqueVP(beta_max=10.0), sdegen.VPSDE())
    assert not same_sde(OpaqueVP(), sdegen.VESDE())


def test_check_output_names_the_callable_what_it_must_return_and_what_it_returned():
    x = torch.zeros(4, 2)
    ok = torch.zeros(4)
    assert check_output("f(x)", ok, "a tensor [B]", [(4,)], dtype=x.dtype, device=x.device) is ok
    assert check_output("v", x, "x's shape or [B]", [(4,), (4, 2)]) is x  # any of the shapes
    with pytest.raises(ValueError, match=r"^f\(x\) must return a tensor \[B\]; got shape \(4, 1\), dtype"):
        check_output("f(x)", torch.zeros(4, 1), "a tensor [B]", [(4,)])
    with pytest.raises(ValueError, match=r"got shape \(4,\), dtype torch.float64"):
        check_output("f(x)", ok.double(), "a tensor [B]", [(4,)], dtype=torch.float32)
    with pytest.raises(ValueError, match=r"got shape \(4,\), dtype torch.int64"):
        check_output("f(x)", ok.long(), "logits", [(4,)], floating=True)
    with pytest.raises(ValueError, match="must return logits; got a list"):
        check_output("f(x)", [0.0] * 4, "logits", [(4,)])


def test_check_end_time_is_the_open_interval_and_says_why():
    assert check_end_time("eps", 1e-5, 1.0, "why") == 1e-5
    for bad in (0.0, 1.0, -1e-3, 2.0):
        with pytest.raises(ValueError, match=r"eps must lie in \(0, T\) = \(0, 1\): the reason; got eps="):
            check_end_time("eps", bad, 1.0, "the reason")
    with pytest.raises(TypeError, match="eps must be a real number"):
        check_end_time("eps", "small", 1.0, "why")


def test_check_whole_batch_draw_takes_the_generators_device_and_refuses_a_batch_generator():
    assert check_whole_batch_draw(3, None, None) == (3, torch.device("cpu"))
    assert check_whole_batch_draw(3, torch.Generator(), None) == (3, torch.device("cpu"))
    assert check_whole_batch_draw(3, None, "meta") == (3, torch.device("meta"))
    with pytest.raises(ValueError, match="n"):
        check_whole_batch_draw(0, None, None)
    with pytest.raises(TypeError):
        check_whole_batch_draw(3, PerSampleGenerator([0, 1, 2]), None)
