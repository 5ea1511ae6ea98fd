"""Writing files so that nothing is lost: atomic replacement, stale temporaries, writability checks.

A file is first written to a temporary file in its own directory (``.<name>.<random>.tmp``),
flushed to disk, then moved over the old one with ``os.replace``, which is atomic on POSIX and
Windows: a crash, a kill or a full disk leaves either the old file or the new one, never a mix.
A temporary file left by an interrupted write is removed by the next successful write of the same
file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "check_writable", "stale_temporaries"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(path: Path) -> str:
    return f".{path.name}."


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporary files that interrupted writes of ``path`` left in its directory."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f"{_prefix(path)}*.tmp"))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *, fsync: bool = True) -> Path:
    """Write ``path`` by calling ``write(f)`` on a temporary binary file, then replace ``path`` by it.

    On any error the temporary file is removed and ``path`` is left as it was; the error is
    re-raised as an ``OSError`` naming ``path`` if it was one. After a successful write, stale
    temporaries of ``path`` (from writes killed before they could clean up) are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        # A writer that fails while cleaning up hides the cause (torch.save on a full disk raises
        # "unexpected pos" from its zip writer): report the OSError underneath.
        cause = _os_error_in(e)
        if cause is None:
            raise
        raise _explained(
            cause, f"could not write {str(path)!r}", "; the previous file, if any, is intact"
        ) from e
    for stale in stale_temporaries(path):
        stale.unlink(missing_ok=True)
    return path


def check_writable(directory: str | Path) -> Path:
    """Create ``directory`` if needed and prove that files can be created in it, before any work.

    Raises ``OSError`` (``PermissionError`` for a read-only directory, ``NotADirectoryError``,
    ...) naming the directory. A test file is created and removed, because permission bits do not
    tell the whole story (read-only mounts, root, ACLs, quotas).
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _explained(e, f"cannot write to {str(directory)!r}") from e
    return directory


def _os_error_in(e: BaseException | None) -> OSError | None:
    """``e`` if it is an ``OSError``, else the first one in the chain of exceptions behind it."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _explained(e: OSError, what: str, after: str = "") -> OSError:
    """``e`` as the same kind of ``OSError`` with the message ``what: <reason><after>``."""
    message = f"{what}: {e.strerror or str(e) or type(e).__name__}{after}"
    return type(e)(message) if e.errno is None else type(e)(e.errno, message)
