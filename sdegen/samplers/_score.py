"""The score function as samplers call it: counted, checked, and driving the progress bar."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from sdegen._checks import check_score_output

__all__ = ["ScoreEvaluator"]


class ScoreEvaluator:
    """Wraps ``score_fn(t, x)``: counts evaluations (NFE) and stops sampling at the first bad one.

    A score of the wrong shape or dtype raises ``ValueError``; a NaN or infinite score raises
    ``FloatingPointError`` naming the time (and the step, when the sampler sets :attr:`step`), so
    a diverging network never yields silent garbage. The finiteness check costs one sum and one
    host synchronisation per evaluation.

    :meth:`data_prediction` is the denoiser view x0_hat(t, x) that the few-step samplers use. It
    follows the protocol of :mod:`sdegen.samplers.denoise`: a ``score_fn`` that offers
    ``data_prediction(t, x)`` (or else ``noise_prediction(t, x)``) is asked for it directly,
    without the round trip through the score; one call is one evaluation either way.
    """

    def __init__(
        self,
        score_fn: Callable[[Tensor, Tensor], Tensor],
        *,
        T: float,
        t_end: float,
        progress: bool = False,
    ) -> None:
        self.score_fn = score_fn
        self.nfe = 0
        #: index of the current step, set by samplers that own their loop (for error messages)
        self.step: int | None = None
        self._T = T
        self._bar = _progress_bar(T - t_end) if progress else None
        self._data = _method(score_fn, "data_prediction")
        self._noise = None if self._data is not None else _method(score_fn, "noise_prediction")

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        return self._checked(self.score_fn(t, x), t, x, "score_fn")

    def data_prediction(self, t: float, x: Tensor, alpha: float, sigma: float) -> Tensor:
        """x0_hat = E[x_0 | x_t = x] at the time ``t`` where the kernel is N(alpha x_0, sigma^2 I).

        The score function's own ``data_prediction`` when it has one; else (x - sigma eps_hat) /
        alpha from its ``noise_prediction``; else Tweedie's formula (x + sigma^2 score) / alpha.
        """
        tb = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        if self._data is not None:
            return self._checked(self._data(tb, x), tb, x, "score_fn.data_prediction")
        if self._noise is not None:
            eps = self._checked(self._noise(tb, x), tb, x, "score_fn.noise_prediction")
            return torch.add(x, eps, alpha=-sigma) / alpha
        return torch.add(x, self(tb, x), alpha=sigma * sigma) / alpha

    def _checked(self, out: Tensor, t: Tensor, x: Tensor, name: str) -> Tensor:
        self.nfe += 1
        check_score_output(out, x, name)
        # NaN and inf propagate through a sum, which costs a fraction of isfinite().all(); a sum
        # that merely overflows is told apart by the exact count.
        if not math.isfinite(float(out.sum(dtype=_accumulation_dtype(out.dtype)))):
            n_bad = int((~torch.isfinite(out)).sum())
            if n_bad:
                where = f"step {self.step}, " if self.step is not None else ""
                raise FloatingPointError(
                    f"{name} returned {n_bad} non-finite value(s) at t={float(t.reshape(-1)[0]):.6g} "
                    f"({where}score evaluation {self.nfe}); sampling stopped"
                )
        if self._bar is not None:
            done = self._T - float(t.reshape(-1)[0])
            if done > self._bar.n:
                self._bar.update(done - self._bar.n)
            self._bar.set_postfix_str(f"nfe={self.nfe}", refresh=False)
        return out

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _method(score_fn: object, name: str) -> Callable[[Tensor, Tensor], Tensor] | None:
    method = getattr(score_fn, name, None)
    return method if callable(method) else None


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype | None:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else None


def _progress_bar(total: float):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress=True needs tqdm; install it with `pip install sdegen[train]` or `pip install tqdm`"
        ) from None
    return tqdm(total=total, unit="t", bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}{postfix}]")
