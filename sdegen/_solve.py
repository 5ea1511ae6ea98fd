"""ODE solves that fail with the library's own error: what a vector field remembers of its last
evaluation and step, and the :class:`SolverError` raised instead of torchdiffeq's assertions
(step-size underflow, the step limit) or a silent NaN, naming the time the solve reached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["SolverError", "SolveLog", "LoggedField", "solve_failure"]


class SolverError(RuntimeError):
    """A numerical solve failed: the step size underflowed or the step limit was reached."""


@dataclass
class SolveLog:
    """Evaluation count, and the last evaluation and step (kept only to explain a failure)."""

    nfe: int = 0
    t: Tensor | None = None
    out: Tensor | None = None
    step: tuple[Tensor, Tensor] | None = None


class LoggedField(nn.Module):
    """``field(t, x)`` for torchdiffeq, remembering its last evaluation and step in :attr:`log`."""

    def __init__(self, field: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.field = field
        self.log = SolveLog()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        out = self.field(t, x)
        self.log.nfe += 1
        self.log.t, self.log.out = t, out  # references only: inspected after a failure
        return out

    def callback_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        """torchdiffeq's hook at the start of every step attempt."""
        self.log.step = (t0, dt)


def solve_failure(
    err: AssertionError,
    log: SolveLog,
    *,
    what: str,
    method: str,
    rtol: float | None = None,
    atol: float | None = None,
    limit: str = "max_steps",
) -> Exception:
    """The exception to raise for torchdiffeq's assertion ``err`` in the solve of ``what``:
    ``FloatingPointError`` if the last evaluation was not finite, else :class:`SolverError`, each
    naming the time reached, the step and the evaluations, and saying what to change."""
    tolerances = f", rtol={rtol:g}, atol={atol:g}" if rtol is not None and atol is not None else ""
    where = f"after {log.nfe} evaluations ({method}{tolerances})"
    if log.step is not None:
        t0, dt = (float(v) for v in log.step)
        # Times are negated inside torchdiffeq when it integrates backwards (adjoint).
        where = f"in the step from t = {abs(t0):.6g} with dt = {abs(dt):.3g}, " + where
    if log.t is not None:
        where = f"at t = {float(log.t):.6g} " + where
    if log.out is not None and not bool(torch.isfinite(log.out).all()):
        return FloatingPointError(
            f"{what} produced NaN or infinity {where}: score_fn returned non-finite values there, or "
            f"the solution diverged"
        )
    if "max_num_steps" in str(err):
        hint = f"raise {limit}, or loosen rtol/atol"
    else:
        hint = (
            "a step-size underflow means the ODE is too stiff for these tolerances (often near "
            "t = eps: raise eps) or the score is discontinuous or blows up"
        )
    return SolverError(f"{what} solve failed {where}: torchdiffeq reported '{err}'; {hint}")
