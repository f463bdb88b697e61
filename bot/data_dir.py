"""The data directory check made at start: it exists (or can be created), is a directory, and takes a write.

Embedded Qdrant keeps recall and archival memory under ``MEMBOT_DATA_DIR``; a directory that cannot take writes
would otherwise fail deep inside SQLite with a long traceback. ``check_data_dir`` says what is wrong in one line,
with the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from bot.settings import ConfigError

__all__ = ["DataDirError", "check_data_dir"]

_PROBE = ".membot-write-check"
_ELSEWHERE = "or set MEMBOT_DATA_DIR to a directory membot can write to"


class DataDirError(ConfigError):
    """The data directory cannot be used; the message names the path and what to do."""


def check_data_dir(path: Path) -> None:
    """Create ``path`` if missing and write (and remove) a small file in it; raise ``DataDirError`` if that fails."""
    where = f"MEMBOT_DATA_DIR {path.resolve()}"
    if path.exists() and not path.is_dir():
        raise DataDirError(f"{where} is not a directory (it is a file); move that file away, {_ELSEWHERE}.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"{where} cannot be created ({_reason(exc)}); {_fix(exc)}.") from None
    probe = path / f"{_PROBE}-{os.getpid()}"
    try:
        with probe.open("wb") as handle:
            handle.write(b"membot can write here\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise DataDirError(f"{where} cannot be written to ({_reason(exc)}); {_fix(exc)}.") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _fix(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return f"it is on a read-only file system: remount it read-write, {_ELSEWHERE}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free some space on its disk, {_ELSEWHERE} on a disk with room"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"give the user running membot write access to it, {_ELSEWHERE}"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"a part of the path is a file, not a directory; {_ELSEWHERE}"
    return _ELSEWHERE
