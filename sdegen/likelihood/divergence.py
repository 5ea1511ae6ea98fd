"""Deprecated location of the divergence estimators, which moved to :mod:`sdegen.divergence` (the
losses use them too). Importing a name from here works until sdegen 0.3, with a warning."""

from __future__ import annotations

import warnings
from typing import Any

import sdegen.divergence as _divergence

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    if name in _divergence.__all__:
        warnings.warn(
            f"sdegen.likelihood.divergence.{name} is deprecated and will be removed in sdegen 0.3; "
            f"import it from sdegen.divergence (or sdegen.likelihood)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_divergence, name)
    raise AttributeError(f"module 'sdegen.likelihood.divergence' has no attribute {name!r}")
