"""Deprecated location of the divergence estimators, which moved to :mod:`sdegen.divergence` (the
losses use them too). Importing a name from here works until sdegen 0.3, with a warning."""

import sdegen.divergence as _divergence
from sdegen._deprecation import moved_names

__all__: list[str] = []

__getattr__ = moved_names(
    "sdegen.likelihood.divergence", dict.fromkeys(_divergence.__all__, "sdegen.divergence")
)
