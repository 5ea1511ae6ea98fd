"""The ``sdegen`` command: ``sdegen train | sample | fit-grid | nll | demo``.

Every subcommand takes ``--device``, ``--seed`` and ``--out DIR``; ``sdegen <command> --help`` lists
the rest with their defaults. Bad arguments, and missing or unusable input files, print one line on
stderr and exit with status 2 (a usage error). Anything that goes wrong after the arguments were
accepted -- a numerical failure, an unwritable output, a bug -- prints one line naming the command
and the error and exits with status 1. Set ``SDEGEN_TRACEBACK=1`` to see the full traceback instead.

Names on the command line map to library objects in :mod:`sdegen.run.registry`; a run directory's
``config.json`` and its loading live in :mod:`sdegen.run.config`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import torch

from sdegen.cli import demo, fit_grid, nll, sample, train
from sdegen.cli._common import Parser, apply_threads, explicit_options
from sdegen.run import SettingsError
from sdegen.training import CheckpointError, RunDirectoryBusy, TrainingInterrupted

__all__ = ["main", "build_parser"]


def build_parser() -> Parser:
    parser = Parser(
        prog="sdegen",
        description="Score-based generative modelling through SDEs: train, sample, evaluate likelihoods.",
    )
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for module in (train, sample, fit_grid, nll, demo):
        module.add_parser(sub)
    return parser


# Input the user can fix: bad arguments, missing or unusable files (run directories, checkpoints),
# a run directory that another process is writing.
USAGE_ERRORS = (
    SettingsError,  # UsageError among them
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    CheckpointError,
    RunDirectoryBusy,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    command = None
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.explicit = explicit_options(build_parser(), argv)
        command = args.command
        threads = torch.get_num_threads()
        apply_threads(args.threads)
        try:
            return int(args.run(args) or 0)
        finally:
            torch.set_num_threads(threads)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except TrainingInterrupted as e:  # the run saved a checkpoint before stopping
        print(f"sdegen {command}: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("sdegen: interrupted", file=sys.stderr)
        return 130
    except USAGE_ERRORS as e:
        if os.environ.get("SDEGEN_TRACEBACK"):
            raise
        print(f"sdegen: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # every other error is a failure of the command, not of its use
        if os.environ.get("SDEGEN_TRACEBACK"):
            raise
        print(
            f"sdegen {command}: failed: {type(e).__name__}: {_one_line(e)} (SDEGEN_TRACEBACK=1 shows where)",
            file=sys.stderr,
        )
        return 1


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, FileNotFoundError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text
