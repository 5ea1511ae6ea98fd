"""A VP SDE defined by the N-step table alphas_cumprod of a discrete-time diffusion model (DDPM, diffusers)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from sdegen._checks import check_positive, check_real, check_steps
from sdegen.sde.vp import DDPMSchedule, VariancePreserving

__all__ = ["DiscreteVPSDE"]

F64 = torch.float64

#: The beta schedules of diffusers' schedulers that :meth:`DiscreteVPSDE.from_beta_schedule` builds.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")

# The scheduler config keys that define the table, and the values of the options that change it
# that this class does not reproduce.
_UNSUPPORTED_OPTIONS = {
    "rescale_betas_zero_snr": False,  # alphas_cumprod[-1] = 0: lambda(T) = -inf, no Gaussian prior
    "use_flow_sigmas": False,  # a flow-matching schedule, not a VP table
}


class DiscreteVPSDE(VariancePreserving):
    """The variance-preserving SDE whose kernel at the N step times is a discrete table alphas_cumprod.

    A discrete-time model (DDPM, Ho et al. 2020; every diffusers ``UNet2DModel`` with a DDPM-type
    scheduler) is trained on x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) z at the integer timesteps
    k = 0..N-1, abar_k = prod_{i <= k} (1 - beta_i). This class places step k at

        t_k = (k + 1) / N,   so that t_{N-1} = T = 1 and alpha(t_k)^2 = abar_k exactly,

    and interpolates L(t) = log alpha(t)^2 between the knots t_j = j / N, j = 0..N, with L_0 = 0 at
    t = 0 (the data) and L_{j+1} = log abar_j, by a **monotone C^1 cubic Hermite spline**: with
    u = N t = j + s, s in [0, 1], on segment j,

        L = h00(s) L_j + h10(s) D_j + h01(s) L_{j+1} + h11(s) D_{j+1},
        alpha^2 = e^L,   sigma^2 = 1 - e^L,   a(t) = (1/2) dL/dt,   g(t)^2 = -dL/dt,

    (h the cubic Hermite basis; the last two are the VP identities g^2 = d sigma^2/dt - 2 a sigma^2
    = beta(t)). The knot slopes D_j (per unit u) are the central differences (S_{j-1} + S_j) / 2
    of the secants S_j = L_{j+1} - L_j, one-sided (3 S_0 - S_1) / 2 and (3 S_{N-1} - S_{N-2}) / 2 at
    the ends, so that a table sampled from a smooth schedule is reproduced to O(1/N^3) (a
    quadratic L, the linear-beta VP SDE, exactly); each D_j is then limited to D_j / S <= 2 for
    both adjacent secants (and D / S >= 1/10 at the two ends, where the one-sided difference could
    change sign). With both ratios in (0, 2] the cubic's slope keeps the secant's sign on the whole
    segment (inside Fritsch and Carlson's 1980 monotonicity region, away from its boundary), so L
    strictly decreases and g^2 > 0 everywhere, with g^2 continuous. Why not piecewise linear (in log
    alpha-bar, as DPM-Solver's discrete ``NoiseScheduleVP``, or in lambda, as k-diffusion's
    ``DiscreteSchedule`` in log sigma): it makes g^2 jump at each of the N knots, and an adaptive
    ODE solver in t (the likelihood) must then resolve every jump: on a 100-step linear table with
    the exact score of a 2-D mixture, dopri5 at rtol = atol = 1e-5 took 410 evaluations for an
    error of 1.1e-2 nats (8078 and 1.6e-3 at 1e-7); with this spline it takes 80 (2.0e-5 nats), and
    on a 1000-step table 74 (2.4e-5), as many as on the continuous VP SDE it was sampled from. The first segment [0, 1/N] is the
    same spline (sigma^2 ~ -N D_0 t near 0, as for any VP SDE), where an interpolation linear in
    the log-SNR could not reach lambda(0) = +inf. Any interpolation exact at the knots has the same
    transitions between step times: from t_{k-1} to t_k the kernel is x_k = sqrt(1 - beta_k) x_{k-1}
    + sqrt(beta_k) z, the model's own chain; between step times the schedules differ only inside a
    step.

    The log-SNR is lambda = (L - log(1 - e^L)) / 2; its inverse takes L = -softplus(-2 lambda),
    the segment by a binary search, and the root of the monotone cubic on it by safeguarded Newton
    iterations (to float64 rounding). The prior is N(0, I) as for DDPM and diffusers (the true p_T
    has sigma(T)^2 = 1 - abar_{N-1}). Samplers stop by default at ``sampling_eps = 1/N``, the time
    of step 0, the smallest noise level the network was trained on. The network's (fractional)
    timestep of a time t is :meth:`t_to_timestep`: N t - 1.

    The table is kept in float64 on the CPU (and copied once per device it is used on); all
    schedule functions compute in float64 and return the dtype of ``t``.

    Args:
        alphas_cumprod: abar_k, k = 0..N-1: N >= 2 values in (0, 1), strictly decreasing.

    Attributes:
        alphas_cumprod: the table, float64 [N].
        num_train_timesteps: N.
    """

    def __init__(self, alphas_cumprod: Tensor | Sequence[float]) -> None:
        super().__init__(1.0)
        abar = _check_alphas_cumprod(alphas_cumprod)
        self.alphas_cumprod = abar
        self.num_train_timesteps = len(abar)
        #: samplers stop by default at step 0, t = 1/N
        self.sampling_eps = 1.0 / self.num_train_timesteps
        #: log_likelihood starts there too: a discrete model's density is that of its step 0
        self.likelihood_eps = self.sampling_eps
        knots = torch.cat([torch.zeros(1, dtype=F64), torch.log(abar)])  # L_j at t = j / N, j = 0..N
        slopes = knots[1:] - knots[:-1]  # L_{j+1} - L_j, per unit of u = N t
        bad = (~(slopes < 0)).nonzero().reshape(-1)
        if len(bad):
            k = int(bad[0])
            raise ValueError(
                f"alphas_cumprod must decrease strictly in log; log alphas_cumprod[{k}] does not decrease "
                f"from the step before it ({float(abar[k]):.17g}). Remove the repeated step."
            )
        self._tables: dict[torch.device, tuple[Tensor, Tensor]] = {
            torch.device("cpu"): (knots, _knot_slopes(slopes))
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_train_timesteps={self.num_train_timesteps}, "
            f"alphas_cumprod[-1]={float(self.alphas_cumprod[-1]):.4g})"
        )

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_betas(cls, betas: Tensor | Sequence[float]) -> DiscreteVPSDE:
        """The SDE of the chain with step variances beta_k: abar_k = prod_{i <= k} (1 - beta_i).

        The product is taken in the dtype of ``betas`` (a float32 tensor gives diffusers'
        float32 table bit for bit; Python floats are float64), then kept in float64.
        """
        b = _as_1d("betas", betas)
        if not bool(((b > 0) & (b < 1)).all()):
            k = int((~((b > 0) & (b < 1))).nonzero()[0])
            raise ValueError(f"betas must lie in (0, 1); got betas[{k}]={float(b[k]):.6g}")
        return cls(torch.cumprod(1.0 - b, dim=0))

    @classmethod
    def from_beta_schedule(
        cls,
        name: str,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> DiscreteVPSDE:
        """The table of one of diffusers' beta schedules, as its schedulers compute it.

        * ``"linear"``: beta_k = linspace(beta_start, beta_end, N) (Ho et al. 2020);
        * ``"scaled_linear"``: beta_k = linspace(sqrt(beta_start), sqrt(beta_end), N)^2 (Stable
          Diffusion's schedule);
        * ``"squaredcos_cap_v2"``: beta_k = min(1 - abar(t_{k+1}) / abar(t_k), 0.999) with
          abar(t) = cos^2((t + 0.008) / 1.008 pi/2), t_k = k / N (Nichol and Dhariwal 2021, eq. 17;
          ``beta_start`` and ``beta_end`` are unused).

        ``dtype`` is the precision of the arithmetic: float32 (the default) is diffusers' own,
        so the table is the one its models were trained with, bit for bit; float64 gives the
        schedule to float64 rounding.
        """
        N = check_steps("num_train_timesteps", num_train_timesteps, minimum=2)
        beta_start = check_positive("beta_start", beta_start)
        beta_end = check_positive("beta_end", beta_end)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64; got dtype={dtype!r}")
        if name == "linear":
            betas = torch.linspace(beta_start, beta_end, N, dtype=dtype)
        elif name == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, N, dtype=dtype) ** 2
        elif name == "squaredcos_cap_v2":
            f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
            values = [min(1 - f((k + 1) / N) / f(k / N), 0.999) for k in range(N)]
            betas = torch.tensor(values, dtype=dtype)
        else:
            raise ValueError(
                f"unknown beta schedule {name!r}; known: {', '.join(map(repr, BETA_SCHEDULES))}. For another "
                f"schedule pass its betas to DiscreteVPSDE.from_betas(betas) or its alphas_cumprod to "
                f"DiscreteVPSDE(alphas_cumprod)."
            )
        if name != "squaredcos_cap_v2" and not beta_end > beta_start:
            raise ValueError(
                f"beta_end must be > beta_start; got beta_start={beta_start:.6g}, beta_end={beta_end:.6g}"
            )
        return cls.from_betas(betas)

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> DiscreteVPSDE:
        """The SDE of a diffusers scheduler config (``scheduler.config``, or a saved
        ``scheduler_config.json`` read as a dict), computed as diffusers does (float32).

        Reads ``trained_betas`` or ``beta_schedule`` with ``num_train_timesteps``, ``beta_start``
        and ``beta_end`` (diffusers' defaults 1000, 1e-4 and 0.02 where absent). Refuses, before
        any work, a config without a beta schedule (e.g. a flow-matching or EDM scheduler),
        an unknown schedule, and ``rescale_betas_zero_snr=True`` (abar_{N-1} = 0: the log-SNR is
        -inf at T and there is no Gaussian prior). Other keys (``prediction_type``,
        ``timestep_spacing``, ...) concern the model and the sampler, not the SDE.
        """
        if not isinstance(config, Mapping):
            raise TypeError(
                f"config must be a diffusers scheduler config (a dict, e.g. scheduler.config); got "
                f"{type(config).__name__}"
            )
        where = f"scheduler config{_class_of(config)}"
        for key, supported in _UNSUPPORTED_OPTIONS.items():
            if key in config and config[key] not in (None, supported):
                raise ValueError(
                    f"{where} sets {key}={config[key]!r}, which DiscreteVPSDE does not support "
                    f"({'it makes alphas_cumprod[-1] = 0, so lambda(T) = -inf and there is no Gaussian prior' if key == 'rescale_betas_zero_snr' else 'it is a flow-matching schedule, not a VP table'})."
                )
        trained = config.get("trained_betas")
        if trained is not None:
            return cls.from_betas(torch.tensor(trained, dtype=torch.float32))
        name = config.get("beta_schedule")
        if name is None:
            raise ValueError(
                f"{where} has no beta schedule (neither 'beta_schedule' nor 'trained_betas'), so it does not "
                f"define a discrete VP table; keys: {sorted(config)}. DiscreteVPSDE needs a DDPM-type "
                f"scheduler config (DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, ...)."
            )
        if name not in BETA_SCHEDULES:
            raise ValueError(
                f"{where} has beta_schedule={name!r}, which DiscreteVPSDE does not support; supported: "
                f"{', '.join(map(repr, BETA_SCHEDULES))}, or 'trained_betas'."
            )
        return cls.from_beta_schedule(
            name,
            config.get("num_train_timesteps") or 1000,
            _config_value(config, "beta_start", 0.0001),
            _config_value(config, "beta_end", 0.02),
        )

    # -- the map between continuous time and the network's timestep ----------------------------
    def t_to_timestep(self, t: Tensor) -> Tensor:
        """The (fractional) timestep k(t) = N t - 1 of time t: step k sits at t = (k + 1) / N.

        Unchecked (it is called on every network evaluation): the trained range is t in [1/N, 1],
        k in [0, N-1]; below 1/N the timestep is in (-1, 0), which the network never saw.
        """
        return t * self.num_train_timesteps - 1.0

    def timestep_to_t(self, k: Tensor | float) -> Tensor | float:
        """The time t = (k + 1) / N of timestep k (an integer tensor gives float64)."""
        if torch.is_tensor(k) and not k.is_floating_point():
            k = k.to(F64)
        return (k + 1) / self.num_train_timesteps

    @property
    def betas(self) -> Tensor:
        """beta_k = 1 - abar_k / abar_{k-1} (abar_{-1} = 1), float64 [N]."""
        prev = torch.cat([torch.ones(1, dtype=F64), self.alphas_cumprod[:-1]])
        return 1.0 - self.alphas_cumprod / prev

    # -- the schedule ---------------------------------------------------------------------------
    def _table(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(L_j [N + 1], D_j [N + 1]) on ``device``, copied there once."""
        table = self._tables.get(device)
        if table is None:
            knots, slopes = self._tables[torch.device("cpu")]
            table = self._tables[device] = (knots.to(device), slopes.to(device))
        return table

    def _segment(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """s = N t - j in float64 on the segment j with N t in (j, j + 1] (j = 0 at t = 0), and
        L_j, L_{j+1}, D_j, D_{j+1} there."""
        knots, slopes = self._table(t.device)
        u = t.to(F64) * self.num_train_timesteps
        j = (torch.ceil(u.detach()) - 1).clamp(0, self.num_train_timesteps - 1).long()
        return u - j, knots[j], knots[j + 1], slopes[j], slopes[j + 1]

    def log_alpha_bar(self, t: Tensor) -> Tensor:
        """L(t) = log alpha(t)^2, the monotone cubic through L_j = log abar_{j-1} at t = j / N."""
        return _hermite(*self._segment(t)).to(t.dtype)

    def beta(self, t: Tensor) -> Tensor:
        """The noise rate beta(t) = -dL/dt = g(t)^2 (continuous, > 0)."""
        return (-self.num_train_timesteps * _hermite_slope(*self._segment(t))).to(t.dtype)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(0.5 * self.log_alpha_bar(t.to(F64))).to(t.dtype)

    def sigma_squared(self, t: Tensor) -> Tensor:
        """1 - alpha^2 = -expm1(L), without cancellation near t = 0."""
        return (-torch.expm1(self.log_alpha_bar(t.to(F64)))).to(t.dtype)

    def log_snr(self, t: Tensor) -> Tensor:
        """lambda(t) = (L - log(1 - e^L)) / 2, +inf at t = 0."""
        L = self.log_alpha_bar(t.to(F64))
        return (0.5 * (L - torch.log(-torch.expm1(L)))).to(t.dtype)

    def inverse_log_snr(self, lam: Tensor) -> Tensor:
        """t(lambda): L = log sigmoid(2 lambda) = -softplus(-2 lambda), the segment j with L_{j+1} <= L
        <= L_j by a binary search, and the root s of the monotone cubic on it by Newton's method
        kept inside a shrinking bracket (bisection where a Newton step leaves it), from the linear
        guess. lambda = +inf maps to 0, lambda below lambda(T) to T, a knot's lambda to its step
        time (to float64 rounding)."""
        knots, slopes = self._table(lam.device)
        N = self.num_train_timesteps
        L = -torch.nn.functional.softplus(-2.0 * lam.detach().to(F64))
        # knots decrease: the first knot i with knots[i] <= L ends the segment j = i - 1.
        j = (torch.searchsorted(-knots, -L.contiguous()) - 1).clamp(0, N - 1)
        L0, L1, D0, D1 = knots[j], knots[j + 1], slopes[j], slopes[j + 1]
        lo, hi = torch.zeros_like(L), torch.ones_like(L)
        s = ((L0 - L) / (L0 - L1)).clamp(0.0, 1.0)
        for _ in range(_NEWTON_ITERATIONS):
            f = _hermite(s, L0, L1, D0, D1) - L  # decreasing in s
            lo = torch.where(f > 0, s, lo)
            hi = torch.where(f > 0, hi, s)
            step = s - f / _hermite_slope(s, L0, L1, D0, D1)
            inside = (step >= lo) & (step <= hi)  # inclusive: at the root the step is s itself
            s = torch.where(f == 0, s, torch.where(inside, step, 0.5 * (lo + hi)))
        return ((j + s) / N).clamp(0.0, self.T).to(lam.dtype)

    def discretize(
        self, N: int, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> DDPMSchedule:
        """The DDPM chain of this SDE at the N times t_i = (i + 1) / N, i = 0..N-1.

        For N = ``num_train_timesteps`` it is the model's own chain (``alphas_cumprod`` itself);
        for another N it is the exact chain of the SDE respaced to N steps (abar_i = alpha(t_i)^2,
        beta_i = 1 - abar_i / abar_{i-1}), as improved DDPM respaces a schedule.
        """
        N = check_steps("N", N, minimum=2)
        t = torch.arange(1, N + 1, dtype=F64) / N
        abar = self.alphas_cumprod if N == self.num_train_timesteps else torch.exp(self.log_alpha_bar(t))
        alphas = abar / torch.cat([torch.ones(1, dtype=F64), abar[:-1]])
        out = DDPMSchedule(t, 1.0 - alphas, alphas, abar)
        return DDPMSchedule(*(v.to(device=device, dtype=dtype or torch.get_default_dtype()) for v in out))


# Newton on a cubic whose slope stays within a factor ~4 of its secant converges quadratically
# from the linear guess: 3-4 iterations reach float64 rounding; 8 leave a margin.
_NEWTON_ITERATIONS = 8


def _knot_slopes(secants: Tensor) -> Tensor:
    """D_j, the slopes of L at the N + 1 knots: central differences of the (negative) secants S_j,
    one-sided and second order at the ends, limited so that |D_j| <= 2 |S| for both adjacent
    secants (and |D| >= |S| / 10 at the ends, where the one-sided difference may change sign)."""
    m = -secants  # magnitudes, > 0
    slope = torch.empty(len(m) + 1, dtype=F64)
    slope[1:-1] = torch.minimum(0.5 * (m[:-1] + m[1:]), 2.0 * torch.minimum(m[:-1], m[1:]))
    slope[0] = (0.5 * (3 * m[0] - m[1])).clamp(0.1 * m[0], 2.0 * m[0])
    slope[-1] = (0.5 * (3 * m[-1] - m[-2])).clamp(0.1 * m[-1], 2.0 * m[-1])
    return -slope


def _hermite(s: Tensor, L0: Tensor, L1: Tensor, D0: Tensor, D1: Tensor) -> Tensor:
    """The cubic Hermite interpolant on [0, 1]: exact at s = 0 and s = 1 (its basis is 1 or 0 there)."""
    s2, s3 = s * s, s * s * s
    return (2 * s3 - 3 * s2 + 1) * L0 + (s3 - 2 * s2 + s) * D0 + (3 * s2 - 2 * s3) * L1 + (s3 - s2) * D1


def _hermite_slope(s: Tensor, L0: Tensor, L1: Tensor, D0: Tensor, D1: Tensor) -> Tensor:
    """d/ds of :func:`_hermite`."""
    s2 = s * s
    return 6 * (s - s2) * (L1 - L0) + (3 * s2 - 4 * s + 1) * D0 + (3 * s2 - 2 * s) * D1


def _as_1d(name: str, values: Tensor | Sequence[float]) -> Tensor:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a 1-D tensor or sequence of floats; got {values!r}")
    try:
        v = values.detach().cpu() if torch.is_tensor(values) else torch.as_tensor(values, dtype=F64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a 1-D tensor or sequence of floats; got {type(values).__name__}"
        ) from err
    if not v.is_floating_point():
        v = v.to(F64)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 steps; got shape {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        k = int((~torch.isfinite(v)).nonzero()[0])
        raise ValueError(f"{name} must be finite; got {name}[{k}]={float(v[k])}")
    return v


def _check_alphas_cumprod(values: Tensor | Sequence[float]) -> Tensor:
    abar = _as_1d("alphas_cumprod", values).to(F64)
    inside = (abar > 0) & (abar < 1)
    if not bool(inside.all()):
        k = int((~inside).nonzero()[0])
        raise ValueError(
            f"alphas_cumprod must lie in (0, 1); got alphas_cumprod[{k}]={float(abar[k]):.6g}. A table "
            f"that reaches 0 (zero terminal SNR) has no Gaussian prior; drop its last step."
        )
    falls = abar[1:] < abar[:-1]
    if not bool(falls.all()):
        k = int((~falls).nonzero()[0]) + 1
        raise ValueError(
            f"alphas_cumprod must be strictly decreasing (every beta_k > 0); got alphas_cumprod[{k - 1}]="
            f"{float(abar[k - 1]):.9g} <= alphas_cumprod[{k}]={float(abar[k]):.9g}"
        )
    return abar.contiguous()


def _class_of(config: Mapping[str, object]) -> str:
    name = config.get("_class_name")
    return f" of {name}" if name else ""


def _config_value(config: Mapping[str, object], key: str, default: float) -> float:
    value = config.get(key, default)
    return check_real(f"config[{key!r}]", value if value is not None else default)
