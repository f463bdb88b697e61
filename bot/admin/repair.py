"""Seeing and repairing memory without wiping it: the audit history, core rollback, and private marks.

Needs only core memory and the audit trail (both in Redis), so ``membot memory history|rollback`` work while
``membot run`` holds an embedded Qdrant. Permission is decided before, by ``bot.admin.authz``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from bot.admin.audit import HistoryItem, history_items, versions_needed
from bot.admin.memory import UnknownAgent
from bot.admin.ports import AuditHistory, CoreRepair
from bot.core.events import AgentKey, Scope
from bot.core.memory_types import PRIVATE_MARK, Block, MemoryEditError
from bot.core.privacy import is_private, visible_blocks, visible_lines

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

    def __init__(
        self, core: CoreRepair, audit: AuditHistory, lock: Callable[[AgentKey], AbstractAsyncContextManager[object]]
    ) -> None:
        self._core = core
        self._audit = audit
        self._lock = lock

    async def require(self, agent: AgentKey) -> None:
        """Raise UnknownAgent when nothing of ``agent`` is in Redis: no core memory, versions or audit trail."""
        if await self._core.version(agent) or await self._core.exists(agent) or await self._audit.history(agent, 1):
            return
        raise UnknownAgent(f"no memory is stored for {agent}")

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
        async with self._lock(agent):
            new = await self._core.rollback(agent, version, cause=cause)
            blocks = await self._core.blocks(agent)
        return RollbackResult(agent, version, new, visible_blocks(blocks, scope))

    async def mark(
        self, agent: AgentKey, query: str, private: bool, *, cause: str, scope: Scope = Scope.PRIVATE
    ) -> MarkResult:
        """Mark the core lines containing ``query`` (case-insensitive) private, or public again. Only lines a context
        of ``scope`` shows are considered, so a private line is never revealed by unmarking it from a channel."""
        needle = query.strip().lower()
        changed: list[tuple[str, str]] = []
        if not needle:
            return MarkResult(private, changed)
        async with self._lock(agent):
            for block in await self._core.blocks(agent):
                for line in dict.fromkeys(visible_lines(block.value.splitlines(), scope)):
                    if needle in line.lower() and is_private(line) != private:
                        try:
                            await self._core.mark(agent, block.label, line, private, cause=cause)
                        except MemoryEditError:
                            raise MemoryEditError(
                                f"block '{block.label}' is too full to mark more lines private (each mark adds "
                                f"{len(PRIVATE_MARK) + 1} characters); {len(changed)} line(s) were marked before"
                            ) from None
                        changed.append((block.label, line))
        return MarkResult(private, changed)
