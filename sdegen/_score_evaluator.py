"""The score function as sdegen's loops call it: counted, checked, and driving the progress bar."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdegen._checks import check_score_output
from sdegen._progress import progress as _progress
from sdegen.sde.kernel import GaussianKernel

__all__ = ["ScoreEvaluator"]

#: With ``check_every=None`` the full finiteness sum is taken of every this many evaluations.
SPARSE_CHECK = 4
#: ... unless the output has at most this many numbers: then of every evaluation (as cheap as any
#: partial sum, and exact).
SMALL_OUTPUT = 1 << 14
#: The per-evaluation sums are stacked into one tensor every this many evaluations.
_CHUNK = 32


class ScoreEvaluator:
    """Wraps ``score_fn(t, x)``: counts evaluations (NFE) and stops sampling at a non-finite score.

    A score of the wrong shape or dtype raises ``ValueError`` at once. A NaN or infinite score
    raises ``FloatingPointError`` naming the time and the evaluation (and the step, when the
    sampler sets :attr:`step`), so a diverging network never yields silent garbage.

    The finiteness test is kept on the score's device: each evaluation adds one reduction (its
    sum, which NaN and inf propagate through) to a list, and :meth:`raise_if_nonfinite` reads them
    all at once -- one host synchronisation per ``check_every`` evaluations (``None``: only when
    the sampler finishes), instead of one per evaluation, which would serialise a GPU's launch
    queue. With ``check_every=1`` the test runs on every evaluation and counts the bad entries
    exactly (solvers that synchronise anyway, torchsde's and torchdiffeq's loops, use that).

    With ``state_only=True`` (a run of one of sdegen's own loops without an observation that can be
    repeated: it draws no noise, or draws it from a ``torch.Generator`` whose state was kept) nothing is recorded per
    evaluation: the caller sums the samples once at the end, which every evaluation has flowed into,
    and if they are not finite runs again from the same x_T with ``check_every=1``, which names the
    first non-finite evaluation exactly (:meth:`Sampler.__call__
    <sdegen.samplers.base.Sampler.__call__>`). The check then costs one sum per run, not per step.

    With ``check_every=None`` otherwise (a run that draws from a per-sample or the global generator,
    read once when the sampler finishes) an output
    of up to 16384 numbers (5000 samples in 2-D and 3-D) is summed whole at every evaluation, which
    costs no more than any smaller reduction would. A larger one sums only its first sample, and the
    whole of every 4th evaluation and of the last: a full sum is a pass over the output, 5% of a
    few-step step with a cheap score at 5000 x 256. A non-finite score is still caught, since it
    propagates through the sampler's state into every later output; a failure of the whole batch (a
    network blowing up at some noise level) is named at its first evaluation, one of a single sample
    between two full sums (``check_every=1`` names it exactly). A run whose state does not carry
    every evaluation (``sparse=False``: an observation's projection overwrites the observed
    coordinates, and a non-finite score that stayed there with them) sums every output whole. The per-evaluation sums are stacked
    every 32 evaluations and the times kept as floats (or copied out of the ``[B]`` time tensors),
    so that a long run does not hold thousands of small tensors alive: at d = 2 that made the check
    cost more than the step itself.

    :meth:`data_prediction` is the denoiser view x0_hat(t, x) that the few-step samplers use. It
    follows the protocol of :mod:`sdegen.samplers.tweedie`: a ``score_fn`` that offers
    ``data_prediction(t, x)`` (or else ``noise_prediction(t, x)``) is asked for it directly,
    without the round trip through the score; one call is one evaluation either way, counted and
    checked like a score.
    """

    def __init__(
        self,
        score_fn: Callable[[Tensor, Tensor], Tensor],
        *,
        T: float,
        t_end: float,
        progress: bool = False,
        check_every: int | None = None,
        times: Sequence[float] | None = None,
        label: str = "sample",
        final_state: bool = False,
        state_only: bool = False,
        sparse: bool = True,
    ) -> None:
        self.score_fn = score_fn
        self.nfe = 0
        #: index of the current step, set by samplers that own their loop (for error messages)
        self.step: int | None = None
        self.check_every = check_every
        self._T, self._t_end = T, t_end
        # The grid's times on the host: the progress bar follows self.step through them instead of
        # reading t back from the device at every evaluation.
        self._times = times
        # Its position is the time covered, T - t, from 0 to T - t_end.
        self._bar = (
            _progress(T - t_end, label=label, unit="t", position_format="t={n:.3g}/{total:.3g}")
            if progress
            else None
        )
        # Per unchecked evaluation: the device-side sum of its score (stacked into _chunks every
        # _CHUNK evaluations) and where it was made: its time (a float, a 1-element view of the
        # time tensor until folded, then (times, index)), step and name.
        self._sums: list[Tensor] = []
        self._chunks: list[Tensor] = []
        self._where: list[tuple[float | Tensor | tuple[Tensor, int], int | None, str]] = []
        self._folded = 0  # the entries of _where whose times are folded
        # check_every=None: the full sums of every SPARSE_CHECK-th evaluation (by its index in
        # _sums, which then holds first-sample sums) and the last output, summed at the end
        self._full: list[tuple[int, Tensor]] = []
        self._last: Tensor | None = None
        # final_state: the caller hands raise_if_nonfinite the state every evaluation has flowed
        # into (a sampler's samples), whose sum then stands in for the evaluations after the last
        # full sum, so the last output is not kept alive (one buffer more in the working set cost
        # 5-7% of a cheap step at 5000 x 256 on a CPU)
        self._final_state = final_state
        # state_only: nothing is recorded per evaluation; the caller judges the run by its final state
        # (see the class docstring)
        self._state_only = state_only
        # sparse=False: every evaluation is summed whole (a run whose state does not carry every
        # evaluation: an observation's projection overwrites part of it)
        self._sparse = sparse
        self._trailing = False  # evaluations since the last full sum, with final_state
        self._data = _method(score_fn, "data_prediction")
        self._noise = None if self._data is not None else _method(score_fn, "noise_prediction")

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        return self._counted(self.score_fn(t, x), t, x, "score_fn")

    def at(self, t: float, x: Tensor) -> Tensor:
        """score(t, x) at the host time ``t``, passed to ``score_fn`` as a [B] tensor on x's device
        and dtype; the check records the float, so no view of that tensor is kept."""
        tb = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        return self._counted(self.score_fn(tb, x), tb, x, "score_fn", t)

    def data_prediction(self, t: float, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """x0_hat = E[x_0 | x_t = x] at the time ``t`` where the kernel is N(alpha x_0, sigma^2 I).

        The score function's own ``data_prediction`` when it has one; else (x - sigma eps_hat) /
        alpha from its ``noise_prediction``; else Tweedie's formula (x + sigma^2 score) / alpha
        (:class:`~sdegen.sde.GaussianKernel`'s conversions, with float coefficients).
        """
        if self._data is None and self._noise is None:
            return GaussianKernel(alpha, sigma).data_from_score(x, self.at(t, x))
        tb = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        if self._data is not None:
            return self._counted(self._data(tb, x), tb, x, "score_fn.data_prediction", t)
        eps = self._counted(self._noise(tb, x), tb, x, "score_fn.noise_prediction", t)
        return GaussianKernel(alpha, sigma).data_from_noise(x, eps)

    def _counted(self, out: Tensor, t: Tensor, x: Tensor, name: str, t_value: float | None = None) -> Tensor:
        """``out`` of an evaluation at the times ``t`` (all ``t_value`` where the caller knows it)."""
        self.nfe += 1
        check_score_output(out, x, name)
        if self._state_only:
            pass
        elif self.check_every == 1:
            self._check_now(out, t, x, name)
        else:
            dtype = _accumulation_dtype(out.dtype)
            if self.check_every is not None or not self._sparse or out.numel() <= SMALL_OUTPUT:
                self._sums.append(out.sum(dtype=dtype))
            else:
                self._sums.append(out[:1].sum(dtype=dtype))
                if self.nfe % SPARSE_CHECK == 0:
                    self._full.append((len(self._where), out.sum(dtype=dtype)))
                    self._last, self._trailing = None, False
                elif self._final_state:
                    self._trailing = True
                else:
                    self._last = out
            self._where.append((t.reshape(-1)[:1] if t_value is None else t_value, self.step, name))
            if len(self._sums) >= _CHUNK:
                self._fold()
            if self.check_every is not None and len(self._where) >= self.check_every:
                self.raise_if_nonfinite()
        if self._bar is not None:
            if self.step is not None and self._times is not None:
                done = self._T - self._times[self.step]
            else:  # torchsde's and torchdiffeq's loops, which read their state back anyway
                done = self._T - float(t.reshape(-1)[0])
            self._bar.set_postfix_str(f"nfe={self.nfe}")
            self._bar.advance_to(done)
        return out

    def _check_now(self, out: Tensor, t: Tensor, x: Tensor, name: str) -> None:
        # NaN and inf propagate through a sum, which costs a fraction of isfinite().all(); a sum
        # that merely overflows is told apart by the exact count.
        if not math.isfinite(float(out.sum(dtype=_accumulation_dtype(out.dtype)))):
            n_bad = int((~torch.isfinite(out)).sum())
            if n_bad:
                what = f"{n_bad} non-finite value(s)"
                n_in = int((~torch.isfinite(x)).sum())
                if n_in:  # the score only passed on what the update before it produced
                    what += f" for a state with {n_in} non-finite value(s) (the sampler's update before it diverged)"
                self._fail(name, what, t.reshape(-1)[:1], self.step, self.nfe)

    def _fold(self) -> None:
        """Stack the pending sums into one tensor, and copy the pending time views into one, so that
        the evaluations' own tensors (the [B] times) are freed."""
        if self._sums:
            self._chunks.append(torch.stack(self._sums))
            self._sums.clear()
        pending = self._where[self._folded :]
        views = [t for t, _, _ in pending if isinstance(t, Tensor)]
        if views:
            times, j = torch.cat(views), iter(range(len(views)))
            self._where[self._folded :] = [
                ((times, next(j)) if isinstance(t, Tensor) else t, step, name) for t, step, name in pending
            ]
        self._folded = len(self._where)

    def raise_if_nonfinite(self, state: Tensor | None = None) -> None:
        """Raise ``FloatingPointError`` for the first non-finite score since the last check.

        ``state``: with ``final_state=True``, the state that every evaluation so far has flowed
        into; its sum covers the evaluations after the last full sum.
        """
        if not self._where:
            return
        n = len(self._where)
        if state is not None and self._trailing:
            self._full.append((n - 1, state.sum(dtype=_accumulation_dtype(state.dtype))))
            from_state = len(self._full) - 1
        else:
            from_state = None
        if self._last is not None:
            self._full.append((n - 1, self._last.sum(dtype=_accumulation_dtype(self._last.dtype))))
            self._last = None
        self._fold()
        full = [torch.stack([s for _, s in self._full])] if self._full else []
        bad = ~torch.isfinite(torch.cat(self._chunks + full))
        first_nfe = self.nfe - n + 1
        if bool(bad.any()):  # the one host read per check
            flags = bad.tolist()
            k = flags.index(True) if True in flags[:n] else n
            for j, (index, _) in enumerate(self._full):
                if flags[n + j] and index < k:  # a failure the first-sample sums did not see
                    first = self._full[j - 1][0] + 1 if j > 0 else 0
                    t, step, name = self._where[index]
                    what = "non-finite value(s)"
                    if j == from_state:  # seen in the samples: the score, or an update after it
                        what += " (or the sampler's update after it diverged)"
                    self._fail(name, what, t, step, first_nfe + index, first_nfe + first)
            t, step, name = self._where[k]
            self._fail(name, "non-finite value(s)", t, step, first_nfe + k)
        self._chunks.clear()
        self._where.clear()
        self._full.clear()
        self._folded = 0
        self._trailing = False

    def _fail(
        self,
        name: str,
        what: str,
        t: float | Tensor | tuple[Tensor, int],
        step: int | None,
        nfe: int,
        first: int | None = None,
    ) -> None:
        if isinstance(t, tuple):
            t = t[0][t[1]]
        where = f"step {step}, " if step is not None else ""
        among = ""
        if first is not None and first < nfe:
            among = f"; the first is among evaluations {first}-{nfe}: check_finite_every=1 names it"
        raise FloatingPointError(
            f"{name} returned {what} at t={float(t):.6g} ({where}score evaluation {nfe}{among}); sampling "
            f"stopped"
        )

    def finish(self) -> None:
        """Sampling reached the grid's last time: the progress display shows all of it."""
        if self._bar is not None:
            self._bar.set_postfix_str(f"nfe={self.nfe}")
            self._bar.advance_to(self._T - self._t_end)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _method(score_fn: object, name: str) -> Callable[[Tensor, Tensor], Tensor] | None:
    method = getattr(score_fn, name, None)
    return method if callable(method) else None


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype | None:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else None
