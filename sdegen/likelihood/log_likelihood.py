"""Exact log-likelihoods through the probability-flow ODE (Song et al. 2021, sec. 4.3, appendix D.2).

The probability-flow ODE dx/dt = f~(t, x) = f(t, x) - 1/2 g(t)^2 s(t, x) (Song et al. 2021, eq. 13)
is a continuous normalizing flow, so by the instantaneous change of variables (Chen et al. 2018,
"Neural ordinary differential equations", theorem 1)

    log p_eps(x) = log p_T(x_T) + int_eps^T div f~(t, x_t) dt         (Song et al. 2021, eq. 40).

It is solved as one ODE for the augmented state [x_t, delta_t], d delta / dt = div f~(t, x_t),
delta(eps) = 0, by one torchdiffeq call from eps to T, and log p = prior_logp(x_T) + delta(T).

The state is held in float64 whatever the data's dtype; only ``score_fn`` (and its divergence) runs
in the data's dtype, at the state rounded to it. torchdiffeq returns y(T) by evaluating the step's
quartic dense-output polynomial at its endpoint, whose coefficients are sums like 16 y_mid - 8 (y0 + y1):
in float32 that loses tens of ulps of |y|, about 3e-4 nats for delta ~ 70 (measured on VE, d = 16),
which no tolerance can remove. In float64 the same loss is 1e-13, and the accumulation of delta over
the steps, the coefficients a(t), g(t)^2 and the error estimate are float64 as well.

With the model's own prior pi instead of the true p_T the result is shifted by the prior mismatch
at the latent z = x_T: logp - log p_eps(x) = log pi(z) - log p_T(z) (+ the solver error). Since
p_T / pi = sum_k w_k N_k / pi for a mixture p_T, the shift lies between min_k and max_k of
log(pi(z) / N_k(z)), and its average over data x ~ p_eps is -KL(p_T || pi) <= 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from sdegen._checks import (
    check_bool,
    check_density_input,
    check_end_time,
    check_fits_model,
    check_generator,
    check_positive,
    check_same_sde,
    check_score_differentiable,
    check_score_fn,
    check_score_output,
    check_sde,
    check_steps,
)
from sdegen._progress import Progress
from sdegen._progress import progress as _progress
from sdegen._solve import SolveLog, solve_failure
from sdegen.divergence import DivergenceEstimator, Hutchinson
from sdegen.likelihood._prior import check_prior_logp, log_prior
from sdegen.likelihood.bits_per_dim import Quantization, check_quantization
from sdegen.likelihood.bits_per_dim import bits_per_dim as _bits_per_dim
from sdegen.random import RandomSource
from sdegen.sde.base import SDE, ScoreFn
from sdegen.sde.coefficients import Coefficients, check_schedule

__all__ = ["log_likelihood", "LikelihoodResult"]

# Fixed-grid solvers would take a single step from eps to T without a step size; the likelihood
# needs error control, so only the adaptive torchdiffeq solvers are offered.
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
"""The torchdiffeq methods ``log_likelihood`` accepts: adaptive ones, with error control."""
# Every adaptive solve is bounded (diffrax's default is 4096 steps): a stiff or broken score then
# fails with the time it reached instead of running without end.
MAX_STEPS = 10_000


class LikelihoodResult(NamedTuple):
    """The result of :func:`log_likelihood`.

    ``logp``: log-density of each sample in nats, ``[B]``. ``z``: the latent x_T, shaped like x.
    ``nfe``: evaluations of the augmented ODE (each one score forward and the divergence's VJPs).
    ``bpd``: bits per dimension ``[B]`` when a :class:`Quantization` was given, else None.
    """

    logp: Tensor
    z: Tensor
    nfe: int
    bpd: Tensor | None


class _AugmentedFlow(nn.Module):
    """The augmented vector field (t, [x, delta]) -> [f~(t, x), div f~(t, x)] on one flat tensor.

    A flat state rather than a tuple: torchdiffeq then needs fewer evaluations and less bookkeeping
    (measured with dopri5 on 2 CPU cores: 74 evaluations instead of 80, and an overhead of 9-13 %
    instead of 15-27 % over NFE x (forward + VJP)). An ``nn.Module`` so that ``odeint_adjoint`` finds the score
    network's parameters when ``score_fn`` is a module.
    """

    def __init__(
        self,
        sde: SDE,
        score_fn: ScoreFn,
        estimator: DivergenceEstimator,
        vectors: Tensor,
        shape: torch.Size,
        dtype: torch.dtype,
        t_span: tuple[float, float],
    ) -> None:
        super().__init__()
        self.t_span = t_span
        self.sde, self.score_fn, self.estimator, self.vectors = sde, score_fn, estimator, vectors
        self.shape = shape
        self.dtype = dtype  # the data's: score_fn sees x and t in it, the state may be wider
        self.batch = shape[0]
        self.n = math.prod(shape)
        self.dim = self.n // self.batch
        # f = a(t) x: the drift's divergence a(t) D is added exactly, only the score's is estimated
        # (less probe variance, no autograd through the drift).
        self.coefficients = Coefficients(sde)
        self.linear = self.coefficients.linear
        # Plain-object bookkeeping: nn.Module.__setattr__ would cost ~30 us per assignment.
        self.log = SolveLog()
        self.bar: Progress | None = None  # follows the time reached, from 0 to T - eps

    def forward(self, t: Tensor, state: Tensor) -> Tensor:
        self.log.nfe += 1
        # torchdiffeq's initial step-size heuristic probes f at t0 + h0, which can lie past T (or
        # before eps in the adjoint's backward solve); the solution itself never leaves [eps, T].
        # The score sees t in the data's dtype, and the coefficients are taken at that same time (in
        # the state's dtype): the field is then exactly f~ at a rounded time, and a(t), g(t)^2 escape
        # float32's exp(2 t log(sigma_max / sigma_min)), which is off by ~1e-6 relative for VE.
        t = t.clamp(*self.t_span).to(self.dtype)
        # Grad mode is on only when a graph through the solve is wanted (create_graph=True, or the
        # backward pass of odeint_adjoint); otherwise the VJP's graph is local to this call.
        graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x = state[: self.n].view(self.shape).to(self.dtype)
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            tb = t.expand(self.batch)
            score = self.score_fn(tb, x)
            self._check_score(score, x)
            a, g2 = self.coefficients.at(t.to(state.dtype))
            if self.linear:
                div = self.estimator.trace(score, x, self.vectors, create_graph=graph)
            else:
                drift = self.coefficients.field(tb, x, score, a, g2, weight=0.5)
                div = self.estimator.trace(drift, x, self.vectors, create_graph=graph)
        wide, div = state.dtype, div.to(state.dtype)
        if self.linear:
            x_wide = state[: self.n].view(self.shape)
            drift = self.coefficients.field(tb, x_wide, score.to(wide), a, g2, weight=0.5)
            div = a * self.dim - (0.5 * g2) * div
        out = torch.cat([drift.reshape(-1).to(wide), div])
        self.log.t, self.log.out = t, out  # references only: inspected after a failure
        return out

    def callback_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        """torchdiffeq's hook at the start of every step attempt: remembered for error messages."""
        self.log.step = (t0, dt)
        if self.bar is not None:  # torchdiffeq reads its step sizes back anyway: no added sync
            self.bar.set_postfix_str(f"nfe={self.log.nfe}")
            self.bar.advance_to(float(t0) - self.t_span[0])

    def _check_score(self, score: Tensor, x: Tensor) -> None:
        check_score_output(score, x)
        if not score.requires_grad:
            raise ValueError(
                "score_fn(t, x) returned a tensor that does not depend differentiably on x; the "
                "divergence needs autograd through score_fn: do not detach, use torch.no_grad() or "
                "numpy inside it"
            )

    def per_sample_norm(self, r: Tensor) -> Tensor:
        """max over samples b of max(RMS(r_x[b]), |r_delta[b]|) for the error ratio r.

        Every sample's state and its log-density then meet rtol/atol on their own: an RMS over the
        whole batch would let one sample's error hide among a thousand others, and would dilute
        the error of delta (the quantity of interest) by the D state entries.
        """
        rx = r[: self.n].view(self.batch, self.dim).square().mean(1)
        return torch.maximum(rx, r[self.n :].square()).max().sqrt()

    def failure(self, err: AssertionError, method: str, rtol: float, atol: float) -> Exception:
        """The exception for a torchdiffeq assertion: non-finite values, step underflow, step limit."""
        return solve_failure(
            err, self.log, what="the probability-flow ODE", method=method, rtol=rtol, atol=atol
        )


def log_likelihood(
    x: Tensor,
    sde: SDE,
    score_fn: ScoreFn,
    *,
    divergence: DivergenceEstimator | None = None,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float | None = None,
    prior_logp: Callable[[Tensor], Tensor] | None = None,
    generator: RandomSource = None,
    adjoint: bool = False,
    bits_per_dim: Quantization | None = None,
    create_graph: bool = False,
    max_steps: int | None = MAX_STEPS,
    progress: bool = False,
) -> LikelihoodResult:
    """log p_eps(x) = log p_T(x_T) + int_eps^T div f~(t, x_t) dt through the probability-flow ODE.

    Song et al. 2021, eq. 40 (instantaneous change of variables, Chen et al. 2018, theorem 1), with
    f~ = f - 1/2 g^2 score_fn the probability-flow drift (eq. 13). Each evaluation costs one
    ``score_fn`` forward and the divergence estimator's VJPs; the drift comes from that same forward.

    Args:
        x: data ``[B, ...]`` (any data shape, any device, float32 or float64), read as a sample of
            p_eps. For bits/dim of discrete data, dequantize it first (:func:`dequantize`).
            ``score_fn`` and ``prior_logp`` see x's dtype and ``logp``, ``z`` come back in it; the
            ODE state itself is float64 (on MPS, which has none, x's dtype), so that with float32
            data the solve's rounding stays below the float32 score's.
        sde: the forward SDE the score model was trained for.
        score_fn: ``score_fn(t, x)`` with ``t`` of shape ``[B]``, differentiable in ``x``, with
            samples that do not interact; put networks with dropout or batch statistics in
            ``eval()`` mode, since adaptive stepping needs a deterministic vector field.
        divergence: :class:`Hutchinson` (default, one Rademacher probe) or :class:`ExactTrace`.
            Probes are drawn once per call from ``generator`` and held fixed during the solve.
        method: an adaptive torchdiffeq solver: one of ``ADAPTIVE_METHODS``.
        rtol: relative tolerance, enforced for every sample's state and log-density separately.
        atol: absolute tolerance, enforced the same way.
        eps: start time in (0, T); the score is singular at t = 0. Default: the SDE's
            ``likelihood_eps``, 1e-5, or for a :class:`~sdegen.DiscreteVPSDE` 1/N, the time of
            step 0, the least noise its network was trained on.
        prior_logp: ``z -> [B]`` log-density of x_T; default ``sde.prior_logp``. Pass an exact
            log p_T (of an oracle) to remove the prior mismatch log pi(z) - log p_T(z).
        generator: for the probes: a ``torch.Generator``, or a
            :class:`~sdegen.random.PerSampleGenerator` (one seed per sample: sample i's probes
            depend on seed i only). The solve's step sequence is shared by the batch, so a sample's
            result still depends on its batch at the level of the tolerances; for results that do
            not, evaluate fixed chunks (:func:`sdegen.distributed.map_chunks`).
        adjoint: solve with ``odeint_adjoint``, trading 3-7x compute for O(1) memory in the number
            of steps when backpropagating; only meaningful with ``create_graph=True``, and then
            ``score_fn`` must be an ``nn.Module`` (its parameters receive gradients).
        bits_per_dim: a :class:`Quantization` saying how ``x`` was quantized, to also return bpd.
        create_graph: make ``logp`` differentiable w.r.t. ``x`` and the score's parameters (for
            maximum-likelihood training). Off by default: no graph is kept across evaluations.
        max_steps: raise :class:`~sdegen.SolverError` after this many solver steps (None: no limit).
        progress: show progress in t, labelled "nll": a tqdm bar on a terminal, periodic lines in a
            log or pipe.

    Returns:
        :class:`LikelihoodResult` ``(logp [B] in nats, z, nfe, bpd or None)``.

    Raises:
        FloatingPointError: the ODE produced NaN/inf (with the time t where it happened).
        SolverError: (a ``RuntimeError``) the solver failed (step-size underflow or ``max_steps``),
            with the time t it reached.
    """
    check_density_input(x, "an exact likelihood")
    check_sde(sde)
    check_score_fn(score_fn)
    check_same_sde(sde, score_fn, "score_fn", "of the likelihood")
    if getattr(score_fn, "is_density_score", True) is False:
        raise ValueError(
            f"score_fn is {score_fn!r}, which is not the score of any density (e.g. a thresholded or "
            f"clipped x0_hat): its probability-flow ODE defines no likelihood. Pass the model itself, "
            f"without thresholding"
        )
    if divergence is None:
        divergence = Hutchinson()
    elif not isinstance(divergence, DivergenceEstimator):
        raise TypeError(
            f"divergence must be a DivergenceEstimator such as Hutchinson() or ExactTrace(); "
            f"got {divergence!r}"
        )
    if method not in ADAPTIVE_METHODS:
        raise ValueError(
            f"method must be an adaptive torchdiffeq solver, one of {ADAPTIVE_METHODS}; got {method!r}"
        )
    rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
    eps = check_end_time(
        "eps",
        sde.likelihood_eps if eps is None else eps,
        sde.T,
        "the ODE is solved from eps to T and the score is singular at t = 0",
    )
    check_prior_logp(prior_logp)
    check_generator(generator, x, "x")
    if bits_per_dim is not None:
        check_quantization(bits_per_dim)
        lo, hi = bits_per_dim.data_range
        x_min, x_max = float(x.detach().min()), float(x.detach().max())
        if x_min < lo or x_max > hi:
            raise ValueError(
                f"x lies in [{x_min:.4g}, {x_max:.4g}], outside bits_per_dim.data_range=({lo:g}, {hi:g}), so "
                f"its bits/dim would be meaningless; scale x into the declared range (and dequantize it) "
                f"or declare the range it was quantized in"
            )
    check_fits_model("x", x, score_fn)
    if max_steps is not None:
        max_steps = check_steps("max_steps", max_steps)
    for name, flag in (("adjoint", adjoint), ("create_graph", create_graph), ("progress", progress)):
        check_bool(name, flag)
    if adjoint and not create_graph:
        raise ValueError(
            "adjoint=True only saves memory when backpropagating through the solve; without "
            "create_graph=True no graph is kept and memory is already O(1) in the number of steps. "
            "Pass create_graph=True as well, or drop adjoint."
        )
    if adjoint and not isinstance(score_fn, nn.Module):
        raise TypeError(
            "adjoint=True backpropagates only into the parameters it can find: score_fn must be a "
            f"torch.nn.Module; got {type(score_fn).__name__}. Use adjoint=False."
        )
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "log_likelihood needs autograd for the divergence, which torch.inference_mode() disables; "
            "call it under torch.no_grad() or without a context (it keeps no graph unless create_graph=True)"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"x contains {int((~torch.isfinite(x)).sum())} NaN or infinite value(s)")
    check_schedule(sde, eps, sde.T)
    # The divergence is d score / dx by autograd: a score without a gradient path to x would give 0.
    check_score_differentiable(
        score_fn,
        torch.full((x.shape[0],), sde.T, dtype=x.dtype, device=x.device),
        x,
        "score_fn",
        " the likelihood's divergence (ExactTrace and Hutchinson alike)",
    )

    vectors = divergence.draw(x.detach(), generator)
    flow = _AugmentedFlow(sde, score_fn, divergence, vectors, x.shape, x.dtype, (eps, sde.T))
    B = x.shape[0]
    # float64 state for data of any dtype (module docstring), unless the device has no float64.
    wide = x.dtype if x.device.type == "mps" else torch.promote_types(x.dtype, torch.float64)
    x0 = (x if create_graph else x.detach()).reshape(-1).to(wide)
    state0 = torch.cat([x0, x0.new_zeros(B)])
    ts = torch.tensor([eps, sde.T], dtype=torch.float64, device=x.device)
    # step_t: end the last step exactly at T (and at eps for the adjoint's backward solve) instead
    # of stepping past it and interpolating, which would evaluate the score outside [eps, T].
    options: dict = {"norm": flow.per_sample_norm, "step_t": ts}
    if max_steps is not None:
        options["max_num_steps"] = max_steps
    solve = odeint_adjoint if adjoint else odeint
    if progress:
        flow.bar = _progress(sde.T - eps, label="nll", unit="t", position_format="t={n:.3g}/{total:.3g}")
    try:
        with torch.set_grad_enabled(create_graph):
            final = solve(flow, state0, ts, rtol=rtol, atol=atol, method=method, options=options)[-1]
        if flow.bar is not None:
            flow.bar.set_postfix_str(f"nfe={flow.log.nfe}")
            flow.bar.advance_to(sde.T - eps)
    except AssertionError as err:
        raise flow.failure(err, method, rtol, atol) from err
    finally:
        if flow.bar is not None:
            flow.bar.close()
            flow.bar = None

    with torch.set_grad_enabled(create_graph):
        z = final[: flow.n].view(x.shape).to(x.dtype)
        prior = log_prior(sde, prior_logp, z)
        logp = (prior.to(wide) + final[flow.n :]).to(x.dtype)
    if not bool(torch.isfinite(logp).all()):
        raise FloatingPointError(
            f"log-likelihood is non-finite for {int((~torch.isfinite(logp)).sum())} of {B} samples after "
            f"{flow.log.nfe} evaluations: the latent z or prior_logp(z) is NaN or infinite"
        )
    bpd = None
    if bits_per_dim is not None:
        bpd = _bits_per_dim(logp, x.shape, data_range=bits_per_dim.data_range, n_bits=bits_per_dim.n_bits)
    return LikelihoodResult(logp=logp, z=z, nfe=flow.log.nfe, bpd=bpd)
