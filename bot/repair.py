"""Seeing and repairing memory without wiping it: the audit history, core rollback, and private marks.

Works on the same stores and lock as ``bot.admin.MemoryAdmin``; permission is decided before, by ``bot.authz``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.admin import MemoryAdmin
from bot.audit import HistoryItem, history_items, versions_needed
from bot.events import AgentKey, Scope
from bot.memory_types import Block
from bot.privacy import is_private, visible_blocks, visible_lines

MAX_HISTORY = 200


@dataclass(frozen=True)
class RollbackResult:
    """A rollback: core memory is now as it was at version ``to``, recorded as the new version ``version``."""

    agent: AgentKey
    to: int
    version: int
    blocks: list[Block]


@dataclass(frozen=True)
class MarkResult:
    """The core lines a private/public mark changed (as they read before), per block label."""

    private: bool
    lines: list[tuple[str, str]]


class MemoryRepair:
    """History, rollback and private marks of an agent's memory."""

    def __init__(self, admin: MemoryAdmin) -> None:
        self._admin = admin
        self._core = admin.core
        self._audit = admin.audit

    async def history(
        self, agent: AgentKey, *, limit: int = 20, scope: Scope = Scope.PRIVATE, before: str | None = None
    ) -> list[HistoryItem]:
        """The newest ``limit`` audit entries (at most 200), each with the core change it made, as a context of
        ``scope`` may show them. ``before`` (an entry id) pages further back."""
        entries = await self._audit.history(agent, max(1, min(limit, MAX_HISTORY)), before)
        kept = await self._core.versions(agent, sorted(versions_needed(entries)))
        return history_items(entries, {v.version: v for v in kept}, scope)

    async def rollback(
        self, agent: AgentKey, version: int, *, cause: str, scope: Scope = Scope.PRIVATE
    ) -> RollbackResult:
        """Restore core memory as it was at ``version``, under the agent's lock; the rollback is itself a new,
        audited version. Raises VersionNotKept (with the versions kept). The blocks returned are as ``scope``
        may show them."""
        async with self._admin.lock(agent):
            new = await self._core.rollback(agent, version, cause=cause)
            blocks = await self._core.blocks(agent)
        return RollbackResult(agent, version, new, visible_blocks(blocks, scope))

    async def mark(
        self, agent: AgentKey, query: str, private: bool, *, cause: str, scope: Scope = Scope.PRIVATE
    ) -> MarkResult:
        """Mark the core lines containing ``query`` (case-insensitive) private, or public again. Only lines a context
        of ``scope`` shows are considered, so a private line is never revealed by unmarking it from a channel."""
        await self._admin.require(agent)
        needle = query.strip().lower()
        changed: list[tuple[str, str]] = []
        if not needle:
            return MarkResult(private, changed)
        async with self._admin.lock(agent):
            for block in await self._core.blocks(agent):
                for line in dict.fromkeys(visible_lines(block.value.splitlines(), scope)):
                    if needle in line.lower() and is_private(line) != private:
                        await self._core.mark(agent, block.label, line, private, cause=cause)
                        changed.append((block.label, line))
        return MarkResult(private, changed)
