"""MkDocs hooks: the nav's directory entries, and pages generated from the code so that they
cannot drift from it.

A nav entry ``Title: some/dir/`` in mkdocs.yml becomes a section holding ``some/dir/index.md``
(if any) and then the directory's other pages in alphabetical order (:func:`on_config`).

A page asks for generated content with a marker on a line of its own:

* ``<!-- sdegen:top-level-names -->``: a table of the names ``import sdegen`` exports, each linked
  to its entry in the API reference;
* ``<!-- sdegen:cli-reference -->``: every ``sdegen`` subcommand with its options, defaults and
  help, read from the argument parser itself (``sdegen.cli.build_parser``);
* ``<!-- sdegen:samplers -->``: the samplers of ``sdegen.samplers.registry``, with what their
  classes declare (default steps and grid, NFE per step, order, stochastic, callback).

and every ``::: sdegen.<subpackage>`` directive is followed by directives for the names of its
``__all__`` that griffe cannot see (see :func:`shadowed_names`), and by a section for each public
submodule with names of its own ``__all__`` that the subpackage does not re-export (see
:func:`submodule_names`), so that every public name has an entry without a hand-kept list.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

#: The subpackages and modules that have a page in the API reference, in the order of the nav.
API_MODULES = (
    "sde",
    "samplers",
    "brownian",
    "likelihood",
    "divergence",
    "losses",
    "parameterization",
    "models",
    "nn",
    "training",
    "classifier",
    "composition",
    "observations",
    "analytic",
    "testing",
    "metrics",
    "data",
    "random",
    "distributed",
    "figures",
    "run",
)


def shadowed_names(module_name: str) -> list[str]:
    """Names in ``sdegen.<module>.__all__`` that are also the names of its submodules.

    Griffe's static analysis lets the submodule win (``sdegen.likelihood.log_likelihood`` is read
    as the module, not the function), so ``::: sdegen.likelihood`` would silently omit such names;
    :func:`on_page_markdown` documents them under their defining module instead.
    """
    module = importlib.import_module(f"sdegen.{module_name}")
    if not hasattr(module, "__path__"):
        return []
    submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    return [name for name in module.__all__ if name in submodules]


def submodule_names(module_name: str) -> dict[str, list[str]]:
    """Public names of the submodules of ``sdegen.<module_name>`` that the package does not re-export.

    A public module (no component of its path starts with ``_``) states its public names in
    ``__all__``; where its package re-exports a name, the package's page documents it, and the
    others are documented in a section of the module's own under the package's page (see
    :func:`on_page_markdown`). Keys are dotted module paths, in import order.
    """
    package = importlib.import_module(f"sdegen.{module_name}")
    if not hasattr(package, "__path__"):
        return {}
    exported = {id(getattr(package, name)) for name in getattr(package, "__all__", ())}
    out: dict[str, list[str]] = {}
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        names = [name for name in getattr(module, "__all__", ()) if id(getattr(module, name)) not in exported]
        if names:
            out[info.name] = names
    return out


def canonical_path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def api_path(name: str) -> str | None:
    """Where a top-level name ``sdegen.<name>`` is documented: ``sdegen.<module>.<name>``, or None.

    Top-level names are re-exports; the API reference documents each once, under the subpackage
    that defines it (``sdegen.sample`` is ``sdegen.samplers.sample``).
    """
    import sdegen

    obj = getattr(sdegen, name, None)
    if obj is None or inspect.ismodule(obj):
        return None
    for module_name in API_MODULES:
        module = importlib.import_module(f"sdegen.{module_name}")
        if name in getattr(module, "__all__", ()) and getattr(module, name) is obj:
            shadowed = name in shadowed_names(module_name)
            return canonical_path(obj) if shadowed else f"sdegen.{module_name}.{name}"
    return None


_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj):`(~?)([\w.]+)`")


def _summary(obj: Any) -> str:
    """The first paragraph of a docstring as Markdown: Sphinx roles become code spans."""
    doc = inspect.getdoc(obj) or ""
    first = doc.split("\n\n", 1)[0].replace("\n", " ").replace("|", "\\|")
    return _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", first)


def top_level_names() -> str:
    """A table of ``sdegen.__all__``; names defined at the top level only are documented below it."""
    import sdegen

    rows = ["| name | documented as | what it is |", "|---|---|---|"]
    own: list[str] = []
    for name in sdegen.__all__:
        obj = getattr(sdegen, name)
        if inspect.ismodule(obj):
            rows.append(f"| `sdegen.{name}` | [`{obj.__name__}`][{obj.__name__}] | {_summary(obj)} |")
            continue
        path = api_path(name)
        if path is None:
            own.append(name)
            path = f"sdegen.{name}"
        rows.append(f"| `sdegen.{name}` | [`{path}`][{path}] | {_summary(obj)} |")
    return "\n".join(rows + [""] + [f"::: sdegen.{name}\n" for name in own])


def _option_row(action: argparse.Action) -> str:
    if action.option_strings:
        flags = ", ".join(action.option_strings)
        if action.nargs != 0:
            flags += f" {action.metavar or action.dest.upper()}"
    else:
        flags = action.metavar or action.dest.upper()
    if action.choices is not None:
        flags += " {" + ",".join(map(str, action.choices)) + "}"
    default = (
        "" if action.default in (None, argparse.SUPPRESS) or not action.option_strings else action.default
    )
    text = (action.help or "").replace("%(default)s", str(action.default)).replace("|", "\\|")
    return f"| `{flags}` | {'`' + str(default) + '`' if default != '' else ''} | {text} |"


def cli_reference() -> str:
    from sdegen.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    out: list[str] = []
    for name, sub in commands.choices.items():
        out += [f"### `sdegen {name}`", "", sub.description or "", "", "```text", sub.format_usage().strip()]
        out += ["```", ""]
        for group in sub._action_groups:
            actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS and a.dest != "help"]
            if not actions:
                continue
            out += [f"**{group.title}**", "", "| argument | default | meaning |", "|---|---|---|"]
            out += [_option_row(a) for a in actions] + [""]
    return "\n".join(out)


def sampler_table() -> str:
    """The registered samplers (``sdegen.samplers.registry.SAMPLERS``), one row each, with what their
    classes declare."""
    from sdegen.samplers.registry import SAMPLERS

    rows = [
        "| name | sampler | default steps | default grid | NFE per step | order | stochastic | per-step callback |",
        "|---|---|---:|---|---:|---:|:---:|:---:|",
    ]
    for name, entry in SAMPLERS.items():
        sampler = entry.build()
        cls = entry.sampler_class
        path = f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}"
        grid = "adaptive" if sampler.grid is None else type(sampler.grid).__name__
        order = "-" if sampler.order is None else f"{sampler.order:g}"
        nfe = "varies" if sampler.nfe_per_step is None else str(sampler.nfe_per_step)
        rows.append(
            f"| `{name}` | [`{cls.__name__}`][{path}]: {entry.title} | {entry.default_steps or '-'} | {grid} "
            f"| {nfe} | {order} | {'yes' if sampler.stochastic else 'no'} "
            f"| {'yes' if sampler.supports_callback else 'no'} |"
        )
    return "\n".join(rows)


_MARKERS = {
    "<!-- sdegen:top-level-names -->": top_level_names,
    "<!-- sdegen:cli-reference -->": cli_reference,
    "<!-- sdegen:samplers -->": sampler_table,
}


def _expand_directories(nav: Any, docs_dir: Path) -> Any:
    if isinstance(nav, list):
        return [_expand_directories(item, docs_dir) for item in nav]
    if isinstance(nav, dict):
        return {title: _expand_directories(value, docs_dir) for title, value in nav.items()}
    if isinstance(nav, str) and nav.endswith("/") and (docs_dir / nav).is_dir():
        pages = sorted((docs_dir / nav).glob("*.md"), key=lambda p: (p.name != "index.md", p.name))
        if not pages:
            raise ValueError(f"the nav entry {nav!r} is a directory of docs/ without any .md page")
        return [page.relative_to(docs_dir).as_posix() for page in pages]
    return nav


def on_config(config: Any, **kwargs: Any) -> Any:
    config["nav"] = _expand_directories(config["nav"], Path(config["docs_dir"]))
    return config


# A directive and its indented options.
_API_DIRECTIVE = re.compile(r"^::: sdegen\.(\w+)[ \t]*\n(?:[ \t]+\S.*\n)*", re.MULTILINE)


def _with_shadowed_names(match: re.Match[str]) -> str:
    module_name = match.group(1)
    if module_name not in API_MODULES:
        return match.group(0)
    module = importlib.import_module(f"sdegen.{module_name}")
    extra = [
        f"\n::: {canonical_path(getattr(module, name))}\n    options:\n"
        f"      heading: sdegen.{module_name}.{name}\n      show_root_heading: true\n"
        for name in shadowed_names(module_name)
    ]
    extra += [
        f"\n::: {path}\n    options:\n      members: [{', '.join(names)}]\n"
        f"      show_root_heading: true\n      show_root_toc_entry: true\n"
        for path, names in submodule_names(module_name).items()
    ]
    return match.group(0) + "".join(extra)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, generate in _MARKERS.items():
        line = re.compile(rf"^{re.escape(marker)}[ \t]*$", re.MULTILINE)
        if line.search(markdown):
            content = generate()
            markdown = line.sub(lambda _, content=content: content, markdown)
    return _API_DIRECTIVE.sub(_with_shadowed_names, markdown if markdown.endswith("\n") else markdown + "\n")
