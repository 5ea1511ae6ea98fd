"""Variational bounds on -log p(x): the continuous-time ELBO and the discrete DDPM bound.

Both bound the negative log-likelihood of the *stochastic* model of a score network -- the reverse
SDE, or its discrete ancestral chain -- from above, by a Monte-Carlo average of denoising errors
that needs no ODE solve (each draw is one network evaluation; the draws are independent).
:func:`sdegen.log_likelihood` computes the exact likelihood of another model of the
same network, the probability-flow ODE. The three agree when the score is exact and the prior is
p_T; otherwise no ordering holds between the ODE's -log p and either bound in general.

**Continuous time** (:func:`elbo`). For a linear SDE dx = a(t) x dt + g(t) dW with kernel
N(alpha(t) x0, sigma(t)^2 I) and the reverse-SDE model that starts at the prior pi at T and runs
down to t0 (Song, Durkan, Murray and Ermon 2021, "Maximum likelihood training of score-based
diffusion models", Thm. 3 in its denoising form, score_flow's ``likelihood_bound_fn``):

    -log p_t0(x) <= E[-log pi(x_T)] + 1/2 int_t0^T E[ g^2 (|s(t, x_t)|^2 + 2 s(t, x_t).z / sb_t) - 2 a D ] dt,

    x_t = ab_t x + sb_t z,  z ~ N(0, I),  ab_t = alpha_t / alpha_t0,  sb_t^2 = sigma_t^2 - ab_t^2 sigma_t0^2,

the forward process started at x at time t0 (D = dimension). The integrand is
g^2 (|s - grad log q|^2 - |grad log q|^2) - 2 div f of Song et al. with grad log q = -z / sb, written
without the two large terms that cancel. With the exact score and pi = p_T the forward process is
the model's exact posterior and the bound is tight: its expectation is -log p_t0(x).

Where t0 sits, and what x is, are chosen as in ``log_likelihood``: by default **x is read as a
sample of p_eps** (t0 = eps, e.g. dequantized data), and the bound is on -log p^SDE_eps(x), the
quantity ``log_likelihood`` computes for the ODE model. With ``decoder=`` a :class:`DataGrid`,
x is **k-level data at t = 0** and the model ends in the discretized Gaussian decoder
P(x | x_eps) (Ho et al. 2020, eq. 13) with mean x0_hat(eps, x_eps) and variance sigma(eps)^2;
then t0 = 0 and (Kingma et al. 2021, "Variational diffusion models", eq. 11; score_flow's
``eps_offset``)

    -log P(x) <= E[-log pi(x_T)] + 1/2 int_eps^T E[...] dt + E[-log P(x | x_eps)] - H(N(alpha_eps x, sigma_eps^2 I)),

a lossless code length: KL(q(x_T | x) || pi) + the diffusion loss + the reconstruction term.
This is the N -> infinity limit of :func:`ddpm_bound` on times eps = t_1 < ... < t_N = T.

**Time law.** ``time_law="importance"`` (default) draws t with density proportional to
g^2 / sigma^2 (from 0), Song et al.'s importance sampling of the likelihood weighting: since
g^2 / sigma^2 = -2 d lambda / dt for lambda = log(alpha / sigma), that is lambda uniform on
[lambda(T), lambda(eps)], t = t(lambda) (Kingma et al. 2021's log-SNR form); ``"uniform"`` draws
t uniform on [eps, T]. **Antithetic noise**: each draw evaluates z and -z and averages. At t0 = eps
the term 2 s.z / sb is singular as t -> eps (its variance grows like 1 / (t - eps), and its
integral diverges); its odd part cancels in the pair, leaving (s(x + sb z) - s(x - sb z)).z / sb,
a finite difference of the score: the estimator then has a finite variance. **Control variate**:
the even part still carries the chi-square noise of |z|^2 where the kernel dominates the score
(s ~ -z / sb at large t, so |s|^2 + 2 s.z / sb ~ -|z|^2 / sb^2). The integrand adds
c(t) g^2 (|z|^2 - D) / sb^2, of mean zero, with c = 1 - (1 - r)^2, r = sb^2 / (ab^2 + sb^2):
the coefficient that cancels the |z|^2 term exactly for unit-variance Gaussian data, going to 1
where noise dominates and to 0 (like sb^2) at t0. On a 2-D mixture it divides the variance by
about 45 on VP and 3 on VE (measured, exact score).

**Discrete time** (:func:`ddpm_bound`). On latent times 0 = t_0 < t_1 < ... < t_N <= T of any
linear SDE (Kingma et al. 2021's discrete-time form; for a ``DiscreteVPSDE`` its N training
steps, where alpha(t_i)^2 = alphas_cumprod exactly and this is Ho et al.'s chain),

    L = L_T + sum_{i=2}^N L_{i-1} + L_0                                  (Ho et al. 2020, eq. 5)
    L_T     = KL(q(x_{t_N} | x) || pi),
    L_{i-1} = E KL(q(x_{t_{i-1}} | x_{t_i}, x) || p(x_{t_{i-1}} | x_{t_i})),
    L_0     = E[-log P(x | x_{t_1})]     (the discretized Gaussian decoder, eq. 13),

with, for s = t_{i-1} < t = t_i, a_ts = alpha_t / alpha_s, s_ts^2 = sigma_t^2 - a_ts^2 sigma_s^2
(beta_t of DDPM), the Gaussian posterior q(x_s | x_t, x) with mean
(a_ts sigma_s^2 x_t + alpha_s s_ts^2 x) / sigma_t^2 and variance s_ts^2 sigma_s^2 / sigma_t^2
(beta-tilde_t), and the model p(x_s | x_t) = N(the posterior mean at x = x0_hat(t, x_t), v)
(Ho et al. eq. 7 and 11). The data are k-level values, so the bound is a lossless code length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from sdegen import random
from sdegen._checks import (
    check_density_input,
    check_end_time,
    check_fits_model,
    check_generator,
    check_linear_sde,
    check_output,
    check_real,
    check_same_sde,
    check_score_fn,
    check_sde,
    check_steps,
)
from sdegen._score_evaluator import ScoreEvaluator
from sdegen.likelihood._prior import check_prior_logp, log_prior
from sdegen.likelihood.bits_per_dim import Quantization, check_quantization, grid_levels
from sdegen.likelihood.bits_per_dim import bits_per_dim as _bits_per_dim
from sdegen.random import RandomSource
from sdegen.sde.base import SDE, LinearSDE, ScoreFn
from sdegen.sde.coefficients import CoefficientGrid, check_schedule

__all__ = ["elbo", "ddpm_bound", "BoundResult", "DataGrid", "discretized_gaussian_log_likelihood"]

TimeLaw = Literal["importance", "uniform"]
Variance = Literal["beta", "beta_tilde"] | Callable[[Tensor, Tensor], Tensor]
TIME_LAWS = ("importance", "uniform")
VARIANCES = ("beta", "beta_tilde")


class BoundResult(NamedTuple):
    """The result of :func:`elbo` and :func:`ddpm_bound`.

    ``nll``: the Monte-Carlo estimate of the upper bound on -log p(x) of each example in nats,
    ``[B]``. ``stderr``: its standard error ``[B]`` (NaN where it cannot be estimated: one replicate
    of :func:`ddpm_bound` over all terms). ``bpd`` and ``bpd_stderr``: the same in bits per
    dimension (for :func:`elbo` without a decoder only when a :class:`Quantization` was given, as
    in ``log_likelihood``), else None. ``nfe``: network evaluations per example. ``terms``: for
    :func:`ddpm_bound` over all terms, ``[B, N + 1]`` nats: L_0 (decoder), L_1 ... L_{N-1}
    (in time order), L_T; else None.
    """

    nll: Tensor
    stderr: Tensor
    bpd: Tensor | None
    bpd_stderr: Tensor | None
    nfe: int
    terms: Tensor | None = None


@dataclass(frozen=True)
class DataGrid:
    """The k values x_j = lo + (hi - lo) j / (k - 1), j = 0..k-1, that discrete data take per dimension.

    Ho et al. 2020's 8-bit images in [-1, 1] are ``DataGrid((-1.0, 1.0), 256)``. The decoder gives
    each value the Gaussian mass of its bin x_j +- (hi - lo) / (2 (k - 1)), the end bins extending
    to -inf and +inf (Ho et al. eq. 13). sdegen's images with L levels, x = 2 (j + 1/2) / L - 1, are
    ``DataGrid((-1 + 1/L, 1 - 1/L), L)``.
    """

    data_range: tuple[float, float] = (-1.0, 1.0)
    levels: int = 256

    def __post_init__(self) -> None:
        try:
            lo, hi = self.data_range
        except (TypeError, ValueError):
            raise TypeError(
                f"data_range must be a pair (lo, hi) like (-1.0, 1.0); got {self.data_range!r}"
            ) from None
        lo, hi = check_real("data_range[0]", lo), check_real("data_range[1]", hi)
        if hi <= lo:
            raise ValueError(f"data_range must have lo < hi; got data_range=({lo:g}, {hi:g})")
        object.__setattr__(self, "data_range", (lo, hi))
        object.__setattr__(self, "levels", check_steps("levels", self.levels, minimum=2))

    @property
    def half_width(self) -> float:
        """Half the spacing of the grid, (hi - lo) / (2 (k - 1)): the half-width of a bin."""
        lo, hi = self.data_range
        return 0.5 * (hi - lo) / (self.levels - 1)

    def levels_of(self, x: Tensor) -> Tensor:
        """The integer level j of each entry of ``x`` (float64), or ``ValueError`` if ``x`` is off the grid."""
        lo, hi = self.data_range
        return grid_levels(x, lo, hi, self.levels, what=f"{self.levels}-level data")


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_var: Tensor, grid: DataGrid) -> Tensor:
    """log P(x) summed over non-batch dimensions ``[B]``, for x on ``grid`` and N(mean, exp(log_var)).

    Each value receives the Gaussian mass of its bin [x - delta, x + delta], the lowest level that
    of (-inf, x + delta], the highest that of [x - delta, inf) (Ho et al. 2020, eq. 13; the
    behaviour of improved-diffusion's ``discretized_gaussian_log_likelihood``, with the exact normal
    CDF instead of its tanh approximation). Computed in float64; differences of CDFs are taken on
    the side of the mean where they do not cancel. ``log_var`` broadcasts against ``x``.
    """
    j = grid.levels_of(x)
    x64, mean64 = x.double(), mean.double()
    inv_std = torch.exp(-0.5 * log_var.double())
    upper = (x64 - mean64 + grid.half_width) * inv_std
    lower = (x64 - mean64 - grid.half_width) * inv_std
    # log(Phi(upper) - Phi(lower)): mirrored to the lower tail where lower > 0, so that
    # log_ndtr carries the precision; log(1 - exp(-d)) by expm1 for small d.
    mirror = lower > 0
    hi = torch.where(mirror, -lower, upper)
    lo = torch.where(mirror, -upper, lower)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    interior = log_hi + torch.log(-torch.expm1(log_lo - log_hi))
    out = torch.where(
        j == 0,
        torch.special.log_ndtr(upper),
        torch.where(j == grid.levels - 1, torch.special.log_ndtr(-lower), interior),
    )
    return out.reshape(x.shape[0], -1).sum(1)


# -- shared checks -------------------------------------------------------------------------------


def _check_common(x: Tensor, sde: SDE, score_fn: ScoreFn, who: str, generator: RandomSource) -> int:
    check_density_input(x, "a likelihood bound")
    check_sde(sde)
    check_linear_sde(
        sde,
        who,
        "The bound is written in the forward process's Gaussian kernel; for a general SDE use "
        "log_likelihood (the probability-flow ODE), which needs only the drift and diffusion.",
    )
    check_score_fn(score_fn)
    check_same_sde(sde, score_fn, "score_fn", f"of {who}")
    check_generator(generator, x, "x")
    check_fits_model("x", x, score_fn)
    if torch.is_inference_mode_enabled():
        raise RuntimeError(f"{who} cannot run under torch.inference_mode(); use torch.no_grad()")
    return math.prod(x.shape[1:])


def _check_rows(batch_size: int | None, rows: int) -> int:
    """Rows per network call: ``batch_size`` (at least ``rows``, one draw for every example)."""
    if batch_size is None:
        return rows
    return max(check_steps("batch_size", batch_size), rows)


def _mean_and_stderr(draws: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over the last dimension and its standard error (NaN for a single draw)."""
    n = draws.shape[-1]
    mean = draws.mean(-1)
    if n < 2:
        return mean, torch.full_like(mean, float("nan"))
    return mean, draws.std(-1) / math.sqrt(n)


def _float(sde: LinearSDE, name: str, t: float) -> float:
    return float(getattr(sde, name)(torch.tensor(t, dtype=torch.float64)))


# -- the continuous-time bound ---------------------------------------------------------------------


def elbo(
    x: Tensor,
    sde: LinearSDE,
    score_fn: ScoreFn,
    *,
    n_samples: int = 100,
    time_law: TimeLaw = "importance",
    eps: float = 1e-5,
    prior_logp: Callable[[Tensor], Tensor] | None = None,
    bits_per_dim: Quantization | None = None,
    decoder: DataGrid | None = None,
    generator: RandomSource = None,
    batch_size: int | None = None,
) -> BoundResult:
    """Upper bound on -log p(x) of the reverse-SDE model (Song et al. 2021, "Maximum likelihood
    training of score-based diffusion models", Thm. 3), by Monte Carlo over t and the noise.

    The estimate, per example, is the mean over ``n_samples`` independent draws of

        -1/2 (log pi(ab_T x + sb_T z') + log pi(ab_T x - sb_T z'))
        + 1/2 w(t) (J(t, z) + J(t, -z)) / 2,     J = g^2 (|s(t, x_t)|^2 + 2 s(t, x_t).z / sb_t) - 2 a(t) D,

    with x_t = ab_t x + sb_t z and w(t) = 1 / q(t) the inverse density of the time law (module
    docstring), plus, with a ``decoder``, -log P(x | x_eps) - H(q(x_eps | x)) at an antithetic pair
    of x_eps. The standard error is the spread of the draws over sqrt(n_samples).

    What it bounds: without ``decoder``, -log p_eps(x) of the reverse SDE run from the prior at T
    down to ``eps``, with ``x`` read as a sample of p_eps exactly as in
    :func:`sdegen.log_likelihood` (dequantize discrete data first; ``bits_per_dim``
    converts in the same way). With ``decoder`` a :class:`DataGrid`, -log P(x) of discrete data
    ``x`` on that grid under the reverse SDE to eps followed by the discretized Gaussian decoder
    N(x0_hat(eps, x_eps), sigma(eps)^2) (a lossless code length; ``bpd`` = nll / (D ln 2)). With
    the exact score and ``prior_logp`` the exact log p_T, the bound without decoder equals
    -log p_eps(x) in expectation; the ODE likelihood of the same network is a different model, and
    neither is ordered with respect to the other in general.

    Args:
        x: data ``[B, ...]`` (float32 or float64), as for ``log_likelihood``; with ``decoder``, values
            on its grid.
        sde: the forward :class:`~sdegen.sde.LinearSDE` of the score model (a Gaussian kernel is needed).
        score_fn: ``score_fn(t, x)`` with ``t`` of shape ``[B']``; evaluated on ``2 B`` rows per draw
            (more with ``batch_size``). Networks with dropout belong in ``eval()`` mode. With a
            ``decoder``, the data prediction at eps comes from ``score_fn.data_prediction`` or
            ``noise_prediction`` when it has one (the protocol of ``sdegen.samplers.tweedie``).
        n_samples: draws of (t, z) per example; each costs two evaluations.
        time_law: ``"importance"`` (t with density proportional to g^2 / sigma^2, i.e. uniform in
            log-SNR) or ``"uniform"`` on [eps, T].
        eps: the end time in (0, T) of the reverse SDE.
        prior_logp: ``z -> [B]`` log-density of the model's prior pi; default ``sde.prior_logp``.
        bits_per_dim: without decoder: a :class:`Quantization` saying how ``x`` was dequantized, to
            also return bits/dim (the offset of ``log_likelihood``).
        decoder: the :class:`DataGrid` of discrete data ``x``: bound -log P(x) with the decoder.
        generator: a ``torch.Generator`` or a :class:`~sdegen.random.PerSampleGenerator` (one per example).
        batch_size: rows per network call, a multiple of ``2 B`` is used (default ``2 B``: one draw
            per example per call).

    Returns:
        :class:`BoundResult` ``(nll, stderr, bpd, bpd_stderr, nfe)``.
    """
    D = _check_common(x, sde, score_fn, "elbo", generator)
    n_samples = check_steps("n_samples", n_samples)
    if time_law not in TIME_LAWS:
        raise ValueError(f"time_law must be one of {TIME_LAWS}; got {time_law!r}")
    eps = check_end_time(
        "eps", eps, sde.T, "the reverse SDE runs from T down to eps, where the score is still finite"
    )
    check_prior_logp(prior_logp)
    if decoder is not None and not isinstance(decoder, DataGrid):
        raise TypeError(f"decoder must be a DataGrid such as DataGrid((-1.0, 1.0), 256); got {decoder!r}")
    if bits_per_dim is not None:
        if decoder is not None:
            raise ValueError(
                "bits_per_dim converts the bound on a density of dequantized data; with a decoder the bound "
                "is already on the probability of the discrete data and bpd = nll / (D ln 2) is returned: "
                "drop bits_per_dim"
            )
        check_quantization(bits_per_dim)
    if decoder is not None:
        decoder.levels_of(x)  # raises for data off the grid
    elif not bool(torch.isfinite(x).all()):
        raise ValueError(f"x contains {int((~torch.isfinite(x)).sum())} NaN or infinite value(s)")
    check_schedule(sde, eps, sde.T)
    B = x.shape[0]
    rows = _check_rows(batch_size, 2 * B)
    per_call = rows // (2 * B)

    # The forward process from x at t0: t0 = eps (x a sample of p_eps) or 0 (data, then a decoder).
    t0 = 0.0 if decoder is not None else eps
    alpha0 = _float(sde, "alpha", t0) if t0 > 0 else 1.0
    lam0 = _float(sde, "log_snr", t0) if t0 > 0 else math.inf
    lam_eps, lam_T = _float(sde, "log_snr", eps), _float(sde, "log_snr", sde.T)

    def kernel(t: Tensor) -> tuple[Tensor, Tensor]:
        """(ab_t, sb_t) of the forward process from x at t0, float64, at float64 times."""
        ab = sde.alpha(t) / alpha0
        # sb^2 = sigma_t^2 - ab^2 sigma_t0^2 = sigma_t^2 (1 - exp(-2 (lambda_t0 - lambda_t))), without
        # the cancellation of the difference near t0.
        var = sde.sigma_squared(t) * -torch.expm1(-2.0 * (lam0 - sde.log_snr(t)))
        return ab, var.sqrt()

    evaluator = ScoreEvaluator(score_fn, T=sde.T, t_end=eps)
    x64 = x.detach().reshape(B, 1, D).double()
    wide = dict(device=x.device, dtype=torch.float64)
    event = tuple(x.shape[1:])
    draws = []
    with torch.no_grad():
        # One stream of draws per purpose, shaped [B, n, ...] so that a PerSampleGenerator serves
        # example b its own row.
        u = random.rand((B, n_samples), generator, **wide)
        z = random.randn((B, n_samples, *event), generator, **wide).reshape(B, n_samples, D)
        z_prior = random.randn((B, n_samples, *event), generator, **wide).reshape(B, n_samples, D)
        if decoder is not None:
            z_dec = random.randn((B, n_samples, *event), generator, **wide).reshape(B, n_samples, D)
        if time_law == "importance":
            lam = lam_T + u * (lam_eps - lam_T)
            t = sde.inverse_log_snr(lam).clamp(eps, sde.T)
        else:
            t = eps + u * (sde.T - eps)
        g2, a = sde.diffusion_squared(t), sde.drift_coefficient(t)
        if time_law == "importance":  # 1 / q(t) with q = (g^2 / (2 sigma^2)) / (lambda_eps - lambda_T)
            weight = 2.0 * sde.sigma_squared(t) / g2 * (lam_eps - lam_T)
        else:
            weight = torch.full_like(t, sde.T - eps)
        ab, sb = kernel(t)

        # The prior term at an antithetic pair of x_T.
        ab_T, sb_T = kernel(torch.tensor([sde.T], **wide))
        prior_term = 0.0
        for sign in (1.0, -1.0):
            x_T = (ab_T * x64 + sign * sb_T * z_prior).to(x.dtype).reshape(B * n_samples, *event)
            logp = log_prior(sde, prior_logp, x_T)
            prior_term = prior_term - 0.5 * logp.double().reshape(B, n_samples)

        integrand = torch.empty(B, n_samples, **wide)
        for start in range(0, n_samples, per_call):
            sl = slice(start, min(start + per_call, n_samples))
            m = sl.stop - sl.start
            zz = torch.cat([z[:, sl], -z[:, sl]], dim=1)  # [B, 2m, D]: the antithetic pairs
            ab_, sb_ = ab[:, sl].repeat(1, 2)[..., None], sb[:, sl].repeat(1, 2)[..., None]
            xt = (ab_ * x64 + sb_ * zz).to(x.dtype).reshape(2 * m * B, *event)
            tt = t[:, sl].repeat(1, 2).reshape(-1).to(x.dtype)
            s = evaluator(tt, xt).double().reshape(B, 2 * m, D)
            var = sb_[..., 0].square()
            J = s.square().sum(-1) + 2.0 * (s * zz).sum(-1) / sb_[..., 0]
            # The control variate c (|z|^2 - D) / sb^2, mean zero (module docstring).
            r = var / (ab_[..., 0].square() + var)
            J = J + (1.0 - (1.0 - r).square()) * (zz.square().sum(-1) - D) / var
            J = g2[:, sl].repeat(1, 2) * J - 2.0 * D * a[:, sl].repeat(1, 2)
            integrand[:, sl] = 0.5 * (J[:, :m] + J[:, m:])
        evaluator.raise_if_nonfinite()
        draws.append(prior_term + 0.5 * weight * integrand)

        if decoder is not None:
            # -log P(x | x_eps) - H(q(x_eps | x)) at an antithetic pair of x_eps.
            a_e, s_e = _float(sde, "alpha", eps), math.sqrt(_float(sde, "sigma_squared", eps))
            entropy = 0.5 * D * (math.log(2 * math.pi * s_e**2) + 1.0)
            log_var = torch.tensor(2.0 * math.log(s_e), **wide)
            recon = torch.zeros(B, n_samples, **wide)
            x_rep = x.detach().unsqueeze(1).expand(B, per_call, *event)
            for start in range(0, n_samples, per_call):
                sl = slice(start, min(start + per_call, n_samples))
                m = sl.stop - sl.start
                for sign in (1.0, -1.0):
                    x_eps = (a_e * x64 + sign * s_e * z_dec[:, sl]).to(x.dtype).reshape(B * m, *event)
                    x0 = evaluator.data_prediction(eps, x_eps, a_e, s_e)
                    data = x_rep[:, :m].reshape(B * m, *event)
                    logp = discretized_gaussian_log_likelihood(data, x0, log_var, decoder)
                    recon[:, sl] -= 0.5 * logp.reshape(B, m)
            evaluator.raise_if_nonfinite()
            draws.append(recon - entropy)

    nll, stderr = _mean_and_stderr(sum(draws))
    if not bool(torch.isfinite(nll).all()):
        raise FloatingPointError(
            f"the bound is non-finite for {int((~torch.isfinite(nll)).sum())} of {B} examples: "
            f"prior_logp or the score returned values whose squares overflow"
        )
    bpd = bpd_err = None
    if decoder is not None:
        bpd, bpd_err = nll / (D * math.log(2.0)), stderr / (D * math.log(2.0))
    elif bits_per_dim is not None:
        lo_hi, n_bits = bits_per_dim.data_range, bits_per_dim.n_bits
        bpd = _bits_per_dim(-nll, x.shape, data_range=lo_hi, n_bits=n_bits)
        bpd_err = stderr / (D * math.log(2.0))
    out_dtype = x.dtype
    return BoundResult(
        nll=nll.to(out_dtype),
        stderr=stderr.to(out_dtype),
        bpd=None if bpd is None else bpd.to(out_dtype),
        bpd_stderr=None if bpd_err is None else bpd_err.to(out_dtype),
        # Two evaluations per draw (the antithetic pair), two more per draw for the decoder.
        nfe=2 * n_samples * (2 if decoder is not None else 1),
    )


# -- the discrete-time bound -----------------------------------------------------------------------


def _latent_times(sde: LinearSDE, steps: int | None, times: object) -> Tensor:
    """The N latent times t_1 < ... < t_N (float64, CPU) of the discrete chain."""
    if times is not None:
        if steps is not None:
            raise ValueError("pass either steps=N or times=, not both")
        try:
            ts = torch.as_tensor(times, dtype=torch.float64).detach().cpu().reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"times must be a 1-D tensor or sequence of increasing times; got {times!r}"
            ) from None
        if ts.numel() < 2:
            raise ValueError(f"times must hold at least 2 latent times t_1 < ... < t_N; got {ts.tolist()}")
        if not bool(torch.isfinite(ts).all()) or not bool((ts[1:] > ts[:-1]).all()):
            raise ValueError(f"times must be finite and strictly increasing; got {ts.tolist()[:8]}...")
        if float(ts[0]) <= 0.0 or float(ts[-1]) > sde.T * (1 + 1e-12):
            raise ValueError(
                f"times must lie in (0, T] = (0, {sde.T:g}] (t_0 = 0 is the data); got "
                f"[{float(ts[0]):.6g}, {float(ts[-1]):.6g}]"
            )
        return ts
    discrete = _discrete_vp_steps(sde)
    if discrete is not None:
        if steps is not None and steps != discrete.numel():
            raise ValueError(
                f"{type(sde).__name__} is a discrete-time model of N = {discrete.numel()} steps; its bound is on "
                f"those steps: drop steps={steps} (or pass times= for another chain)"
            )
        return discrete
    if steps is None:
        raise ValueError(
            f"{type(sde).__name__} is a continuous-time SDE: say which discrete chain to bound, with steps=N "
            f"(latent times t_i = i T / N, e.g. steps=1000 for DDPM) or times=[t_1, ..., t_N]"
        )
    N = check_steps("steps", steps, minimum=2)
    return torch.arange(1, N + 1, dtype=torch.float64) * (sde.T / N)


def _discrete_vp_steps(sde: LinearSDE) -> Tensor | None:
    """The step times of a DiscreteVPSDE (t_k = timestep_to_t(k), k = 0..N-1), else None."""
    try:
        from sdegen.sde.discrete_vp import DiscreteVPSDE
    except ImportError:  # not in this version of sdegen
        return None
    if not isinstance(sde, DiscreteVPSDE):
        return None
    k = torch.arange(sde.num_train_timesteps, dtype=torch.float64)
    return torch.as_tensor(sde.timestep_to_t(k), dtype=torch.float64).cpu().reshape(-1)


class _Chain:
    """Float64 coefficients of the discrete chain on the latent times t_1..t_N (lists index 0..N-1)."""

    def __init__(self, sde: LinearSDE, ts: Tensor) -> None:
        grid = CoefficientGrid(sde, ts)  # validates alpha, sigma on these times
        self.t = grid.t
        self.alpha, self.sigma, lam = grid.alpha, grid.sigma, grid.log_snr
        self.N = len(self.t)
        # Step i (1..N-1 here, s = t_{i-1} < t = t_i): s_ts^2 = sigma_t^2 (1 - exp(-2 (lambda_s - lambda_t))).
        self.log_beta = [math.nan]
        self.log_beta_tilde = [math.nan]
        self.c0 = [math.nan]  # the weight of x in the posterior mean
        for i in range(1, self.N):
            s2 = self.sigma[i] ** 2 * -math.expm1(-2.0 * (lam[i - 1] - lam[i]))
            self.log_beta.append(math.log(s2))
            self.log_beta_tilde.append(math.log(s2) + 2.0 * math.log(self.sigma[i - 1] / self.sigma[i]))
            self.c0.append(self.alpha[i - 1] * s2 / self.sigma[i] ** 2)
        # The decoder at t_1: beta = sigma_1^2 (Ho et al.'s sigma_1^2 = beta_1). beta-tilde_1 = 0;
        # Ho et al.'s code and improved-diffusion clip it to beta-tilde_2 (posterior_log_variance_
        # clipped), which vanishes as the steps get finer, so that the bound would have no
        # continuous limit: the fixed choices both use beta_1 there, and the clipped value is only
        # the lower end of learned variances (whose networks were trained against it).
        self.log_beta[0] = 2.0 * math.log(self.sigma[0])
        self.log_beta_tilde[0] = self.log_beta_tilde[1]
        self.prior_std = sde.prior_std

    def prior_kl(self, x64: Tensor) -> Tensor:
        """L_T = KL(N(alpha_N x, sigma_N^2 I) || N(0, p^2 I)) summed over dimensions, ``[B]``."""
        a, s, p = self.alpha[-1], self.sigma[-1], self.prior_std
        D = x64.shape[1]
        return 0.5 * (
            D * (s * s / (p * p) - 1.0 + 2.0 * math.log(p / s)) + (a * a / (p * p)) * x64.square().sum(1)
        )


def ddpm_bound(
    x: Tensor,
    sde: LinearSDE,
    score_fn: ScoreFn,
    *,
    grid: DataGrid | None = None,
    steps: int | None = None,
    times: Tensor | None = None,
    variance: Variance = "beta",
    terms: int | None = None,
    n_samples: int = 1,
    generator: RandomSource = None,
    batch_size: int | None = None,
) -> BoundResult:
    """The variational bound L = L_T + sum L_{t-1} + L_0 of the discrete-time model (Ho et al. 2020, eq. 5).

    A lossless code length of the discrete data ``x`` (module docstring for the chain on any
    :class:`~sdegen.sde.LinearSDE`). Each term L_{i-1} is the KL of two Gaussians, in closed form
    given x_{t_i} ~ q(x_{t_i} | x) (one draw per evaluation); L_T is closed form; L_0 is the
    discretized Gaussian decoder at one draw of x_{t_1}. The model's mean comes from its data
    prediction x0_hat(t_i, x_{t_i}) (``score_fn.data_prediction`` or ``noise_prediction`` when
    offered, else Tweedie's formula from the score).

    Args:
        x: discrete data ``[B, ...]`` on ``grid`` (the values, float, or the integer levels).
        sde: the forward LinearSDE; a ``DiscreteVPSDE`` is bounded on its own N training steps.
        score_fn: the score model ``score_fn(t, x)``.
        grid: the :class:`DataGrid` of the data (default 8-bit in [-1, 1], as Ho et al.).
        steps: N, for a continuous-time SDE: latent times t_i = i T / N.
        times: or the latent times t_1 < ... < t_N in (0, T] themselves.
        variance: the reverse variances v: ``"beta"`` (s_ts^2, Ho et al.'s sigma_t^2 = beta_t) or
            ``"beta_tilde"`` (the posterior variance s_ts^2 sigma_s^2 / sigma_t^2), both with
            sigma(t_1)^2 = beta_1 at the decoder (beta-tilde_1 = 0; Ho et al.'s code clips it to
            beta-tilde_2, which has no continuous limit); or a callable ``(t, x_t) -> f`` shaped like
            ``x_t`` (or ``[B]``): learned variances log v = f log beta + (1 - f) log beta-tilde (Nichol
            and Dhariwal 2021, eq. 15, with beta-tilde_2 at the decoder as in their code; their network
            output o in [-1, 1] is f = (o + 1) / 2). With an exact data prediction, beta-tilde makes
            every KL term a pure mean error, and the bound converges to :func:`elbo` with a decoder
            as the steps get finer; with beta the variance mismatch adds a positive amount per step
            that stays O(1) near t_1 unless the steps are much finer than t_1.
        terms: None: all N terms for every example (N evaluations per replicate); an int m: an
            unbiased estimate from m draws per example, each L_0 plus (N - 1) times the KL of one
            step drawn uniformly (two evaluations per draw), with L_T exact.
        n_samples: replicates of the whole sum when ``terms`` is None (the standard error is their
            spread; NaN for one replicate).
        generator: a ``torch.Generator`` or a :class:`~sdegen.random.PerSampleGenerator`.
        batch_size: rows per network call (default: all rows of one term).

    Returns:
        :class:`BoundResult` with ``bpd`` = nll / (D ln 2) and, over all terms, the mean ``terms``.
    """
    D = _check_common(x, sde, score_fn, "ddpm_bound", generator)
    grid = DataGrid() if grid is None else grid
    if not isinstance(grid, DataGrid):
        raise TypeError(f"grid must be a DataGrid such as DataGrid((-1.0, 1.0), 256); got {grid!r}")
    if not callable(variance) and variance not in VARIANCES:
        raise ValueError(
            f"variance must be one of {VARIANCES} (Ho et al.'s fixed reverse variances) or a callable "
            f"(t, x_t) -> interpolation fraction of learned variances; got {variance!r}"
        )
    if terms is not None:
        terms = check_steps("terms", terms)
    n_samples = check_steps("n_samples", n_samples)
    if terms is not None and n_samples != 1:
        raise ValueError("n_samples replicates the sum over all terms; with terms=m draw more terms instead")
    grid.levels_of(x)  # ValueError for non-integer data
    ts = _latent_times(sde, steps, times)
    chain = _Chain(sde, ts)
    N, B = chain.N, x.shape[0]
    event = tuple(x.shape[1:])
    x64 = x.detach().reshape(B, D).double()
    wide = dict(device=x.device, dtype=torch.float64)
    evaluator = ScoreEvaluator(score_fn, T=sde.T, t_end=chain.t[0])

    def term(i: int, rows: Tensor, z: Tensor) -> Tensor:
        """Term i (0: the decoder L_0; i >= 1: the KL into t_{i-1} from t_i, 0-based) at the draws z."""
        a, s = chain.alpha[i], chain.sigma[i]
        data = x64[rows]
        xt = (a * data + s * z).to(x.dtype).reshape(-1, *event)
        x0 = evaluator.data_prediction(chain.t[i], xt, a, s).double().reshape(-1, D)
        lb, lbt = chain.log_beta[i], chain.log_beta_tilde[i]
        if callable(variance):
            tb = torch.full((xt.shape[0],), chain.t[i], dtype=x.dtype, device=x.device)
            what = "a tensor shaped like x_t or [B]"
            f = check_output("variance(t, x_t)", variance(tb, xt), what, [xt.shape, (xt.shape[0],)])
            f = f.double().reshape(xt.shape[0], -1)
            log_v = f * lb + (1.0 - f) * lbt
        else:
            # beta-tilde_1 = 0 at the decoder: there both fixed choices use sigma(t_1)^2 (_Chain).
            fixed = lb if (variance == "beta" or i == 0) else lbt
            log_v = torch.tensor(fixed, **wide).expand(1, 1)
        if i == 0:
            return -discretized_gaussian_log_likelihood(data, x0, log_v, grid)
        # KL(N(mu_q, v_q) || N(mu_p, v)) with mu_q - mu_p = c0 (x - x0_hat), v_q = beta-tilde.
        log_vq = lbt
        sq = (chain.c0[i] ** 2) * (data - x0).square()
        kl = 0.5 * (log_v - log_vq + torch.exp(log_vq - log_v) - 1.0 + sq * torch.exp(-log_v))
        return kl.expand(-1, D).sum(1) if kl.shape[1] == 1 else kl.sum(1)

    with torch.no_grad():
        prior = chain.prior_kl(x64)
        if terms is None:
            R = n_samples
            rows_per_term = B * R
            chunk = _check_rows(batch_size, 1) if batch_size is not None else rows_per_term
            values = torch.empty(B, R, N, **wide)
            index = torch.arange(B, device=x.device).repeat_interleave(R)
            for i in range(N):
                z = random.randn((B, R, *event), generator, **wide).reshape(B * R, D)
                out = torch.empty(B * R, **wide)
                for start in range(0, B * R, chunk):
                    sl = slice(start, min(start + chunk, B * R))
                    out[sl] = term(i, index[sl], z[sl])
                values[:, :, i] = out.reshape(B, R)
            total = values.sum(-1) + prior[:, None]
            nll, stderr = _mean_and_stderr(total)
            per_term = torch.cat([values.mean(1), prior[:, None]], dim=1)
            nfe = N * R
        else:
            # Each draw: L_0 at its own x_{t_1}, plus (N - 1) KL_k of one step k drawn uniformly.
            m = terms
            z0 = random.randn((B, m, *event), generator, **wide).reshape(B * m, D)
            k = random.randint(1, N, (B, m), generator, device=x.device).reshape(-1) if N > 1 else None
            z = random.randn((B, m, *event), generator, **wide).reshape(B * m, D)
            rows = torch.arange(B, device=x.device).repeat_interleave(m)
            chunk = batch_size if batch_size is not None else B * m
            out = torch.zeros(B * m, **wide)
            for start in range(0, B * m, chunk):
                sl = slice(start, min(start + chunk, B * m))
                out[sl] = term(0, rows[sl], z0[sl])
            if k is not None:
                for i in k.unique().tolist():
                    where = (k == i).nonzero().reshape(-1)
                    for start in range(0, where.numel(), chunk):
                        w = where[start : start + chunk]
                        out[w] += (N - 1) * term(i, rows[w], z[w])
            nll, stderr = _mean_and_stderr(out.reshape(B, m))
            nll = nll + prior
            per_term = None
            nfe = 2 * m if N > 1 else m
        evaluator.raise_if_nonfinite()
    if not bool(torch.isfinite(nll).all()):
        raise FloatingPointError(
            f"the bound is non-finite for {int((~torch.isfinite(nll)).sum())} of {B} examples: a decoder "
            f"probability underflowed to 0 or the data prediction overflowed"
        )
    nfe *= 2 if callable(variance) else 1
    bits = D * math.log(2.0)
    return BoundResult(
        nll=nll.to(x.dtype),
        stderr=stderr.to(x.dtype),
        bpd=(nll / bits).to(x.dtype),
        bpd_stderr=(stderr / bits).to(x.dtype),
        nfe=nfe,
        terms=None if per_term is None else per_term.to(x.dtype),
    )
