"""Validation at the public boundary: errors name the argument, show the value and say what to do."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from sdegen.sde.base import SDE

__all__ = [
    "check_bool",
    "check_int",
    "check_seed",
    "check_sde",
    "check_score_fn",
    "check_same_sde",
    "common_sde",
    "same_sde",
    "check_sampling_dtype",
    "check_device",
    "check_real",
    "check_positive",
    "check_tensor",
    "check_batch_shape",
    "check_time",
    "all_finite",
    "check_finite",
    "check_decreasing_times",
    "check_linear_sde",
    "check_generator",
    "check_score_output",
    "check_output",
    "check_end_time",
    "check_class_labels",
]


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError`` naming ``name``.

    A flag is never coerced: ``denoise="no"`` is truthy and would silently mean True.
    """
    if not isinstance(value, bool):
        raise TypeError(
            f"{name} must be a bool (True or False); got {value!r} of type {type(value).__name__}"
        )
    return value


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """Return ``value`` as an int (>= ``minimum`` if given), or raise naming ``name``.

    Integers of any kind are taken (Python, NumPy, 0-d integer tensors: whatever implements
    ``__index__``); a float is refused even when integral-valued, and a bool is refused, since a
    size of 4.5 or True is a mistake, not a request to round.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {value!r}")
    try:
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int; got {value!r} of type {type(value).__name__}") from None
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {name}={out}")
    return out


#: Seeds lie in [0, 2^63): torch takes seeds below 2^64, and offsets added to a seed (one stream per
#: step, per repeat, per sample) stay below that.
SEED_LIMIT = 2**63


def check_seed(name: str, seed: object) -> int:
    """Return ``seed`` as an int in [0, 2^63), or raise naming ``name``."""
    seed = check_int(name, seed, 0)
    if seed >= SEED_LIMIT:
        raise ValueError(f"{name} must be < 2^63 = {SEED_LIMIT}; got {name}={seed}")
    return seed


def check_sde(sde: object, name: str = "sde") -> SDE:
    """Return ``sde`` if it is an :class:`sdegen.SDE`, else raise ``TypeError`` naming ``name``."""
    from sdegen.sde.base import SDE

    if not isinstance(sde, SDE):
        raise TypeError(f"{name} must be an sdegen.SDE (e.g. VPSDE()); got {type(sde).__name__}")
    return sde


def check_score_fn(fn: object, name: str = "score_fn", call: str = "(t, x)") -> object:
    """Return ``fn`` if it is callable, else raise ``TypeError`` saying how it is called."""
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {name}{call}; got {type(fn).__name__}")
    return fn


def check_density_input(x: object, purpose: str) -> None:
    """Raise unless ``x`` is a non-empty float32/float64 batch ``[B, ...]`` with a data dimension:
    what a log-density (``purpose``: "an exact likelihood", "a likelihood bound") is evaluated at."""
    check_batch_shape("x", x)
    if x.ndim < 2:
        raise ValueError(
            f"x must have shape [B, ...]: a batch of samples with at least one data dimension; got shape "
            f"{tuple(x.shape)}. For B one-dimensional points use x.unsqueeze(1), for one sample x.unsqueeze(0)"
        )
    check_nonempty("x", x)
    if x.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(
            f"x has dtype {x.dtype}: {purpose} needs float32 or float64 (half precision is off by up to "
            f"~1 nat); pass x.float() with a float32 model (autocast inside score_fn is fine)"
        )


def check_sampling_dtype(name: str, dtype: object) -> torch.dtype | None:
    """Return ``dtype`` (None or a floating ``torch.dtype``), or raise ``TypeError`` naming ``name``."""
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype such as torch.float32; got {dtype!r}")
    if not dtype.is_floating_point:
        raise TypeError(
            f"{name} must be a floating-point dtype (torch.float32 or torch.float64); got {dtype}: "
            f"samples are real numbers"
        )
    return dtype


def check_device(name: str, device: object) -> torch.device | None:
    """Return ``device`` as a ``torch.device`` (None stays None), or raise naming ``name`` if it is not
    a device name or is not available on this machine."""
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a torch.device or a name such as 'cpu' or 'cuda'; got {device!r}")
    try:
        out = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"{name}={device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from None
    available = {
        "cpu": True,
        "meta": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }.get(out.type, True)
    if not available:
        raise ValueError(f"{name}={device!r} but {out.type} is not available here; use 'cpu'")
    if out.type == "cuda" and out.index is not None and out.index >= torch.cuda.device_count():
        raise ValueError(f"{name}={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return out


# -- the SDE an object was built for -----------------------------------------------------------------
#
# Protocol: an object that knows the forward SDE whose marginals p_t it describes (a ScoreModel, a
# NoisyClassifier, an exact oracle's score, guidance) has an attribute ``sde``. A composite (guidance,
# a product of experts) sets its ``sde`` to the one its parts agree on (:func:`common_sde`, checked
# when it is built), so that one comparison at the entry point (:func:`check_same_sde`) covers it.

#: Times (as fractions of T) where two SDEs' kernels are compared.
_PROBES = torch.linspace(0.0, 1.0, 17, dtype=torch.float64)


def same_sde(a: SDE, b: SDE) -> bool:
    """Whether ``a`` and ``b`` define the same noising process (and so the same marginals p_t).

    Two :class:`~sdegen.sde.LinearSDE` are the same when they have the same T and the same kernel,
    alpha(t) and sigma(t)^2 equal to a relative 1e-6 at 17 times spread over [0, T]: a LinearSDE
    is its kernel, whatever its class or parameter names (``VPSDE()`` equals ``VPSDE(0.1, 20.0)``,
    ``VESDE(0.01, 50)`` differs from ``VESDE(0.01, 51)``). Where one is a general :class:`~sdegen.SDE`,
    g(t)^2 and the drift f(t, x) are compared at those times and 17 points x in [-2, 2] (an SDE
    whose drift cannot be evaluated there is not told apart from the other).
    """
    if a is b:
        return True
    from sdegen.sde.base import LinearSDE

    if not math.isclose(a.T, b.T, rel_tol=1e-9):
        return False
    t = _PROBES * a.T
    if isinstance(a, LinearSDE) and isinstance(b, LinearSDE):
        pairs = ((a.alpha(t), b.alpha(t)), (a.sigma_squared(t), b.sigma_squared(t)))
    else:
        try:
            x = torch.linspace(-2.0, 2.0, t.numel(), dtype=torch.float64)[:, None]
            pairs = ((a.diffusion_squared(t), b.diffusion_squared(t)), (a.drift(t, x), b.drift(t, x)))
        except Exception:  # a drift defined only on its own data shape: they cannot be told apart
            return True
    for u, v in pairs:
        u, v = torch.as_tensor(u, dtype=torch.float64), torch.as_tensor(v, dtype=torch.float64)
        scale = float(torch.maximum(u.abs(), v.abs()).max())
        if not torch.allclose(u, v, rtol=1e-6, atol=1e-12 * max(scale, 1e-300)):
            return False
    return True


def carried_sde(obj: object) -> SDE | None:
    """The SDE ``obj`` was built for (its attribute ``sde``, if that is an SDE), else None."""
    from sdegen.sde.base import SDE

    sde = getattr(obj, "sde", None)
    return sde if isinstance(sde, SDE) else None


def check_same_sde(sde: SDE, obj: object, name: str = "score_fn", where: str = "") -> None:
    """Raise ``ValueError`` if ``obj`` was built for an SDE other than ``sde`` (see :func:`same_sde`).

    A score model, a classifier or guidance describes the marginals p_t of its own SDE; used with
    another it gives a silently wrong answer (samples at |x| ~ 1e4, a wrong likelihood).
    """
    own = carried_sde(obj)
    if own is None or same_sde(own, sde):
        return
    at = f" {where}" if where else ""
    raise ValueError(
        f"{name} was built for {own!r}, but sde={sde!r}{at}: a score describes the marginals p_t of "
        f"its own SDE. Pass the SDE it was built for ({name}.sde), or rebuild it for {sde!r}."
    )


def common_sde(parts: Sequence[tuple[str, object]]) -> SDE | None:
    """The SDE the named parts of a composite agree on (None if none carries one), or raise
    ``ValueError`` naming the two parts that disagree."""
    first: tuple[str, SDE] | None = None
    for name, part in parts:
        sde = carried_sde(part)
        if sde is None:
            continue
        if first is None:
            first = (name, sde)
        elif not same_sde(first[1], sde):
            raise ValueError(
                f"{name} was built for {sde!r} but {first[0]} for {first[1]!r}: the parts of a "
                f"composite must describe the same noising process. Build both for one SDE."
            )
    return None if first is None else first[1]


def check_score_differentiable(
    score_fn: object, t: Tensor, x: Tensor, name: str = "score_fn", why: str = ""
) -> None:
    """Raise ``ValueError`` unless ``score_fn(t, x)`` has a gradient path to ``x``.

    One evaluation and one backward pass, for the methods that differentiate the score in x (the
    likelihood's divergence, reconstruction guidance): a score that detaches x, or runs under
    ``torch.no_grad()``, would make them silently wrong (a divergence of 0).
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = score_fn(t, xg)  # type: ignore[operator]
        check_score_output(out, xg, name)
        grad = None
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), xg, allow_unused=True)
    if grad is None:
        need = f" {why.strip()}" if why else " the method"
        raise ValueError(
            f"{name}'s output has no gradient path to x (it does not depend differentiably on x): it "
            f"detaches x (x.detach(), .item(), numpy) or "
            f"runs under torch.no_grad(), but{need} differentiates the score in x, so the result would be "
            f"silently wrong. Compute the score from x with torch operations (a score constant in x: "
            f"0 * x)."
        )


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


def check_end_time(name: str, value: object, T: float, why: str) -> float:
    """Return ``value`` as a float in the open interval (0, T), or raise saying ``why`` it must be.

    The end time of a likelihood, a bound or a loss: t = 0 is excluded because the score (or the
    loss) is singular there, and T because the integral from ``value`` to T would be empty.
    """
    value = check_real(name, value)
    if not 0.0 < value < T:
        raise ValueError(f"{name} must lie in (0, T) = (0, {T:g}): {why}; got {name}={value:.6g}")
    return value


def check_output(
    name: str,
    value: object,
    what: str,
    shapes: Sequence[tuple[int, ...]],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
    floating: bool = False,
) -> Tensor:
    """Return what a user's callable ``name`` returned if it is a tensor of one of ``shapes`` (and of
    ``dtype``, on ``device``, of a floating-point dtype when asked), else raise ``ValueError``
    ``"{name} must return {what}; got ..."``.

    No device synchronisation: shape, dtype and device are metadata. (A score's output, which must be
    shaped like x, has its own check with its own advice: :func:`check_score_output`.)
    """
    if (
        not torch.is_tensor(value)
        or tuple(value.shape) not in [tuple(s) for s in shapes]
        or (dtype is not None and value.dtype != dtype)
        or (device is not None and value.device != device)
        or (floating and not value.is_floating_point())
    ):
        got = (
            f"shape {tuple(value.shape)}, dtype {value.dtype}, device {value.device}"
            if torch.is_tensor(value)
            else f"a {type(value).__name__}"
        )
        raise ValueError(f"{name} must return {what}; got {got}")
    return value


def check_whole_batch_draw(n: object, generator: object, device: object) -> tuple[int, torch.device]:
    """The arguments of a distribution's ``sample(n, generator, device=...)``: ``n`` as a count,
    ``generator`` as one stream for the whole batch (None or a ``torch.Generator``), and the device
    to draw on (``device``, else the generator's, else the CPU)."""
    from sdegen.random import check_whole_batch_generator

    n = check_steps("n", n)
    check_whole_batch_generator(generator)
    if device is None:
        device = generator.device if generator is not None else "cpu"
    return n, torch.device(device)


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


def all_finite(x: Tensor) -> bool:
    """Whether ``x`` holds no NaN or infinity (one host read)."""
    # NaN and inf propagate through a sum, a reduction 20x cheaper than isfinite().all() (0.2 against
    # 3.5 ms at 5000 x 256 on one CPU thread); only a sum that is not finite (or merely overflows)
    # is looked at element by element.
    total = x.sum(dtype=torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else None)
    return math.isfinite(float(total)) or bool(torch.isfinite(x).all())


def check_finite(name: str, x: Tensor, where: str = "") -> None:
    """Raise ``FloatingPointError`` if ``x`` holds NaN or infinity (a numerical failure, not bad input)."""
    if not all_finite(x):
        n_bad = int((~torch.isfinite(x)).sum())
        suffix = f" {where}" if where else ""
        raise FloatingPointError(f"{name} has {n_bad} non-finite value(s){suffix}")


def check_shape_tuple(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of positive ints, or raise naming ``name`` (a float size such as
    4.5 is refused, never truncated)."""
    if isinstance(shape, (int, bool)) or (torch.is_tensor(shape) and shape.ndim == 0):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, torch.Size, Tensor)):
        raise TypeError(f"{name} must be a sequence of ints like (B, d); got {shape!r}")
    out = []
    for i, s in enumerate(shape):
        if isinstance(s, bool):
            raise TypeError(f"{name} must be a sequence of ints like (B, d); got {name}[{i}]={s!r}")
        try:
            out.append(operator.index(s))
        except TypeError:
            raise TypeError(
                f"{name} must be a sequence of ints like (B, d); got {name}[{i}]={s!r} of type "
                f"{type(s).__name__} in {shape!r}"
            ) from None
    if len(out) == 0 or any(s <= 0 for s in out):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints like (B, d); got {shape!r}")
    return tuple(out)


def check_steps(name: str, n: object, minimum: int = 1) -> int:
    """Return ``n`` as an int >= ``minimum``, or raise naming ``name``."""
    return check_int(name, n, minimum)


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
    # The range first: a time outside [lower, T] is the fault even when it also breaks the order.
    slack = 1e-6 * max(1.0, abs(T))
    for i, v in enumerate(values):
        if v > T + slack or v < lower - slack:
            raise ValueError(f"{name} must lie in [{lower:.6g}, {T:.6g}]; got a time {v:.6g} ({name}[{i}])")
    for i, (a, b) in enumerate(zip(values[:-1], values[1:], strict=True)):
        if not a > b:
            raise ValueError(
                f"{name} must be strictly decreasing (from T towards the end time); got "
                f"{name}[{i}]={a:.6g} <= {name}[{i + 1}]={b:.6g}"
            )
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
    """Raise ``ValueError`` unless ``score`` is a tensor shaped, typed and placed like ``x``.

    No device synchronisation: shape, dtype and device are metadata. Every evaluation of a score
    (a sampler's, and each part of a composite's) is checked this way.
    """
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
    if score.device != x.device:
        raise ValueError(
            f"{name} must return a tensor on x's device {x.device}; got one on {score.device}. Move the "
            f"model (or its output) to {x.device}, or x to {score.device}."
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


def check_class_labels(
    name: str,
    y: object,
    batch: int | None,
    n_labels: int | None,
    *,
    meaning: str = "",
    device: torch.device | str | None = None,
) -> Tensor:
    """Return ``y`` as int64 class labels in 0..n_labels-1, or raise naming ``name``: the one label check.

    ``y`` is an int, a 0-d or 1-d integer tensor, or (for ``batch=None``) a sequence of ints. With
    ``batch`` given the result has shape ``[batch]`` (an int or a 0-d tensor is broadcast); with
    ``batch=None`` an int gives a 0-d tensor and a sequence or 1-d tensor keeps its length.
    ``n_labels=None`` only requires labels >= 0 (a data set's labels, which define the classes).
    ``meaning`` says what the labels are, for the message (e.g. "classes 0..9 and the null label 10").

    Device policy: the labels are moved to ``device`` when given (a data batch's or a sample's
    device), wherever they came from; else they stay where they are. The range is read only from
    labels that start on the CPU: reading it from an accelerator would synchronise the device at
    every training step, and the labels of sdegen's data sources are in range by construction.
    """
    what = meaning or ("class labels >= 0" if n_labels is None else f"class labels in 0..{n_labels - 1}")
    one = f"one of the {meaning}" if meaning else f"a class label in 0..{(n_labels or 0) - 1}"
    expected = f"an int class label or an int64 tensor [{'B' if batch is None else batch}] of {what}"
    if isinstance(y, bool):
        raise TypeError(f"{name} must be {expected}; got {y!r}")
    if not torch.is_tensor(y):
        if isinstance(y, (str, bytes)):
            raise TypeError(f"{name} must be {expected}; got {y!r}")
        try:
            value = operator.index(y)  # type: ignore[arg-type]
            y = torch.tensor(value, dtype=torch.int64)
        except TypeError:
            if batch is not None or not isinstance(y, Sequence):
                raise TypeError(f"{name} must be {expected}; got {type(y).__name__}") from None
            values = list(y)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise TypeError(f"{name} must be a sequence of int labels ({what}); got {values!r}") from None
            y = torch.tensor(values, dtype=torch.int64)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(
            f"{name} must be integers: integer labels, {what}; got dtype {y.dtype}. Use {name}.long()."
        )
    if batch is not None:
        if y.ndim == 0:
            y = y.expand(batch)
        if tuple(y.shape) != (batch,):
            raise ValueError(
                f"{name} must hold one label per example, shape [{batch}]; got shape {tuple(y.shape)}"
            )
    elif y.ndim > 1:
        raise ValueError(f"{name} must be an int or a 1-D tensor [B] of labels; got shape {tuple(y.shape)}")
    if y.device.type == "cpu" and y.numel():
        flat = y.reshape(-1)
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or (n_labels is not None and hi >= n_labels):
            bad = lo if lo < 0 else hi
            if y.ndim == 0 or (batch is not None and bool((flat == bad).all())):
                raise ValueError(f"{name} must be {one}; got {name}={bad}")
            i = int((flat == bad).nonzero()[0])
            raise ValueError(f"{name} must hold {what}; got {name}[{i}]={bad}")
    y = y.detach().to(torch.int64)
    return y if device is None else y.to(device)
