"""Where membot keeps local data: ``MEMBOT_DATA_DIR``, else the platform's per-user data directory.

The default does not depend on the working directory (``~/.local/share/membot`` on Linux, ``~/Library/Application
Support/membot`` on macOS, ``%LOCALAPPDATA%\\membot`` on Windows), so ``membot memory show`` run from another folder
opens the same store as the chat. Before, the default was ``./data``: a store found there (and none yet in the new
default) is still used, with a one-line notice saying how to move it.

At start, ``check_data_dir`` makes sure the directory exists (or can be created), is a directory and takes a write.
Embedded Qdrant keeps recall and archival memory under ``MEMBOT_DATA_DIR``; a directory that cannot take writes
would otherwise fail deep inside SQLite with a long traceback. ``check_data_dir`` says what is wrong in one line,
with the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["DataDirError", "adopt_legacy_data_dir", "check_data_dir", "default_data_dir"]

APP_NAME = "membot"
LEGACY_DATA_DIR = Path("data")  # the default before the per-user directory, relative to the working directory


def default_data_dir() -> Path:
    """The platform's per-user data directory for membot."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def adopt_legacy_data_dir(settings: Settings, cwd: Path | None = None) -> tuple[Settings, str | None]:
    """Settings that use ``./data`` when it holds a store, ``MEMBOT_DATA_DIR`` is not set and the per-user
    directory holds none yet; with the notice to show (None when nothing changed)."""
    target = settings.data_dir
    if target != default_data_dir().expanduser().absolute():  # MEMBOT_DATA_DIR names another directory
        return settings, None
    legacy = ((cwd or Path.cwd()) / LEGACY_DATA_DIR).resolve()
    if not (legacy / "qdrant").is_dir() or (target / "qdrant").exists() or legacy == target.resolve():
        return settings, None
    notice = (
        f"using the memory in {legacy}, the old default data directory (relative to where membot starts). "
        f"membot now keeps it in {target}: move it there with `mkdir -p {target} && mv {legacy}/qdrant {target}/` "
        f"(or set MEMBOT_DATA_DIR={legacy})."
    )
    return settings.model_copy(update={"data_dir": legacy}), notice


_PROBE = ".membot-write-check"
_ELSEWHERE = "or set MEMBOT_DATA_DIR to a directory membot can write to"


class DataDirError(Exception):
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
