"""The ``membot`` command line: chat, run, import, memory show|export|search|reset|forget|erase|history|rollback|
proactive|reindex, agents list, jobs list, doctor, --version. Memory commands are the operator's: not checked by
``bot.admin.authz``, audited as ``cli``. Every memory command given an agent with nothing stored exits 1 with one
line saying so.

``common`` holds the command groups and shared helpers; importing ``service``, ``memory``, ``browse`` and
``importing`` registers their commands (in the order ``membot --help`` lists them)."""

from __future__ import annotations

from bot.cli import browse, importing, memory, service
from bot.cli.common import app

__all__ = ["app", "browse", "importing", "main", "memory", "service"]


def main() -> None:
    app()
