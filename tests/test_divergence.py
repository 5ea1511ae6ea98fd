"""Divergence estimators against closed forms: tr(A) of linear maps, Hutchinson's mean and variance."""

import math

import pytest
import torch

from sdegen.likelihood import ExactTrace, Hutchinson

F64 = torch.float64


def _matrix(d: int, seed: int) -> torch.Tensor:
    return torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _linear(A: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x -> A x per sample, with x of any shape [B, ...] flattened to d = A.shape[0]."""
    x = x.detach().requires_grad_(True)
    return (x.reshape(x.shape[0], -1) @ A.T).reshape(x.shape), x


def _estimates(estimator, A: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n independent estimates of tr(A): one sample per batch row, each with its own probes."""
    x = torch.zeros(n, A.shape[0], dtype=F64)
    out, xg = _linear(A, x)
    vectors = estimator.draw(x, torch.Generator().manual_seed(seed))
    return estimator.trace(out, xg, vectors)


@pytest.mark.parametrize("event_shape", [(1,), (5,), (1, 2, 3)])
def test_exact_trace_of_a_linear_map_is_tr_A(event_shape):
    d = math.prod(event_shape)
    A = _matrix(d, 0)
    x = torch.randn(4, *event_shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    out, xg = _linear(A, x)
    est = ExactTrace()
    torch.testing.assert_close(est.trace(out, xg, est.draw(x)), torch.full((4,), float(A.trace()), dtype=F64))


def test_exact_trace_of_a_nonlinear_map_matches_jacrev():
    def f(x):  # per-sample, nonlinear, non-symmetric Jacobian
        return torch.tanh(x.roll(1, dims=-1)) * x + x.pow(3).sum(-1, keepdim=True)

    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    jac = torch.func.vmap(torch.func.jacrev(lambda v: f(v[None])[0]))(x)
    xg = x.clone().requires_grad_(True)
    est = ExactTrace()
    torch.testing.assert_close(est.trace(f(xg), xg, est.draw(x)), jac.diagonal(dim1=1, dim2=2).sum(-1))


def test_exact_trace_is_differentiable_with_create_graph():
    """div of x -> x^3 is 3 sum x^2, whose gradient is 6 x."""
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=F64, requires_grad=True)
    est = ExactTrace()
    div = est.trace(x.pow(3), x, est.draw(x), create_graph=True)
    torch.testing.assert_close(div, 3 * x.detach().pow(2).sum(1))
    (grad,) = torch.autograd.grad(div.sum(), x)
    torch.testing.assert_close(grad, 6 * x.detach())


def test_divergence_of_a_function_that_ignores_x_is_zero():
    x = torch.randn(3, 2, dtype=F64, requires_grad=True)
    w = torch.ones(3, 2, dtype=F64, requires_grad=True)
    for est in (Hutchinson(), ExactTrace()):
        assert torch.equal(est.trace(2 * w, x, est.draw(x)), torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_mean_and_variance_match_the_closed_form(probe):
    """E[v^T A v] = tr(A); Var = 2 sum_{i != j} S_ij^2 (Rademacher) or 2 ||S||_F^2 (Gaussian), S = (A + A^T)/2."""
    d, n = 4, 40000
    A = _matrix(d, 4)
    S = 0.5 * (A + A.T)
    off = S - torch.diag(torch.diagonal(S))
    var = 2 * (off if probe == "rademacher" else S).pow(2).sum()
    est = _estimates(Hutchinson(probe), A, n, seed=5)
    se = math.sqrt(float(var) / n)
    assert abs(float(est.mean()) - float(A.trace())) < 3 * se
    # The sample variance of n draws has relative standard error ~ sqrt(2 / n) * sqrt(kurtosis term):
    # within 5 % here for these distributions.
    assert abs(float(est.var()) / float(var) - 1) < 0.05


def test_rademacher_is_exact_for_diagonal_matrices_and_in_one_dimension():
    for A in (torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=F64)), _matrix(1, 6)):
        est = _estimates(Hutchinson("rademacher"), A, 50, seed=7)
        torch.testing.assert_close(est, torch.full_like(est, float(A.trace())))


def test_hutchinson_standard_error_shrinks_like_one_over_sqrt_probes():
    A, n = _matrix(3, 8), 20000
    sd = [float(_estimates(Hutchinson("gaussian", n_probes=k), A, n, seed=9 + k).std()) for k in (1, 4, 16)]
    assert abs(sd[1] / sd[0] - 0.5) < 0.03
    assert abs(sd[2] / sd[0] - 0.25) < 0.015


def test_probes_are_drawn_from_the_generator_and_have_the_right_law():
    x = torch.zeros(7, 2, 3)
    v1 = Hutchinson("rademacher", n_probes=2).draw(x, torch.Generator().manual_seed(0))
    v2 = Hutchinson("rademacher", n_probes=2).draw(x, torch.Generator().manual_seed(0))
    assert v1.shape == (2, 7, 2, 3) and v1.dtype == x.dtype
    assert torch.equal(v1, v2)
    assert set(v1.unique().tolist()) == {-1.0, 1.0}
    assert ExactTrace().draw(x).shape == (6, 7, 2, 3)


def test_invalid_estimator_arguments():
    with pytest.raises(ValueError, match="probe must be one of"):
        Hutchinson("normal")
    with pytest.raises(ValueError, match="n_probes must be >= 1"):
        Hutchinson(n_probes=0)
    with pytest.raises(TypeError, match="n_probes must be an int"):
        Hutchinson(n_probes=1.5)
    with pytest.raises(ValueError, match="max_dim must be >= 1"):
        ExactTrace(max_dim=0)
    with pytest.raises(ValueError, match=r"D = 3072 > max_dim = 128.*Use Hutchinson\(\)"):
        ExactTrace().draw(torch.zeros(2, 3, 32, 32))
