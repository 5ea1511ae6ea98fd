"""Arguments every subcommand shares, argument types, and run-directory helpers."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from sdegen._checks import SEED_LIMIT
from sdegen.run.errors import SettingsError, as_settings_error
from sdegen.sde import SDE
from sdegen.training.files import atomic_write

__all__ = [
    "UsageError",
    "as_usage_error",
    "Parser",
    "HelpFormatter",
    "add_common_arguments",
    "positive_int",
    "nonnegative_int",
    "seed",
    "thread_count",
    "positive_float",
    "probability",
    "real",
    "resolve_device",
    "apply_threads",
    "explicit_options",
    "check_end_time",
    "write_json",
    "evaluations",
    "describe_evaluations",
]


class UsageError(SettingsError):
    """Bad command-line input: reported as one line on stderr with exit status 2.

    A :class:`~sdegen.run.SettingsError` raised while a run is built from its settings is reported
    the same way.
    """


def as_usage_error(what: str) -> contextlib.AbstractContextManager[None]:
    """Report a ``ValueError``/``TypeError`` raised while turning the arguments into objects as a
    usage error about ``what`` (:func:`~sdegen.run.as_settings_error` with a :class:`UsageError`).

    Only the construction of objects from the command line runs inside this: an error raised later,
    while training, sampling or evaluating, is a failure (exit status 1), never the user's fault.
    """
    return as_settings_error(what, UsageError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" after an option's help, unless the help states its default itself
    ("(default: ...", "[default: ...", "(default)"), or there is none to state: a flag (False) or an option
    that is off unless given (None), whose help says what happens without it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if re.search(r"[(\[]default\b", text) or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit code 2, raised to ``main``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def add_common_arguments(
    p: argparse.ArgumentParser, *, out: str | None, out_help: str, threads: int = 0
) -> None:
    """``--device``, ``--seed``, ``--out DIR`` (``out=None``: defaults to the run directory),
    ``--threads`` and ``--no-progress``."""
    g = p.add_argument_group("common")
    g.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps")
    g.add_argument("--seed", type=seed, default=0, help="seed of every random number drawn, in [0, 2^63)")
    g.add_argument("--out", default=out, metavar="DIR", help=out_help)
    g.add_argument(
        "--threads",
        type=thread_count,
        default=threads,
        help="CPU threads for torch, at most the CPUs of this machine (0: torch's default)",
    )
    g.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (by default a bar on a terminal, and a line per tenth of the work "
        "in a log or pipe once it runs for more than a few seconds)",
    )


def explicit_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options that ``argv`` gives explicitly (not left at their defaults).

    ``argv`` is parsed again by ``parser`` (which must accept it) with every default suppressed,
    so only what the command line set remains.
    """
    parsers = [parser]
    for p in parsers:
        p._defaults.clear()  # set_defaults(run=...)
        for action in p._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return set(vars(parser.parse_args(argv)))


def apply_threads(n: int) -> None:
    """Set torch's intra-op CPU threads (0 leaves torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


def _number_type(convert, ok, what: str):
    """An argparse ``type=`` that converts with ``convert`` and accepts values where ``ok`` holds."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number_type(int, lambda v: v >= 1, "a positive integer")
nonnegative_int = _number_type(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number_type(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
probability = _number_type(float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")
real = _number_type(float, math.isfinite, "a finite number")
seed = _number_type(int, lambda v: 0 <= v < SEED_LIMIT, "an integer seed in [0, 2^63)")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# More threads than CPUs never helps, and far more ends in an OpenMP allocation failure.
thread_count = _number_type(
    int, lambda v: 0 <= v <= _cpus(), f"a number of threads in 0..{_cpus()} (the CPUs here)"
)


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:1 or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name} but CUDA is not available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name} but MPS is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name!r} is not supported; use cpu, cuda or mps")
    return device


def check_end_time(sde: SDE, eps: float | None) -> float:
    """``--eps`` (default: the SDE's ``sampling_eps``), checked to lie below the SDE's T."""
    eps = sde.sampling_eps if eps is None else eps
    if not eps < sde.T:
        raise UsageError(f"--eps {eps:g} must be below the SDE's end time T = {sde.T:g}")
    return eps


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as indented JSON, atomically (:func:`sdegen.training.files.atomic_write`)."""
    text = json.dumps(value, indent=2) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()), fsync=False)


def evaluations(gathered: Mapping[str, Any]) -> dict[str, Any]:
    """The cost entries of a report from the chunks' summed ``nfe`` and ``batches``: ``nfe``, the
    evaluations per batch (the NFE of each sample path or ODE solve, as samplers are compared; a
    mean over the batches for adaptive solvers), ``batches``, and ``score_evaluations``, the total
    of batched evaluations (the compute spent)."""
    total, batches = gathered["nfe"], gathered["batches"]
    per_batch = total / batches
    return {
        "nfe": int(per_batch) if per_batch == int(per_batch) else round(per_batch, 1),
        "batches": batches,
        "score_evaluations": total,
    }


def describe_evaluations(report: Mapping[str, Any]) -> str:
    """``NFE 20`` (one batch) or ``NFE 20 per batch x 5 batches = 100 score evaluations``."""
    if report["batches"] == 1:
        return f"NFE {report['nfe']}"
    mean = "" if isinstance(report["nfe"], int) else " (mean)"
    return (
        f"NFE {report['nfe']}{mean} per batch x {report['batches']} batches = "
        f"{report['score_evaluations']} score evaluations"
    )
