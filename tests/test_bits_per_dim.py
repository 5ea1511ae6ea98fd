"""Bits per dimension and uniform dequantization: the offsets, invariances and the negative-bpd trap."""

import math

import pytest
import torch

from sdegen.analytic import GaussianMixture
from sdegen.likelihood import Quantization, bits_per_dim, dequantize

F64 = torch.float64


def test_offsets_are_8_bits_on_0_1_and_7_bits_on_minus1_1():
    assert Quantization().offset == 8.0
    assert Quantization(data_range=(-1.0, 1.0)).offset == 7.0
    assert Quantization(data_range=(0.0, 255.0), n_bits=8).offset == pytest.approx(8 - math.log2(255))
    logp = torch.zeros(3, dtype=F64)  # log p = 0: bpd is the offset itself
    torch.testing.assert_close(bits_per_dim(logp, (3, 1, 4, 4)), torch.full((3,), 8.0, dtype=F64))
    torch.testing.assert_close(
        bits_per_dim(logp, 16, data_range=(-1.0, 1.0)), torch.full((3,), 7.0, dtype=F64)
    )


@pytest.mark.parametrize("data_range", [(0.0, 1.0), (-1.0, 1.0), (-3.0, 5.0)])
@pytest.mark.parametrize("n_bits", [5, 8])
def test_uniform_density_codes_exactly_n_bits_per_dim(data_range, n_bits):
    """The uniform density on [lo, hi]^D, log p = -D log(hi - lo), gives bpd = n_bits in every range."""
    lo, hi = data_range
    D = 12
    logp = torch.full((2,), -D * math.log(hi - lo), dtype=F64)
    bpd = bits_per_dim(logp, (2, 3, 4), data_range=data_range, n_bits=n_bits)
    torch.testing.assert_close(bpd, torch.full((2,), float(n_bits), dtype=F64))


def test_bpd_does_not_depend_on_the_data_scaling():
    """y' = 2 y - 1 maps [0, 1] to [-1, 1]; log p'(y') = log p(y) - D log 2 gives the same bpd."""
    D = 64
    logp = torch.tensor([-30.0, 12.5], dtype=F64)
    a = bits_per_dim(logp, D, data_range=(0.0, 1.0))
    b = bits_per_dim(logp - D * math.log(2), D, data_range=(-1.0, 1.0))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("data_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_dequantize_adds_uniform_noise_inside_each_cell(data_range):
    lo, hi = data_range
    k = torch.randint(0, 256, (500, 3), generator=torch.Generator().manual_seed(0))
    x = lo + (hi - lo) * k.double() / 255
    y = dequantize(x, data_range=data_range, generator=torch.Generator().manual_seed(1))
    u = (y - lo) / (hi - lo) * 256 - k  # (255 x + u) / 256 on [0, 1]
    assert y.dtype == F64 and ((u >= 0) & (u < 1)).all()
    assert abs(float(u.mean()) - 0.5) < 3 * math.sqrt(1 / 12 / u.numel())
    again = dequantize(x, data_range=data_range, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y, again)


def test_dequantize_accepts_the_integers_themselves():
    k = torch.randint(0, 256, (4, 1, 2, 2), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    y = dequantize(k, generator=torch.Generator().manual_seed(3))
    assert y.dtype == torch.get_default_dtype() and y.shape == k.shape
    assert torch.equal((y * 256).floor().to(torch.uint8), k)


def test_undequantized_data_give_meaningless_negative_bpd():
    """A density with narrow peaks on the 8-bit grid: at the grid points -log p is very negative (bpd < 0)
    although no discrete model codes below 0 bits; on dequantized data the bpd is >= 0 on average."""
    levels = torch.arange(256, dtype=F64)[:, None] / 255
    peaks = GaussianMixture(torch.full((256,), 1 / 256, dtype=F64), levels, 1e-12)
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 256, (1000, 1), generator=gen).double() / 255
    on_grid = bits_per_dim(peaks.log_prob(x), x.shape)
    dequantized = bits_per_dim(peaks.log_prob(dequantize(x, generator=gen)), x.shape)
    assert (on_grid < 0).all()
    assert dequantized.mean() > 0


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: Quantization(data_range=(1.0, 0.0)), ValueError, "lo < hi"),
        (lambda: Quantization(data_range=(0.0,)), TypeError, r"data_range must be a pair"),
        (lambda: Quantization(n_bits=0), ValueError, "n_bits must be >= 1"),
        (lambda: Quantization(n_bits=32), ValueError, "n_bits must be <= 24"),
        (lambda: bits_per_dim([1.0], 4), TypeError, "logp must be a torch.Tensor"),
        (
            lambda: bits_per_dim(torch.zeros(64), (3, 32, 32)),
            ValueError,
            r"x.shape = \(B, \.\.\.\) with B = len\(logp\) = 64",
        ),
        (lambda: bits_per_dim(torch.zeros(2), 0), ValueError, "number of dimensions must be >= 1"),
        (lambda: bits_per_dim(torch.zeros(2), "x"), TypeError, "x_shape_or_dims must be x.shape"),
        (lambda: bits_per_dim(torch.zeros(2), 4.5), TypeError, "x_shape_or_dims must be x.shape"),
        (
            lambda: dequantize(torch.rand(3, 4, generator=torch.Generator().manual_seed(5))),
            ValueError,
            "already dequantized",
        ),
        (lambda: dequantize(torch.tensor([[2.0]])), ValueError, r"k in \[510, 510\]"),
        (lambda: dequantize(torch.tensor([[float("nan")]])), ValueError, "NaN"),
        (lambda: dequantize([[0.0]]), TypeError, "x must be a real or integer torch.Tensor"),
    ],
)
def test_bad_quantization_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
