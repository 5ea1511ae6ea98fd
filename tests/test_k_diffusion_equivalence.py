"""k-diffusion's samplers as a reference: its DiscreteEpsDDPMDenoiser on the tiny UNet2DModel of
test_diffusers_equivalence, stepped by sample_euler and sample_dpmpp_2m through the table's own
noise levels, is sdegen's DDIM and DPM-Solver++(2M) on a DiscreteVPSDE to round-off.

``import k_diffusion`` needs its training dependencies (scikit-image, kornia, clean-fid, ...), but
``k_diffusion.sampling`` and ``k_diffusion.external`` need only scipy, torchdiffeq, torchsde, tqdm
and ``k_diffusion.utils`` (PIL, safetensors, torchvision): they are loaded through a bare package
module that skips ``k_diffusion/__init__.py``. sample_heun and sample_lms have no sdegen twin
step for step (Heun's final Euler step and LMS's polynomial weights): not compared here.
"""

import functools
import importlib
import importlib.util
import sys
import types

import pytest
import torch
from test_diffusers_equivalence import _unet, _UNetDenoiser

from sdegen import CustomGrid, DDIMSampler, DiscreteVPSDE, DPMSolverMultistepSampler

F64 = torch.float64


@functools.cache
def _k_diffusion():
    """k_diffusion.sampling and .external, loaded under a bare package module that is removed from
    sys.modules afterwards (the loaded modules keep their references)."""
    if "k_diffusion" in sys.modules:  # the real package, imported elsewhere
        return sys.modules["k_diffusion"].sampling, sys.modules["k_diffusion"].external
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        pytest.skip("k-diffusion is not installed")
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = package
    try:
        return importlib.import_module("k_diffusion.sampling"), importlib.import_module(
            "k_diffusion.external"
        )
    except ImportError as err:
        pytest.skip(f"k_diffusion.sampling does not import: {err}")
    finally:
        for name in [n for n in sys.modules if n == "k_diffusion" or n.startswith("k_diffusion.")]:
            del sys.modules[name]


class _Eps(torch.nn.Module):
    """The UNet as k-diffusion's DiscreteEpsDDPMDenoiser calls an eps-model: inner(x, t)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        return self.net(x, t).sample


@pytest.mark.parametrize("name", ["sample_euler", "sample_dpmpp_2m"])
def test_k_diffusion_samplers_are_sdegen_to_round_off(name):
    sampling, external = _k_diffusion()
    sde = DiscreteVPSDE.from_beta_schedule("scaled_linear", 1000, 0.00085, 0.012)
    net = _unet(F64)
    denoiser = external.DiscreteEpsDDPMDenoiser(_Eps(net), sde.alphas_cumprod, quantize=True)
    k = torch.tensor([999, 899, 799, 699, 599, 499, 399, 299, 199, 99], dtype=F64)
    sigmas = torch.cat([denoiser.sigmas[k.long()], torch.zeros(1, dtype=F64)])
    x_T = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=F64)
    with torch.no_grad():
        # k-diffusion's x lives in the scale of sigma: x = x_VP sqrt(1 + sigma^2)
        reference = getattr(sampling, name)(denoiser, x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas, disable=True)
    grid = CustomGrid(sde.timestep_to_t(k))
    sampler = (
        DDIMSampler(grid=grid)
        if name == "sample_euler"
        else DPMSolverMultistepSampler(grid=grid, lower_order_final=False)
    )
    result = sampler(sde, _UNetDenoiser(net, sde, "epsilon"), x_T, denoise=True)
    error = float((result.x - reference).abs().max() / reference.abs().max())
    assert error <= 1e-12, error
