"""``sdegen demo``: the whole path on a 2-D Gaussian mixture in about a minute on a laptop CPU."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, sample and evaluate on a 2-D mixture (a few minutes on CPU)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
