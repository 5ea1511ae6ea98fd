"""Bring your own model: diffusers, k-diffusion/EDM and DDPM networks as sdegen score models.

Each adapter is one line and returns a :class:`~sdegen.parameterization.ScoreModel` on the SDE the
network was trained for, so every sampler, the exact likelihood, guidance and inverse problems work
on it as on a model sdegen trained itself (and ``model.sde`` is the SDE to pass them):

* :func:`from_diffusers` / :func:`from_pretrained`: a diffusers ``UNet2DModel`` (or any module called
  as ``model(sample, timestep[, class_labels]).sample``) with its scheduler config, on the
  :class:`~sdegen.DiscreteVPSDE` of the config's beta schedule; ``prediction_type`` ``epsilon``,
  ``v_prediction`` and ``sample`` become :class:`~sdegen.parameterization.NoisePrediction`,
  :class:`~sdegen.parameterization.VPrediction` and :class:`~sdegen.parameterization.DataPrediction`.
* :func:`from_denoiser`: a k-diffusion or EDM denoiser D(x, sigma) on EDM's VE SDE
  (:class:`~sdegen.EDMVESDE`), or on any linear SDE through the scaled variable x / alpha and noise
  level sigma / alpha (which is how k-diffusion's ``DiscreteEpsDDPMDenoiser`` sees a DDPM model).
* :func:`from_eps_model`: a plain noise-prediction network ``eps(x, timestep)`` of the DDPM codebases
  (Ho et al. 2020, Alg. 1-2), given its betas or alphas_cumprod.

**Time.** sdegen's samplers work in continuous time t; a discrete model's timestep is
k(t) = N t - 1 (``DiscreteVPSDE.t_to_timestep``, step k at t = (k + 1) / N), fractional
between the steps. The network was trained on k in [0, N - 1], t in [1/N, 1] (a denoiser on
[sigma_min, sigma_max]): every adapter refuses a time outside that range at its first evaluation,
before any sampler step is taken. The samplers stop by default at ``model.sde.sampling_eps`` = 1/N
(step 0), and :func:`sdegen.log_likelihood` starts there.

**Data space.** diffusers, k-diffusion and the DDPM codebases train on images scaled to [-1, 1]:
``logp`` of :func:`sdegen.log_likelihood` is then in nats of x in [-1, 1]^D (at t = eps, step 0), and
``bits_per_dim=Quantization(data_range=(-1.0, 1.0))`` turns it into bits/dim of the 8-bit images,
with dequantized input :func:`sdegen.dequantize` ``(..., data_range=(-1.0, 1.0))``.

**Class labels** pass through: a class-conditional network becomes a conditional ScoreModel
``model(t, x, y)`` (``model.given(y)``, :class:`~sdegen.ClassifierFreeGuidance`). Classifier-free
guidance needs a null label: by sdegen's convention the label C = ``n_classes``, so give
``n_classes`` = one less than the network's label count when its last label means "no class".

diffusers is imported only by :func:`from_pretrained` (``pip install sdegen[diffusers]``); the
adapters call the modules you give them and import nothing.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sdegen._broadcast import expand_like
from sdegen._checks import check_linear_sde, check_positive
from sdegen.parameterization import (
    DataPrediction,
    NoisePrediction,
    Parameterization,
    ScoreModel,
    VPrediction,
)
from sdegen.samplers.thresholding import Thresholded
from sdegen.sde.base import LinearSDE
from sdegen.sde.discrete_vp import DiscreteVPSDE
from sdegen.sde.edm_ve import EDMVESDE

__all__ = [
    "from_diffusers",
    "from_pretrained",
    "from_denoiser",
    "from_eps_model",
    "scheduler_thresholding",
    "ForeignNetwork",
]

#: diffusers' ``prediction_type`` values and the parameterisation each one is.
PREDICTION_TYPES: dict[str, type[Parameterization]] = {
    "epsilon": NoisePrediction,
    "v_prediction": VPrediction,
    "sample": DataPrediction,
}

# A time this far outside the trained range (in timesteps, or relative in sigma) is still inside:
# float32 rounding of t = (k + 1) / N.
_TIMESTEP_SLACK = 1e-3


class ForeignNetwork(nn.Module):
    """A network with another calling convention, as an sdegen network ``net(t, x[, y])``.

    Subclasses map (t, x, y) to the foreign call in ``call``; this base checks, at every
    evaluation, that t lies in the range the network was trained on (one host read of the times'
    extremes: a discrete model has no meaning between its last step and t = 0, and a silent
    extrapolation would make every sample and likelihood wrong) and that the output is shaped like
    the input. ``n_classes`` and ``null_label`` make the ScoreModel class-conditional.
    """

    def __init__(
        self,
        module: nn.Module | Callable[..., Any],
        sde: LinearSDE,
        *,
        n_classes: int | None = None,
        label_count: int | None = None,
    ) -> None:
        super().__init__()
        if not callable(module):
            raise TypeError(f"the model must be a callable torch module; got {type(module).__name__}")
        self.module = module
        self.sde = sde
        if n_classes is not None and (
            isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1
        ):
            raise ValueError(f"n_classes must be a positive int or None; got n_classes={n_classes!r}")
        if label_count is not None and n_classes is not None and n_classes > label_count:
            raise ValueError(
                f"n_classes={n_classes} exceeds the {label_count} class labels the network embeds; give "
                f"n_classes={label_count} (no null label) or {label_count - 1} (its last label is the null label)"
            )
        #: classes 0..C-1 of a class-conditional network (C its null label), else None
        self.n_classes = n_classes
        self._label_count = label_count

    # -- the foreign call ---------------------------------------------------------------------------
    def call(self, t: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
        raise NotImplementedError

    def time_range(self) -> tuple[float, float]:
        """[t_min, t_max]: the times at which the network was trained."""
        raise NotImplementedError

    def forward(self, t: Tensor, x: Tensor, y: Tensor | None = None) -> Tensor:
        self._check_times(t)
        if y is not None and self._label_count is not None and self.n_classes == self._label_count:
            self._check_no_null(y)
        out = self.call(t, x, y)
        if not torch.is_tensor(out) or out.shape != x.shape:
            got = f"shape {tuple(out.shape)}" if torch.is_tensor(out) else type(out).__name__
            raise ValueError(
                f"{type(self).__name__}: the model returned {got} for an input of shape {tuple(x.shape)}; "
                f"its output must be shaped like its input (one prediction per input entry)"
            )
        return out

    def _check_times(self, t: Tensor) -> None:
        lo, hi = self.time_range()
        t_min, t_max = torch.aminmax(t.detach()) if t.numel() > 1 else (t.detach(), t.detach())
        t_min, t_max = float(t_min), float(t_max)
        if t_min < lo * (1 - _TIMESTEP_SLACK) or t_max > hi * (1 + _TIMESTEP_SLACK):
            raise ValueError(
                f"the {self.what} was trained on {self.describe_range()}, but is evaluated at t in "
                f"[{t_min:.6g}, {t_max:.6g}] ({self.describe_times(t_min, t_max)}); evaluate it inside "
                f"that range: stop sampling at eps >= {lo:.6g} (the default, model.sde.sampling_eps) and "
                f"start the likelihood there (log_likelihood(..., eps={lo:.6g}))"
            )

    def _check_no_null(self, y: Tensor) -> None:
        if y.device.type == "cpu" and bool((y == self.n_classes).any()):
            raise ValueError(
                f"the label {self.n_classes} is sdegen's null label, but the network embeds only the "
                f"{self._label_count} labels 0..{self._label_count - 1}, none meaning 'no class': "
                f"classifier-free guidance needs a model trained with label dropout. If its last label "
                f"is the null label, pass n_classes={self._label_count - 1}"
            )

    what = "network"

    def describe_range(self) -> str:
        lo, hi = self.time_range()
        return f"t in [{lo:.6g}, {hi:.6g}]"

    def describe_times(self, t_min: float, t_max: float) -> str:
        return f"t in [{t_min:.6g}, {t_max:.6g}]"

    def extra_repr(self) -> str:
        classes = "" if self.n_classes is None else f", n_classes={self.n_classes}"
        return f"sde={self.sde!r}{classes}"


class _TimestepNetwork(ForeignNetwork):
    """A network on the integer timesteps k = 0..N-1 of a :class:`~sdegen.DiscreteVPSDE`."""

    sde: DiscreteVPSDE
    what = "discrete-time model"

    def time_range(self) -> tuple[float, float]:
        return 1.0 / self.sde.num_train_timesteps, 1.0

    def describe_range(self) -> str:
        n = self.sde.num_train_timesteps
        return f"the timesteps 0..{n - 1} (t = (k + 1) / N in [1/{n}, 1])"

    def describe_times(self, t_min: float, t_max: float) -> str:
        n = self.sde.num_train_timesteps
        return f"timesteps {n * t_min - 1:.4g}..{n * t_max - 1:.4g}"


class _DiffusersNetwork(_TimestepNetwork):
    """``model(sample, timestep, class_labels=y).sample`` at the fractional timestep k(t) = N t - 1."""

    what = "diffusers model"

    def __init__(self, module: nn.Module, sde: DiscreteVPSDE, *, split_variance: bool, **kwargs: Any) -> None:
        super().__init__(module, sde, **kwargs)
        self.split_variance = split_variance
        channels = _config(module).get("in_channels")
        if isinstance(channels, int):
            self.in_channels = channels  # what check_fits_model reads: x must be [B, C, H, W]

    def call(self, t: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
        k = self.sde.t_to_timestep(t)
        out = self.module(x, k) if y is None else self.module(x, k, class_labels=y)
        out = _sample_of(out)
        if self.split_variance and torch.is_tensor(out) and out.ndim >= 2 and out.shape[1] == 2 * x.shape[1]:
            out = out[:, : x.shape[1]]  # learned variance: [eps or x0 or v, variance], as diffusers splits
        return out


class _EpsNetwork(_TimestepNetwork):
    """``eps(x, timestep[, y])`` at k(t), fractional or (``quantize``) rounded to the nearest step."""

    def __init__(
        self, module: Callable[..., Tensor], sde: DiscreteVPSDE, *, quantize: bool, **kwargs: Any
    ) -> None:
        super().__init__(module, sde, **kwargs)
        self.quantize = quantize

    def call(self, t: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
        k = self.sde.t_to_timestep(t)
        if self.quantize:
            k = k.round().long()
        return self.module(x, k) if y is None else self.module(x, k, y)


class _DenoiserNetwork(ForeignNetwork):
    """D(x / alpha, sigma / alpha) of a denoiser D(x, sigma) trained on x = x_0 + sigma z."""

    what = "denoiser"

    def __init__(
        self,
        module: Callable[..., Tensor],
        sde: LinearSDE,
        *,
        sigma_min: float,
        sigma_max: float,
        label_keyword: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(module, sde, **kwargs)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.label_keyword = label_keyword
        # The times of sigma / alpha = sigma_min and sigma_max: lambda = -log(sigma / alpha).
        lam = torch.tensor([sigma_min, sigma_max], dtype=torch.float64).log().neg()
        self._range = tuple(float(v) for v in sde.inverse_log_snr(lam))

    def time_range(self) -> tuple[float, float]:
        return self._range

    def describe_range(self) -> str:
        return f"noise levels sigma in [{self.sigma_min:.6g}, {self.sigma_max:.6g}]"

    def describe_times(self, t_min: float, t_max: float) -> str:
        a, s = (
            self.sde.alpha(torch.tensor([t_min, t_max], dtype=torch.float64)),
            self.sde.sigma(torch.tensor([t_min, t_max], dtype=torch.float64)),
        )
        sig = (s / a).tolist()
        return f"sigma in [{sig[0]:.6g}, {sig[1]:.6g}]"

    def call(self, t: Tensor, x: Tensor, y: Tensor | None) -> Tensor:
        a, s = self.sde.alpha(t), self.sde.sigma(t)
        scaled, sigma = x / expand_like(a, x), s / a
        if y is None:
            return self.module(scaled, sigma)
        return self.module(scaled, sigma, **{self.label_keyword: y})


# -- diffusers ------------------------------------------------------------------------------------------
def from_diffusers(
    model: nn.Module,
    scheduler: Any,
    *,
    n_classes: int | None = None,
) -> ScoreModel:
    """A diffusers model and its scheduler (or scheduler config) as a ScoreModel on its DiscreteVPSDE.

    ``model`` is a ``UNet2DModel`` or any module called as ``model(sample, timestep[,
    class_labels=y])`` returning ``.sample``, a tuple or a tensor; ``scheduler`` is a diffusers
    scheduler, its ``.config``, or a ``scheduler_config.json`` read as a dict. The SDE is
    :meth:`DiscreteVPSDE.from_config` of that config (its beta schedule, as diffusers computes it);
    ``prediction_type`` chooses the parameterisation (``PREDICTION_TYPES``); the network is
    called at the fractional timestep k(t) = N t - 1. A config with ``variance_type`` ``learned``
    or ``learned_range`` (improved DDPM) uses the first half of the model's 2C output channels, as
    diffusers' schedulers do.

    **clip_sample and thresholding are not carried over.** In diffusers they are options of the
    scheduler's step, not of the model (``DDPMScheduler`` clips by default, the DPM-Solver and
    Euler schedulers do not), and they make the sampler inexact: a clipped x0_hat is no longer the
    model's E[x_0 | x_t]. The returned model is the network itself, exact for the likelihood; to
    sample as a clipping diffusers scheduler does, wrap it with :func:`scheduler_thresholding`.

    Args:
        model: the network.
        scheduler: its scheduler, or scheduler config.
        n_classes: C for a class-conditional model (default: the model's ``num_class_embeds``,
            which then has no null label); C = ``num_class_embeds - 1`` makes its last label the
            null label of classifier-free guidance.
    """
    config = _scheduler_config(scheduler)
    parameterization = _prediction_type(config)
    sde = DiscreteVPSDE.from_config(config)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module called as model(sample, timestep); got {type(model).__name__}"
        )
    unet = _config(model)
    learned = config.get("variance_type") in ("learned", "learned_range")
    cin, cout = unet.get("in_channels"), unet.get("out_channels")
    if isinstance(cin, int) and isinstance(cout, int) and cout != cin and not (learned and cout == 2 * cin):
        raise ValueError(
            f"the model maps {cin} input channels to {cout} output channels; an {config.get('prediction_type', 'epsilon')} "
            f"model's output is shaped like its input (a model with learned variance has 2 x {cin} output "
            f"channels and a scheduler config with variance_type 'learned_range')"
        )
    label_count = unet.get("num_class_embeds")
    if n_classes is None and isinstance(label_count, int):
        n_classes = label_count
    if n_classes is not None and label_count is None and unet:
        raise ValueError(
            f"n_classes={n_classes} given, but the model has no class embedding (num_class_embeds is None)"
        )
    net = _DiffusersNetwork(model, sde, split_variance=learned, n_classes=n_classes, label_count=label_count)
    net.scheduler_config = dict(config)
    return ScoreModel(net, sde, parameterization)


def from_pretrained(
    path: str | Path,
    *,
    scheduler: str | Path | Any | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    n_classes: int | None = None,
) -> ScoreModel:
    """:func:`from_diffusers` of a directory written by diffusers' ``save_pretrained``, offline.

    ``path`` is a pipeline directory (``model_index.json``, ``unet/``, ``scheduler/``), or a model
    directory (``config.json`` and weights) with ``scheduler`` its scheduler directory (holding
    ``scheduler_config.json``), a scheduler, or a config dict. Nothing is downloaded
    (``local_files_only=True``). The model is in eval mode, on ``device`` in ``dtype`` if given.
    Needs diffusers (``pip install sdegen[diffusers]``).
    """
    diffusers = _import_diffusers()
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} is not a directory written by save_pretrained")
    if (root / "model_index.json").is_file():
        model_dir = root / "unet"
        if scheduler is None:
            scheduler = root / "scheduler"
    elif (root / "config.json").is_file():
        model_dir = root
        if scheduler is None:
            raise ValueError(
                f"{str(root)!r} is a model directory without its scheduler: pass scheduler=DIR (the directory "
                f"of the scheduler's save_pretrained, with scheduler_config.json) or the pipeline directory"
            )
    else:
        raise FileNotFoundError(
            f"{str(root)!r} holds neither model_index.json (a pipeline) nor config.json (a model) written by "
            f"save_pretrained"
        )
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{str(model_dir / 'config.json')!r} does not exist: the pipeline has no unet/"
        )
    class_name = json.loads((model_dir / "config.json").read_text()).get("_class_name", "UNet2DModel")
    cls = getattr(diffusers, str(class_name), None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise ValueError(f"{str(model_dir)!r} holds a {class_name!r}, which is not a diffusers model class")
    _check_called_as_unet2d(cls)
    model = cls.from_pretrained(str(model_dir), local_files_only=True)
    model.eval()
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    if isinstance(scheduler, (str, Path)):
        scheduler = _read_scheduler_dir(Path(scheduler))
    return from_diffusers(model, scheduler, n_classes=n_classes).eval()


def scheduler_thresholding(
    model: ScoreModel, score_fn: Callable[[Tensor, Tensor], Tensor] | None = None
) -> Thresholded:
    """``score_fn`` (default: ``model``) with the clipping or dynamic thresholding that the
    scheduler config of a :func:`from_diffusers` model asks for, as diffusers' schedulers apply it.

    ``thresholding=True`` gives dynamic thresholding with ``dynamic_thresholding_ratio`` and
    ``sample_max_value``; otherwise ``clip_sample=True`` gives clipping to ``clip_sample_range``.
    Pass guidance built on the model as ``score_fn`` (diffusers thresholds the guided x0_hat). The
    result is not the score of a density (:class:`~sdegen.samplers.Thresholded`).
    """
    config = getattr(getattr(model, "net", None), "scheduler_config", None)
    if config is None:
        raise TypeError("model must be a ScoreModel made by sdegen.models.from_diffusers or from_pretrained")
    score_fn = model if score_fn is None else score_fn
    if config.get("thresholding"):
        return Thresholded(
            score_fn,
            model.sde,
            percentile=config.get("dynamic_thresholding_ratio", 0.995),
            max_value=config.get("sample_max_value", 1.0),
        )
    if config.get("clip_sample"):
        return Thresholded(score_fn, model.sde, clip=config.get("clip_sample_range", 1.0))
    raise ValueError(
        "the model's scheduler config sets neither thresholding nor clip_sample: there is nothing to apply; "
        "sample the model itself"
    )


# -- k-diffusion and EDM denoisers ----------------------------------------------------------------------
def from_denoiser(
    denoiser: nn.Module | Callable[..., Tensor],
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    sde: LinearSDE | None = None,
    n_classes: int | None = None,
    label_keyword: str = "class_labels",
) -> ScoreModel:
    """A denoiser D(x, sigma) ~ E[x_0 | x_0 + sigma z = x] as a ScoreModel predicting x_0.

    k-diffusion's ``Denoiser`` wrappers and EDM's ``EDMPrecond`` (Karras et al. 2022, eq. 7, with
    its sigma_data inside) are such denoisers. On the default SDE, :class:`~sdegen.EDMVESDE`
    ``(sigma_max)``, t is sigma and the model is D(x, t). On another linear SDE (e.g. the
    :class:`~sdegen.DiscreteVPSDE` of a DDPM model that k-diffusion's ``DiscreteEpsDDPMDenoiser``
    wraps) x_t = alpha (x_0 + (sigma / alpha) z), so the model is D(x / alpha, sigma / alpha)
    (Karras et al. 2022, eq. 4 and sec. 3). The network was trained on [sigma_min, sigma_max]:
    samplers stop at sigma_min by default on EDMVESDE (its ``sampling_eps`` = 0.002; pass ``eps=``
    otherwise) and the adapter refuses noise levels outside that range.

    Args:
        denoiser: D, called as ``D(x, sigma)`` with sigma ``[B]`` (and ``label_keyword=y`` if
            class-conditional).
        sigma_min: the smallest noise level it was trained on.
        sigma_max: the largest.
        sde: the SDE to run it on (default ``EDMVESDE(sigma_max)``).
        n_classes: C of a class-conditional denoiser (its label C the null label, if it has one).
        label_keyword: the keyword of the labels: ``class_labels`` (EDM), ``class_cond`` (k-diffusion).
    """
    sigma_min, sigma_max = check_positive("sigma_min", sigma_min), check_positive("sigma_max", sigma_max)
    if not sigma_min < sigma_max:
        raise ValueError(
            f"sigma_min must be < sigma_max; got sigma_min={sigma_min:g}, sigma_max={sigma_max:g}"
        )
    sde = EDMVESDE(sigma_max) if sde is None else sde
    check_linear_sde(sde, "from_denoiser")
    net = _DenoiserNetwork(
        denoiser,
        sde,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        label_keyword=label_keyword,
        n_classes=n_classes,
    )
    return ScoreModel(net, sde, DataPrediction())


# -- DDPM noise-prediction networks -------------------------------------------------------------------
def from_eps_model(
    eps: nn.Module | Callable[..., Tensor],
    *,
    betas: Tensor | None = None,
    alphas_cumprod: Tensor | None = None,
    n_classes: int | None = None,
    quantize: bool = False,
) -> ScoreModel:
    """A noise-prediction network eps(x, timestep) of Ho et al. 2020 (Alg. 1-2) as a ScoreModel.

    Exactly one of ``betas`` (beta_1..beta_N) and ``alphas_cumprod`` gives its N-step schedule; the
    model is on that :class:`~sdegen.DiscreteVPSDE`, predicting noise, and the network is called
    as ``eps(x, k)`` (``eps(x, k, y)`` if class-conditional) with the 0-based timestep
    k(t) = N t - 1, a float tensor ``[B]``, fractional between steps. A network that only takes
    integer timesteps (an embedding table) gets them with ``quantize=True``: k rounded to the
    nearest step, as k-diffusion's ``quantize``; the model is then piecewise constant in t, fine
    for samplers on grids of step times, but not a smooth probability-flow ODE for the likelihood.
    """
    if (betas is None) == (alphas_cumprod is None):
        raise ValueError("give exactly one of betas= and alphas_cumprod= (the network's N-step schedule)")
    sde = DiscreteVPSDE.from_betas(betas) if betas is not None else DiscreteVPSDE(alphas_cumprod)
    if not isinstance(quantize, bool):
        raise TypeError(f"quantize must be a bool; got {quantize!r}")
    net = _EpsNetwork(eps, sde, quantize=quantize, n_classes=n_classes)
    return ScoreModel(net, sde, NoisePrediction())


# -- helpers --------------------------------------------------------------------------------------------
def _import_diffusers():
    try:
        import diffusers
    except ImportError:
        raise ImportError(
            "loading a saved diffusers model needs diffusers: pip install sdegen[diffusers]"
        ) from None
    return diffusers


def _config(module: object) -> Mapping[str, Any]:
    config = getattr(module, "config", None)
    return config if isinstance(config, Mapping) else {}


def _sample_of(out: Any) -> Any:
    """The prediction in a diffusers output: ``.sample``, the first entry of a tuple, or the tensor."""
    if torch.is_tensor(out):
        return out
    sample = getattr(out, "sample", None)
    if torch.is_tensor(sample):
        return sample
    if isinstance(out, (tuple, list)) and out and torch.is_tensor(out[0]):
        return out[0]
    return out


def _scheduler_config(scheduler: Any) -> Mapping[str, Any]:
    config = scheduler if isinstance(scheduler, Mapping) else getattr(scheduler, "config", None)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"scheduler must be a diffusers scheduler, its .config, or a scheduler_config.json read as a dict; "
            f"got {type(scheduler).__name__}"
        )
    return config


def _prediction_type(config: Mapping[str, Any]) -> Parameterization:
    kind = config.get("prediction_type") or "epsilon"
    if kind not in PREDICTION_TYPES:
        raise ValueError(
            f"unknown prediction_type {kind!r} in the scheduler config; sdegen reads {sorted(PREDICTION_TYPES)}"
        )
    return PREDICTION_TYPES[kind]()


def _read_scheduler_dir(path: Path) -> dict[str, Any]:
    file = path / "scheduler_config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"{str(file)!r} does not exist: scheduler must be the directory of a scheduler's save_pretrained"
        )
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(file)!r} is not valid JSON ({e})") from None


def _check_called_as_unet2d(cls: type) -> None:
    """Refuse a model whose forward needs more than (sample, timestep[, class_labels])."""
    params = list(inspect.signature(cls.forward).parameters.values())[1:]
    required = [
        p.name
        for p in params[2:]
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        raise ValueError(
            f"{cls.__name__} needs {required} besides (sample, timestep): sdegen adapts unconditional and "
            f"class-conditional image models called as model(sample, timestep[, class_labels]), such as UNet2DModel"
        )
