"""File systems a test mounts for itself: a small tmpfs (to fill up) or a read-only one, as a data directory.

Needs root with the right to mount (CAP_SYS_ADMIN), as on the CI machine; elsewhere ``mount_or_skip`` skips the
test and says why. A loop device would need the same right, and filling a real, shared file system would hurt
everyone else on the machine, so neither is used as a fallback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fill_up", "mount_or_skip", "tmpfs"]


@functools.cache
def _cannot_mount() -> str | None:
    """Why this process cannot mount a tmpfs, or None when it can (tried once)."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs as the data directory needs root"
    with tempfile.TemporaryDirectory() as probe:
        tried = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True, text=True, check=False
        )
        if tried.returncode != 0:
            why = tried.stderr.strip() or f"exit {tried.returncode}"
            return f"cannot mount a tmpfs here ({why}); the container needs CAP_SYS_ADMIN"
        subprocess.run(["umount", probe], check=True)
    return None


def mount_or_skip() -> None:
    reason = _cannot_mount()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``16m``) on the directory ``path`` for the block; unmounted afterwards."""
    mount_or_skip()
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)  # still busy: detach it


def fill_up(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system has no byte left; return the file (delete it to free)."""
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        chunk = b"\0" * (1 << 20)
        while chunk:
            try:
                os.write(fd, chunk)
            except OSError:
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)
    return filler
