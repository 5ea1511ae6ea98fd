"""PNG figures of samples, densities, trajectories and image grids.

Drawn with matplotlib's object-oriented API (``Figure`` + the Agg canvas), never ``pyplot``, so
no global backend or figure state is touched and figures can be written from any thread or
headless machine. Needs matplotlib (``pip install sdegen[train]``); image grids need torchvision.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "scatter_panels",
    "density_panels",
    "trajectory_panels",
    "image_grid",
    "density_on_grid",
    "limits_of",
    "training_curves",
]

Limits = tuple[float, float, float, float]


def _figure(n_panels: int, size: float = 3.2):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("figures need matplotlib; install it with `pip install sdegen[train]`") from e
    fig = Figure(figsize=(size * n_panels, size + 0.3), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    return fig, axes


def _title(ax, text: str, size: float = 3.2) -> None:
    """A panel title wrapped to the panel's width, so a long one (a sampler with its guidance)
    is never clipped."""
    ax.set_title("\n".join(textwrap.wrap(text, width=max(12, int(11 * size)))), fontsize=10)


def limits_of(points: list[Tensor]) -> Limits:
    """Axis limits (x_min, x_max, y_min, y_max) holding the 0.1-99.9 % quantiles of 2-D points, padded."""
    allp = torch.cat([p.reshape(-1, 2).double() for p in points])
    lo, hi = torch.quantile(allp, 0.001, dim=0), torch.quantile(allp, 0.999, dim=0)
    pad = 0.1 * (hi - lo)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def _limits(points: list[Tensor], limits: Limits | None) -> Limits:
    return limits if limits is not None else limits_of(points)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def scatter_panels(
    panels: Mapping[str, Tensor],
    path: str | Path,
    *,
    limits: Limits | None = None,
    point_size: float = 1.0,
    labels: Mapping[str, Tensor] | None = None,
) -> Path:
    """One scatter plot of 2-D points ``[n, 2]`` per panel, titled by its key, on shared axes.

    ``labels`` (int ``[n]`` per panel key, optional) colours the points of that panel by class
    (colours repeat after 20 classes).
    """
    pts = {k: v.detach().cpu().double() for k, v in panels.items()}
    lim = _limits(list(pts.values()), limits)
    fig, axes = _figure(len(pts))
    for ax, (title, p) in zip(axes, pts.items(), strict=True):
        y = None if labels is None else labels.get(title)
        if y is None:
            ax.scatter(p[:, 0].numpy(), p[:, 1].numpy(), s=point_size, alpha=0.5, linewidths=0)
        else:
            y = y.detach().cpu()
            cmap = "tab10" if int(y.max()) < 10 else "tab20"
            ax.scatter(
                p[:, 0].numpy(), p[:, 1].numpy(), s=point_size, alpha=0.6, linewidths=0,
                c=(y % 20).numpy(), cmap=cmap, vmin=0, vmax=9 if cmap == "tab10" else 19,
            )  # fmt: skip
        ax.set(xlim=lim[:2], ylim=lim[2:], aspect="equal")
        _title(ax, title)
    return _save(fig, path)


def density_on_grid(
    log_prob: Callable[[Tensor], Tensor],
    limits: Limits,
    resolution: int = 64,
    *,
    batch_size: int = 4096,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """log p evaluated on a ``resolution x resolution`` grid over ``limits``: shape ``[res, res]``,
    row i at y_i (increasing), column j at x_j."""
    xs = torch.linspace(limits[0], limits[1], resolution, dtype=dtype, device=device)
    ys = torch.linspace(limits[2], limits[3], resolution, dtype=dtype, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    values = torch.cat([log_prob(chunk).detach() for chunk in points.split(batch_size)])
    return values.reshape(resolution, resolution)


def density_panels(panels: Mapping[str, Tensor], limits: Limits, path: str | Path) -> Path:
    """Heat maps of densities exp(log p) from ``[res, res]`` log-density grids (see
    :func:`density_on_grid`), one per panel, on a common colour scale shown by one colour bar."""
    dens = {k: v.detach().cpu().double().exp() for k, v in panels.items()}
    vmax = max(float(d[torch.isfinite(d)].max()) for d in dens.values())
    fig, axes = _figure(len(dens))
    for ax, (title, d) in zip(axes, dens.items(), strict=True):
        # bilinear: the grid's values are samples of a smooth density, not cells
        image = ax.imshow(
            d.numpy(),
            origin="lower",
            extent=limits,
            cmap="magma",
            vmin=0.0,
            vmax=vmax,
            interpolation="bilinear",
        )
        ax.set(aspect="equal")
        _title(ax, title)
    fig.colorbar(image, ax=list(axes), shrink=0.85, label="density p(x)")
    return _save(fig, path)


def trajectory_panels(
    panels: Mapping[str, Tensor],
    path: str | Path,
    *,
    limits: Limits | None = None,
    max_paths: int = 6,
    max_times: int = 100,
) -> Path:
    """Paths ``[steps, n, 2]`` of 2-D points, one panel per key: ``max_paths`` of them, each in its
    own colour from its start (t = T, open circle) to its end (filled), over the density of all n
    end points (grey), so that one can follow a path and see where the sampler's mass went.

    A path of more than ``max_times`` states is drawn through every k-th of them (and its last):
    the states of a 1000-step stochastic sampler, all drawn, hide the path in its own noise. A path
    fades in from t = T to its end, so the noise-dominated start of a stochastic sampler's path
    does not cover where it goes."""
    paths = {}
    for k, v in panels.items():
        v = v.detach().cpu().double()
        stride = math.ceil(v.shape[0] / max_times)
        keep = list(range(0, v.shape[0] - 1, stride)) + [v.shape[0] - 1]
        paths[k] = v[keep]
    lim = _limits([p[-1] for p in paths.values()], limits)
    fig, axes = _figure(len(paths))  # raises the clear ImportError without matplotlib
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba

    for ax, (title, p) in zip(axes, paths.items(), strict=True):
        ends = p[-1]
        ax.hist2d(
            ends[:, 0].numpy(), ends[:, 1].numpy(), bins=60, range=[lim[:2], lim[2:]], cmap="Greys",
            cmin=1, alpha=0.7,
        )  # fmt: skip
        for i in range(min(max_paths, p.shape[1])):
            colour = f"C{i % 10}"
            segments = torch.stack([p[:-1, i], p[1:, i]], dim=1).numpy()
            rgba = np.tile(to_rgba(colour), (len(segments), 1))
            rgba[:, 3] = np.linspace(0.12, 1.0, len(segments)) ** 2
            ax.add_collection(LineCollection(segments, colors=rgba, linewidths=0.9))
            ax.plot(
                *p[0, i].numpy(),
                "o",
                mfc="white",
                mec=colour,
                ms=4,
                label="start (t = T)" if i == 0 else None,
            )
            ax.plot(
                *p[-1, i].numpy(),
                "o",
                color=colour,
                mec="black",
                mew=0.5,
                ms=5,
                label="end" if i == 0 else None,
            )
        ax.set(xlim=lim[:2], ylim=lim[2:], aspect="equal")
        _title(ax, title)
    axes[0].legend(loc="upper right", fontsize=7)
    return _save(fig, path)


def image_grid(
    images: Tensor, path: str | Path, *, nrow: int | None = None, row_labels: Sequence[str] | None = None
) -> Path:
    """Save images ``[B, C, H, W]`` with values in [0, 1] as one PNG grid (torchvision ``make_grid``)
    of ``nrow`` images per row; images smaller than 32 pixels are enlarged by an integer factor.

    ``row_labels`` names the rows (one label per row, e.g. ``["original", "observed", "sample"]``),
    written to their left.
    """
    try:
        from torchvision.utils import make_grid, save_image
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("image grids need torchvision; install it with `pip install sdegen[images]`") from e
    if images.ndim != 4:
        raise ValueError(f"images must have shape [B, C, H, W]; got shape {tuple(images.shape)}")
    nrow = nrow or max(1, math.isqrt(images.shape[0]))
    rows = math.ceil(images.shape[0] / nrow)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(
            f"row_labels must name each of the {rows} rows ({images.shape[0]} images, {nrow} per row); "
            f"got {len(row_labels)} labels"
        )
    images = images.detach().float().clamp(0, 1).cpu()
    # Small images (8x8 digits) are enlarged with nearest-neighbour pixels to stay legible.
    scale = max(1, 32 // max(images.shape[-2:]))
    if scale > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest")
    grid = make_grid(images, nrow=nrow, padding=scale, pad_value=1.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if row_labels is None:
        save_image(grid, path)
        return path
    return _labelled_grid(grid, row_labels, cell=images.shape[-2] + scale, pad=scale, path=path)


def _labelled_grid(grid: Tensor, row_labels: Sequence[str], *, cell: int, pad: int, path: Path) -> Path:
    """The grid image ``[3, H, W]`` at twice its pixel size, each row named at its left."""
    height, width = grid.shape[-2:]
    fig, axes = _figure(1)
    fig.set_size_inches(2 * width / 100 + 1.5, 2 * height / 100 + 0.1)
    ax = axes[0]
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_yticks([pad + i * cell + (cell - pad) / 2 for i in range(len(row_labels))], list(row_labels))
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.05)  # the labels' width, measured
    return path


# The held-out metrics of the second panel, the first one logged wins (bits/dim where the data are images).
_HELD_OUT = {
    "held_out_bpd": "held-out NLL (bits/dim)",
    "held_out_nll": "held-out NLL (nats)",
    "held_out_accuracy": "held-out accuracy",
}


def training_curves(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """The learning curves of a run from its log records (``Trainer.history``, ``metrics.jsonl``):
    the training loss (the mean over each logging interval) with the held-out loss, on a log
    scale where they are positive, and the held-out NLL (or a classifier's held-out accuracy)
    against the step."""

    def series(name: str) -> tuple[list[float], list[float]]:
        points = [(r["step"], r[name]) for r in history if name in r and "step" in r]
        return [p[0] for p in points], [p[1] for p in points]

    held_out = next((name for name in _HELD_OUT if series(name)[0]), None)
    fig, axes = _figure(1 if held_out is None else 2, size=3.6)
    ax = axes[0]
    values = []
    for name, label, style in (("loss", "training loss", "-"), ("held_out_loss", "held-out loss", "o-")):
        steps, ys = series(name)
        if steps:
            ax.plot(steps, ys, style, label=label, markersize=3, linewidth=1)
            values += ys
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="loss")
    if values:
        ax.legend(fontsize=8)
    if held_out is not None:
        steps, ys = series(held_out)
        axes[1].plot(steps, ys, "o-", markersize=3, linewidth=1, color="C2")
        axes[1].set(xlabel="step", ylabel=_HELD_OUT[held_out], title=_HELD_OUT[held_out])
    return _save(fig, path)
