"""What a failed write means for a person: the data disk is full, the data directory is read-only, or something else.

Embedded Qdrant (qdrant-client local mode) keeps its points in SQLite files under the data directory; when the disk
is full SQLite says ``database or disk is full`` (``sqlite3.OperationalError``), and plain file writes raise
``OSError`` with ``ENOSPC``. These helpers turn either into one short reason for logs, health reports and the
model's tool errors.
"""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["DISK_FULL", "READ_ONLY", "describe_failure", "storage_problem"]

DISK_FULL = "the data disk is full"
READ_ONLY = "the data directory is read-only"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_problem(exc: BaseException) -> str | None:
    """``DISK_FULL`` or ``READ_ONLY`` when ``exc`` says the data directory cannot take writes; None otherwise."""
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc).lower()
        if code == sqlite3.SQLITE_FULL or "disk is full" in text:
            return DISK_FULL
        if code == sqlite3.SQLITE_READONLY or "readonly" in text or "read-only" in text:
            return READ_ONLY
    if isinstance(exc, OSError):
        if exc.errno in _FULL_ERRNOS:
            return DISK_FULL
        if exc.errno == errno.EROFS:
            return READ_ONLY
    return None


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed store or embedder call (never the data written, never a secret)."""
    return storage_problem(exc) or type(exc).__name__
