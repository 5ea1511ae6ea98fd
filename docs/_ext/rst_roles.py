"""Griffe extension: read sdegen's reStructuredText cross-references as mkdocstrings links.

sdegen's docstrings are Google style with Sphinx roles (``:class:`~sdegen.sde.LinearSDE```), which
read well in ``help()`` and in an editor. Markdown has no roles, so this extension rewrites each one
into an autorefs link before the docstring is parsed:

* ``:class:`~a.b.C``` -> ``[`C`][a.b.C]`` and ``:func:`a.b.f``` -> ``[`a.b.f`][a.b.f]``;
* a relative name such as ``:meth:`to_score``` becomes ``[`to_score`][to_score]``, resolved from the
  docstring's own scope (mkdocstrings' ``scoped_crossrefs``);
* a top-level name such as ``sdegen.sample`` links to where the API reference documents it;
* a target outside sdegen (torch has no inventory offline) becomes plain code;
* the reStructuredText literal-block marker ``text::`` becomes ``text:``.

A link that resolves nowhere fails ``mkdocs build --strict``, so broken references are found.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import griffe

sys.path.insert(0, str(Path(__file__).parent))
from hooks import api_path  # noqa: E402

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|obj|exc):`(~?)([\w.]+)(\(\))?`")
_LITERAL_BLOCK = re.compile(r"(\S)::$", re.MULTILINE)


def _link(match: re.Match[str]) -> str:
    tilde, target, _ = match.groups()
    shown = target.rsplit(".", 1)[-1] if tilde else target
    if "." in target and not target.startswith("sdegen."):
        return f"`{shown}`"
    if target.count(".") == 1 and target.startswith("sdegen."):  # a top-level re-export
        target = api_path(target.split(".")[1]) or target
    return f"[`{shown}`][{target}]"


def markdown(text: str) -> str:
    """The docstring ``text`` with roles turned into links and ``::`` markers into colons."""
    return _LITERAL_BLOCK.sub(r"\1:", _ROLE.sub(_link, text))


class RstRoles(griffe.Extension):
    """Rewrite every sdegen docstring once, when griffe creates its object."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
