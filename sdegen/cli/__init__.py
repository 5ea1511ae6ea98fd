"""The ``sdegen`` command: ``sdegen train | sample | nll | demo``.

Every subcommand takes ``--device``, ``--seed`` and ``--out DIR``; ``sdegen <command> --help`` lists
the rest with their defaults. Bad arguments and missing files print one line on stderr and exit
with status 2; numerical failures exit with status 1. Set ``SDEGEN_TRACEBACK=1`` to see the full
traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import torch

from sdegen.cli import demo, nll, sample, train
from sdegen.cli._build import UsageError
from sdegen.cli._common import Parser, apply_threads
from sdegen.training import CheckpointError

__all__ = ["main", "build_parser"]


def build_parser() -> Parser:
    parser = Parser(
        prog="sdegen",
        description="Score-based generative modelling through SDEs: train, sample, evaluate likelihoods.",
    )
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for module in (train, sample, nll, demo):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        threads = torch.get_num_threads()
        apply_threads(args.threads)
        try:
            return int(args.run(args) or 0)
        finally:
            torch.set_num_threads(threads)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        print("sdegen: interrupted", file=sys.stderr)
        return 130
    except (UsageError, FileNotFoundError, NotADirectoryError, CheckpointError, ValueError, TypeError) as e:
        if os.environ.get("SDEGEN_TRACEBACK"):
            raise
        print(f"sdegen: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (FloatingPointError, RuntimeError) as e:
        if os.environ.get("SDEGEN_TRACEBACK"):
            raise
        print(f"sdegen: failed: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, FileNotFoundError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text
