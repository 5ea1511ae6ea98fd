"""Score networks: shapes for every data layout, dtype and device agnosticism, time conditioning."""

import pytest
import torch

from sdegen.nn import UNET_SIZES, ScoreMLP, UNet


@pytest.mark.parametrize("hw", [8, 28, 32])
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_unet_is_shape_correct(size, hw):
    net = UNet.from_size(size, in_channels=3 if hw == 32 else 1)
    x = torch.randn(2, net.in_channels, hw, hw, generator=torch.Generator().manual_seed(0))
    assert net(torch.tensor([0.1, 0.9]), x).shape == x.shape


def test_unet_odd_sizes_and_float_time():
    net = UNet.from_size("tiny", in_channels=2)
    x = torch.randn(3, 2, 7, 5)
    assert net(0.5, x).shape == x.shape


def test_unet_base_size_builds():
    assert UNet(1, UNET_SIZES["base"])(torch.rand(1), torch.randn(1, 1, 8, 8)).shape == (1, 1, 8, 8)


@pytest.mark.parametrize("shape", [(5, 2), (5, 3, 4), (5, 1, 2, 2)])
def test_mlp_any_shape(shape):
    net = ScoreMLP(shape[1:])
    assert net(torch.rand(5), torch.randn(shape)).shape == shape


def test_networks_follow_dtype_and_depend_on_time():
    torch.manual_seed(0)  # parameter init only; no library code seeds global state
    for net, x in [(ScoreMLP(2), torch.randn(4, 2)), (UNet.from_size("tiny", 1), torch.randn(4, 1, 8, 8))]:
        net = net.double()
        xd = x.double()
        out0 = net(torch.zeros(4, dtype=torch.float64), xd)
        out1 = net(torch.ones(4, dtype=torch.float64), xd)
        assert out0.dtype == torch.float64
        assert (out0 - out1).abs().max() > 1e-4


def test_invalid_network_arguments():
    with pytest.raises(ValueError, match="size must be one of"):
        UNet.from_size("huge", 1)
    with pytest.raises(ValueError, match=r"x must have shape \[B, C, H, W\]"):
        UNet.from_size("tiny", 1)(0.5, torch.randn(2, 8, 8))
    with pytest.raises(ValueError, match="depth and hidden must be >= 1"):
        ScoreMLP(2, depth=0)
