"""The error of a run's settings: what the user can fix in a ``config.json`` or in the options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["SettingsError", "as_settings_error"]


class SettingsError(ValueError):
    """A run's settings are unusable: an unknown name, a missing or malformed setting, or a run
    (a teacher, a classifier) that does not fit the one it serves. The ``sdegen`` command reports
    it as a usage error (exit status 2)."""


@contextlib.contextmanager
def as_settings_error(what: str, error: type[SettingsError] = SettingsError) -> Iterator[None]:
    """Report a ``ValueError``/``TypeError`` raised while building objects from settings as a
    :class:`SettingsError` about ``what`` (or its subclass ``error``, such as the command line's
    usage error).

    Only the construction of objects from settings runs inside this: an error raised later, while
    training, sampling or evaluating, is a failure of the work, never the user's fault.
    """
    try:
        yield
    except SettingsError:
        raise
    except (ValueError, TypeError) as e:
        raise error(f"invalid {what}: {e}") from e
