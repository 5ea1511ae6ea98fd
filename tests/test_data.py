"""Data: the 2-D sets have the laws they claim, image sets map to [-1, 1] and back to bins, batches
are a function of the step alone, and nothing is downloaded."""

import math
import struct

import pytest
import torch

from sdegen import data as D

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dist", [D.ring(), D.grid(), D.Moons(), D.SwissRoll(), D.Checkerboard()], ids=repr)
def test_toy_sets_are_reproducible_and_seeded(dist):
    a = dist.sample(64, _gen(0))
    assert a.shape == (64, 2) and a.dtype == torch.float32
    torch.testing.assert_close(dist.sample(64, _gen(0)), a, rtol=0, atol=0)
    assert not torch.equal(dist.sample(64, _gen(1)), a)
    assert dist.sample(3, _gen(0), dtype=F64).dtype == F64


def test_mixture_sets_are_the_oracle():
    data = D.ring()
    x = data.sample(20_000, _gen(2), dtype=F64)
    torch.testing.assert_close(data.log_prob(x), data.mixture.log_prob(x))
    # Mean and covariance of the samples match the mixture's within a few standard errors.
    cov = data.mixture.covariance()
    assert (x.mean(0) - data.mixture.mean()).abs().max() < 4 * math.sqrt(float(cov.diag().max()) / 20_000)
    # Var of a sample covariance entry is about Var(x_i) Var(x_j) / n for these near-isotropic data.
    assert (torch.cov(x.T) - cov).abs().max() < 4 * float(cov.diag().max()) / math.sqrt(20_000)
    assert D.grid().mixture.n_components == 25 and data.mixture.n_components == 8


def test_checkerboard_is_uniform_on_the_dark_squares():
    board = D.Checkerboard()
    x = board.sample(16_000, _gen(3), dtype=F64)
    assert torch.isfinite(board.log_prob(x)).all()
    torch.testing.assert_close(board.log_prob(x), torch.full((16_000,), math.log(1 / 32), dtype=F64))
    # Each of the 8 dark squares gets 1/8 of the mass: Pearson chi^2 with 7 d.o.f. below its 0.1 % point.
    cell = torch.floor((x + 4) / 2).long()
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16).double()
    dark = counts[counts > 0]
    assert dark.numel() == 8
    assert float(((dark - 2000) ** 2 / 2000).sum()) < 24.3
    # Half of a uniform cover of the board has density 1/32, the other half none; outside is -inf.
    u = 8 * torch.rand(10_000, 2, generator=_gen(4), dtype=F64) - 4
    assert abs(float(torch.isfinite(board.log_prob(u)).double().mean()) - 0.5) < 0.03
    assert board.log_prob(torch.tensor([[5.0, 0.0]], dtype=F64)).item() == -math.inf


def test_moons_and_swiss_roll_lie_on_their_curves_without_noise():
    x = D.Moons(noise=0.0).sample(2000, _gen(5), dtype=F64) / 2 + torch.tensor([0.5, 0.25], dtype=F64)
    outer = (x.norm(dim=1) - 1).abs()
    inner = ((x - torch.tensor([1.0, 0.5], dtype=F64)).norm(dim=1) - 1).abs()
    assert torch.minimum(outer, inner).max() < 1e-12
    y = D.SwissRoll(noise=0.0).sample(2000, _gen(6), dtype=F64) * 3
    r = y.norm(dim=1)
    assert r.min() >= 1.5 * math.pi - 1e-9 and r.max() <= 4.5 * math.pi + 1e-9
    torch.testing.assert_close(torch.atan2(y[:, 1], y[:, 0]), torch.atan2(r.sin(), r.cos()))


def test_sets_without_density_say_so():
    assert not D.Moons.has_density and D.Checkerboard.has_density
    with pytest.raises(NotImplementedError, match="no closed-form density"):
        D.SwissRoll().log_prob(torch.zeros(1, 2))


def test_digits_split_and_pixel_map():
    train, test, full = D.load_digits("train"), D.load_digits("test"), D.load_digits("all")
    assert full.pixels.shape == (1797, 1, 8, 8) and full.levels == 17
    assert len(train) + len(test) == 1797 and len(test) == round(0.2 * 1797)
    # The split is a partition of the images and is the same on every call.
    both = torch.cat([train.pixels, test.pixels]).reshape(1797, -1)
    assert torch.equal(both.sort(0).values, full.pixels.reshape(1797, -1).sort(0).values)
    assert torch.equal(D.load_digits("test").pixels, test.pixels)
    # Dequantized values stay in their bin: floor((x + 1) / 2 * levels) = k.
    x = test.to_model(test.pixels, _gen(7), dtype=F64)
    assert x.min() >= -1 and x.max() < 1
    assert torch.equal(torch.floor((x + 1) / 2 * 17).to(torch.uint8), test.pixels)
    centre = test.to_model(test.pixels, dequantize=False, dtype=F64)
    torch.testing.assert_close(test.to_unit_interval(centre) * 17 - 0.5, test.pixels.double())


def test_bits_per_dim_of_the_uniform_density_is_log2_levels():
    digits = D.load_digits("test")
    logp_uniform = torch.full((3,), -64 * math.log(2.0), dtype=F64)  # U[-1, 1]^64
    torch.testing.assert_close(digits.bits_per_dim(logp_uniform), torch.full((3,), math.log2(17), dtype=F64))


def test_bits_per_dim_agrees_with_the_likelihood_modules_for_8_bit_data():
    import sdegen

    images = D.ImageData(torch.randint(0, 256, (4, 3, 2, 2), generator=_gen(3)), levels=256)
    logp = torch.tensor([-5.0, 0.0, 3.0, 10.0], dtype=F64)
    expected = sdegen.bits_per_dim(logp, (4, 3, 2, 2), data_range=(-1.0, 1.0), n_bits=8)
    torch.testing.assert_close(images.bits_per_dim(logp), expected)
    # ... and the dequantization is the same map: y = lo + (hi - lo) (k + u) / 2^n.
    ours = images.to_model(images.pixels, _gen(4), dtype=F64)
    theirs = sdegen.dequantize(images.pixels, data_range=(-1.0, 1.0), generator=_gen(4)).double()
    assert torch.equal(torch.floor((ours + 1) / 2 * 256), torch.floor((theirs + 1) / 2 * 256))


def _write_idx(path, magic, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape))
        f.write(array.numpy().tobytes())


def test_mnist_loads_from_a_local_copy_and_never_downloads(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = torch.randint(0, 256, (5, 28, 28), generator=_gen(8)).to(torch.uint8)
    _write_idx(raw / "t10k-images-idx3-ubyte", 2051, images)
    _write_idx(raw / "t10k-labels-idx1-ubyte", 2049, torch.zeros(5, dtype=torch.uint8))
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    data = D.load_mnist(tmp_path, "test")
    assert data.pixels.shape == (5, 1, 28, 28) and data.levels == 256
    assert torch.equal(data.pixels[:, 0], images)
    with pytest.raises(FileNotFoundError, match="download=True"):
        D.load_mnist(tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        D.load_cifar10(tmp_path / "nowhere", "test")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        D.load_mnist(tmp_path, "validation")


def test_image_folder(tmp_path):
    from PIL import Image

    for cls, n in (("cats", 2), ("dogs", 1)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.new("RGB", (20, 12), color=(10 * i, 100, 200)).save(tmp_path / cls / f"{i}.png")
    rgb = D.load_image_folder(tmp_path, image_size=8)
    assert rgb.pixels.shape == (3, 3, 8, 8) and rgb.pixels.dtype == torch.uint8
    assert int(rgb.pixels[0, 2].min()) == 200
    assert D.load_image_folder(tmp_path, image_size=6, channels=1).pixels.shape == (3, 1, 6, 6)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        D.load_image_folder(tmp_path, channels=4)


def test_dataset_batches_are_epochs_addressed_by_step():
    data = torch.arange(10, dtype=F64)[:, None]
    source = D.DatasetBatches(data, batch_size=3, seed=1)
    assert source.batches_per_epoch == 3
    epoch0 = torch.cat([source.batch(s) for s in range(3)]).flatten()
    assert len(set(epoch0.tolist())) == 9  # one drop_last remainder
    fresh = D.DatasetBatches(data, batch_size=3, seed=1)
    torch.testing.assert_close(fresh.batch(4, dtype=F64), source.batch(4, dtype=F64))  # no iterator state
    assert not torch.equal(source.batch(3), source.batch(0))  # a new permutation each epoch
    images = D.DatasetBatches(D.load_digits("test"), batch_size=16)
    a, b = (images.batch(0, _gen(9)) for _ in range(2))
    assert a.shape == (16, 1, 8, 8) and torch.equal(a, b)
    assert D.DistributionBatches(D.ring(), 32).batch(0, _gen(0)).shape == (32, 2)


def test_data_argument_errors():
    with pytest.raises(ValueError, match="noise must be >= 0"):
        D.Moons(noise=-1.0)
    with pytest.raises(ValueError, match="squares must be even"):
        D.Checkerboard(squares=3)
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 16\]"):
        D.ImageData(torch.full((1, 1, 2, 2), 17), levels=17)
    with pytest.raises(TypeError, match="pixels must hold integers"):
        D.ImageData(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"pixels must be a tensor of shape \[N, C, H, W\]"):
        D.ImageData(torch.zeros(2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="split must be 'train', 'test' or 'all'"):
        D.load_digits("val")
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\)"):
        D.load_digits("all").split(1.5)
    with pytest.raises(ValueError, match="batch_size must be <= the number of examples"):
        D.DatasetBatches(torch.zeros(4, 2), batch_size=5)
    with pytest.raises(TypeError, match="data must be a floating tensor"):
        D.DatasetBatches(torch.zeros(4, 2, dtype=torch.long), batch_size=2)
    with pytest.raises(TypeError, match="distribution must be a ToyDistribution"):
        D.DistributionBatches("ring", 2)
    with pytest.raises(TypeError, match="mixture must be a GaussianMixture in R"):
        D.GaussianMixtureData(D.ring())
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2\]"):
        D.Checkerboard().log_prob(torch.zeros(3, 3))
