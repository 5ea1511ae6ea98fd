"""Validation at the public boundary: errors name the argument, show the value and say what to do."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_real",
    "check_positive",
    "check_tensor",
    "check_batch_shape",
    "check_time",
    "check_finite",
    "check_decreasing_times",
    "check_linear_sde",
    "check_generator",
    "check_score_output",
]


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float, or raise ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if torch.is_tensor(value) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number; got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {name}={value}")
    return value


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a finite float > 0, or raise naming ``name``."""
    value = check_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {name}={value:.6g}")
    return value


def check_tensor(name: str, value: object) -> Tensor:
    """Raise ``TypeError`` unless ``value`` is a floating-point tensor."""
    if not torch.is_tensor(value):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor; got dtype {value.dtype}. "
            f"Convert it with {name}.float() or {name}.double()."
        )
    return value


def check_batch_shape(name: str, x: Tensor, min_ndim: int = 1) -> Tensor:
    """Raise ``ValueError`` unless ``x`` has a leading batch dimension (shape ``[B, ...]``)."""
    check_tensor(name, x)
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have shape [B, ...] with a leading batch dimension; got shape "
            f"{tuple(x.shape)}. Add one with {name}.unsqueeze(0)."
        )
    return x


def check_time(
    t: float | Tensor, T: float, batch_size: int | None = None, *, name: str = "t", lower: float = 0.0
) -> None:
    """Check that ``t`` lies in ``[lower, T]``, is not NaN, and is a scalar or a ``[B]`` vector."""
    if torch.is_tensor(t):
        if t.ndim > 1 or (batch_size is not None and t.ndim == 1 and t.shape[0] != batch_size):
            expected = f"[{batch_size}]" if batch_size is not None else "[B]"
            raise ValueError(
                f"{name} must be a scalar or have shape {expected} (one time per sample); "
                f"got shape {tuple(t.shape)}"
            )
        if t.numel() == 0:
            return
        lo, hi = float(t.detach().min()), float(t.detach().max())
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"{name} contains NaN; times must lie in [{lower:.6g}, {T:.6g}]")
    else:
        lo = hi = check_real(name, t)
    # One ulp of float32 slack so that t = T computed in float32 is accepted.
    slack = 1e-6 * max(1.0, abs(T))
    if lo < lower - slack or hi > T + slack:
        bad = lo if lo < lower - slack else hi
        raise ValueError(f"{name} must lie in [{lower:.6g}, {T:.6g}]; got {name}={bad:.6g}")


def check_finite(name: str, x: Tensor, where: str = "") -> None:
    """Raise ``FloatingPointError`` if ``x`` holds NaN or infinity (a numerical failure, not bad input)."""
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        suffix = f" {where}" if where else ""
        raise FloatingPointError(f"{name} has {n_bad} non-finite value(s){suffix}")


def check_shape_tuple(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of positive ints, or raise naming ``name``."""
    if isinstance(shape, int):
        shape = (shape,)
    try:
        if isinstance(shape, (str, bytes)):
            raise TypeError
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of ints like (B, d); got {shape!r}") from None
    if len(out) == 0 or any(s <= 0 for s in out):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints like (B, d); got {shape!r}")
    return out


def check_steps(name: str, n: object, minimum: int = 1) -> int:
    """Return ``n`` as an int >= ``minimum``, or raise naming ``name``."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int; got {n!r} of type {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {name}={n}")
    return n


def check_decreasing_times(name: str, ts: object, T: float, *, lower: float = 0.0) -> Tensor:
    """Return ``ts`` as a 1-D tensor of at least two times, strictly decreasing, within [lower, T].

    A sequence of numbers becomes a float64 tensor; a tensor keeps its dtype and device.
    """
    if isinstance(ts, str):
        raise TypeError(f"{name} must be a 1-D tensor or a sequence of floats; got {ts!r}")
    if not torch.is_tensor(ts):
        try:
            ts = torch.tensor([float(v) for v in ts], dtype=torch.float64)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a 1-D tensor or a sequence of floats; got {ts!r}") from None
    if not ts.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {ts.dtype}")
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-D tensor of at least 2 times; got shape {tuple(ts.shape)}")
    values = ts.detach().cpu().double().tolist()
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite; got {name}={values}")
    for i, (a, b) in enumerate(zip(values[:-1], values[1:], strict=True)):
        if not a > b:
            raise ValueError(
                f"{name} must be strictly decreasing (from T towards the end time); got "
                f"{name}[{i}]={a:.6g} <= {name}[{i + 1}]={b:.6g}"
            )
    slack = 1e-6 * max(1.0, abs(T))
    if values[0] > T + slack or values[-1] < lower - slack:
        bad = values[0] if values[0] > T + slack else values[-1]
        raise ValueError(f"{name} must lie in [{lower:.6g}, {T:.6g}]; got a time {bad:.6g}")
    return ts


def check_linear_sde(sde: object, who: str, instead: str = "") -> None:
    """Raise ``TypeError`` unless ``sde`` is a LinearSDE, saying that ``who`` needs its Gaussian kernel."""
    from sdegen.sde.base import LinearSDE

    if not isinstance(sde, LinearSDE):
        advice = f" {instead}" if instead else ""
        raise TypeError(
            f"{who} needs the Gaussian transition kernel of a LinearSDE (alpha(t), sigma(t)); "
            f"got {type(sde).__name__}.{advice}"
        )


def check_generator(generator: object, like: Tensor | None = None, like_name: str = "") -> None:
    """Raise unless ``generator`` is None, a ``torch.Generator`` or an :class:`sdegen.random.BatchGenerator`
    (on the device of ``like`` and, for a batch generator, with one entry per sample of ``like``)."""
    from sdegen.random import check_generator as check

    check(generator, like, like_name)


def check_score_output(score: object, x: Tensor, name: str = "score_fn") -> None:
    """Raise ``ValueError`` unless ``score`` is a tensor shaped and typed like ``x`` (no device sync)."""
    if not torch.is_tensor(score) or score.shape != x.shape or score.dtype != x.dtype:
        got = (
            f"shape {tuple(score.shape)}, dtype {score.dtype}"
            if torch.is_tensor(score)
            else type(score).__name__
        )
        raise ValueError(
            f"{name} must return a tensor shaped and typed like x (shape {tuple(x.shape)}, dtype "
            f"{x.dtype}); got {got}"
        )


def check_fits_model(name: str, x: Tensor, model: object, *, takes_labels: bool = False) -> None:
    """Raise unless ``x`` can go into ``model`` (a ``score_fn`` or a loss's model), before any work.

    For an ``nn.Module``: ``x`` must have the dtype and device of its floating parameters, and the
    sample shape its network declares (``data_shape`` of an MLP, ``in_channels`` of a U-Net), so a
    mismatch is named here instead of surfacing as a matmul error deep inside torch. Unless the
    caller passes labels (``takes_labels``, a loss or a trainer), a class-conditional model is
    refused: a sampler or the likelihood calls ``score_fn(t, x)``, which such a model cannot answer.
    """
    if not isinstance(model, torch.nn.Module):
        return
    if not takes_labels and getattr(model, "is_conditional", False) is True:
        raise TypeError(
            f"score_fn is a class-conditional model (n_classes={model.n_classes}), called here as "
            f"score_fn(t, x) without a label: pass model.given(y) for class y (model.given("
            f"{model.null_label}) for the unconditional model) or ClassifierFreeGuidance(model, y, w)"
        )
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is not None:
        if param.dtype != x.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the model's parameters are {param.dtype}; convert one "
                f"of them, e.g. {name}.to({param.dtype}) or model.to({x.dtype})"
            )
        if param.device.type != x.device.type:
            raise ValueError(
                f"{name} is on {x.device} but the model is on {param.device}; move one of them, e.g. "
                f"{name}.to({str(param.device)!r})"
            )
    net = getattr(model, "net", model)
    data_shape = getattr(net, "data_shape", None)
    if data_shape is not None and tuple(x.shape[1:]) != tuple(data_shape):
        raise ValueError(
            f"{name} has samples of shape {tuple(x.shape[1:])} (shape {tuple(x.shape)}) but the model's "
            f"network takes samples of shape {tuple(data_shape)}"
        )
    channels = getattr(net, "in_channels", None)
    if isinstance(channels, int) and (x.ndim != 4 or x.shape[1] != channels):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but the model's network takes images [B, {channels}, H, W]"
        )


def check_nonempty(name: str, x: Tensor) -> Tensor:
    """Raise ``ValueError`` unless ``x`` holds at least one sample with at least one entry."""
    if x.ndim == 0 or x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(
            f"{name} must hold at least one sample with at least one entry; got shape {tuple(x.shape)}"
        )
    return x


def check_class_labels(name: str, y: object, batch: int, n_labels: int, *, meaning: str = "") -> Tensor:
    """Return ``y`` as an int64 ``[batch]`` tensor of labels in 0..n_labels-1, or raise naming ``name``.

    An int is broadcast to the batch. The range is read only from labels on the CPU: reading it
    from an accelerator would synchronise the device at every training step, and the labels of
    sdegen's data sources are in range by construction. ``meaning`` says what the labels are, for
    the message (e.g. "classes 0..9 and the null label 10").
    """
    what = meaning or f"labels in 0..{n_labels - 1}"
    if isinstance(y, bool):
        raise TypeError(f"{name} must be an int label or an int64 tensor [B] of {what}; got {y!r}")
    if isinstance(y, int):
        if not 0 <= y < n_labels:
            raise ValueError(f"{name} must be one of the {what}; got {name}={y}")
        return torch.full((batch,), y, dtype=torch.int64)
    if not torch.is_tensor(y):
        raise TypeError(
            f"{name} must be an int label or an int64 tensor [B] of {what}; got {type(y).__name__}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels ({what}); got dtype {y.dtype}. Use {name}.long().")
    if y.ndim == 0:
        y = y.expand(batch)
    if tuple(y.shape) != (batch,):
        raise ValueError(
            f"{name} must hold one label per sample, shape [{batch}]; got shape {tuple(y.shape)}"
        )
    if y.device.type == "cpu" and y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_labels:
            bad = lo if lo < 0 else hi
            i = int((y == bad).nonzero()[0])
            raise ValueError(f"{name} must hold {what}; got {name}[{i}]={bad}")
    return y.to(torch.int64)
