"""Where membot keeps local data: ``MEMBOT_DATA_DIR``, else the platform's per-user data directory.

The default does not depend on the working directory (``~/.local/share/membot`` on Linux, ``~/Library/Application
Support/membot`` on macOS, ``%LOCALAPPDATA%\\membot`` on Windows), so ``membot memory show`` run from another folder
opens the same store as the chat. Before, the default was ``./data``: a store found there (and none yet in the new
default) is still used, with a one-line notice saying how to move it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

if TYPE_CHECKING:
    from bot.settings import Settings

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
