"""Names that moved: a module ``__getattr__`` that still resolves them, with a DeprecationWarning.

Python calls a module's ``__getattr__`` for a name it does not hold (PEP 562), so a name moved out
of a module keeps working from its old path, for one release, by the new module's object itself.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

#: The release that removes the old paths.
REMOVED_IN = "0.3"


def moved_names(
    module: str, moved: Mapping[str, str], advice: Mapping[str, str] | None = None
) -> Callable[[str], Any]:
    """A ``__getattr__`` for the module ``module`` in which each ``name`` of ``moved`` resolves to
    ``moved[name].<name>`` with a warning that says where it lives now (or ``advice[name]``)."""
    advice = dict(advice or {})

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where = moved[name]
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in sdegen {REMOVED_IN}; "
            f"{advice.get(name, f'import it from {where}')}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(where), name)

    return __getattr__
