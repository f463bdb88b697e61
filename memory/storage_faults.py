"""What a failed write means for a person: the data disk is full, the data directory is read-only, or something else.

Embedded Qdrant (qdrant-client local mode) keeps its points in SQLite files under the data directory; when the disk
is full SQLite says ``database or disk is full`` (``sqlite3.OperationalError``), and plain file writes raise
``OSError`` with ``ENOSPC``. SQLite may also report a full disk as an I/O error (``SQLITE_IOERR_SHMSIZE`` when
the shared-memory file of a write-ahead log cannot grow), so an I/O error is called a full disk when the disk of
the data directory has (almost) no room left. These helpers turn all that into one short reason for logs, health
reports and the model's tool errors.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

__all__ = ["DISK_FULL", "READ_ONLY", "describe_failure", "storage_problem"]

DISK_FULL = "the data disk is full"
READ_ONLY = "the data directory is read-only"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_NEARLY_FULL = 1 << 20  # bytes free under which an I/O error is taken for a full disk


def storage_problem(exc: BaseException, directory: Path | str | None = None) -> str | None:
    """Why the data directory cannot take writes (``DISK_FULL``, ``READ_ONLY``, an I/O error), or None when
    ``exc`` is not about the disk. ``directory`` (the embedded store's) tells a full disk from another I/O error."""
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc).lower()
        if code == sqlite3.SQLITE_FULL or "disk is full" in text:
            return DISK_FULL
        if code == sqlite3.SQLITE_READONLY or "readonly" in text or "read-only" in text:
            return READ_ONLY
        if (code is not None and code & 0xFF == sqlite3.SQLITE_IOERR) or "disk i/o error" in text:
            if directory is not None and _nearly_full(directory):
                return DISK_FULL
            name = getattr(exc, "sqlite_errorname", None) or "disk I/O error"
            return f"the data disk could not be written ({name}; it may be full)"
    if isinstance(exc, OSError):
        if exc.errno in _FULL_ERRNOS:
            return DISK_FULL
        if exc.errno == errno.EROFS:
            return READ_ONLY
    return None


def describe_failure(exc: BaseException, directory: Path | str | None = None) -> str:
    """A short reason for a failed store or embedder call (never the data written, never a secret)."""
    return storage_problem(exc, directory) or type(exc).__name__


def _nearly_full(directory: Path | str) -> bool:
    try:
        stats = os.statvfs(directory)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_FULL
