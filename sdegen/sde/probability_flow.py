"""The probability-flow ODE as a ``func(t, x)`` that torchdiffeq integrates as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from sdegen._broadcast import batch_time
from sdegen._checks import check_same_sde, check_score_fn, check_score_output
from sdegen.sde.coefficients import Coefficients, check_schedule

if TYPE_CHECKING:
    from sdegen.sde.base import SDE, ScoreFn

__all__ = ["ProbabilityFlowODE"]

# The schedule is validated on [_VALIDATION_T_MIN T, T] (see sdegen.sde.reverse).
_VALIDATION_T_MIN = 1e-6


class ProbabilityFlowODE(torch.nn.Module):
    """dx/dt = f(t, x) - 1/2 g(t)^2 score(t, x), the probability-flow ODE (Song et al. 2021, eq. 13).

    Its solutions carry the marginals p_t of ``sde`` into one another: integrated from T down to
    eps it maps prior samples to data, and from eps up to T it encodes data. The state keeps its
    shape [B, ...]; ``t`` is the 0-d time tensor torchdiffeq passes. It is an ``nn.Module`` (a
    network ``score_fn`` becomes a submodule), so ``odeint_adjoint`` finds its parameters::

        ode = sde.probability_flow(score_fn)
        ts = torch.tensor([sde.T, eps], dtype=torch.float64)
        x = torchdiffeq.odeint(ode, x_T, ts, method="dopri5", rtol=1e-5, atol=1e-5)[-1]

    Adaptive torchdiffeq solvers evaluate the field outside the integration interval: the initial
    step-size probe may land far beyond it, and steps run past the last output time before
    interpolating back. Beyond [0, T] the SDE is not defined (sigma(t) of VP is NaN for t < 0, a
    score network was never trained there), so the field is continued as constant in t: the
    coefficients and the score are evaluated at t clamped to [0, T]. Solutions on [0, T] do not
    depend on the continuation; ``options={"step_t": ts[-1:]}`` also keeps the last step from
    straddling the end point, as :class:`~sdegen.samplers.ProbabilityFlowSampler` does.
    """

    def __init__(self, sde: SDE, score_fn: ScoreFn) -> None:
        super().__init__()
        check_score_fn(score_fn)
        check_same_sde(sde, score_fn, "score_fn", "of the probability-flow ODE")
        self.sde = sde
        self.score_fn = score_fn
        self.T = float(sde.T)
        # Validated here once: the vector field below is unchecked, as torchdiffeq's are.
        check_schedule(sde, _VALIDATION_T_MIN * self.T, self.T)
        self.coefficients = Coefficients(sde)

    def extra_repr(self) -> str:
        return f"sde={self.sde!r}"

    def tabulate(self, ts: Tensor, dtype: torch.dtype) -> None:
        """Precompute a(t) and g(t)^2 at the times ``ts`` as a solver in ``dtype`` will pass them.

        For a CPU time grid known in advance (the steps of a fixed-grid method), the field then
        multiplies data by two floats instead of evaluating the SDE's coefficient functions on 0-d
        tensors (about 20 us per evaluation for VP). Other times are computed as usual.
        """
        t = torch.as_tensor(ts).detach().cpu().to(dtype).clamp(0.0, self.T)
        self.coefficients.tabulate(t.tolist())

    def forward(self, t: Tensor | float, x: Tensor) -> Tensor:
        """dx/dt at the 0-d time ``t`` for the batch ``x`` [B, ...]."""
        if not torch.is_tensor(t):
            t = torch.tensor(float(t), dtype=x.dtype, device=x.device)
        t = t.clamp(0.0, self.T)
        a, g2 = self.coefficients.at(t)
        tb = batch_time(t, x)
        score = self.score_fn(tb, x)
        check_score_output(score, x)
        return self.coefficients.field(tb, x, score, a, g2, weight=0.5)
