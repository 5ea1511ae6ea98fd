"""The continuous-time ELBO and the discrete DDPM bound against closed forms.

* With the oracle's exact score and exact p_T the forward process is the model's exact posterior:
  the ELBO's Monte-Carlo mean equals -log p_eps(x) of the mixture's marginal at eps, on VP, sub-VP
  and VE; a perturbed score puts it strictly above.
* Gaussian data with a linear denoiser: every term of the discrete bound (L_T, the KLs, the
  decoder L_0) matches its closed form, computed here independently (the KLs from the two
  Gaussians, the decoder by Gauss-Hermite quadrature over the data prediction's law); the discrete
  bound decreases towards the continuous one at rate O(1/N) on a log-SNR-uniform grid, and the
  continuous bound with a decoder is its limit.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import log_ndtr, ndtr

import sdegen
from sdegen.likelihood.bounds import (
    BoundResult,
    DataGrid,
    ddpm_bound,
    discretized_gaussian_log_likelihood,
    elbo,
)
from tests._oracle_data import MIXTURE, SDES

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    # Many tiny network calls: with several threads torch spins on every small kernel.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- the continuous bound with the exact score ---------------------------------------------------


@pytest.mark.parametrize("name", ["VP", "subVP", "VE"])
@pytest.mark.parametrize("time_law", ["importance", "uniform"])
def test_elbo_with_the_exact_score_is_minus_log_p_eps(name, time_law):
    sde, eps = SDES[name], 1e-5
    x = MIXTURE.sample(3, torch.Generator().manual_seed(0))
    p_T = MIXTURE.marginal_log_prob(sde)
    res = elbo(
        x,
        sde,
        MIXTURE.score(sde),
        n_samples=1500,
        time_law=time_law,
        eps=eps,
        prior_logp=lambda z: p_T(sde.T, z),
        generator=torch.Generator().manual_seed(1),
        batch_size=10_000,
    )
    true = -MIXTURE.marginal(sde, eps).log_prob(x)
    z = (res.nll - true) / res.stderr
    assert bool((z.abs() < 4).all()), (z, res.stderr)
    assert float(res.stderr.max()) < 0.4  # measured 0.04-0.2: the estimate is informative
    assert res.nfe == 3000 and res.bpd is None


@pytest.mark.parametrize("name", ["VP", "VE"])
def test_elbo_of_a_perturbed_score_is_strictly_above(name):
    sde, eps = SDES[name], 1e-5
    x = MIXTURE.sample(3, torch.Generator().manual_seed(0))
    exact = MIXTURE.score(sde)
    p_T = MIXTURE.marginal_log_prob(sde)

    def perturbed(t, x):  # a constant shift of 0.3 per dimension where sigma(t) ~ 1
        return exact(t, x) + 0.3

    res = elbo(
        x,
        sde,
        perturbed,
        n_samples=1500,
        eps=eps,
        prior_logp=lambda z: p_T(sde.T, z),
        generator=torch.Generator().manual_seed(1),
        batch_size=10_000,
    )
    gap = res.nll - -MIXTURE.marginal(sde, eps).log_prob(x)
    # 1/2 int g^2 (|delta|^2 D + 2 delta . E[s(t, x_t) | x]) dt > 0; measured below.
    assert bool((gap > 4 * res.stderr).all()), (gap, res.stderr)


def test_elbo_bits_per_dim_as_log_likelihood():
    sde = SDES["VP"]
    q = sdegen.Quantization(data_range=(-8.0, 8.0), n_bits=8)
    x = MIXTURE.sample(2, torch.Generator().manual_seed(0))
    res = elbo(
        x, sde, MIXTURE.score(sde), n_samples=50, generator=torch.Generator().manual_seed(0), bits_per_dim=q
    )
    expected = sdegen.bits_per_dim(-res.nll, x.shape, data_range=q.data_range, n_bits=8)
    assert torch.allclose(res.bpd, expected, rtol=1e-12, atol=0)
    assert torch.allclose(res.bpd_stderr, res.stderr / (2 * math.log(2)), rtol=1e-12, atol=0)


def test_elbo_per_sample_generator_rows_are_their_own():
    sde = SDES["VP"]
    x = MIXTURE.sample(3, torch.Generator().manual_seed(0))
    gen = lambda seeds: sdegen.random.PerSampleGenerator(seeds)  # noqa: E731
    both = elbo(x, sde, MIXTURE.score(sde), n_samples=20, generator=gen([5, 6, 7]))
    one = elbo(x[1:2], sde, MIXTURE.score(sde), n_samples=20, generator=gen([6]))
    assert torch.equal(both.nll[1:2], one.nll)


# -- Gaussian data and a linear denoiser: closed forms -------------------------------------------

GRID = DataGrid((-1.0, 1.0), 32)
M, V = 0.1, 0.25**2  # data ~ N(M, V I), quantized on GRID
X = torch.tensor(
    [[-1.0, 0.2903225806451613, 1.0], [0.03225806451612903, -0.6129032258064516, 0.4193548387096774]],
    dtype=F64,
)
D = 3


class LinearDenoiser:
    """x0_hat(t, x) = M + gain k_t (x - alpha M), k_t = c alpha V / (alpha^2 V + sigma^2) (c = 1: exact)."""

    def __init__(self, sde, c: float = 1.0):
        self.sde, self.c = sde, c

    def gain(self, t):
        a, s2 = self.sde.alpha(t), self.sde.sigma_squared(t)
        return a, s2, self.c * a * V / (a * a * V + s2)

    def data_prediction(self, t, x):
        a, _, k = self.gain(t.to(F64))
        return (M + k[:, None] * (x - a[:, None] * M)).to(x.dtype)

    def __call__(self, t, x):  # the score implied by it (Tweedie), for completeness
        a, s2, _ = self.gain(t.to(F64))
        return ((a[:, None] * self.data_prediction(t, x) - x) / s2[:, None]).to(x.dtype)


def _coeffs(sde, t):
    tt = torch.tensor(t, dtype=F64)
    return float(sde.alpha(tt)), float(sde.sigma_squared(tt))


def _expected_sq_error(sde, c, t, x):
    """E ||x - x0_hat(t, x_t)||^2 over x_t ~ N(alpha x, sigma^2 I), per example [B]."""
    a, s2 = _coeffs(sde, t)
    k = c * a * V / (a * a * V + s2)
    return ((1 - k * a) ** 2 * (x - M) ** 2).sum(1) + k * k * s2 * D


def _expected_decoder(sde, c, t, x, log_var, grid):
    """E -log P(x | x0_hat(t, x_t)) by Gauss-Hermite quadrature, per example [B]."""
    a, s2 = _coeffs(sde, t)
    k = c * a * V / (a * a * V + s2)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    std, delta = math.exp(0.5 * log_var), grid.half_width
    lo, hi = grid.data_range
    out = []
    for row in x.numpy():
        total = 0.0
        for xd in row:
            mean = M + k * (a * xd - a * M) + k * math.sqrt(s2) * nodes  # the law of x0_hat
            lo_z, hi_z = (xd - delta - mean) / std, (xd + delta - mean) / std
            lo_z = np.full_like(mean, -np.inf) if xd <= lo + 1e-9 else lo_z
            hi_z = np.full_like(mean, np.inf) if xd >= hi - 1e-9 else hi_z
            # Phi(hi_z) - Phi(lo_z), taken in the lower tail (Phi(-lo_z) - Phi(-hi_z)) where lo_z > 0.
            upper = np.where(lo_z > 0, ndtr(-lo_z), ndtr(hi_z))
            lower = np.where(lo_z > 0, ndtr(-hi_z), ndtr(lo_z))
            # Nodes ~12 std out leave their bin's mass below float64: their weight is below e^-70.
            total += float(-(weights * np.log(np.maximum(upper - lower, 1e-300))).sum())
        out.append(total)
    return torch.tensor(out, dtype=F64)


def _closed_form_terms(sde, c, ts, variance, x, f=None):
    """[B, N + 1]: E L_0, E L_1..L_{N-1}, L_T, from the Gaussians written out here."""
    N = len(ts)
    cols = []
    a1, s21 = _coeffs(sde, ts[0])
    cols.append(_expected_decoder(sde, c, ts[0], x, math.log(s21), GRID))
    for i in range(1, N):
        a_s, s2_s = _coeffs(sde, ts[i - 1])
        a_t, s2_t = _coeffs(sde, ts[i])
        a_ts = a_t / a_s
        beta = s2_t - a_ts**2 * s2_s
        beta_tilde = beta * s2_s / s2_t
        coef = a_s * beta / s2_t  # the weight of x_0 in the posterior mean
        v = (
            {"beta": beta, "beta_tilde": beta_tilde}[variance]
            if f is None
            else beta**f * beta_tilde ** (1 - f)
        )
        kl_cov = 0.5 * D * (math.log(v / beta_tilde) + beta_tilde / v - 1)
        cols.append(kl_cov + coef**2 / (2 * v) * _expected_sq_error(sde, c, ts[i], x))
    a_T, s2_T = _coeffs(sde, ts[-1])
    p2 = sde.prior_std**2
    prior = 0.5 * (D * (s2_T / p2 - 1 + math.log(p2 / s2_T)) + a_T**2 * (x**2).sum(1) / p2)
    cols.append(prior)
    return torch.stack(cols, 1)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde", "learned"])
def test_every_term_of_the_ddpm_bound_matches_its_closed_form(variance):
    sde, c, N, R = sdegen.VPSDE(), 1.3, 5, 4000
    ts = [i / N for i in range(1, N + 1)]
    f = 0.3 if variance == "learned" else None
    learned = (lambda t, x: torch.full_like(x, 0.3)) if f is not None else None
    # R copies of each example, one draw each: the per-term spread gives each term's standard error.
    xr = X.repeat_interleave(R, 0)
    res = ddpm_bound(
        xr,
        sde,
        LinearDenoiser(sde, c),
        grid=GRID,
        steps=N,
        variance=learned or variance,
        generator=torch.Generator().manual_seed(0),
    )
    terms = res.terms.reshape(2, R, N + 1)
    mean, se = terms.mean(1), terms.std(1) / math.sqrt(R)
    expected = _closed_form_terms(sde, c, ts, "beta" if f else variance, X, f)
    if f is not None:  # the decoder: learned variances interpolate towards beta-tilde_2 there
        a, s2_1 = _coeffs(sde, ts[0])
        _, s2_2 = _coeffs(sde, ts[1])
        beta2 = s2_2 - (_coeffs(sde, ts[1])[0] / a) ** 2 * s2_1
        log_v = 0.3 * math.log(s2_1) + 0.7 * math.log(beta2 * s2_1 / s2_2)
        expected[:, 0] = _expected_decoder(sde, c, ts[0], X, log_v, GRID)
    z = (mean - expected) / se.clamp_min(1e-12)
    assert bool((z[:, :-1].abs() < 4.5).all()), (mean, expected, se)
    assert torch.allclose(mean[:, -1], expected[:, -1], rtol=1e-10, atol=0)  # L_T is exact: no draw
    assert torch.allclose(res.nll, res.terms.sum(1), rtol=1e-12, atol=0)
    assert torch.isnan(res.stderr).all() and res.nfe == N * (2 if f else 1)


def test_sampled_terms_estimate_the_same_bound():
    sde, N = sdegen.VPSDE(), 6
    model = LinearDenoiser(sde, 1.3)
    full = ddpm_bound(
        X, sde, model, grid=GRID, steps=N, n_samples=2000, generator=torch.Generator().manual_seed(0)
    )
    part = ddpm_bound(
        X, sde, model, grid=GRID, steps=N, terms=4000, generator=torch.Generator().manual_seed(1)
    )
    se = (full.stderr**2 + part.stderr**2).sqrt()
    assert bool(((full.nll - part.nll).abs() < 4 * se).all()), (full.nll, part.nll, se)
    assert part.terms is None and part.nfe == 8000
    assert torch.allclose(part.bpd, part.nll / (D * math.log(2)), rtol=1e-12, atol=0)


def _log_snr_grid(sde, eps, N):
    lam = torch.linspace(
        float(sde.log_snr(torch.tensor(eps, dtype=F64))),
        float(sde.log_snr(torch.tensor(1.0, dtype=F64))),
        N,
        dtype=F64,
    )
    ts = sde.inverse_log_snr(lam)
    ts[0], ts[-1] = eps, 1.0
    return ts


def test_discrete_bound_decreases_to_the_continuous_bound_at_rate_one_over_n():
    """On latent times from t_1 = eps to T, uniform in log-SNR, with beta-tilde variances and the
    exact Gaussian denoiser: the closed-form discrete bound decreases in N towards the closed-form
    continuous one, the gap falls like N^-1 (fitted slope measured -1.16 on N = 16..256), sdegen's
    ddpm_bound matches the discrete closed form and sdegen's elbo with a decoder the continuous one."""
    sde, eps, c = sdegen.VPSDE(), 1e-3, 1.0
    lam = lambda t: float(sde.log_snr(torch.tensor(t, dtype=F64)))  # noqa: E731
    t_of = lambda l: float(sde.inverse_log_snr(torch.tensor(l, dtype=F64)))  # noqa: E731

    def diffusion(t):  # 1/2 (-d SNR / d lambda) E|x - x0_hat|^2, SNR = exp(2 lambda)
        return math.exp(2 * lam(t)) * _expected_sq_error(sde, c, t, X)

    # The continuous diffusion loss 1/2 int (-SNR') E|x - x0_hat|^2 dt in lambda, per example.
    cont = torch.tensor(
        [
            integrate.quad(
                lambda l, b=b: float(diffusion(t_of(l))[b]), lam(1.0), lam(eps), limit=400, epsrel=1e-10
            )[0]
            for b in range(2)
        ],
        dtype=F64,
    )
    Ns = [8, 16, 32, 64, 128, 256]
    gaps = []
    for N in Ns:
        ts = _log_snr_grid(sde, eps, N).tolist()
        terms = _closed_form_terms(sde, c, ts, "beta_tilde", X)
        gaps.append(terms[:, 1:-1].sum(1) - cont)
    gaps = torch.stack(gaps)  # [len(Ns), B]
    assert bool((gaps[1:] < gaps[:-1]).all()) and bool((gaps > 0).all())
    slope = np.polyfit(np.log(Ns[1:]), np.log(gaps[1:].mean(1).numpy()), 1)[0]
    assert -1.3 < slope < -0.9, slope

    end = _closed_form_terms(sde, c, _log_snr_grid(sde, eps, 8).tolist(), "beta_tilde", X)
    fixed = end[:, 0] + end[:, -1]  # the decoder at eps and L_T do not depend on N
    model = LinearDenoiser(sde, c)
    for N, gap in ((8, gaps[0]), (64, gaps[3])):
        res = ddpm_bound(
            X, sde, model, grid=GRID, times=_log_snr_grid(sde, eps, N), variance="beta_tilde",
            n_samples=1500, generator=torch.Generator().manual_seed(N),
        )  # fmt: skip
        assert bool(((res.nll - (fixed + cont + gap)).abs() < 4 * res.stderr).all()), (
            N,
            res.nll,
            fixed + cont + gap,
        )
    limit = elbo(
        X,
        sde,
        model,
        eps=eps,
        decoder=GRID,
        n_samples=3000,
        generator=torch.Generator().manual_seed(3),
        batch_size=20_000,
    )
    assert bool(((limit.nll - (fixed + cont)).abs() < 4 * limit.stderr).all()), (
        limit.nll,
        fixed + cont,
        limit.stderr,
    )


def test_discretized_gaussian_decoder_edges_and_tails():
    grid = DataGrid((0.0, 1.0), 3)  # values 0, 1/2, 1; bins of half-width 1/4
    x = torch.tensor([[0.0, 0.5, 1.0]], dtype=F64)
    mean = torch.tensor([[0.1, 0.5, 20.0]], dtype=F64)
    log_var = torch.tensor(2 * math.log(0.2), dtype=F64)
    got = discretized_gaussian_log_likelihood(x, mean, log_var, grid)
    want = math.log(ndtr((0.25 - 0.1) / 0.2)) + math.log(ndtr(0.25 / 0.2) - ndtr(-0.25 / 0.2))
    want += math.log(1 - ndtr((0.75 - 20.0) / 0.2))  # the top bin extends to +inf: mass ~ 1
    assert abs(float(got) - want) < 1e-12
    # A mean far above an interior bin: the difference of CDFs in the upper tail stays finite.
    far = discretized_gaussian_log_likelihood(
        torch.tensor([[0.5]], dtype=F64), torch.tensor([[9.0]], dtype=F64), log_var, grid
    )
    assert abs(float(far) - log_ndtr((0.75 - 9.0) / 0.2)) < 1e-9  # Phi(-43.75) is negligible beside it


# -- bad input -----------------------------------------------------------------------------------


class _Brownian(sdegen.SDE):
    def drift(self, t, x):
        return torch.sin(x)

    def diffusion(self, t):
        return torch.ones_like(torch.as_tensor(t, dtype=F64))

    def prior_sampling(self, shape, generator=None, device=None, dtype=None):
        return torch.randn(shape, generator=generator)

    def prior_logp(self, z):
        return -0.5 * z.pow(2).sum(1)


def test_bad_inputs():
    sde = sdegen.VPSDE()
    model = LinearDenoiser(sde)
    with pytest.raises(ValueError, match="not 32-level data"):
        ddpm_bound(X + 0.01, sde, model, grid=GRID, steps=4)
    with pytest.raises(ValueError, match="not 32-level data"):
        elbo(X + 0.01, sde, model, decoder=GRID)
    with pytest.raises(TypeError, match="Gaussian transition kernel"):
        ddpm_bound(X, _Brownian(), model, grid=GRID, steps=4)
    with pytest.raises(TypeError, match="Gaussian transition kernel"):
        elbo(X, _Brownian(), model)
    with pytest.raises(ValueError, match="variance must be one of"):
        ddpm_bound(X, sde, model, grid=GRID, steps=4, variance="fixedlarge")
    with pytest.raises(ValueError, match="time_law must be one of"):
        elbo(X, sde, model, time_law="beta")
    with pytest.raises(ValueError, match="say which discrete chain"):
        ddpm_bound(X, sde, model, grid=GRID)
    with pytest.raises(ValueError, match="strictly increasing"):
        ddpm_bound(X, sde, model, grid=GRID, times=[0.5, 0.2, 1.0])
    with pytest.raises(ValueError, match=r"eps must lie in \(0, T\)"):
        elbo(X, sde, model, eps=0.0)
    with pytest.raises(ValueError, match="drop bits_per_dim"):
        elbo(X, sde, model, decoder=GRID, bits_per_dim=sdegen.Quantization())
    with pytest.raises(TypeError, match="decoder must be a DataGrid"):
        elbo(X, sde, model, decoder=(0.0, 1.0))
    with pytest.raises(ValueError, match="levels must be >= 2"):
        DataGrid((0.0, 1.0), 1)


def test_result_is_named():
    sde = sdegen.VPSDE()
    res = ddpm_bound(X, sde, LinearDenoiser(sde), grid=GRID, steps=3, n_samples=2)
    assert isinstance(res, BoundResult) and res.terms.shape == (2, 4) and bool((res.stderr > 0).all())


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from _runs import write_run

    return write_run(tmp_path_factory.mktemp("digits"), data="digits", model="mlp", steps=2, batch_size=16)


def test_cli_nll_bounds_on_digits(digits_run, tmp_path, capsys):
    import json

    from sdegen.cli import main

    common = ["nll", str(digits_run), "--n", "6", "--batch-size", "6"]
    assert main([*common, "--bound", "ddpm", "--steps", "10", "--out", str(tmp_path / "d")]) == 0
    ddpm = json.loads((tmp_path / "d" / "nll.json").read_text())
    assert ddpm["bound"] == "ddpm" and ddpm["steps"] == 10 and ddpm["nfe"] == 20 and ddpm["samples"] == 2
    # A lossless code length of 64 pixels of 17 levels: bits/dim = nats / (64 ln 2), > 0.
    assert ddpm["bits_per_dim"] == pytest.approx(ddpm["nll"] / (64 * math.log(2)), rel=1e-9)
    assert ddpm["bits_per_dim"] > 0 and ddpm["monte_carlo_stderr"] > 0
    assert main([*common, "--bound", "elbo", "--samples", "8", "--out", str(tmp_path / "e")]) == 0
    bound = json.loads((tmp_path / "e" / "nll.json").read_text())
    assert bound["bound"] == "elbo" and bound["nfe"] == 16 and bound["time_law"] == "importance"
    out = capsys.readouterr().out
    assert "DDPM bound on the NLL" in out and "ELBO bound on the NLL" in out


def test_cli_ddpm_bound_of_continuous_data_is_a_usage_error(tmp_path, capsys):
    from _runs import write_run

    from sdegen.cli import main

    run = write_run(tmp_path / "ring", steps=2)
    assert main(["nll", str(run), "--bound", "ddpm", "--n", "4"]) == 2
    assert "continuous" in capsys.readouterr().err


def test_a_discrete_vp_sde_is_bounded_on_its_own_steps():
    """On a DiscreteVPSDE the chain is Ho et al.'s, on its latent times (k + 1) / N."""
    sde = sdegen.DiscreteVPSDE.from_beta_schedule("linear", 50, 1e-4, 0.02)
    model = LinearDenoiser(sde, 1.3)
    res = ddpm_bound(X, sde, model, grid=GRID, n_samples=400, generator=torch.Generator().manual_seed(0))
    assert res.terms.shape == (2, 51) and res.nfe == 50 * 400
    # L_T from alphas_cumprod alone: KL(N(sqrt(abar_N) x, 1 - abar_N) || N(0, 1)).
    a2 = float(sde.alphas_cumprod[-1])
    prior = 0.5 * (D * (1 - a2 - 1 - math.log(1 - a2)) + a2 * (X**2).sum(1))
    assert torch.allclose(res.terms[:, -1], prior, rtol=1e-10, atol=0)
    expected = _closed_form_terms(sde, 1.3, [(k + 1) / 50 for k in range(50)], "beta", X).sum(1)
    assert bool(((res.nll - expected).abs() < 4 * res.stderr).all()), (res.nll, expected, res.stderr)
    with pytest.raises(ValueError, match="drop steps=10"):
        ddpm_bound(X, sde, model, grid=GRID, steps=10)


def test_a_score_model_of_another_sde_is_refused_by_both_bounds():
    """The bounds compare the score's SDE with their own, like the sampler and the likelihood."""
    import sdegen
    from sdegen.nn import ScoreMLP

    model = sdegen.ScoreModel(ScoreMLP(2, hidden=8, depth=1), sdegen.VPSDE())
    for bound in (sdegen.elbo, sdegen.ddpm_bound):
        with pytest.raises(ValueError, match="score_fn"):
            bound(torch.zeros(2, 2), sdegen.VESDE(), model)
