"""SequentialBrownian: exact increment and space-time Levy area moments; misuse is detected."""

import math

import pytest
import torch
import torchsde

from sdegen.brownian import SequentialBrownian

F64 = torch.float64


def _bm(seed=0, t0=0.0, t1=1.0, size=(20000, 4)):
    return SequentialBrownian(t0, t1, size, dtype=F64, generator=torch.Generator().manual_seed(seed))


def test_increment_and_levy_area_moments():
    """W ~ N(0, h), U = int (W_s - W_a) ds: Var U = h^3/3, Cov(W, U) = h^2/2, independent of the past.

    80000 draws per quantity: sample variances have relative standard error sqrt(2/80000) = 0.5 %,
    so 5 standard errors is 2.5 %. Earlier increments are uncorrelated with later ones.
    """
    bm = _bm(seed=1, t1=3.0)
    h1, h2 = 0.5, 2.0
    W1, U1 = bm(torch.tensor(0.0, dtype=F64), torch.tensor(h1, dtype=F64), return_U=True)
    W2, U2 = bm(torch.tensor(h1, dtype=F64), torch.tensor(h1 + h2, dtype=F64), return_U=True)
    n = W1.numel()
    tol = 5 * math.sqrt(2 / n)
    for W, U, h in [(W1, U1, h1), (W2, U2, h2)]:
        assert abs(float(W.mean())) < 5 * math.sqrt(h / n)
        assert abs(float(U.mean())) < 5 * math.sqrt(h**3 / 3 / n)
        assert abs(float(W.var()) / h - 1) < tol
        assert abs(float(U.var()) / (h**3 / 3) - 1) < tol
        # Corr(W, U) = (h^2/2) / sqrt(h * h^3/3) = sqrt(3)/2, standard error (1 - rho^2)/sqrt(n).
        corr = float(torch.corrcoef(torch.stack([W.flatten(), U.flatten()]))[0, 1])
        assert abs(corr - math.sqrt(3) / 2) < 5 * (1 - 0.75) / math.sqrt(n)
    cross = torch.corrcoef(torch.stack([W1.flatten(), W2.flatten(), U2.flatten()]))
    assert float(cross[0, 1:].abs().max()) < 5 / math.sqrt(n)


def test_increments_add_up_to_a_brownian_path():
    """The sum of K sequential increments over [0, 1] has variance 1 (a path, not K copies)."""
    bm = _bm(seed=2, size=(50000, 1))
    grid = torch.linspace(0, 1, 11, dtype=F64)
    total = sum(bm(a, b) for a, b in zip(grid[:-1], grid[1:], strict=True))
    assert abs(float(total.var()) - 1) < 5 * math.sqrt(2 / 50000)


def test_draws_are_determined_by_the_generator():
    a = _bm(seed=3, size=(4, 2))(0.0, 0.1)
    b = _bm(seed=3, size=(4, 2))(0.0, 0.1)
    c = _bm(seed=4, size=(4, 2))(0.0, 0.1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_properties_for_torchsde():
    bm = _bm(size=(3, 2))
    assert isinstance(bm, torchsde.BaseBrownian)
    assert bm.shape == (3, 2) and bm.size() == (3, 2)
    assert bm.dtype == F64 and bm.device == torch.device("cpu")
    assert bm.levy_area_approximation == "space-time"
    assert "SequentialBrownian(t0=0, t1=1" in repr(bm)


def test_fixed_step_sdeint_is_exact_for_brownian_motion():
    """dy = dW with euler: y(1) = W(1), whose variance is 1, and the state at ts[k] has variance ts[k]."""

    class Noise(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return torch.zeros_like(y)

        def g(self, t, y):
            return torch.ones_like(y)

    n = 40000
    ts = torch.tensor([0.0, 0.3, 1.0], dtype=F64)
    bm = SequentialBrownian(0.0, 1.0, (n, 1), dtype=F64, generator=torch.Generator().manual_seed(5))
    ys = torchsde.sdeint(Noise(), torch.zeros(n, 1, dtype=F64), ts, bm=bm, method="euler", dt=0.1)
    var = ys.var(dim=(1, 2))
    assert abs(float(var[1]) / 0.3 - 1) < 5 * math.sqrt(2 / n)
    assert abs(float(var[2]) - 1) < 5 * math.sqrt(2 / n)


class _Linear(torch.nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(0.5, dtype=F64))

    def f(self, t, y):
        return -self.theta * y

    def g(self, t, y):
        return torch.ones_like(y)


@pytest.mark.parametrize(
    "query",
    [
        lambda bm: (bm(0.0, 0.1), bm(0.0, 0.05)),  # overlapping: adaptive stepping retries a step
        lambda bm: (bm(0.0, 0.1), bm(0.2, 0.3)),  # a gap
        lambda bm: bm(0.1, 0.2),  # does not start at t0
        lambda bm: (bm(0.0, 0.5), bm(0.5, 0.4)),  # backwards
        lambda bm: bm(0.0, 1.5),  # beyond t1
    ],
)
def test_non_sequential_queries_raise(query):
    with pytest.raises(RuntimeError, match="does not continue the previous one.*BrownianInterval"):
        query(_bm(size=(2, 1)))


def test_point_evaluation_and_levy_area_raise():
    with pytest.raises(RuntimeError, match="point evaluations bm\\(t\\) are not supported"):
        _bm(size=(2, 1))(0.5)
    with pytest.raises(RuntimeError, match="no Levy area A.*foster"):
        _bm(size=(2, 1))(0.0, 0.5, return_A=True)


@pytest.mark.filterwarnings("ignore:Numerical solution is not guaranteed")
def test_adaptive_and_adjoint_solves_are_detected():
    y0 = torch.ones(4, 1, dtype=F64)
    ts = torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(RuntimeError, match="adaptive=True"):
        torchsde.sdeint(_Linear(), y0, ts, bm=_bm(size=(4, 1)), method="euler", dt=0.1, adaptive=True)
    sde = _Linear()
    ys = torchsde.sdeint_adjoint(sde, y0, ts, bm=_bm(size=(4, 1)), method="euler", dt=0.1)
    with pytest.raises(RuntimeError, match="sdeint_adjoint"):
        ys[-1].sum().backward()


def test_invalid_construction():
    with pytest.raises(ValueError, match="t1 must be > t0; got t0=1, t1=1"):
        SequentialBrownian(1.0, 1.0, (2, 1))
    with pytest.raises(ValueError, match="size must be a non-empty sequence of positive ints"):
        SequentialBrownian(0.0, 1.0, (0, 1))
    with pytest.raises(TypeError, match="t0 must be a real number"):
        SequentialBrownian("0", 1.0, (2, 1))
    with pytest.raises(ValueError, match="generator is on cpu but device is meta"):
        SequentialBrownian(0.0, 1.0, (2, 1), device="meta", generator=torch.Generator())
