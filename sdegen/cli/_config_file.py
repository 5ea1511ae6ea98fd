"""``sdegen train --config FILE``: the settings of a run from a file with the schema of ``config.json``.

The file's settings become the defaults of the command line: an option given explicitly wins, and
every value from the file is checked as the option would check it (its type, range and choices),
so a bad key or value is a usage error naming it. A run's own ``config.json`` is such a file, which
makes ``--config`` the way to start a run like another (its ``resumed`` record and version are
ignored).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sdegen.cli._common import UsageError
from sdegen.run import SettingsError
from sdegen.run.registry import DATASETS, KINDS, LOSSES, SDES, lookup
from sdegen.training import TrainConfig

__all__ = ["apply_config_file"]

# Settings of config.json that no option sets: where they go (or that they are only a record).
_RECORDS = {("sdegen_version",), ("resumed",), ("kind",), ("train", "seed"), ("train", "progress")}
_RECORDS |= {("loss", "teacher_checksum")}  # recomputed from the teacher when the run starts


def apply_config_file(
    args: argparse.Namespace,
    path: Path,
    settings: Mapping[str, tuple[str, ...]],
    actions: Mapping[str, argparse.Action],
) -> None:
    """Set each option of ``args`` not given on the command line from the file at ``path``.

    ``settings`` maps an option's destination to its place in ``config.json`` and ``actions`` the
    destinations to the parser's actions (which check the values)."""
    where = f"--config {path}"
    try:
        d = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{where}: the file does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{where}: cannot read the file ({e})") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise UsageError(f"{where}: must hold a JSON object (the schema of a run's config.json); got {d!r}")
    kind = d.get("kind", "score")
    if kind not in KINDS:
        raise UsageError(f"{where}: setting 'kind' must be one of {list(KINDS)}; got {kind!r}")
    explicit = set(getattr(args, "explicit", ()))
    by_path = {p: dest for dest, p in settings.items() if dest not in ("conditional", "classifier")}
    allowed = _allowed_keys(d, kind, where)
    values: dict[str, Any] = {}
    for key, value in _leaves(d):
        name = ".".join(key)
        if key[:1] == ("resumed",) or key in _RECORDS:
            continue
        if key == (
            "train",
            "betas",
        ):  # no option sets AdamW's betas: only their default is a run of sdegen train
            if value != list(TrainConfig().betas):
                raise UsageError(
                    f"{where}: setting 'train.betas' must be {list(TrainConfig().betas)} (sdegen train has no "
                    f"option for AdamW's betas; use the Python API's TrainConfig); got {value!r}"
                )
            continue
        if key not in by_path or (len(key) == 2 and key[1] not in allowed.get(key[0], ())):
            raise UsageError(f"{where}: unknown setting {name!r} ({_known(key, allowed, by_path)})")
        dest = by_path[key]
        values[dest] = _checked(actions[dest], value, name, where)
    seed = values.get("seed", 0)
    train_seed = d.get("train", {}).get("seed", seed) if isinstance(d.get("train"), dict) else seed
    if train_seed != seed:
        raise UsageError(
            f"{where}: settings 'seed' ({seed}) and 'train.seed' ({train_seed}) differ; give one seed"
        )
    for dest, value in values.items():
        if dest not in explicit:
            setattr(args, dest, value)
    if not explicit & {"conditional", "classifier"}:
        args.conditional, args.classifier = kind == "conditional", kind == "classifier"
    progress = d.get("train", {}).get("progress") if isinstance(d.get("train"), dict) else None
    if progress is not None and "no_progress" not in explicit:
        if not isinstance(progress, bool):
            raise UsageError(f"{where}: setting 'train.progress' must be true or false; got {progress!r}")
        args.no_progress = not progress


def _allowed_keys(d: Mapping[str, Any], kind: str, where: str) -> dict[str, tuple[str, ...]]:
    """The keys each section may hold, given the names the file chooses (its data set, SDE, loss)."""
    allowed: dict[str, tuple[str, ...]] = {
        "model": ("name", "hidden", "depth"),
        "eval": ("every", "n"),
        "train": tuple(k for k in (d.get("train") or {}) if isinstance(d.get("train"), dict)),
    }
    for section, table, what in (
        ("data", DATASETS, "data set"),
        ("sde", SDES, "SDE"),
        ("loss", LOSSES, "loss"),
    ):
        part = d.get(section)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise UsageError(f"{where}: setting {section!r} must be a JSON object; got {part!r}")
        if "name" not in part:
            raise UsageError(f"{where}: setting {section!r} lacks its 'name'")
        try:
            spec = lookup(table, part["name"], what)
        except SettingsError as e:
            raise UsageError(f"{where}: setting '{section}.name': {e}") from None
        options = [getattr(o, "name", o) for o in spec.options]
        extra = {"loss": ("eps", *(("label_dropout",) if kind == "conditional" else ()))}.get(section, ())
        allowed[section] = ("name", *options, *extra)
    return allowed


def _known(key: tuple[str, ...], allowed: Mapping[str, tuple[str, ...]], by_path) -> str:
    if len(key) == 2 and key[0] in allowed:
        return f"{key[0]!r} here holds {list(allowed[key[0]])}"
    return f"known: {sorted({p[0] for p in by_path})}"


def _checked(action: argparse.Action, value: Any, name: str, where: str) -> Any:
    """``value`` from the file, checked and converted as the option's parser would."""
    option = action.option_strings[0] if action.option_strings else action.dest
    if action.nargs == 0:  # a flag such as --download
        if not isinstance(value, bool):
            raise UsageError(f"{where}: setting {name!r} ({option}) must be true or false; got {value!r}")
        return value
    if value is None and action.default is None:
        return None
    convert = action.type or str
    try:
        parsed = convert(str(value)) if not isinstance(value, bool) else None
    except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
        raise UsageError(f"{where}: setting {name!r} ({option}): {e}") from None
    same_kind = (
        isinstance(parsed, str)
        and isinstance(value, str)
        or isinstance(parsed, int)
        and isinstance(value, int)
        or isinstance(parsed, float)
        and isinstance(value, (int, float))
    )
    if parsed is None or isinstance(value, bool) or not same_kind:
        raise UsageError(
            f"{where}: setting {name!r} ({option}) must be a {type(parsed).__name__ if parsed is not None else 'value'} "
            f"like the option takes; got {value!r}"
        )
    if action.choices is not None and parsed not in action.choices:
        raise UsageError(
            f"{where}: setting {name!r} ({option}) must be one of {list(action.choices)}; got {value!r}"
        )
    return parsed


def _leaves(d: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in d.items():
        if isinstance(value, Mapping) and not prefix:
            yield from _leaves(value, (key,))
        else:
            yield (*prefix, key), value
